"""Notebook guardrails, checked in a real IPython kernel started by nbclient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.notebook.kernel import run_cells, text_of
from trainforge.errors import ConfigError
from trainforge.notebook import guardrails

TRY_DDP = """
import torch
from trainforge import ConfigError, TaskSpec, Trainer, TrainingConfig
from trainforge.models import build_model
from trainforge.notebook import in_notebook
print("in_notebook", in_notebook())
torch.manual_seed(0)
model, mc = build_model("tiny", n_layer=1)
task = TaskSpec.language_modeling(name="t", vocab_size=256, max_seq_len=64)
data = torch.randint(0, 256, (8, 64))
cfg = TrainingConfig(epochs=1, batch_size=4, strategy="ddp", device="cpu", progress_bar=False, output_dir="{out}")
try:
    results = Trainer(model, mc, cfg, task).train(data)
    print("ALLOWED world_size", results["world_size"])
except ConfigError as exc:
    print("REFUSED", exc)
"""

TRY_COORDINATOR = """
from trainforge.lightning import TrainingCoordinator
try:
    TrainingCoordinator(cfg, task, strategy="ddp").train(model, train_data=data)
    print("COORDINATOR ALLOWED")
except ConfigError as exc:
    print("COORDINATOR REFUSED", exc)
"""


@pytest.mark.parametrize("allow", [False, True])
def test_kernel_refuses_ddp_unless_allowed(allow: bool, tmp_path, monkeypatch) -> None:
    if allow:
        monkeypatch.setenv("ALLOW_NOTEBOOK_DDP", "1")
    else:
        monkeypatch.delenv("ALLOW_NOTEBOOK_DDP", raising=False)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    cells = [TRY_DDP.replace("{out}", str(tmp_path / "run"))]
    if not allow:
        cells.append(TRY_COORDINATOR)
    nb = run_cells(*cells)
    out = text_of(nb.cells[0])
    assert "in_notebook True" in out
    if allow:
        assert "ALLOWED world_size 1" in out  # no launcher around the kernel: one process trains
    else:
        assert "REFUSED" in out and "notebook" in out
        assert "trainforge train --nproc N" in out and "ALLOW_NOTEBOOK_DDP=1" in out  # why, and what to do
        coordinator = text_of(nb.cells[1])
        assert "COORDINATOR REFUSED" in coordinator and "ALLOW_NOTEBOOK_DDP=1" in coordinator


def test_not_a_notebook_here() -> None:
    assert not guardrails.in_notebook()
    guardrails.check_notebook_strategy("ddp")  # a script or pytest: nothing to refuse


def test_refusal_in_a_fake_kernel(monkeypatch) -> None:
    monkeypatch.setattr(guardrails, "in_notebook", lambda: True)
    monkeypatch.delenv("ALLOW_NOTEBOOK_DDP", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for strategy in ("ddp", "fsdp", "ddp_notebook"):
        with pytest.raises(ConfigError, match="refused in a notebook"):
            guardrails.check_notebook_strategy(strategy)
    for strategy in ("auto", "single", None):
        guardrails.check_notebook_strategy(strategy)
    monkeypatch.setenv("ALLOW_NOTEBOOK_DDP", "1")
    guardrails.check_notebook_strategy("ddp")


def test_several_gpus_in_a_notebook_use_one(monkeypatch, capsys) -> None:
    monkeypatch.setattr(guardrails, "in_notebook", lambda: True)
    monkeypatch.setattr(guardrails, "visible_gpus", lambda: 4)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert guardrails.notebook_device("auto") == "cuda:0"
    assert "4 GPUs are visible" in capsys.readouterr().out
    assert guardrails.notebook_device("cpu") == "cpu"
    monkeypatch.setattr(guardrails, "in_notebook", lambda: False)
    assert guardrails.notebook_device("auto") == "auto"


def test_data_parallel_is_refused() -> None:
    from tests.helpers import lm_task, quiet_config
    from trainforge import Trainer

    with pytest.raises(ConfigError, match="DataParallel"):
        Trainer(nn.DataParallel(nn.Linear(2, 2)), None, quiet_config(), lm_task())
    assert guardrails.check_not_data_parallel(nn.Linear(2, 2)) is None
    assert torch.nn.DataParallel is nn.DataParallel
