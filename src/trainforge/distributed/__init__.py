"""Distributed helpers: a thin adapter over torch.distributed (see docs/distributed.md)."""

from trainforge.distributed.env import DistEnv, from_environment, rebase_batches, shutdown
from trainforge.distributed.sampling import EvalShardSampler

__all__ = ["DistEnv", "EvalShardSampler", "from_environment", "rebase_batches", "shutdown"]
