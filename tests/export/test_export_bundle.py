"""The bundle's layout, manifest (hashes, versions, parity, latency) and the import-time promise."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from tests.export.conftest import ALL_FORMATS, Bundle


def test_layout_and_configs(lm_bundle: Bundle) -> None:
    names = {p.name for p in lm_bundle.path.iterdir()}
    expected = {"model.onnx", "model.torchscript.pt", "model.safetensors", "model_config.json", "task_spec.json",
                "training_config.yaml", "inference.py", "README.md", "requirements.txt", "manifest.json"}
    assert expected <= names
    assert json.loads((lm_bundle.path / "task_spec.json").read_text()) == lm_bundle.task.to_dict()
    assert json.loads((lm_bundle.path / "model_config.json").read_text())["d_model"] == 32
    assert "run_name: lm-run" in (lm_bundle.path / "training_config.yaml").read_text()
    reqs = (lm_bundle.path / "requirements.txt").read_text()
    assert "onnxruntime" in reqs and "numpy" in reqs and "torch" in reqs
    readme = (lm_bundle.path / "README.md").read_text()
    assert "inference.py" in readme and "model.onnx" in readme
    assert lm_bundle.manifest["run_name"] == "lm-run"
    assert lm_bundle.manifest["tokenizer"]["type"] == "byte"


def test_manifest_hashes_match_files(any_bundle: Bundle) -> None:
    manifest = json.loads((any_bundle.path / "manifest.json").read_text())
    on_disk = {p.relative_to(any_bundle.path).as_posix() for p in any_bundle.path.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    for name, entry in manifest["files"].items():
        data = (any_bundle.path / name).read_bytes()
        assert entry["size"] == len(data), name
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name


def test_every_format_passed_parity(any_bundle: Bundle) -> None:
    manifest = any_bundle.manifest
    assert manifest["ok"] == list(ALL_FORMATS) and manifest["failed"] == []
    for fmt in ALL_FORMATS:
        rec = manifest["formats"][fmt]
        assert rec["status"] == "ok", rec
        parity = rec["parity"]
        assert parity["passed"] and parity["max_abs_diff"] <= 1e-4
        assert len(parity["cases"]) == 2
        shapes = [case["input_shapes"][0] for case in parity["cases"]]
        assert shapes[0][0] != shapes[1][0]  # two batch sizes
        if any_bundle.task.task_type != "vision_classification":
            assert shapes[0][1] != shapes[1][1]  # and two sequence lengths
        if fmt != "safetensors":
            assert parity["fresh_process"] is True
    versions = manifest["versions"]
    for key in ("python", "torch", "onnx", "onnxruntime", "numpy", "trainforge"):
        assert versions[key], key


def test_onnx_has_dynamic_axes(lm_bundle: Bundle, s2s_bundle: Bundle) -> None:
    import onnx

    model = onnx.load(str(lm_bundle.path / "model.onnx"))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert all(isinstance(d, str) and d for d in dims), dims
    s2s = onnx.load(str(s2s_bundle.path / "model.onnx"))
    assert [i.name for i in s2s.graph.input] == ["input_ids", "decoder_input_ids"]


def test_latency_in_manifest(lm_bundle: Bundle) -> None:
    latency = lm_bundle.manifest["latency"]
    for backend in ("eager", "torchscript", "onnxruntime"):
        for batch in ("batch_1", "batch_8"):
            assert latency[backend][batch] > 0, (backend, batch)
    assert "| onnxruntime |" in (lm_bundle.path / "README.md").read_text()


def test_import_trainforge_does_not_import_optional_exporters() -> None:
    code = (
        "import sys, trainforge, trainforge.export, trainforge.export.cli\n"
        "bad = [m for m in ('onnx', 'onnxruntime', 'onnxscript', 'safetensors') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
