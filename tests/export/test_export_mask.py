"""Exports keep the attention mask: a model whose forward takes ``attention_mask`` is exported with the mask as an
input; ONNX Runtime and TorchScript give the eager output on a padded batch (1e-4), and ``inference.py`` passes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.mask_models import PAD, VOCAB, MaskedClassifier, MaskedLM
from trainforge import TaskSpec
from trainforge.export import export_bundle

pytest.importorskip("onnxruntime")

IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, PAD, PAD, PAD], [4, 3, 5, 6, PAD, PAD]])
MASK = (IDS != PAD).long()


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", ["classification", "language_modeling"])
def test_onnx_and_torchscript_take_the_mask_and_match_eager_on_a_padded_batch(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "classification":
        model = MaskedClassifier()
        task = TaskSpec.classification(name="c", num_classes=3, vocab_size=VOCAB, max_seq_len=8, pad_token_id=PAD)
    else:
        model = MaskedLM()
        task = TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=8, pad_token_id=PAD)
    manifest = export_bundle(model, task, tmp_path / "bundle", ["onnx", "torchscript"], measure_latency=False)
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask"]
    assert manifest["formats"]["onnx"]["status"] == "ok", manifest["formats"]["onnx"]
    assert manifest["formats"]["torchscript"]["status"] == "ok", manifest["formats"]["torchscript"]

    model.eval()
    with torch.no_grad():
        eager = model(IDS, MASK).numpy()
        unmasked = model(IDS, None).numpy()
    assert np.abs(eager - unmasked).max() > 1e-3  # the mask changes this model's output on the padded batch
    sess = _session(tmp_path / "bundle" / "model.onnx")
    onnx_out = sess.run(None, {"input_ids": IDS.numpy(), "attention_mask": MASK.numpy()})[0]
    np.testing.assert_allclose(onnx_out, eager, atol=1e-4)
    scripted = torch.jit.load(str(tmp_path / "bundle" / "model.torchscript.pt"))
    with torch.no_grad():
        np.testing.assert_allclose(scripted(IDS, MASK).numpy(), eager, atol=1e-4)

    # inference.py derives the mask from pad_token_id and passes it
    np.save(tmp_path / "ids.npy", IDS.numpy())
    proc = subprocess.run([sys.executable, str(tmp_path / "bundle" / "inference.py"), "--npy", str(tmp_path / "ids.npy"),
                           "--json", "--max-new-tokens", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.array(json.loads(proc.stdout)["logits"]), eager, atol=1e-4)


def test_the_parity_check_feeds_a_padded_batch(tmp_path):
    from trainforge.export.wrapper import build_samples, takes_attention_mask

    task = TaskSpec.classification(name="c", num_classes=3, vocab_size=VOCAB, max_seq_len=8, pad_token_id=PAD)
    assert takes_attention_mask(MaskedClassifier(), task) and not takes_attention_mask(torch.nn.Linear(2, 2), task)
    samples = build_samples(task, attention_mask=True)
    ids, mask = samples.example
    assert samples.names == ["input_ids", "attention_mask"] and (mask == 0).any() and bool(mask[0].all())
    assert bool((ids[mask == 0] == PAD).all())
    given = build_samples(task, {"input_ids": IDS, "attention_mask": MASK}, attention_mask=True)
    assert torch.equal(given.example[1], MASK)  # the training batch's own mask when it has one


def test_a_forward_that_accepts_and_ignores_the_mask_exports_without_it():
    """trainforge's GPT takes attention_mask and ignores it (right-padded causal LM): no dead graph input."""
    from tests.helpers import lm_task, tiny_gpt
    from trainforge.export.wrapper import export_samples

    model, _ = tiny_gpt(vocab=VOCAB)
    task = lm_task(vocab=VOCAB, pad_token_id=PAD)
    assert export_samples(model, task).names == ["input_ids"]
    assert export_samples(MaskedLM(), task).names == ["input_ids", "attention_mask"]
