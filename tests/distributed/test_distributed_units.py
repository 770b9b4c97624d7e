"""Fast, in-process checks of the distributed pieces (no process group)."""

from __future__ import annotations

import pytest

from trainforge.data.sampler import ResumableSampler
from trainforge.distributed import EvalShardSampler, rebase_batches
from trainforge.distributed.launch import strip_nproc, torchrun_command


@pytest.mark.parametrize("n", [16, 22, 24])
def test_rank_batches_together_are_the_single_process_batch(n: int) -> None:
    """Global batch 2b: batch k of one process == the union of the two ranks' batch k (the same samples)."""
    b = 3
    one = list(ResumableSampler(n, seed=7))
    ranks = [list(ResumableSampler(n, seed=7, rank=r, world_size=2)) for r in range(2)]
    for k in range(n // (2 * b)):
        together = ranks[0][k * b:(k + 1) * b] + ranks[1][k * b:(k + 1) * b]
        assert sorted(together) == sorted(one[2 * b * k:2 * b * (k + 1)])


def test_eval_shards_cover_every_sample_once() -> None:
    shards = [list(EvalShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(11))
    assert [len(EvalShardSampler(11, r, 3)) for r in range(3)] == [4, 4, 3]


def test_rebase_batches_keeps_the_sample_position() -> None:
    assert rebase_batches(4, 4, 2, 8, 1) == (4, True)  # 2 x 4 -> 1 x 8: same global batch
    assert rebase_batches(4, 8, 1, 4, 2) == (4, True)
    assert rebase_batches(4, 4, 2, 4, 1) == (8, True)  # same per-process batch: twice the batches
    assert rebase_batches(3, 4, 2, 8, 2) == (1, False)  # 24 samples, global batch 16: rounded down


def test_nproc_is_stripped_for_the_workers() -> None:
    args = ["train", "--nproc", "2", "--preset", "tiny", "--nproc=3", "epochs=1"]
    assert strip_nproc(args) == ["train", "--preset", "tiny", "epochs=1"]
    cmd = torchrun_command(2, ["train"])
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "trainforge",
                       "train"]


def test_fsdp_under_torchrun_is_refused_not_replaced(monkeypatch) -> None:
    from trainforge.distributed import from_environment
    from trainforge.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="fsdp"):
        from_environment("fsdp")
    assert from_environment("single").world_size == 1
