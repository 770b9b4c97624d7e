"""Distributed helpers: a thin adapter over torch.distributed."""

from trainforge.distributed.env import DistEnv, from_environment

__all__ = ["DistEnv", "from_environment"]
