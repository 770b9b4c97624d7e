"""export_bundle=True exports after training; an export failure never loses the trained model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer


def test_export_bundle_after_training(lm_blocks):
    model, cfg = tiny_gpt()
    config = quiet_config(epochs=1, export_bundle=True, export_formats=["torchscript", "safetensors"],
                          run_name="exp", export_dir="bundles")
    results = Trainer(model, cfg, config, lm_task()).train(lm_blocks)
    assert results["export_dir"] == str(Path("bundles/exp"))
    manifest = json.loads(Path("bundles/exp/manifest.json").read_text())
    assert sorted(manifest["ok"]) == ["safetensors", "torchscript"]


class DataDependent(nn.Module):
    """Computes in Python on tensor values: an exported graph cannot reproduce it for other inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(32, 8)
        self.head = nn.Linear(8, 32)

    def forward(self, input_ids):
        values = sorted(input_ids.flatten().tolist())
        scale = 1 + values[len(values) // 2]  # a Python number from the data: exporters freeze it to a constant
        return self.head(self.emb(input_ids)) / scale


def test_failed_export_keeps_the_trained_model(lm_blocks):
    model = DataDependent()
    config = quiet_config(epochs=1, export_bundle=True, export_formats=["onnx", "safetensors"], run_name="bad",
                          checkpoint_dir="ck")
    results = Trainer(model, None, config, lm_task()).train(lm_blocks)
    manifest = results["export_manifest"]
    assert "safetensors" in manifest["ok"] and "onnx" in manifest["failed"]
    assert Path("ck/epoch_1.pt").is_file()
    assert all(torch.isfinite(v).all() for v in results["final_model_state"].values())
