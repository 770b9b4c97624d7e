"""A format that cannot be exported or does not match is recorded and warned about; the others are kept."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from tests.export import export_models as em
from trainforge import TaskSpec
from trainforge.export import ExportWarning, export_bundle

TASK = TaskSpec.vision_classification(name="broken", num_classes=4, image_size=8, num_channels=3)


def _check_safetensors_kept(out: Path, model: torch.nn.Module, manifest: dict) -> None:
    from safetensors.torch import load_file

    rec = manifest["formats"]["safetensors"]
    assert rec["status"] == "ok", rec
    saved = load_file(str(out / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(saved[name], tensor), name
    on_disk = json.loads((out / "manifest.json").read_text())
    entry = on_disk["files"]["model.safetensors"]
    assert entry["sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()


def test_non_exportable_model_records_failures_and_keeps_other_formats(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = em.NotExportable().eval()
    out = tmp_path / "bundle"
    with pytest.warns(ExportWarning) as record:
        manifest = export_bundle(model, TASK, out, ("onnx", "torchscript", "safetensors"), measure_latency=False)
    warned = " ".join(str(w.message) for w in record)
    assert "'onnx' failed" in warned and "'torchscript' failed" in warned
    assert manifest["failed"] == ["onnx", "torchscript"] and manifest["ok"] == ["safetensors"]
    for fmt in ("onnx", "torchscript"):
        rec = manifest["formats"][fmt]
        assert rec["status"] == "failed"
        assert rec["error"]
        assert len(rec["attempts"]) == 2, rec["attempts"]
    ts = manifest["formats"]["torchscript"]
    assert "tolist" in ts["attempts"][0]["error"] or "script" in ts["attempts"][0]["error"].lower()
    # The trace "works" but bakes in one median: the fresh-process check against eager is what catches it.
    assert ts["attempts"][1]["stage"] == "parity" and not ts["attempts"][1]["ok"]
    _check_safetensors_kept(out, model, manifest)
    readme = (out / "README.md").read_text()
    assert "| onnx |" in readme and "failed" in readme


def test_forward_returning_no_tensor_is_recorded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = em.ReturnsNoTensor().eval()
    out = tmp_path / "bundle"
    with pytest.warns(ExportWarning):
        manifest = export_bundle(model, TASK, out, "onnx,torchscript,safetensors", measure_latency=False)
    assert manifest["eager_error"] and "logits" in manifest["eager_error"]
    for fmt in ("onnx", "torchscript"):
        assert manifest["formats"][fmt]["status"] == "failed"
        assert "logits" in manifest["formats"][fmt]["error"]
        assert not (out / f"model.{'onnx' if fmt == 'onnx' else 'torchscript.pt'}").exists()
    _check_safetensors_kept(out, model, manifest)
    assert (out / "inference.py").is_file()


def test_unusable_arguments_raise(tmp_path: Path) -> None:
    model = em.TinyConvNet()
    with pytest.raises(ValueError, match="did you mean 'onnx'"):
        export_bundle(model, TASK, tmp_path / "x", ("onxx",))
    with pytest.raises(TypeError, match="TaskSpec"):
        export_bundle(model, "vision", tmp_path / "x")  # type: ignore[arg-type]
    no_vocab = TaskSpec.classification(name="feats", num_classes=2)
    with pytest.raises(ValueError, match="sample_batch"):
        export_bundle(model, no_vocab, tmp_path / "x")


def test_float_feature_classifier_with_sample_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    task = TaskSpec.classification(name="feats", num_classes=2)
    batch = {"input_ids": torch.randn(4, 5), "labels": torch.tensor([0, 1, 0, 1])}
    manifest = export_bundle(model, task, tmp_path / "b", ("torchscript",), sample_batch=batch, measure_latency=False)
    assert manifest["ok"] == ["torchscript"]
    assert manifest["inputs"][0]["shape"] == ["batch", 5]


def test_onnx_falls_back_to_the_exporter_that_works(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = em.DataDependentCheck().eval()
    manifest = export_bundle(model, TASK, tmp_path / "b", ("onnx",), measure_latency=False)
    rec = manifest["formats"]["onnx"]
    assert rec["status"] == "ok" and rec["method"] == "legacy", rec
    assert rec["attempts"][0]["method"] == "dynamo" and not rec["attempts"][0]["ok"]
    assert "data-dependent" in rec["attempts"][0]["error"]
