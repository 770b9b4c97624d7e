"""``inference.py`` checks the model file against the manifest's sha256 before loading it (run as users do)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from tests.export.conftest import Bundle


def _inference(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(bundle / "inference.py"), "--tokens", "1,2,3", "--json", *args],
                          capture_output=True, text=True, timeout=120, cwd=bundle)


def test_a_tampered_model_file_is_refused_and_loads_with_skip_verify(cls_bundle: Bundle, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(cls_bundle.path, bundle)
    original = _inference(bundle, "--format", "torchscript")
    assert original.returncode == 0, original.stderr

    # Replace the TorchScript file with a valid one whose weights were changed: it loads, and it would lie.
    module = torch.jit.load(str(bundle / "model.torchscript.pt"))
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5)
    torch.jit.save(module, str(bundle / "model.torchscript.pt"))
    recorded = json.loads((bundle / "manifest.json").read_text())["files"]["model.torchscript.pt"]["sha256"]

    refused = _inference(bundle, "--format", "torchscript")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "refusing to load model.torchscript.pt: its sha256 is " in refused.stderr
    assert f"but manifest.json records {recorded} (the file changed after export" in refused.stderr
    assert "pass --skip-verify to load it anyway" in refused.stderr

    accepted = _inference(bundle, "--format", "torchscript", "--skip-verify")
    assert accepted.returncode == 0, accepted.stderr
    before, after = json.loads(original.stdout), json.loads(accepted.stdout)
    assert after["format"] == "torchscript"
    assert not np.allclose(before["logits"], after["logits"])  # the tampered weights ran, as asked

    # The untouched ONNX file still verifies and runs (the default backend).
    assert _inference(bundle).returncode == 0
