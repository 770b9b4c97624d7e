"""Bundles of tiny models of every task type, exported once per test session (ONNX export is slowish)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from tests.export import export_models as em
from trainforge import TaskSpec
from trainforge.export import export_bundle

ALL_FORMATS = ("onnx", "torchscript", "safetensors")


class Bundle:
    def __init__(self, model: nn.Module, task: TaskSpec, path: Path, manifest: dict[str, Any]) -> None:
        self.model, self.task, self.path, self.manifest = model.eval(), task, path, manifest


def _export(tmp_path_factory: pytest.TempPathFactory, name: str, build: Any, **kwargs: Any) -> Bundle:
    model, task = build()
    out = tmp_path_factory.mktemp("bundles") / name
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # an ExportWarning here is a failed format
        manifest = export_bundle(model, task, out, ALL_FORMATS, **kwargs)
    return Bundle(model, task, out, manifest)


@pytest.fixture(scope="session")
def lm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return _export(tmp_path_factory, "lm", em.lm_model, training_config={"run_name": "lm-run", "epochs": 1})


@pytest.fixture(scope="session")
def cls_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return _export(tmp_path_factory, "cls", em.classification_model, measure_latency=False)


@pytest.fixture(scope="session")
def s2s_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return _export(tmp_path_factory, "s2s", em.seq2seq_model, measure_latency=False)


@pytest.fixture(scope="session")
def vision_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return _export(tmp_path_factory, "vision", em.vision_model, measure_latency=False)


@pytest.fixture(params=["lm", "cls", "s2s", "vision"])
def any_bundle(request: pytest.FixtureRequest) -> Bundle:
    bundle: Bundle = request.getfixturevalue(f"{request.param}_bundle")
    return bundle
