"""Every task type: inference.py (in a subprocess, with ONNX Runtime or TorchScript) agrees with the eager model;
models with other forward signatures export too."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.export import export_models as em
from tests.export.conftest import Bundle
from trainforge import TaskSpec
from trainforge.data.corpus import byte_encode
from trainforge.export import export_bundle


def run_inference(bundle: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(bundle / "inference.py"), *args, "--json"], capture_output=True,
                          text=True, timeout=120, cwd=bundle.parent)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def greedy_lm(model: torch.nn.Module, ids: torch.Tensor, steps: int) -> list[list[int]]:
    seq = ids
    out = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = model(seq[:, -em.SEQ :])[:, -1, :].argmax(-1, keepdim=True)
            out.append(nxt)
            seq = torch.cat([seq, nxt], dim=1)
    return torch.cat(out, dim=1).tolist()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_language_model_inference(lm_bundle: Bundle, tmp_path: Path, fmt: str) -> None:
    ids = torch.randint(0, em.VOCAB, (2, 10), generator=torch.Generator().manual_seed(5))
    np.save(tmp_path / "ids.npy", ids.numpy())
    result = run_inference(lm_bundle.path, "--npy", str(tmp_path / "ids.npy"), "--format", fmt, "--max-new-tokens", "3")
    assert result["format"] == fmt
    with torch.no_grad():
        eager = lm_bundle.model(ids)
    np.testing.assert_allclose(np.array(result["logits"]), eager.numpy(), atol=1e-4)
    generated = [p["generated_tokens"] for p in result["predictions"]]
    assert generated == greedy_lm(lm_bundle.model, ids, 3)


def test_language_model_text_cli(lm_bundle: Bundle) -> None:
    proc = subprocess.run([sys.executable, str(lm_bundle.path / "inference.py"), "--text", "def f("],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = greedy_lm(lm_bundle.model, byte_encode("def f(")[None], 1)[0][0]
    assert f"next token: {expected}" in proc.stdout
    assert "greedy continuation" in proc.stdout


def test_classification_inference(cls_bundle: Bundle) -> None:
    result = run_inference(cls_bundle.path, "--text", "a fine movie")
    with torch.no_grad():
        eager = cls_bundle.model(byte_encode("a fine movie")[None])["logits"]
    np.testing.assert_allclose(np.array(result["logits"]), eager.numpy(), atol=1e-4)
    assert result["predictions"][0]["label"] == int(eager.argmax())


def test_seq2seq_inference(s2s_bundle: Bundle) -> None:
    result = run_inference(s2s_bundle.path, "--tokens", "5,6,7,8", "--max-new-tokens", "4")
    src = torch.tensor([[5, 6, 7, 8]])
    dec = torch.tensor([[0]])
    with torch.no_grad():
        first = s2s_bundle.model(src, dec)[0]
        for _ in range(4):
            nxt = s2s_bundle.model(src, dec)[0][:, -1].argmax(-1, keepdim=True)
            dec = torch.cat([dec, nxt], dim=1)
    np.testing.assert_allclose(np.array(result["logits"]), first.numpy(), atol=1e-4)
    assert result["predictions"][0]["generated_tokens"] == dec[0, 1:].tolist()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_vision_inference(vision_bundle: Bundle, tmp_path: Path, fmt: str) -> None:
    images = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    np.save(tmp_path / "img.npy", images[0].numpy())  # a single [C, H, W] image
    np.save(tmp_path / "batch.npy", images.numpy())
    with torch.no_grad():
        eager = vision_bundle.model(images)
    single = run_inference(vision_bundle.path, "--npy", str(tmp_path / "img.npy"), "--format", fmt)
    assert single["predictions"][0]["label"] == int(eager[0].argmax())
    batch = run_inference(vision_bundle.path, "--npy", str(tmp_path / "batch.npy"), "--format", fmt)
    np.testing.assert_allclose(np.array(batch["logits"]), eager.numpy(), atol=1e-4)


# ----------------------------------------------------------------- other forward signatures

LM_TASK = TaskSpec.language_modeling(name="sig", vocab_size=em.VOCAB, max_seq_len=em.SEQ)


def _export_quietly(model: torch.nn.Module, out: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        return export_bundle(model, LM_TASK, out, formats, measure_latency=False, onnx_exporters=("legacy",))


def test_nanogpt_style_exports_last_position_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = em.NanoGPTStyle().eval()
    manifest = _export_quietly(model, tmp_path / "b", ("onnx", "torchscript"))
    assert manifest["ok"] == ["onnx", "torchscript"]
    assert manifest["formats"]["torchscript"]["method"] == "script"
    assert manifest["output"]["kind"] == "last_position_only"
    ids = torch.randint(0, em.VOCAB, (1, 6), generator=torch.Generator().manual_seed(1))
    result = run_inference(tmp_path / "b", "--tokens", ",".join(map(str, ids[0].tolist())), "--max-new-tokens", "2")
    with torch.no_grad():
        expected = model(ids)[0][:, -1].argmax(-1).item()
    assert result["predictions"][0]["next_token"] == expected


@pytest.mark.parametrize("factory", [em.HFLike, em.KwargsOnly], ids=["hf-like-output", "kwargs-only"])
def test_keyword_forwards_fall_back_to_tracing(tmp_path: Path, factory: Any) -> None:
    torch.manual_seed(0)
    manifest = _export_quietly(factory().eval(), tmp_path / "b", ("torchscript",))
    rec = manifest["formats"]["torchscript"]
    assert rec["status"] == "ok" and rec["method"] == "trace"
    assert rec["attempts"][0]["method"] == "script" and not rec["attempts"][0]["ok"]
    assert manifest["output"]["kind"] == "per_position"
