"""The local backend: ``parallel`` worker processes claim the sweep's trials from its SQLite file.

The command that runs the sweep is a coordinator: it queues the trials (a few ahead of the workers, never all at
once), starts the workers (worker slot ``i`` sees one GPU, see :mod:`trainforge.sweeps.devices`)
(``python -m trainforge.jobs <sweep.db> --single-thread``, or the same worker forked from the coordinator: see
:func:`start_method`), and watches them. A worker that dies (even by SIGKILL) has its trial queued again at once
and a new worker takes its place; a trial that raises is recorded as failed and the others go on. Running the same command again resumes: finished trials are kept, trials left
running by dead processes are queued again, and new workers start on what is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from trainforge.sweeps.devices import visible_gpus, worker_env
from trainforge.sweeps.spec import SweepSpec
from trainforge.sweeps.store import SweepStore, TrialRecord, record_of
from trainforge.sweeps.trial import run_trial, trial_dir

if TYPE_CHECKING:
    from trainforge.jobs.queue import Job
    from trainforge.jobs.worker import JobContext


def run_local(spec: SweepSpec, store: SweepStore, log: Callable[[str], None] = print, poll_s: float = 0.2) -> None:
    """Run every claimable trial of the sweep with ``spec.parallel`` worker processes; returns when all are
    finished (completed, pruned, failed or cancelled)."""
    queue = store.queue
    released = queue.release_dead_local_workers()
    if released:
        log(f"[sweep] {len(released)} trial(s) left running by a stopped sweep are queued again")
    if spec.method == "optuna":
        from trainforge.sweeps import optuna_backend

        optuna_backend.create_study(spec, store.path)  # created once, here, before workers load it
    logs = store.directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    how = start_method()
    ahead = 2 * spec.parallel  # queued ahead of the workers, so one that finishes finds its next trial at once
    store.fill(spec, ahead)
    gpus = visible_gpus()
    if queue.claimable():
        on = f", one GPU each of {','.join(gpus)} (CUDA_VISIBLE_DEVICES)" if gpus else ""
        log(f"[sweep] up to {spec.parallel} worker process(es), started by {how}{on}")
    procs: dict[str, tuple[Worker, IO[bytes]]] = {}
    slots: dict[str, int] = {}  # worker name -> its slot (and so its GPU); a replacement takes a free slot
    seen: dict[int, str] = {t.number: t.status for t in store.trials()}
    started = 0
    try:
        while True:
            for name, (proc, out) in list(procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                out.close()
                del procs[name]
                slots.pop(name, None)
                if code != 0:
                    again = queue.release_worker(name, f"worker {name} died (exit code {code})")
                    if again:
                        log(f"[sweep] worker {name} died (exit code {code}); its trial is queued again")
            _report_changes(store, seen, spec, log)
            store.fill(spec, ahead)
            counts = queue.counts()
            if counts["queued"] == 0 and counts["running"] == 0 and not procs and store.all_queued(spec):
                break
            want = min(spec.parallel - len(procs), queue.claimable())
            for _ in range(max(want, 0)):
                slot = min(set(range(spec.parallel)) - set(slots.values()))
                out = open(logs / f"worker-{started}.log", "ab")  # noqa: SIM115 - closed when the worker exits
                argv = [str(store.path), "--lease", str(spec.lease_s), "--single-thread"]
                env = worker_env(slot, gpus, {**os.environ, "OMP_NUM_THREADS": "1"})
                worker: Worker = ForkedWorker(argv, out, env) if how == "fork" else subprocess.Popen(
                    [sys.executable, "-m", "trainforge.jobs", *argv], stdout=out, stderr=subprocess.STDOUT, env=env,
                )
                procs[f"{host}:{worker.pid}"] = (worker, out)
                slots[f"{host}:{worker.pid}"] = slot
                started += 1
            time.sleep(poll_s)
    except BaseException:
        for name, (proc, out) in procs.items():
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            out.close()
            queue.release_worker(name, "the sweep was interrupted")
        log("[sweep] interrupted; run the same command again to resume")
        raise
    _report_changes(store, seen, spec, log)


# ------------------------------------------------------------------------------------------ worker processes

START_METHOD_ENV = "TRAINFORGE_SWEEP_WORKERS"


def start_method() -> str:
    """How the coordinator starts workers: ``fork`` or ``exec`` (a fresh ``python -m trainforge.jobs``).

    A forked worker starts in milliseconds with the coordinator's imports (torch, trainforge) already done; a
    fresh interpreter pays about 1.5 s of imports first, once per worker. Fork is used where the platform has it
    and the coordinator runs no other Python thread (a thread holding a lock at fork time could deadlock the
    child); in the child the worker sets ``torch.set_num_threads(1)`` before any tensor work, as PyTorch's own
    DataLoader workers do. ``$TRAINFORGE_SWEEP_WORKERS=exec`` (or ``fork``) forces one or the other.
    """
    forced = os.environ.get(START_METHOD_ENV, "").strip().lower()
    if forced in ("fork", "exec"):
        return forced if forced == "exec" or hasattr(os, "fork") else "exec"
    if forced:
        warnings.warn(f"${START_METHOD_ENV}={forced!r} is neither fork nor exec; choosing automatically",
                      RuntimeWarning, stacklevel=2)
    return "fork" if hasattr(os, "fork") and sys.platform != "darwin" and threading.active_count() == 1 else "exec"


class Worker(Protocol):
    """What the coordinator needs of a worker process (``subprocess.Popen`` has it, so has ForkedWorker)."""

    pid: int

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class ForkedWorker:
    """``python -m trainforge.jobs ARGV`` as a child forked from this process, its output into ``out``.

    ``poll``/``wait``/``terminate`` behave like ``subprocess.Popen``'s: the exit code, or ``-N`` for a signal.
    """

    def __init__(self, argv: list[str], out: IO[bytes], env: dict[str, str] | None = None) -> None:
        for stream in (sys.stdout, sys.stderr):  # nothing buffered here may be written twice
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the coordinator's code
            code = 1
            try:
                code = _forked_worker_main(argv, out, env)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported in the worker's log, then the exit code says it
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):  # trial plots are drawn by a thread that os._exit would kill
                    from trainforge.tracking.run import wait_for_plots

                    wait_for_plots()
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os._exit(code)
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return code

    def terminate(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)


def _forked_worker_main(argv: list[str], out: IO[bytes], env: dict[str, str] | None = None) -> int:
    """In the forked child: a fresh process's signal handlers, output and environment (its GPU: CUDA is not
    initialised in the coordinator, so the child's first CUDA call reads ``CUDA_VISIBLE_DEVICES``), then the
    worker's ``main``."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.dup2(out.fileno(), 1)  # the C level too (warnings from torch's C++ side)
    os.dup2(out.fileno(), 2)
    stream = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stdout = sys.stderr = stream
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - the child's own, for its lifetime
    if env is not None:
        os.environ.update(env)
    os.environ["OMP_NUM_THREADS"] = "1"
    from trainforge.jobs.worker import main

    return main(argv)


def _report_changes(store: SweepStore, seen: dict[int, str], spec: SweepSpec, log: Callable[[str], None]) -> None:
    for trial in store.trials():
        if seen.get(trial.number) == trial.status:
            continue
        seen[trial.number] = trial.status
        log(describe(trial, spec))


def describe(trial: TrialRecord, spec: SweepSpec) -> str:
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items() if k in spec.searched)
    line = f"[sweep] trial {trial.number} {trial.status}"
    if trial.status in ("completed", "pruned") and trial.value is not None:
        line += f" {spec.metric}={trial.value:.4g}"
    if trial.duration_s is not None and trial.status not in ("running", "queued"):
        line += f" in {trial.duration_s:.1f}s"
    if params:
        line += f" ({params})"
    if trial.status == "failed" and trial.error:
        line += f": {trial.error.splitlines()[0]}"
    return line


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------- the job handler


def run_trial_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Handler of ``sweep-trial`` jobs: payload ``{sweep: SweepSpec dict, trial: n, params: {...} | null,
    sweep_dir: path}`` (params null: the optuna sampler picks them now). Output goes to the trial's train.log."""
    from trainforge.jobs.callbacks import StopWhenLost
    from trainforge.jobs.worker import JobFailed

    payload = job.payload
    try:
        spec = SweepSpec.from_dict(payload["sweep"])
        number = int(payload["trial"])
        sweep_dir = Path(payload.get("sweep_dir") or spec.output_dir)
        if payload.get("params") is not None and not isinstance(payload["params"], dict):
            raise TypeError(f"params must be a mapping, got {type(payload['params']).__name__}")
    except (KeyError, TypeError, ValueError) as exc:  # the same payload would fail the same way again
        from trainforge.errors import bounded_repr

        raise JobFailed(f"malformed sweep-trial payload ({type(exc).__name__}: {exc}): {bounded_repr(payload)}",
                        retry=False) from exc
    callbacks: list[Any] = [StopWhenLost(ctx)]
    optuna_state: tuple[Any, Any] | None = None
    if payload.get("params") is None:
        from trainforge.sweeps import optuna_backend

        previous = (job.progress or {}).get("optuna_number")
        if previous is not None:  # a worker died running this trial: close its Optuna trial
            optuna_backend.tell_failed(spec, ctx.queue.path, int(previous))
        st, otrial, params = optuna_backend.ask(spec, ctx.queue.path, number)
        optuna_state = (st, otrial)
        callbacks.append(optuna_backend.OptunaPruning(otrial, spec.metric))
        extra = {"optuna_number": otrial.number}
    else:
        params, extra = dict(payload["params"]), {}
    run_dir = trial_dir(sweep_dir, number)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = {"params": params, "run_dir": str(run_dir.resolve()), **extra}
    ctx.progress(base)
    history: list[dict[str, Any]] = []

    def on_epoch(rows: list[dict[str, Any]]) -> None:
        history[:] = rows
        ctx.progress({**base, "history": rows})

    with open(run_dir / "train.log", "a", encoding="utf-8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        print(f"[sweep] trial {number} attempt {job.attempts} params {params}", flush=True)
        try:
            result = run_trial(spec, number, params, sweep_dir, callbacks=callbacks, on_epoch=on_epoch)
        except Exception as exc:
            traceback.print_exc()
            if optuna_state is not None:
                from trainforge.sweeps import optuna_backend

                optuna_backend.tell(*optuna_state, value=None, pruned=False, failed=True)
            raise JobFailed(f"{type(exc).__name__}: {exc}", retry=False,
                            result={**base, "history": history}) from exc
    if optuna_state is not None:
        from trainforge.sweeps import optuna_backend

        optuna_backend.tell(*optuna_state, value=result["value"], pruned=result["pruned"])
    return {**result, **extra, "run_dir": base["run_dir"]}


__all__ = ["ForkedWorker", "describe", "record_of", "run_local", "run_trial_job", "start_method"]
