"""Placing sweep trials on GPUs: the assignment, tested with the devices a GPU machine would have."""

from __future__ import annotations

import pytest

from tests.sweeps.sweep_helpers import sweep_dict
from trainforge.errors import ConfigError
from trainforge.sweeps import parse_sweep
from trainforge.sweeps.devices import default_parallel, ray_trial_resources, visible_gpus, worker_env, worker_gpu


def test_each_local_worker_gets_one_gpu_and_parallel_defaults_to_the_gpu_count():
    gpus = visible_gpus(env={}, device_count=4)
    assert gpus == ["0", "1", "2", "3"] and default_parallel(gpus) == 4
    assert [worker_gpu(slot, gpus) for slot in range(4)] == ["0", "1", "2", "3"]  # one GPU each
    assert [worker_gpu(slot, gpus) for slot in range(4, 6)] == ["0", "1"]  # more workers than GPUs: round-robin
    env = worker_env(2, gpus, {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert env == {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "2"}
    # The GPUs this process may use are the ones it was given (as CUDA reads the list: up to an invalid entry).
    assert visible_gpus(env={"CUDA_VISIBLE_DEVICES": "5,7"}, device_count=2) == ["5", "7"]
    assert visible_gpus(env={"CUDA_VISIBLE_DEVICES": "3,-1,4"}, device_count=1) == ["3"]
    assert visible_gpus(env={"CUDA_VISIBLE_DEVICES": "GPU-1a2b,GPU-3c4d"}, device_count=2) == ["GPU-1a2b", "GPU-3c4d"]
    assert worker_env(0, visible_gpus(env={"CUDA_VISIBLE_DEVICES": "5,7"}, device_count=2), {})["CUDA_VISIBLE_DEVICES"] == "5"


def test_on_cpu_nothing_changes():
    gpus = visible_gpus(env={}, device_count=0)
    assert gpus == [] and default_parallel(gpus) == 1
    assert worker_gpu(0, gpus) is None
    assert worker_env(0, gpus, {"A": "1"}) == {"A": "1"}  # no CUDA_VISIBLE_DEVICES added
    assert ray_trial_resources(None, cluster_gpus=0) == {"cpu": 1.0}
    data = sweep_dict()
    del data["parallel"]
    assert parse_sweep(data).parallel == default_parallel(visible_gpus())  # 1 on this CPU machine


def test_ray_trials_request_one_gpu_by_default_configurable_and_fractional():
    assert ray_trial_resources(None, cluster_gpus=8) == {"cpu": 1.0, "gpu": 1.0}
    assert ray_trial_resources(0.5, cluster_gpus=8) == {"cpu": 1.0, "gpu": 0.5}
    assert ray_trial_resources(0, cluster_gpus=8) == {"cpu": 1.0}
    spec = parse_sweep(sweep_dict(backend="ray", method="random", n_trials=2, ray={"gpus_per_trial": 0.25}))
    assert spec.gpus_per_trial == 0.25
    bad = sweep_dict(backend="ray", method="random", ray={"gpus_per_trial": -1})
    with pytest.raises(ConfigError, match=r"ray.gpus_per_trial: must be a number >= 0 \(0.5 shares a GPU"):
        parse_sweep(bad)
