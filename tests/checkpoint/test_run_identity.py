"""Run names are names, and a run owns its directories (issue 17): real runs, real files on disk."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.checkpoint.io import safe_load
from trainforge.checkpoint.manager import list_checkpoints
from trainforge.config import TrainingConfig, TrainingConfigBuilder
from trainforge.errors import ConfigError
from trainforge.safe_paths import UnsafePathError, inside

BAD_NAMES = ["..", ".", "/tmp/trainforge-evil", "a/b", "a\\b", "x" * 101, ""]


def _train(data, resume=None, **overrides):
    model, cfg = tiny_gpt(seed=1)
    settings = dict(epochs=1, batch_size=8, checkpoint_dir="ck", run_name="first", track_runs=False, plots=False)
    config = quiet_config(**{**settings, **overrides})
    return Trainer(model, cfg, config, lm_task()).train(data[:32], data[32:], resume)


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its digest (to prove nothing outside a directory changed)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ names from every source
@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_run_names_are_refused_by_the_config_and_the_builder(name):
    with pytest.raises(ConfigError, match=r"run_name: must be one plain name .*got"):
        TrainingConfig(run_name=name)
    with pytest.raises(ConfigError, match="run_name"):
        TrainingConfigBuilder.tiny().with_logging(run_name=name).build()


def test_unsafe_run_name_in_a_run_file_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text('run_name: ".."\nepochs: 1\n')
    with pytest.raises(ConfigError, match="run_name: must be one plain name"):
        TrainingConfig.load(path)


def test_a_config_mutated_after_construction_is_checked_again_before_training(lm_blocks):
    config = quiet_config(epochs=1)
    config.run_name = ".."
    model, cfg = tiny_gpt()
    with pytest.raises(ConfigError, match="run_name"):
        Trainer(model, cfg, config, lm_task()).train(lm_blocks)
    assert not Path("runs").exists() and not Path("README.md").exists()


def test_unsafe_run_names_on_the_command_line_are_refused_before_anything_is_written():
    for name in ["..", ".", "/tmp/trainforge-evil", "a/b"]:
        proc = subprocess.run([sys.executable, "-m", "trainforge", "train", f"run_name={name}", "epochs=1",
                               "max_steps=1", "data.max_bytes=3000", "progress_bar=false"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "run_name: must be one plain name" in proc.stderr and "Traceback" not in proc.stderr
    assert list(Path(".").iterdir()) == []  # no runs/, exports/ or files of the current directory


@pytest.mark.parametrize("name", ["..", "../../x", "a/b", "/tmp/trainforge-evil"])
def test_sweep_names_that_make_unsafe_trial_names_are_refused(name):
    from tests.sweeps.sweep_helpers import sweep_dict
    from trainforge.sweeps.spec import parse_sweep

    with pytest.raises(ConfigError, match="name: it names the directory sweeps/<name> and each trial's run_name"):
        parse_sweep(sweep_dict(name=name))


def test_inside_refuses_paths_that_leave_their_directory(tmp_path):
    root = tmp_path / "owned"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    assert inside(root, root / "epoch_1.pt") == root.resolve() / "epoch_1.pt"
    for bad in [root / ".." / "x", root, tmp_path / "x", Path("/etc/passwd"), root / "link" / "x"]:
        with pytest.raises(UnsafePathError, match="not inside"):
            inside(root, bad)
    assert inside(root, root / "link").name == "link"  # the link itself may be removed (not what it points to)


# ------------------------------------------------------------------ a hostile name stored in a checkpoint
@pytest.mark.parametrize("stored", ["..", "/tmp/trainforge-evil-abs", "../../outside"])
def test_a_checkpoint_with_a_hostile_run_name_resumes_and_exports_inside_its_own_directories(
        lm_blocks, tmp_path, monkeypatch, stored):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "README.md").write_text("the user's own file")
    _train(lm_blocks, run_name="honest", epochs=1)
    ckpt = safe_load(Path("ck/epoch_1.pt"))
    ckpt["run_name"] = stored  # forged, as a hand-edited or foreign checkpoint would carry it
    torch.save(ckpt, "ck/epoch_1.pt")
    siblings = sorted(p.name for p in tmp_path.iterdir())
    readme = (work / "README.md").read_text()

    model, cfg = tiny_gpt(seed=1)
    config = quiet_config(epochs=2, batch_size=8, checkpoint_dir="ck", track_runs=False, plots=False,
                          export_bundle=True, export_formats=["safetensors"])  # run_name from the checkpoint
    with pytest.warns(UserWarning, match="not a plain name"):
        results = Trainer(model, cfg, config, lm_task()).train(lm_blocks[:32], lm_blocks[32:], "ck/epoch_1.pt")
    assert results["epochs_completed"] == 2
    name = results["run_name"]
    assert name.startswith("run-") and Path(results["run_dir"]) == Path("runs") / name
    assert Path(results["export_dir"]) == Path("exports") / name and (Path("exports") / name / "manifest.json").is_file()

    from trainforge.export.cli import main as export_main

    with pytest.warns(UserWarning, match="not a plain name"):
        assert export_main(["ck/epoch_1.pt", "--formats", "safetensors", "--no-latency"]) == 0
    assert (Path("exports") / "epoch_1" / "manifest.json").is_file()  # the file's stem, not the stored name
    # nothing outside the run's directories: the user's file, the folders beside work/, no absolute target
    assert (work / "README.md").read_text() == readme
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings
    assert not Path("/tmp/trainforge-evil-abs").exists()
    assert sorted(p.name for p in work.iterdir()) == ["README.md", "ck", "exports", "runs"]


# ------------------------------------------------------------------ one run per directory
def test_a_fresh_run_into_a_used_checkpoint_dir_stops_before_step_0_with_the_ways_out(lm_blocks):
    _train(lm_blocks, run_name="first", epochs=2)
    before = _tree(Path("ck"))
    ids = {safe_load(p)["run_id"] for p in list_checkpoints("ck")}
    assert len(ids) == 1 and None not in ids  # every checkpoint records the run's identity
    with pytest.raises(ConfigError) as info:
        _train(lm_blocks, run_name="second")
    message = str(info.value)
    assert "checkpoint_dir 'ck' already holds checkpoints of another run (best.pt, epoch_1.pt, epoch_2.pt)" in message
    assert "resume_from='auto'" in message and "another run_name / checkpoint_dir" in message
    assert "overwrite=True" in message
    assert _tree(Path("ck")) == before and not Path("runs/second").exists()  # refused before writing anything


def test_a_fresh_run_into_a_used_run_directory_is_refused(lm_blocks):
    _train(lm_blocks, run_name="same", checkpoint_dir="ck1")
    metrics = Path("runs/same/metrics.csv").read_text()
    with pytest.raises(ConfigError, match=r"the run directory 'runs/same' already holds another run"):
        _train(lm_blocks, run_name="same", checkpoint_dir="ck2")
    assert Path("runs/same/metrics.csv").read_text() == metrics and not Path("ck2").exists()


def test_overwrite_true_leaves_only_the_new_runs_files_and_keeps_unrelated_ones(lm_blocks):
    _train(lm_blocks, run_name="same", epochs=3, checkpoint_every_n_steps=2)
    Path("ck/notes.txt").write_text("mine")
    Path("runs/same/my_analysis.ipynb").write_text("{}")
    old_id = safe_load(Path("ck/epoch_3.pt"))["run_id"]
    results = _train(lm_blocks, run_name="same", epochs=1, overwrite=True)
    names = sorted(p.name for p in Path("ck").iterdir())
    assert names == ["best.pt", "epoch_1.pt", "index.json", "notes.txt"]
    ids = {safe_load(p)["run_id"] for p in list_checkpoints("ck")}
    assert len(ids) == 1 and old_id not in ids
    assert sorted(Path(p).name for p in results["checkpoint_paths"]) == ["best.pt", "epoch_1.pt"]
    assert Path("runs/same/my_analysis.ipynb").read_text() == "{}"
    assert len(Path("runs/same/metrics.csv").read_text().strip().splitlines()) == 2  # header + the new epoch


def test_resume_auto_continues_the_run_in_its_directories(lm_blocks):
    first = _train(lm_blocks, run_name="same", epochs=1)
    again = _train(lm_blocks, "auto", run_name="same", epochs=2)
    assert again["epochs_completed"] == 2
    assert safe_load(Path("ck/epoch_2.pt"))["run_id"] == safe_load(Path("ck/epoch_1.pt"))["run_id"]
    assert first["run_dir"] == again["run_dir"]
