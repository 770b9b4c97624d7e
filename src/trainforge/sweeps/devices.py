"""Placing a sweep's trials on GPUs. Pure functions, so the assignment is tested on any machine by passing
the devices a machine would have.

* Local backend: worker slot ``i`` of ``parallel`` sees one GPU, ``CUDA_VISIBLE_DEVICES=<gpu i mod N>``, so a
  trial's ``device: auto`` (``cuda:0`` inside the worker) is that GPU. With more workers than GPUs, workers share
  GPUs round-robin. A worker that dies is replaced in the same slot, on the same GPU.
* ``parallel`` defaults to the number of visible GPUs (1 without GPUs).
* Ray backend: each trial requests ``{"cpu": 1, "gpu": gpus_per_trial}``; ``gpus_per_trial`` defaults to 1 when
  the cluster has GPUs and may be fractional (0.5: two trials share a GPU).
* Without GPUs nothing changes: workers inherit the environment and Ray trials request one CPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence


def visible_gpus(env: Mapping[str, str] | None = None, device_count: int | None = None) -> list[str]:
    """The GPU ids this process may hand out: the entries of ``$CUDA_VISIBLE_DEVICES`` when it is set (up to the
    first invalid one, as CUDA reads it), else ``0 .. device_count-1``. ``device_count`` defaults to
    ``torch.cuda.device_count()``, which counts devices without initialising CUDA (workers may still be forked)."""
    env = os.environ if env is None else env
    if device_count is None:
        try:
            import torch

            device_count = int(torch.cuda.device_count())
        except Exception:  # no torch / a broken driver: no GPUs to place on
            device_count = 0
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(device_count)]
    ids: list[str] = []
    for item in listed.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        ids.append(item)
    return ids[:device_count]


def default_parallel(gpus: Sequence[str]) -> int:
    """Worker processes when the sweep file does not say: one per visible GPU, else 1."""
    return max(len(gpus), 1)


def worker_gpu(slot: int, gpus: Sequence[str]) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value of worker ``slot`` (round-robin over ``gpus``); None without GPUs."""
    if not gpus:
        return None
    return str(gpus[slot % len(gpus)])


def worker_env(slot: int, gpus: Sequence[str], base: Mapping[str, str]) -> dict[str, str]:
    """The environment of worker ``slot``: ``base`` plus its GPU (unchanged without GPUs)."""
    env = dict(base)
    gpu = worker_gpu(slot, gpus)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def ray_trial_resources(gpus_per_trial: float | None, cluster_gpus: float) -> dict[str, float]:
    """What one Ray trial requests: one CPU, and ``gpus_per_trial`` GPUs (default: 1 when the cluster has GPUs,
    else none)."""
    gpu = (1.0 if cluster_gpus > 0 else 0.0) if gpus_per_trial is None else float(gpus_per_trial)
    return {"cpu": 1.0, "gpu": gpu} if gpu > 0 else {"cpu": 1.0}
