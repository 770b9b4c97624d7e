"""One run per directory: a run's identity, and the check a fresh run makes before step 0.

A run gets a random ``run_id`` when it starts fresh and keeps it on resume; every checkpoint records it, and the run
directory holds it in ``run.json``. A fresh run (not resumed) whose ``checkpoint_dir`` already holds checkpoints, or
whose run directory already holds a run, stops before step 0 with the ways out; ``overwrite=True`` removes the old
run's files first: trainforge's own files only (checkpoint names, run records), never anything else in the folder.
"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

from trainforge.checkpoint.manager import INDEX, ProgressIndex, list_checkpoints, remove_stale_temporaries
from trainforge.errors import ConfigError
from trainforge.safe_paths import NAME_RULE, inside, is_safe_name

__all__ = ["RUN_RECORD", "claim_directories", "new_run_id", "read_run_id", "run_record_text", "stored_run_name",
           "write_run_record"]

RUN_RECORD = "run.json"
# What a run writes into its run directory (records, loggers, plots, tokenizer): what overwrite=True removes there.
RUN_FILES = (RUN_RECORD, "config.yaml", "task_spec.json", "model_config.json", "metrics.csv", "steps.jsonl",
             "summary.json")
RUN_FOLDERS = ("tokenizer", "plots", "tensorboard", "wandb", "mlruns")


def new_run_id() -> str:
    return uuid.uuid4().hex


def stored_run_name(ckpt: dict[str, Any], source: str, fallback: str) -> str:
    """The run name a checkpoint records, if it is a safe name; else ``fallback``, with a warning (a name read
    from a file is never used as a path unchecked: ``..`` or an absolute path would write outside the run's
    directories)."""
    name = ckpt.get("run_name")
    if name is None or is_safe_name(name):
        return name or fallback
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    warnings.warn(f"The checkpoint {source!r} records run_name {shown}, which is not a plain name ({NAME_RULE}); "
                  f"it is not used as a directory name: using {fallback!r} instead. Fix: pass run_name=... "
                  "(or --out for an export) to choose the name.", stacklevel=3)
    return fallback


def read_run_id(run_dir: str | Path) -> str | None:
    """The run id recorded in ``run_dir/run.json``, or None."""
    try:
        value = json.loads((Path(run_dir) / RUN_RECORD).read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def write_run_record(run_dir: Path, run_id: str, run_name: str) -> None:
    from trainforge.atomic import atomic_write_text

    atomic_write_text(inside(run_dir, run_dir / RUN_RECORD), run_record_text(run_id, run_name))


def run_record_text(run_id: str, run_name: str) -> str:
    """What ``run.json`` holds."""
    return json.dumps({"run_id": run_id, "run_name": run_name})


def _holds_a_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (RUN_RECORD, "config.yaml", "metrics.csv"))


def claim_directories(checkpoint_dir: str | Path | None, run_dir: Path, *, run_id: str, resumed: bool,
                      may_start_over: bool, overwrite: bool) -> list[str]:
    """Make sure this run may write into its directories; returns what ``overwrite`` removed.

    ``resumed``: the run continues a checkpoint (its ``run_id`` is that run's). ``may_start_over``: the user asked
    for ``resume_from="auto"`` and no readable checkpoint was found, so leftovers (run records of a run killed
    before its first checkpoint, unreadable files) are taken over. Raises ``ConfigError`` naming the three ways out otherwise.
    """
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else None
    problems: list[str] = []
    foreign_ckpts: list[Path] = []
    if ckpt_dir is not None:
        index_id = ProgressIndex(ckpt_dir).run_id
        if resumed:
            if index_id is not None and index_id != run_id:
                foreign_ckpts = list_checkpoints(ckpt_dir)
        elif not may_start_over:  # (auto found nothing readable there: those files cannot be continued)
            foreign_ckpts = list_checkpoints(ckpt_dir)
        if foreign_ckpts:
            names = ", ".join(p.name for p in foreign_ckpts[:4]) + (" ..." if len(foreign_ckpts) > 4 else "")
            problems.append(f"checkpoint_dir {str(ckpt_dir)!r} already holds checkpoints of another run ({names})")
    foreign_run = False
    if not resumed and not may_start_over and _holds_a_run(run_dir):
        foreign_run = read_run_id(run_dir) != run_id
    elif resumed and (recorded := read_run_id(run_dir)) is not None and recorded != run_id:
        foreign_run = True
    if foreign_run:
        problems.append(f"the run directory {str(run_dir)!r} already holds another run")
    if not problems:
        return []
    if not overwrite or resumed:
        raise ConfigError(
            [f"{p}, and a fresh run would mix its files with that run's. Fix: resume_from='auto' to continue that "
             "run; or another run_name / checkpoint_dir / output_dir for a new run; or overwrite=True (overwrite=true on "
             "the command line or in a run file) to delete that run's checkpoints and run records first (other files are kept)."
             for p in problems],
            what="Trainer.train",
        )
    removed: list[str] = []
    if ckpt_dir is not None and foreign_ckpts:
        for path in [*list_checkpoints(ckpt_dir), ckpt_dir / INDEX]:
            if path.exists():
                inside(ckpt_dir, path).unlink()
                removed.append(str(path))
        removed += [str(p) for p in remove_stale_temporaries(ckpt_dir)]
    if foreign_run:
        for name in RUN_FILES:
            if (path := run_dir / name).is_file() or path.is_symlink():
                inside(run_dir, path).unlink()
                removed.append(str(path))
        for name in RUN_FOLDERS:
            path = inside(run_dir, run_dir / name)
            if path.is_symlink():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
            else:
                continue
            removed.append(str(path))
    return removed
