"""Ray Tune backend: an interrupted sweep resumes through ``Tuner.restore``, and ``ray: {address: ...}`` joins a
cluster that is already running instead of starting one.

Those two start Ray (20-40 s each on 2 shared cores), so they are ``slow``: run with ``-m slow``. An unreachable
address is a clear error at once (not ``slow``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sweeps.sweep_helpers import trainforge, trial_rows, write_sweep


def _stamp(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, path.read_text()


@pytest.mark.slow  # ~40 s: Ray starts twice, 3 sweep commands
def test_ray_sweep_interrupted_with_ctrl_c_resumes_with_the_same_command(tmp_path):
    pytest.importorskip("ray.tune")
    # Trial 0 is short, trial 1 long (grid order is value order): the sweep is stopped while trial 1 runs.
    write_sweep(Path("sweep.yaml"), backend="ray", parallel=1,
                parameters={"epochs": {"values": [1, 40]}, "learning_rate": {"value": 2.0e-3}})
    first = Path("sweeps/t/trials/trial-0000/metrics.csv")
    second = Path("sweeps/t/trials/trial-0001")
    proc = subprocess.Popen([sys.executable, "-m", "trainforge", "sweep", "sweep.yaml"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not second.is_dir() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # trial 1 starts only when trial 0 is done (parallel 1)
        assert second.is_dir() and proc.poll() is None, "trial 1 never started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune stops, saves the experiment and returns
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, out[-3000:]
    assert "interrupted with 1 Ray trial(s) unfinished" in out, out[-3000:]
    rows = trial_rows(Path("sweeps/t/sweep.db"))
    assert [(json.loads(r["payload"])["trial"], r["status"]) for r in rows] == [(0, "done")]
    before = _stamp(first)

    again = trainforge("sweep", "sweep.yaml", timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "restoring the Ray Tune experiment" in again.stdout
    rows = trial_rows(Path("sweeps/t/sweep.db"))
    assert sorted((json.loads(r["payload"])["trial"], r["status"]) for r in rows) == [(0, "done"), (1, "done")]
    results = {json.loads(r["payload"])["trial"]: json.loads(r["result"]) for r in rows}
    assert len(results[0]["history"]) == 1 and len(results[1]["history"]) == 40  # trial 1 ran to its end
    assert _stamp(first) == before  # the finished trial was not run again

    third = trainforge("sweep", "sweep.yaml", timeout=300)  # finished: a no-op that keeps every trial
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert len(trial_rows(Path("sweeps/t/sweep.db"))) == 2 and _stamp(first) == before
    assert Path("sweeps/t/results.csv").read_text().count("\n") == 3  # header + 2 trials


_HEAD = """
import sys, ray
ray.init(num_cpus=3, include_dashboard=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.readline()  # until the test says stop
print("cluster still up:", ray.cluster_resources().get("CPU"), flush=True)
ray.shutdown()
"""


@pytest.mark.slow  # ~20 s: two Ray processes
def test_ray_sweep_joins_an_existing_cluster_by_address(tmp_path):
    pytest.importorskip("ray.tune")
    # Ray >= 2.59 turns token authentication on for local clusters; a cluster of one's own shares its token with
    # the drivers that join it, as here (RAY_AUTH_MODE / RAY_AUTH_TOKEN in both processes).
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, **auth}
    # The cluster: a separate process that started Ray (3 CPUs, so it is told apart from one the sweep would start
    # with parallel 2) and keeps it up until its stdin closes.
    head = subprocess.Popen([sys.executable, "-c", _HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert head.stdout is not None and head.stdin is not None
        address = head.stdout.readline().strip()
        assert ":" in address, f"the head process printed {address!r}"
        write_sweep(Path("sweep.yaml"), backend="ray", parallel=2, ray={"address": address},
                    parameters={"learning_rate": {"values": [1e-3, 3e-3]}})
        proc = subprocess.run([sys.executable, "-m", "trainforge", "sweep", "sweep.yaml"], capture_output=True,
                              text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert f"joined the Ray cluster at {address}: 1 node(s), 3 CPUs" in proc.stdout
        rows = trial_rows(Path("sweeps/t/sweep.db"))
        assert len(rows) == 2 and all(r["status"] == "done" for r in rows)
        assert all(json.loads(r["result"])["value"] is not None for r in rows)
        out, _ = head.communicate(input="\n", timeout=120)
        assert "cluster still up: 3.0" in out  # the sweep disconnected and left the cluster running
    finally:
        if head.poll() is None:  # a failed assertion: let the head stop its cluster (ray.shutdown), then make sure
            try:
                head.communicate(input="\n", timeout=60)
            except subprocess.TimeoutExpired:
                head.kill()
                head.wait()


def test_ray_sweep_with_an_unreachable_address_is_a_clear_error(tmp_path):
    pytest.importorskip("ray.tune")
    with socket.socket() as sock:  # a free port: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_sweep(Path("sweep.yaml"), backend="ray", ray={"address": f"127.0.0.1:{port}"})
    proc = trainforge("sweep", "sweep.yaml", timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"cannot connect to the Ray cluster at '127.0.0.1:{port}'" in proc.stderr
    assert "Traceback" not in proc.stderr and not Path("sweeps/t/trials").exists()
