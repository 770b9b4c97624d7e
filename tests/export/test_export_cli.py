"""``trainforge export CHECKPOINT``: run_export / export_checkpoint from a checkpoint file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from tests.export import export_models as em
from trainforge import TrainingConfig
from trainforge.errors import ModelError
from trainforge.export import export_checkpoint
from trainforge.export.cli import add_export_parser, main


def _save_checkpoint(path: Path, model: torch.nn.Module, task, model_config, run_name: str = "run-x") -> Path:
    torch.save(
        {
            "format_version": 1,
            "run_name": run_name,
            "model": model.state_dict(),
            "task_spec": task.to_dict(),
            "model_config": model_config,
            "training_config": TrainingConfig(export_formats=["torchscript", "safetensors"]).to_dict(),
        },
        path,
    )
    return path


def test_cli_exports_gpt_checkpoint_without_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, task = em.lm_model()
    ckpt = _save_checkpoint(tmp_path / "last.pt", model, task, model.config.to_dict())
    assert main([str(ckpt), "--formats", "torchscript,safetensors", "--out", str(tmp_path / "out"), "--no-latency"]) == 0
    assert "torchscript" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["ok"] == ["torchscript", "safetensors"]
    assert manifest["run_name"] == "run-x"
    reloaded = torch.jit.load(str(tmp_path / "out" / "model.torchscript.pt"))
    ids = torch.randint(0, em.VOCAB, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids), model.eval()(ids), atol=1e-5, rtol=0)


def test_subparser_registration_and_default_out_dir(tmp_path: Path) -> None:
    model, task = em.lm_model()
    ckpt = _save_checkpoint(tmp_path / "ck.pt", model, task, model.config.to_dict(), run_name="my-run")
    parser = argparse.ArgumentParser(prog="trainforge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_parser(sub)
    args = parser.parse_args(["export", str(ckpt), "--formats", "torchscript,safetensors", "--no-latency"])
    assert args.command == "export"
    assert args.handler(args) == 0
    bundle = Path("exports") / "my-run"  # relative to the cwd (tests run in a tmp dir)
    assert (bundle / "model.safetensors").is_file() and (bundle / "model.torchscript.pt").is_file()


def test_custom_model_needs_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, task = em.classification_model()
    ckpt = _save_checkpoint(tmp_path / "cls.pt", model, task, {"hidden": 16})
    assert main([str(ckpt), "--out", str(tmp_path / "o")]) == 2
    assert "export_checkpoint(path, model=" in capsys.readouterr().err
    with pytest.raises(ModelError):
        export_checkpoint(ckpt, out_dir=tmp_path / "o")
    manifest = export_checkpoint(ckpt, model=em.TextClassifier(), out_dir=tmp_path / "o", measure_latency=False)
    assert manifest["ok"] == ["torchscript", "safetensors"]  # the run's export_formats


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.pt")]) == 2
    assert "not found" in capsys.readouterr().err
