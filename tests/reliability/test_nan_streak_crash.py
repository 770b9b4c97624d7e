"""Crash consistency of the step guard: a run killed (SIGKILL) or preempted (SIGTERM) inside or just after a NaN
streak resumes to the uninterrupted run's final weights, bit for bit; a hopeless streak stops the same way resumed or
not, and the stop saves only a good state.

The killed runs are ``fault_child.py``'s streak run (a real tiny GPT whose forward turns NaN at step 9 of the warmup
and stays NaN until a rollback lowers the learning rate): checkpoints every 3 steps, so checkpoints are written
inside the streak (step 9, the end of epoch 1) and its rollback goes back to step 6.
"""

from __future__ import annotations

import random
import shutil
import signal
from pathlib import Path

import pytest
import torch

from tests.reliability.test_fault_injection import ForkServer, _assert_latest_checkpoint_readable, _assert_same_run
from tests.reliability.test_nan_guard import NanOnCalls, PoisonGPT, _train, poisoned
from trainforge.checkpoint.io import safe_load
from trainforge.trainer.guard import NonFiniteTrainingError

PHASES = ("step", "ckpt", "eval")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ForkServer(tmp_path_factory.mktemp("streak-forkserver"))
    yield srv
    srv.close()


def _args(root: Path, name: str) -> dict:
    return {"ckpt_dir": str(root / name / "ckpt"), "out": str(root / name / "final.pt"),
            "run_dir": str(root / name / "run"), "nan": True}


def _plan(lines: list[str], index: int, sig: int, rng: random.Random) -> tuple[str, int, float, int]:
    """A kill after the marker at ``lines[index]`` of the uninterrupted run (the same marker in a rerun)."""
    while lines[index] not in PHASES:  # ("bad" follows its step's marker)
        index -= 1
    phase = lines[index]
    return phase, lines[: index + 1].count(phase), rng.uniform(0, 0.003), sig


def test_kills_inside_and_just_after_a_nan_streak_resume_to_the_same_weights(server, tmp_path):
    reference = _args(tmp_path, "reference")
    code, lines = server.attempt(reference)
    assert code == 0 and lines[-1] == "done", lines[-5:]
    ref = torch.load(reference["out"], weights_only=True)
    assert ref["nan_rollbacks"] == 1 and [r["step"] for r in ref["skipped_step_records"]] == [9, 10, 11]
    bad = [i for i, line in enumerate(lines) if line == "bad"]
    assert len(bad) == 3
    inside = range(bad[0] - 2, bad[-1] + 1)  # from the streak's first step to its last (epoch 1 ends inside it)
    after = range(bad[-1] + 1, bad[-1] + 30)  # the rollback, the replay at half the rate, epoch 1's end again
    rng = random.Random(20261206)
    plans = []
    for n, sig in enumerate([signal.SIGKILL, signal.SIGTERM] * 4):
        plans.append(_plan(lines, rng.choice(inside if n % 4 < 2 else after), sig, rng))
    for n, plan in enumerate(plans):
        args = _args(tmp_path, f"run{n}")
        code, lines = server.attempt(args, plan)
        if plan[3] == signal.SIGKILL:
            assert code == -signal.SIGKILL, (plan, code, lines[-5:])
        else:  # stops at the next step boundary with a checkpoint, exits cleanly
            assert code == 0 and lines[-1] == "stopped preempted (SIGTERM)", (plan, lines[-5:])
        _assert_latest_checkpoint_readable(args["ckpt_dir"])
        code, lines = server.attempt(args)  # resume_from="auto"
        assert code == 0 and lines[-1] == "done", (plan, code, lines[-5:])
        _assert_same_run(reference["out"], args["out"])
        resumed = torch.load(args["out"], weights_only=True)
        assert resumed["skipped_step_records"] == ref["skipped_step_records"], plan
        assert resumed["nan_rollbacks"] == 1, plan


def test_a_checkpoint_inside_a_streak_carries_the_snapshot_and_resumes_like_the_uninterrupted_run(lm_blocks):
    data = poisoned(lm_blocks, [8, 12, 16])  # micro-batches 2, 3, 4 (steps 3-5): a streak on every replay
    with pytest.raises(NonFiniteTrainingError) as full:
        _train(PoisonGPT(), data, checkpoint_dir="full", checkpoint_every_n_steps=1, nan_max_rollbacks=1)
    inside = safe_load(Path("full") / "step_00000004.pt")  # written in the first pass, 2 bad steps in
    assert inside["guard"]["streak"] == 2 and inside["guard"]["last_good"]["state"]["global_step"] == 2
    Path("resumed").mkdir()
    shutil.copy(Path("full") / "step_00000004.pt", "resumed")
    with pytest.raises(NonFiniteTrainingError) as resumed:
        _train(PoisonGPT(), data, checkpoint_dir="resumed", checkpoint_every_n_steps=1, nan_max_rollbacks=1,
               resume="auto")
    # The same rollback and the same stop, not "after 0 rollback(s)"; the saved state is the good one, named.
    assert str(resumed.value) == str(full.value).replace("'full/", "'resumed/")
    assert "after 1 rollback(s)" in str(full.value) and "saved to 'full/step_00000002.pt'" in str(full.value)
    for name in ("full", "resumed"):
        good = safe_load(Path(name) / "step_00000002.pt")
        assert good["guard"]["streak"] == 0 and good["guard"]["rollbacks"] == 1
        assert all(bool(torch.isfinite(v).all()) for v in good["model"].values() if v.is_floating_point())


def test_a_run_resumed_inside_a_streak_without_a_snapshot_stops_without_saving_the_bad_state(lm_blocks):
    # A checkpoint of an older version (its guard counters in "state", no snapshot): the guard cannot roll back, so
    # it stops; it must not save the non-finite state as a good one, and it names the last good checkpoint.
    data = poisoned(lm_blocks, [8, 12, 16])
    with pytest.raises(NonFiniteTrainingError):
        _train(PoisonGPT(), data, checkpoint_dir="full", checkpoint_every_n_steps=1, nan_max_rollbacks=0)
    old = safe_load(Path("full") / "step_00000004.pt")
    guard = old.pop("guard")
    old["state"].update(skipped_steps=guard["records"], nan_streak=guard["streak"], nan_rollbacks=0)
    Path("old").mkdir()
    torch.save(old, Path("old") / "step_00000004.pt")
    before = sorted(p.name for p in Path("old").iterdir())
    with pytest.raises(NonFiniteTrainingError, match=r"after 0 rollback\(s\).*No good state is held in memory .* "
                                                     r"no checkpoint written outside a streak"):
        _train(PoisonGPT(), data, checkpoint_dir="old", checkpoint_every_n_steps=100, nan_max_rollbacks=1,
               resume="auto")
    assert sorted(p.name for p in Path("old").iterdir()) == before  # nothing saved as "good"


def test_a_rollback_lowers_the_rate_through_the_schedule_scale_saved_with_the_run(lm_blocks):
    # Steps 13-15 are NaN: a rollback to the step-12 checkpoint's snapshot, at half the rate. The reduction is the
    # guard's LrScale (the schedule's lambda multiplies by it), saved under "guard"; torch's scheduler state keeps
    # its own base rates.
    rolled = _train(NanOnCalls({13, 14, 15}), lm_blocks[:40], epochs=2, checkpoint_dir="ck",
                    checkpoint_every_n_steps=2, lr_schedule="constant")
    assert rolled["nan_rollbacks"] == 1
    replayed = safe_load(Path("ck") / "step_00000014.pt")  # rewritten by the replay after the rollback
    assert replayed["guard"]["lr_scale"] == 0.5 and replayed["guard"]["streak"] == 0
    assert replayed["scheduler"]["base_lrs"] == [1e-2, 1e-2]
    assert [g["lr"] for g in replayed["optimizer"]["param_groups"]] == [5e-3, 5e-3]
    Path("resumed").mkdir()
    shutil.copy(Path("ck") / "step_00000014.pt", "resumed")
    resumed = _train(NanOnCalls(set()), lm_blocks[:40], epochs=2, checkpoint_dir="resumed",
                     checkpoint_every_n_steps=2, lr_schedule="constant", resume="auto")
    assert resumed["metrics_summary"]["lr"].tolist() == rolled["metrics_summary"]["lr"].tolist()
    for key, value in rolled["final_model_state"].items():
        assert torch.equal(value, resumed["final_model_state"][key]), key
