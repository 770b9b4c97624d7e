"""The local backend: ``parallel`` worker processes claim the sweep's trials from its SQLite file.

The command that runs the sweep is a coordinator: it queues the trials, starts the workers
(``python -m trainforge.jobs <sweep.db> --single-thread``), and watches them. A worker that dies (even by
SIGKILL) has its trial queued again at once and a new worker takes its place; a trial that raises is recorded as
failed and the others go on. Running the same command again resumes: finished trials are kept, trials left
running by dead processes are queued again, and new workers start on what is left.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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

        optuna_backend.study(spec, store.path)  # created once, here, before workers load it
    logs = store.directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    procs: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
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
                if code != 0:
                    again = queue.release_worker(name, f"worker {name} died (exit code {code})")
                    if again:
                        log(f"[sweep] worker {name} died (exit code {code}); its trial is queued again")
            _report_changes(store, seen, spec, log)
            counts = queue.counts()
            if counts["queued"] == 0 and counts["running"] == 0 and not procs:
                break
            want = min(spec.parallel - len(procs), queue.claimable())
            for _ in range(max(want, 0)):
                out = open(logs / f"worker-{started}.log", "ab")  # noqa: SIM115 - closed when the worker exits
                proc = subprocess.Popen(
                    [sys.executable, "-m", "trainforge.jobs", str(store.path), "--lease", str(spec.lease_s),
                     "--single-thread"],
                    stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                procs[f"{host}:{proc.pid}"] = (proc, out)
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
    from trainforge.jobs.handlers import StopWhenLost
    from trainforge.jobs.worker import JobFailed

    payload = job.payload
    spec = SweepSpec.from_dict(payload["sweep"])
    number = int(payload["trial"])
    sweep_dir = Path(payload.get("sweep_dir") or spec.output_dir)
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


__all__ = ["describe", "record_of", "run_local", "run_trial_job"]
