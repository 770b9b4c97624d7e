"""The training run that the fault-injection tests kill, and a fork server that starts it cheaply.

``python fault_child.py run '{"ckpt_dir": ..., "out": ..., "run_dir": ...}'`` trains a tiny GPT (dropout on, so
the RNG must resume exactly) for 3 epochs with a checkpoint after every optimizer step and ``resume_from="auto"``,
then writes its final weights and losses to ``out`` (with ``"tokens": DIR``, on the memory-mapped token files of
a ``trainforge prepare`` folder instead of in-memory tensors). It prints a marker line, then sleeps a little, at
each point where a kill should be able to land:

  ``step``  a training forward (inside an optimizer step)
  ``eval``  a validation forward
  ``ckpt``  between writing a checkpoint's bytes and renaming it into place: the commit's fsync, which the
            Trainer's checkpoint manager runs on its commit thread while training goes on (atomic_save and the
            run's other atomic files fsync the same way, on the calling thread)

With ``"nan": true`` the model is :func:`_streak_model`'s: one NaN streak that only the learning-rate reduction of a
rollback ends (``bad`` is printed at each non-finite forward), for the step guard's crash-consistency tests.

``python fault_child.py serve`` imports torch and trainforge once, prints ``ready``, then for each JSON line on
stdin forks a child that does ``run`` and prints ``pid N`` and, when the child is gone, ``exit CODE`` (negative:
killed by that signal). The parent kills the *child*, so every kill is a real SIGKILL of a process that imported
everything the normal way, without paying Python + torch start-up (~2 s) twenty times.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

# Run as a script (a subprocess of the tests, any working directory): the repository root, for tests.helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers import noisy_lm_blocks  # noqa: E402

STEP_SLEEP = 0.003
EVAL_SLEEP = 0.004
CKPT_SLEEP = 0.004


def _say(text: str) -> None:
    os.write(1, (text + "\n").encode())  # unbuffered, one write: lines of two processes never interleave


def _token_files(directory: str) -> tuple[Any, Any]:
    """``trainforge prepare`` output (a 32-token vocabulary) as memory-mapped windows of 16 tokens."""
    from trainforge.data import TokenFile

    return TokenFile(f"{directory}/train.bin", 16), TokenFile(f"{directory}/val.bin", 16)


def _model() -> tuple[torch.nn.Module, Any]:
    from trainforge.models import GPT, GPTConfig

    class MarkedGPT(GPT):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            _say("step" if self.training else "eval")
            time.sleep(STEP_SLEEP if self.training else EVAL_SLEEP)
            return super().forward(*args, **kwargs)

    torch.manual_seed(1)
    cfg = GPTConfig(vocab_size=32, max_seq_len=16, n_layer=1, n_head=2, d_model=32, dropout=0.1)
    return MarkedGPT(cfg), cfg


# The streak model's NaN threshold, as a fraction of the peak learning rate (see _streak_model).
STRIDE_LIMIT = 0.75


def _streak_model(peak_lr: float) -> tuple[torch.nn.Module, Any]:
    """The marked GPT plus a ``probe`` parameter whose gradient is always 1, so that AdamW moves it by the learning
    rate of each applied step. The forward is NaN while the last applied move exceeds ``STRIDE_LIMIT * peak_lr``:
    a run warming up to ``peak_lr`` turns NaN there and stays NaN (skipped steps do not move the probe) until a
    rollback to a state two or more steps back lowers the rate (``nan_lr_factor``). The probe's last value and move
    are buffers, so checkpoints, snapshots and rollbacks carry them like any other state."""
    gpt, cfg = _model()

    class StreakGPT(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gpt = gpt
            self.probe = torch.nn.Parameter(torch.zeros(1))
            self.register_buffer("last", torch.zeros(1))
            self.register_buffer("stride", torch.zeros(1))

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            logits = self.gpt(input_ids)
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                     labels[:, 1:].reshape(-1)) + self.probe.sum()
            if self.training:
                with torch.no_grad():
                    moved = self.last - self.probe  # the probe only goes down (its gradient is +1)
                    if bool(moved != 0):  # 0: the last step was skipped
                        self.stride.copy_(moved)
                        self.last.copy_(self.probe)
                if float(self.stride) > STRIDE_LIMIT * peak_lr:
                    _say("bad")
                    return loss * float("nan")
            return loss

    return StreakGPT(), cfg


def _mark_checkpoint_writes() -> None:
    # os.fsync is looked up at call time by trainforge.atomic.commit_temporary, on whichever thread commits.
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        _say("ckpt")
        time.sleep(CKPT_SLEEP)
        real_fsync(fd)

    os.fsync = fsync  # type: ignore[assignment]


def run(ckpt_dir: str, out: str, run_dir: str, marks: bool = True, epochs: int = 3, tokens: str | None = None,
        nan: bool = False, crash_at: str | None = None, **settings: Any) -> str | None:
    """``tokens``: train on ``trainforge prepare`` output; ``nan``: the NaN-streak model; ``settings`` override the
    checkpoint settings (``checkpoint_frequency``, ``keep_last_n``, ...); ``crash_at`` names a crash point of the
    checkpoint saver (``trainforge.checkpoint.manager.crash_point``) at which this process SIGKILLs itself."""
    from trainforge import Trainer, TrainingConfig
    from trainforge.checkpoint.io import atomic_save
    from trainforge.checkpoint.manager import CRASH_ENV
    from trainforge.tasks import TaskSpec

    if crash_at is not None:
        os.environ[CRASH_ENV] = crash_at
    torch.set_num_threads(1)
    sys.stdout = sys.stderr  # stdout (fd 1) carries only the marker lines, written whole by _say
    if marks:
        _mark_checkpoint_writes()
    train, val = noisy_lm_blocks() if tokens is None else _token_files(tokens)
    model, cfg = _streak_model(1e-2) if nan else _model()
    # The streak run: warmup over 10 steps reaches the NaN threshold at step 9 (steps 9-11 are NaN: a rollback to the
    # step-6 checkpoint's snapshot at half the rate, then no more NaN); no clipping, so the probe's gradient stays 1.
    streak = {"warmup_steps": 10, "max_grad_norm": None, "checkpoint_every_n_steps": 3} if nan else {}
    config = TrainingConfig(**{"epochs": epochs, "batch_size": 4, "learning_rate": 1e-2, "checkpoint_every_n_steps": 1,
                               "checkpoint_dir": ckpt_dir, "output_dir": run_dir, "progress_bar": False,
                               "log_every_n_steps": 1000, "seed": 0, **streak, **settings})
    task = TaskSpec.language_modeling(name="lm", vocab_size=32, max_seq_len=16)
    results = Trainer(model, cfg, config, task).train(train, val, resume_from="auto")
    if results["stop_reason"] is not None:
        _say(f"stopped {results['stop_reason']}")
        return str(results["stop_reason"])
    atomic_save({"model": results["final_model_state"], "loss_history": results["loss_history"],
                 "val_loss_history": results["val_loss_history"], "global_step": results["global_step"],
                 "skipped_step_records": results["skipped_step_records"], "nan_rollbacks": results["nan_rollbacks"]},
                out)
    _say("done")
    return None


def serve() -> None:
    torch.set_num_threads(1)
    import pandas  # noqa: F401  - imported lazily by the trainer; import it once here instead of in every child
    importlib.import_module("torch._dynamo")  # AdamW's constructor imports it: seconds per child on a busy machine
    import yaml  # noqa: F401

    with contextlib.suppress(ImportError):  # the run's plots, at its end
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401

    import trainforge.trainer  # noqa: F401

    _say("ready")
    for line in sys.stdin:
        if not line.strip():
            continue
        args = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: train, then leave without returning into this loop
            code = 1
            try:
                sys.stdin.close()
                run(**args)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        _say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"exit {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        run(**json.loads(sys.argv[2]))
