"""What a ``train()`` call writes and records around its loop, as subscribers of the run's events.

Each subscriber is a small object with some of ``on_fit_start(run)``, ``on_fit_end(run)``, ``on_exception(run)``;
``build.py`` picks them for the run and :func:`publish` tells them, never per step:

* FIT_START, in list order, after every check and just before step 0 (``Trainer.train``);
* FIT_END, in reverse order, after ``finish.py`` has put the results in ``run.results`` (subscribers read them, and
  some add their own entries: export, plot paths);
* EXCEPTION, in reverse order, when the loop raised (``run.state.exception``).

The reverse order is the one guarantee between them: what opened first closes last. The runs-database row opens
before the logs replay a resumed run's epochs into it, and is finished last, after the export's entries and the
plots are in the results; the logs get the export's entries in their summary before they close.

Only the main process gets the subscribers that write files or rows (run files, tracker, plots, export).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from trainforge.atomic import atomic_write_texts
from trainforge.checkpoint.ownership import RUN_RECORD, run_record_text
from trainforge.config import TrainingConfig
from trainforge.safe_paths import inside
from trainforge.tasks import TaskSpec
from trainforge.trainer.events import Event
from trainforge.trainer.resume import config_dict

if TYPE_CHECKING:
    from trainforge.tracking.db import RunTracker
    from trainforge.trainer.loop import Run

__all__ = ["Export", "Plots", "RunFiles", "RunLogs", "Tracker", "publish", "write_run_files"]

_HOOKS = {Event.FIT_START: "on_fit_start", Event.FIT_END: "on_fit_end", Event.EXCEPTION: "on_exception"}


def publish(run: Run, event: Event) -> None:
    """Tell the run's subscribers: FIT_START in their order, FIT_END and EXCEPTION in reverse."""
    name = _HOOKS[event]
    for sub in run.subscribers if event is Event.FIT_START else reversed(run.subscribers):
        hook = getattr(sub, name, None)
        if hook is not None:
            hook(run)


class RunFiles:
    """``config.yaml``, ``task_spec.json``, ``model_config.json``, ``run.json`` and the tokenizer, in the run
    directory before step 0 (what ``trainforge generate`` / ``evaluate`` and a resume read back)."""

    def __init__(self, run_id: str, model_config: Any, tokenizer: Any) -> None:
        self.run_id, self.model_config, self.tokenizer = run_id, model_config, tokenizer

    def on_fit_start(self, run: Run) -> None:
        write_run_files(run.run_dir, run.parts.cfg, run.parts.task, self.model_config, run_id=self.run_id,
                        run_name=run.run_name)
        if self.tokenizer is not None:
            from trainforge.data.tokenizers import save_tokenizer

            save_tokenizer(self.tokenizer, run.run_dir / "tokenizer")


class Tracker:
    """The run's row in the experiment database (``<run_dir parent>/trainforge_runs.db``): inserted as ``running``
    at the start, then a backend of the run's loggers (one row per epoch), finished with the results or the error."""

    def __init__(self, model_config: Any) -> None:
        self.model_config = model_config
        self.tracker: RunTracker | None = None

    def on_fit_start(self, run: Run) -> None:
        from trainforge._version import __version__
        from trainforge.tracking.run import start_run

        cfg, task = run.parts.cfg, run.parts.task
        self.tracker = start_run(run.run_name, run.run_dir, config=cfg.to_dict(), task_spec=task.to_dict(),
                                 model_config=config_dict(self.model_config), version=__version__)
        run.parts.logger.loggers.append(self.tracker)  # from now on it gets the epoch rows (a resume's replay too)

    def on_fit_end(self, run: Run) -> None:
        from trainforge.tracking.run import finish_run

        status = "interrupted" if run.results.get("preempted") else "finished"
        finish_run(self.tracker, run.results, status=status, plots=False)  # (the plots are the Plots subscriber's)

    def on_exception(self, run: Run) -> None:
        if self.tracker is None:
            return
        from trainforge.tracking.run import exit_status

        state, exc = run.state, run.state.exception
        assert exc is not None
        self.tracker.finish(exit_status(exc), {"epochs_completed": state.epoch, "global_step": state.global_step,
                                               "best_epoch": state.best_epoch, "best_metric": state.best_metric},
                            error=f"{type(exc).__name__}: {exc}")


class Plots:
    """``plots/loss.png`` and ``plots/metrics.png``, drawn on a background thread after the logs are closed; their
    paths go into ``results["plot_paths"]`` (reading them waits for the thread)."""

    def on_fit_end(self, run: Run) -> None:
        from trainforge.tracking.run import draw_plots_in_background

        if run.results.get("run_dir"):
            run.results["plot_paths"] = draw_plots_in_background(Path(run.results["run_dir"]))


class RunLogs:
    """The run's loggers around the loop: the config and the header lines before step 0 (and a resumed run's
    earlier epochs, so its metrics files and dashboards keep them), the summary and closing at the end."""

    def __init__(self, model_config: Any, total_steps: int | None, resumed: bool, notes: list[str]) -> None:
        self.model_config, self.total_steps, self.resumed, self.notes = model_config, total_steps, resumed, notes

    def on_fit_start(self, run: Run) -> None:
        p, state, facts = run.parts, run.state, run.facts
        p.logger.log_config({"training": p.cfg.to_dict(), "task": p.task.to_dict(),
                             "model": config_dict(self.model_config), "precision": facts["precision"],
                             "attention": facts["attention_implementation"], "device": facts["device"],
                             "world_size": facts["world_size"]})
        if p.dist.is_main:
            n_params = sum(x.numel() for x in p.raw_model.parameters())
            resumed = f" | resumed at step {state.global_step}" if self.resumed else ""
            steps = self.total_steps if self.total_steps is not None else "?"
            p.progress.write(
                f"[trainforge] {run.run_name} | {n_params / 1e6:.2f}M params | attention "
                f"{facts['attention_implementation']} | {facts['precision']} on {facts['device']} | {steps} steps"
                f"{resumed} | run dir {run.run_dir}"
            )
            for note in self.notes:
                p.progress.write(f"[trainforge] {note}")
        for row in state.history:  # a resumed run is the same run: its metrics file keeps the earlier epochs
            p.logger.log_epoch(row, int(row.get("step", 0)))

    def on_fit_end(self, run: Run) -> None:
        logger = run.parts.logger
        logger.log_summary({k: v for k, v in run.results.items() if isinstance(v, (int, float, str)) or v is None})
        logger.close()

    def on_exception(self, run: Run) -> None:
        run.parts.logger.close()


class Export:
    """The export bundle (``export_bundle=True``), from the final weights. A failure is reported in the results
    (``export_status``, ``export_error``) and warned about, never raised: the model is trained."""

    def __init__(self, model: nn.Module, skeleton: nn.Module | None, model_config: Any, tokenizer: Any) -> None:
        self.model, self.skeleton = model, skeleton  # skeleton: FSDP's plain module on the meta device
        self.model_config, self.tokenizer = model_config, tokenizer

    def on_fit_end(self, run: Run) -> None:
        from trainforge.export.after_training import export_after_training

        if self.skeleton is None:
            plain = self.model
        else:
            from trainforge.distributed import fsdp

            plain = fsdp.materialize(self.skeleton, run.results["final_model_state"])
        run.results.update(export_after_training(plain, run.parts.task, run.parts.cfg, run.run_name,
                                                 model_config=self.model_config, tokenizer=self.tokenizer))


def write_run_files(run_dir: Path, cfg: TrainingConfig, task: TaskSpec, model_config: Any, *,
                    run_id: str | None = None, run_name: str | None = None) -> None:
    """``config.yaml``, ``task_spec.json`` and ``model_config.json`` (and ``run.json`` given the run's id and name)
    in ``run_dir``, each atomically: the old file or the whole new one (also the Lightning path's)."""
    from trainforge.config._yaml import yaml_dumps

    run_dir.mkdir(parents=True, exist_ok=True)
    files = {"config.yaml": yaml_dumps(cfg.to_dict()), "task_spec.json": json.dumps(task.to_dict(), indent=2),
             "model_config.json": json.dumps(config_dict(model_config), indent=2)}
    if run_id is not None and run_name is not None:
        files[RUN_RECORD] = run_record_text(run_id, run_name)
    for name in files:
        inside(run_dir, run_dir / name)
    atomic_write_texts(run_dir, files)  # one fsync of the directory for all of them
