"""The training run that the fault-injection tests kill, and a fork server that starts it cheaply.

``python fault_child.py run '{"ckpt_dir": ..., "out": ..., "run_dir": ...}'`` trains a tiny GPT (dropout on, so
the RNG must resume exactly) for 3 epochs with a checkpoint after every optimizer step and ``resume_from="auto"``,
then writes its final weights and losses to ``out``. It prints a marker line, then sleeps a little, at each point
where a kill should be able to land:

  ``step``  a training forward (inside an optimizer step)
  ``eval``  a validation forward
  ``ckpt``  between writing a checkpoint's bytes and renaming it into place: the commit's fsync, which the
            Trainer's checkpoint manager runs on its commit thread while training goes on (atomic_save and the
            run's other atomic files fsync the same way, on the calling thread)

``python fault_child.py serve`` imports torch and trainforge once, prints ``ready``, then for each JSON line on
stdin forks a child that does ``run`` and prints ``pid N`` and, when the child is gone, ``exit CODE`` (negative:
killed by that signal). The parent kills the *child*, so every kill is a real SIGKILL of a process that imported
everything the normal way, without paying Python + torch start-up (~2 s) twenty times.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

import torch

STEP_SLEEP = 0.003
EVAL_SLEEP = 0.004
CKPT_SLEEP = 0.004


def _say(text: str) -> None:
    os.write(1, (text + "\n").encode())  # unbuffered, one write: lines of two processes never interleave


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.arange(16).repeat(48, 1) % 32
    noise = torch.randint(0, 32, (48, 16), generator=g)
    keep = torch.rand(48, 16, generator=g) < 0.8
    blocks = torch.where(keep, base, noise)
    return blocks[:40], blocks[40:]


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


def _mark_checkpoint_writes() -> None:
    # os.fsync is looked up at call time by trainforge.atomic.commit_temporary, on whichever thread commits.
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        _say("ckpt")
        time.sleep(CKPT_SLEEP)
        real_fsync(fd)

    os.fsync = fsync  # type: ignore[assignment]


def run(ckpt_dir: str, out: str, run_dir: str, marks: bool = True, epochs: int = 3, crash_at: str | None = None,
        **settings: Any) -> str | None:
    """``settings`` override the checkpoint settings (``checkpoint_frequency``, ``keep_last_n``, ...); ``crash_at``
    names a crash point of the checkpoint saver (``trainforge.checkpoint.manager.crash_point``) at which this
    process SIGKILLs itself."""
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
    train, val = _data()
    model, cfg = _model()
    config = TrainingConfig(**{"epochs": epochs, "batch_size": 4, "learning_rate": 1e-2, "checkpoint_every_n_steps": 1,
                               "checkpoint_dir": ckpt_dir, "output_dir": run_dir, "progress_bar": False,
                               "log_every_n_steps": 1000, "seed": 0, **settings})
    task = TaskSpec.language_modeling(name="lm", vocab_size=32, max_seq_len=16)
    results = Trainer(model, cfg, config, task).train(train, val, resume_from="auto")
    if results["stop_reason"] is not None:
        _say(f"stopped {results['stop_reason']}")
        return str(results["stop_reason"])
    atomic_save({"model": results["final_model_state"], "loss_history": results["loss_history"],
                 "val_loss_history": results["val_loss_history"], "global_step": results["global_step"]}, out)
    _say("done")
    return None


def serve() -> None:
    torch.set_num_threads(1)
    import pandas  # noqa: F401  - imported lazily by the trainer; import it once here instead of in every child
    import yaml  # noqa: F401

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
