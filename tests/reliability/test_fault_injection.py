"""Kill a training process with SIGKILL at random points, resume it each time, and get the same weights, bitwise.

Kills land inside optimizer steps, between a checkpoint's bytes and its rename, and during validation (the child
prints a marker and then sleeps a few milliseconds at each; the parent kills at a random moment of that window).
After every kill the newest checkpoint must be readable. The default test does 20 kills through a fork server
(one Python + torch start-up in all); the ``slow`` one starts a fresh interpreter for every attempt and kills after
random delays, 40 times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import torch

from trainforge.checkpoint.io import safe_load
from trainforge.checkpoint.manager import find_latest, list_checkpoints

CHILD = Path(__file__).with_name("fault_child.py")
PHASES = ("step", "ckpt", "eval")


class ForkServer:
    """The parent's side of ``fault_child.py serve``."""

    def __init__(self, workdir: Path) -> None:
        self.log = open(workdir / "children.log", "w")  # noqa: SIM115 - closed in close()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, str(CHILD), "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1, cwd=workdir,
                                     env=env)
        self.watchdog = threading.Timer(300, self.proc.kill)  # a hung child must not hang the test run
        self.watchdog.start()
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died; see {self.log.name}")
        return line.strip()

    def attempt(self, args: dict[str, Any], kill: tuple[str, int, float, int] | None = None) -> tuple[int, list[str]]:
        """Run one child; ``kill=(phase, nth marker, delay_s, signal)`` sends the signal after that marker.

        Returns the child's exit code (negative: the signal that ended it) and the marker lines it printed.
        """
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        first = self._line()
        assert first.startswith("pid "), first
        pid = int(first.split()[1])
        seen: dict[str, int] = dict.fromkeys(PHASES, 0)
        lines: list[str] = []
        sent = False
        while True:
            line = self._line()
            if line.startswith("exit "):
                return int(line.split()[1]), lines
            lines.append(line)
            if line in seen:
                seen[line] += 1
            if kill is not None and not sent and seen.get(kill[0], 0) >= kill[1]:
                time.sleep(kill[2])
                os.kill(pid, kill[3])  # the child is alive until the server prints "exit": it reaps it only then
                sent = True

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.watchdog.cancel()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ForkServer]:
    srv = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield srv
    srv.close()


def _args(root: Path, name: str) -> dict[str, Any]:
    return {"ckpt_dir": str(root / name / "ckpt"), "out": str(root / name / "final.pt"),
            "run_dir": str(root / name / "run")}


def _assert_latest_checkpoint_readable(ckpt_dir: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # find_latest warns when it has to skip an unreadable file
        latest = find_latest(ckpt_dir)
    if latest is not None:
        safe_load(latest)
    for path in list_checkpoints(ckpt_dir):  # atomic writes: no file under a checkpoint name is ever partial
        safe_load(path)


def _assert_files_agree(ckpt_dir: str) -> Path | None:
    """Every checkpoint file is whole, and best.pt is never staler than the best epoch the most advanced checkpoint
    (the one ``resume_from="auto"`` picks, best.pt included) records. Returns that checkpoint."""
    _assert_latest_checkpoint_readable(ckpt_dir)
    newest = find_latest(ckpt_dir, include_best=True)
    if newest is None:
        return None
    best_epoch = safe_load(newest)["state"]["best_epoch"]
    if best_epoch is not None:
        best = safe_load(Path(ckpt_dir) / "best.pt")  # (missing would raise: a recorded best without its file)
        assert best["state"]["epoch"] >= best_epoch and best["state"]["best_epoch"] == best["state"]["epoch"]
    return newest


def _assert_same_run(a_path: str, b_path: str) -> None:
    a, b = torch.load(a_path, weights_only=True), torch.load(b_path, weights_only=True)
    assert a["loss_history"] == b["loss_history"]
    assert a["val_loss_history"] == b["val_loss_history"]
    assert a["global_step"] == b["global_step"]
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory) -> str:
    args = _args(tmp_path_factory.mktemp("reference"), "full")
    code, lines = server.attempt(args)
    assert code == 0 and lines[-1] == "done", lines[-5:]
    return str(args["out"])


def _kill_campaign(server: ForkServer, root: Path, kills: int, seed: int, reference: str,
                  settings: dict[str, Any] | None = None) -> dict[str, int]:
    """Kill and resume until ``kills`` kills have landed and the run finished; returns kills per phase.

    ``settings`` override the child's checkpoint settings (e.g. ``checkpoint_frequency``, ``keep_last_n``)."""
    rng = random.Random(seed)
    landed: dict[str, int] = dict.fromkeys(PHASES, 0)
    campaign = 0
    while sum(landed.values()) < kills:
        args = {**_args(root, f"campaign{campaign}"), **(settings or {})}
        while True:
            plan = None
            if sum(landed.values()) < kills:
                phase = rng.choice(PHASES)
                nth = 1 if phase == "eval" else rng.randint(1, 3)
                plan = (phase, nth, rng.uniform(0, 0.004), signal.SIGKILL)
            code, lines = server.attempt(args, plan)
            if code == -signal.SIGKILL:
                assert plan is not None
                landed[plan[0]] += 1
                _assert_files_agree(args["ckpt_dir"])
                continue
            assert code == 0 and lines and lines[-1] == "done", (code, lines[-5:])
            break
        _assert_same_run(reference, args["out"])
        campaign += 1
    return landed


def test_twenty_sigkills_then_resume_give_bitwise_identical_weights(server, reference, tmp_path):
    # ~25 s on an idle 2-core machine (no time assertion: shared CI machines are slower under load)
    landed = _kill_campaign(server, tmp_path, kills=20, seed=20240501, reference=reference)
    assert sum(landed.values()) >= 20
    assert all(n > 0 for n in landed.values()), landed  # steps, checkpoint writes and evaluation were all hit


def test_sigterm_saves_a_checkpoint_exits_cleanly_and_resumes_exactly(server, reference, tmp_path):
    args = _args(tmp_path, "preempted")
    code, lines = server.attempt(args, ("step", 12, 0.001, signal.SIGTERM))
    assert code == 0, lines[-5:]
    assert lines[-1] == "stopped preempted (SIGTERM)"
    _assert_latest_checkpoint_readable(args["ckpt_dir"])
    code, lines = server.attempt(args)
    assert code == 0 and lines[-1] == "done"
    _assert_same_run(reference, args["out"])


@pytest.mark.slow
def test_forty_sigkills_of_fresh_processes_at_random_times(reference, tmp_path):
    """Extended mode: a new interpreter per attempt, killed after a random delay (start-up, steps, writes...)."""
    rng = random.Random(7)
    args = _args(tmp_path, "fresh")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    kills = 0
    log: IO[str]
    with open(tmp_path / "children.log", "w") as log:
        while True:
            proc = subprocess.Popen([sys.executable, str(CHILD), "run", json.dumps(args)], stdout=subprocess.DEVNULL,
                                    stderr=log, env=env)
            if kills < 40:
                try:
                    proc.wait(timeout=rng.uniform(1.0, 4.0))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    _assert_latest_checkpoint_readable(args["ckpt_dir"])
                    continue
            assert proc.wait(timeout=300) == 0
            if kills >= 40:
                break
            args = _args(tmp_path, f"fresh{kills}")  # finished before 40 kills: go on with a new run
    _assert_same_run(reference, args["out"])


# Checkpoints at epoch ends only, one periodic file kept: epoch 2's end (the best so far) commits best.pt and
# epoch_2.pt from one serialization, removes epoch_1.pt and updates the index.
EPOCH_END_SETTINGS: dict[str, Any] = {"checkpoint_every_n_steps": None, "checkpoint_frequency": 1, "keep_last_n": 1,
                                      "marks": False}


@pytest.fixture
def own_server(tmp_path) -> Iterator[ForkServer]:
    """A fork server of the test's own (the module's has one watchdog for all its tests)."""
    srv = ForkServer(tmp_path)
    yield srv
    srv.close()


def test_a_crash_at_every_file_operation_of_an_epoch_end_leaves_files_that_agree_and_resumes_bitwise(
        own_server, reference, tmp_path):
    trace = tmp_path / "trace.txt"
    args = {**_args(tmp_path, "traced"), **EPOCH_END_SETTINGS, "crash_at": f"trace:{trace}"}
    code, lines = own_server.attempt(args)
    assert code == 0 and lines[-1] == "done", lines[-5:]
    _assert_same_run(reference, args["out"])  # checkpoint settings do not change the training
    points = trace.read_text().split()
    points = points[points.index("bytes:epoch_2.pt#1"):points.index("indexed:epoch_2.pt#1") + 1]
    # every file operation of the epoch end, in order: the bytes, best.pt's rename, the epoch file's, rotation, index
    assert points == ["bytes:epoch_2.pt#1", "commit:best.pt#2", "committed:best.pt#2", "commit:epoch_2.pt#1",
                      "committed:epoch_2.pt#1", "rotate:epoch_1.pt#1", "indexed:epoch_2.pt#1"]
    resumed_from_best = 0
    for i, point in enumerate(points):
        run_args = {**_args(tmp_path, f"crash{i}"), **EPOCH_END_SETTINGS}
        code, _ = own_server.attempt({**run_args, "crash_at": point})
        assert code == -signal.SIGKILL, (point, code)
        newest = _assert_files_agree(run_args["ckpt_dir"])
        resumed_from_best += newest is not None and newest.name == "best.pt"
        code, lines = own_server.attempt(run_args)  # resume_from="auto"
        assert code == 0 and lines[-1] == "done", (point, lines[-5:])
        _assert_same_run(reference, run_args["out"])
    # killed after best.pt's rename and before epoch_2.pt's (two points): best.pt was the most advanced file
    assert resumed_from_best == 2


def test_sigkills_with_checkpoint_frequency_and_keep_last_n_resume_bitwise(own_server, reference, tmp_path):
    landed = _kill_campaign(own_server, tmp_path, kills=6, seed=20261206, reference=reference,
                            settings={"checkpoint_frequency": 2, "keep_last_n": 2})
    assert sum(landed.values()) >= 6
