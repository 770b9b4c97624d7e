"""Shared fixtures: tiny real models and data that train in seconds on a CPU."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

# Tests run on 2 cores next to another pytest worker: one intra-op thread each keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch) -> Iterator[None]:
    """Every test runs in its own directory, so default run/checkpoint folders land in tmp."""
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def lm_blocks() -> torch.Tensor:
    """[48, 16] token blocks with vocab 32: a learnable repeating pattern plus noise."""
    g = torch.Generator().manual_seed(0)
    base = torch.arange(16).repeat(48, 1) % 32
    noise = torch.randint(0, 32, (48, 16), generator=g)
    keep = torch.rand(48, 16, generator=g) < 0.8
    return torch.where(keep, base, noise)
