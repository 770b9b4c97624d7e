"""``Trainer.train`` as build → fit → finish: what the run's subscribers do, in which order, and the one-way imports
inside ``trainer/``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.atomic import atomic_write_texts
from trainforge.tracking.db import RunDB, default_db_path

TRAINER_DIR = Path(__file__).resolve().parents[2] / "src" / "trainforge" / "trainer"


class _Watch:
    """A user callback that records what the run directory and the runs database hold at fit start and fit end."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.seen: dict[str, object] = {}

    def _row(self) -> dict[str, object]:
        return RunDB(default_db_path(self.run_dir)).run(str(self.run_dir))

    def on_fit_start(self, state) -> None:
        self.seen["files"] = sorted(p.name for p in self.run_dir.iterdir())
        self.seen["status_at_start"] = self._row()["status"]

    def on_fit_end(self, state) -> None:
        self.seen["status_at_end"] = self._row()["status"]


def test_run_files_and_row_exist_before_step_0_and_the_row_is_finished_last(lm_blocks):
    run_dir = Path("runs") / "r1"
    watch = _Watch(run_dir)
    model, cfg = tiny_gpt()
    results = Trainer(model, cfg, quiet_config(epochs=1, output_dir=str(run_dir), plots=False),
                      lm_task(), callbacks=[watch]).train(lm_blocks[:32])
    # FIT_START subscribers ran before the loop's FIT_START: every run record is there, the row is running.
    assert {"config.yaml", "task_spec.json", "model_config.json", "run.json"} <= set(watch.seen["files"])
    assert json.loads((run_dir / "run.json").read_text())["run_name"] == results["run_name"]
    assert json.loads((run_dir / "model_config.json").read_text())["vocab_size"] == 32
    assert watch.seen["status_at_start"] == "running"
    assert watch.seen["status_at_end"] == "running"  # the loop's FIT_END comes before the results exist
    # FIT_END subscribers, in reverse order: the logs' summary (plots: tests/tracking), then the database row.
    row = RunDB(default_db_path(run_dir)).run(str(run_dir))
    assert row["status"] == "finished" and row["global_step"] == results["global_step"] == 4
    assert json.loads((run_dir / "summary.json").read_text())["monitor"] == results["monitor"]


def test_a_failing_loop_closes_the_logs_and_marks_the_row_failed(lm_blocks):
    class Boom:
        def on_step_end(self, state) -> None:
            raise RuntimeError("boom")

    run_dir = Path("runs") / "r2"
    model, cfg = tiny_gpt()
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(model, cfg, quiet_config(epochs=1, output_dir=str(run_dir)), lm_task(),
                callbacks=[Boom()]).train(lm_blocks[:32])
    row = RunDB(default_db_path(run_dir)).run(str(run_dir))
    assert row["status"] == "failed" and row["error"] == "RuntimeError: boom"
    assert (run_dir / "config.yaml").exists() and not (run_dir / "summary.json").exists()


def test_atomic_write_texts_writes_every_file_and_leaves_no_temporaries(tmp_path):
    written = atomic_write_texts(tmp_path, {"a.json": "{}", "b.yaml": "x: 1\n"})
    assert [p.name for p in written] == ["a.json", "b.yaml"]
    assert (tmp_path / "a.json").read_text() == "{}" and (tmp_path / "b.yaml").read_text() == "x: 1\n"
    (tmp_path / "c").mkdir()
    with pytest.raises(OSError):  # a directory under the name: the rename fails, and nothing is left behind
        atomic_write_texts(tmp_path, {"a.json": "new", "c": "text"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.yaml", "c"]


def _trainer_imports(path: Path) -> set[str]:
    """The ``trainforge.trainer.*`` modules a file imports, anywhere in it (top level, functions, TYPE_CHECKING)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trainforge.trainer."):
            names.add(node.module.split(".")[2])
        elif isinstance(node, ast.ImportFrom) and node.module == "trainforge.trainer":
            names.update(alias.name for alias in node.names)
    return names


def test_imports_inside_trainer_go_one_way():
    graph = {p.stem: _trainer_imports(p) - {p.stem} for p in TRAINER_DIR.glob("*.py") if p.stem != "__init__"}
    assert not any("trainer" in deps for name, deps in graph.items() if name != "trainer"), graph
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"import circle: {' -> '.join([*visiting[visiting.index(name):], name])}"
        if name in done or name not in graph:
            return
        visiting.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_train_leaves_nothing_alive_that_only_the_cyclic_gc_would_free(lm_blocks):
    """What ``train()`` built (the optimizer and its state, the step guard, the loaders) goes when it returns, by
    reference counting: the step guard's hooks and the checkpoint states used to refer to each other, so an
    AdamW state (2x the model on the GPU) stayed allocated until Python's cyclic collector happened to run. With a
    resume (pending RNG) and NaN-guard rollback hooks, the paths that held the cycle."""
    import gc
    import weakref

    import torch

    built: list[weakref.ref] = []

    def factory(params):
        optimizer = torch.optim.AdamW(params, lr=1e-2)
        built.append(weakref.ref(optimizer))
        return optimizer

    def train(**overrides) -> None:
        model, cfg = tiny_gpt()
        settings = dict(epochs=1, checkpoint_dir="ck", output_dir="run", plots=False, track_runs=False)
        config = quiet_config(**{**settings, **overrides})
        Trainer(model, cfg, config, lm_task(), optimizer=factory).train(lm_blocks[:16], lm_blocks[16:24])

    train()  # the first call also pays torch's one-time lazy imports, whose frames sit in cycles of their own
    gc.collect()
    gc.disable()
    try:
        train(epochs=2, resume_from_checkpoint="auto")  # resumes the run above: restores RNG and guard state
        assert built[-1]() is None, "the optimizer train() built outlived train() without the cyclic gc"
    finally:
        gc.enable()
