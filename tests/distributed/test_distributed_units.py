"""Fast, in-process checks of the distributed pieces (no process group)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

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


def test_fsdp_without_torchrun_is_one_plain_process(monkeypatch) -> None:
    from trainforge.distributed import from_environment

    for var in ("WORLD_SIZE", "RANK", "MASTER_ADDR"):
        monkeypatch.delenv(var, raising=False)
    env = from_environment("fsdp")
    assert env.world_size == 1 and env.strategy == "single" and not env.sharded
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert from_environment("single").world_size == 1


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8), nn.Dropout()])
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.emb.weight


def test_fsdp_units_are_the_blocks_of_module_lists() -> None:
    from trainforge.distributed.fsdp import shard_units
    from trainforge.models import build_model

    gpt, _ = build_model("tiny")
    assert shard_units(gpt) == list(gpt.blocks)
    wrapper = nn.Sequential(gpt)  # nested: the outermost ModuleList anywhere
    assert shard_units(wrapper) == list(gpt.blocks)
    tied = _Tied()
    assert shard_units(tied) == [tied.blocks[0], tied.blocks[1]]  # no unit without parameters
    tied.blocks[0].weight = tied.emb.weight  # now shared with a module outside: left to the root
    assert shard_units(tied) == [tied.blocks[1]]


def test_fsdp_units_without_module_lists_and_custom() -> None:
    from trainforge.distributed.fsdp import shard_units

    model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 4), nn.Linear(4, 4))
    assert shard_units(model) == [model[0]]  # children with at least 10% of the parameters
    model.fsdp_units = lambda: [model[2]]  # type: ignore[attr-defined]
    assert shard_units(model) == [model[2]]


def test_plain_skeleton_costs_nothing_and_materializes_tied() -> None:
    from trainforge.distributed.fsdp import check_model_state, materialize, plain_skeleton
    from trainforge.errors import CheckpointError
    from trainforge.models import build_model

    gpt, _ = build_model("tiny")
    skeleton = plain_skeleton(gpt)
    assert all(p.is_meta for p in skeleton.parameters()) and not any(p.is_meta for p in gpt.parameters())
    check_model_state(skeleton, gpt.state_dict(), "ok.pt")
    broken = dict(gpt.state_dict())
    broken.pop("ln_f.bias")
    with pytest.raises(CheckpointError, match="1 missing keys"):
        check_model_state(skeleton, broken, "broken.pt")
    state = {k: v.clone() + 1 for k, v in gpt.state_dict().items()}
    plain = materialize(skeleton, state)
    assert plain.lm_head.weight is plain.tok_emb.weight  # still tied
    for key, value in plain.state_dict().items():
        assert torch.equal(value, state[key])


def test_fsdp_mixed_precision_only_on_cuda() -> None:
    from trainforge.distributed.fsdp import mixed_precision

    assert mixed_precision("bf16-mixed", torch.device("cpu")) is None
    assert mixed_precision("fp32", torch.device("cuda")) is None
    policy = mixed_precision("bf16-mixed", torch.device("cuda"))
    assert policy.param_dtype == torch.bfloat16 and policy.reduce_dtype == torch.float32


def test_fsdp_micro_steps_skip_the_gradient_sync() -> None:
    from trainforge.distributed import DistEnv

    class Sharded(nn.Module):
        calls: list[bool] = []

        def set_requires_gradient_sync(self, enabled: bool) -> None:
            self.calls.append(enabled)

    model, env = Sharded(), DistEnv(rank=0, world_size=2, strategy="fsdp")
    for i in range(3):
        with env.no_sync(model, enabled=i < 2):
            pass
    assert model.calls == [False, False, True]
