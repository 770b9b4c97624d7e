"""``run_sweep``: validate, run on the chosen backend (resuming what the sweep directory holds), report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainforge.sweeps.spec import SweepSpec, load_sweep
from trainforge.sweeps.store import SweepStore, TrialRecord


@dataclass
class SweepResult:
    """What a finished sweep left: the trials, the table, the best trial and the files written."""

    spec: SweepSpec
    directory: Path
    trials: list[TrialRecord]
    table: Any  # pandas DataFrame
    best: TrialRecord | None
    files: dict[str, Path | None] = field(default_factory=dict)
    resumed: bool = False
    run_s: float = 0.0
    report_s: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out


def run_sweep(sweep: str | os.PathLike[str] | SweepSpec, *, parallel: int | None = None,
              n_trials: int | None = None, output_dir: str | None = None, backend: str | None = None,
              log: Callable[[str], None] = print) -> SweepResult:
    """Run (or resume) a sweep from its file or a parsed :class:`SweepSpec`; write its report."""
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(
        sweep, parallel=parallel, n_trials=n_trials, output_dir=output_dir, backend=backend)
    directory = Path(spec.output_dir)
    store = SweepStore(directory)
    resumed = store.start(spec)
    before = {t.number: t.status for t in store.trials()}
    finished = sum(s in ("completed", "pruned", "failed", "cancelled") for s in before.values())
    verb = "resuming" if resumed else "starting"
    log(f"[sweep] {verb} {spec.name!r}: method {spec.method}, {spec.n_trials} trials ({finished} finished), "
        f"parallel {spec.parallel}, backend {spec.backend}, metric {spec.metric} ({spec.goal}) -> {directory}")
    if spec.description:
        log(f"[sweep] {spec.description}")
    if spec.command is not None:
        log(f"[sweep] each trial runs: {' '.join(spec.command)}")
    started = time.perf_counter()
    if spec.backend == "ray":
        from trainforge.sweeps.ray_backend import run_ray

        run_ray(spec, store, log=log)
    else:
        from trainforge.sweeps.local import run_local

        run_local(spec, store, log=log)
    run_s = time.perf_counter() - started
    started = time.perf_counter()
    from trainforge.sweeps.report import write_report

    trials = store.trials()
    report = write_report(spec, trials, directory)
    result = SweepResult(spec=spec, directory=directory, trials=trials, table=report["table"], best=report["best"],
                         files={k: report[k] for k in ("results_csv", "best_config", "best_run", "best_params", "plot")},
                         resumed=resumed, run_s=run_s, report_s=time.perf_counter() - started)
    return result


def print_summary(result: SweepResult, log: Callable[[str], None] = print) -> None:
    table = result.table
    shown = table.drop(columns=[c for c in ("run_dir",) if c in table.columns])
    log("")
    log(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(shown) else "(no trials)")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    log(f"\ntrials: {counts}   sweep directory: {result.directory}")
    if result.best is not None:
        log(f"best: trial {result.best.number} {result.spec.metric}={result.best.value:.4g} "
            f"params {result.best.params}")
    for name, path in result.files.items():
        if path is not None:
            log(f"{name}: {path}")
