"""TrainingConfig to/from dicts and YAML/JSON files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainforge.config import ConfigError, TrainingConfig


def full_config(tmp_path: Path) -> TrainingConfig:
    """A config that differs from the defaults in many fields, including lists, None and tiny floats."""
    return TrainingConfig(
        epochs=7,
        max_steps=1000,
        learning_rate=5e-5,
        adam_epsilon=1e-10,
        max_grad_norm=None,
        warmup_steps=10,
        precision="bf16-mixed",
        compile_mode="max-autotune",
        device="cuda:1",
        early_stopping_patience=2,
        checkpoint_dir=tmp_path / "ck",
        keep_last_n=2,
        run_name="exp-1",
        tags=["a", "b"],
        notes="multi\nline: notes",
        export_bundle=True,
        export_formats=["safetensors"],
        strategy="ddp",
    )


def test_to_dict_is_plain_data(tmp_path: Path) -> None:
    d = full_config(tmp_path).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert yaml.safe_load(yaml.safe_dump(d)) == d
    assert d["checkpoint_dir"] == str(tmp_path / "ck")
    d["tags"].append("c")
    assert full_config(tmp_path).tags == ["a", "b"]


def test_from_dict_round_trip(tmp_path: Path) -> None:
    cfg = full_config(tmp_path)
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("config: must be a mapping of option names to values, got [1]. Fix: pass a dict.")
    ):
        TrainingConfig.from_dict([1])  # type: ignore[arg-type]


def test_from_dict_reports_all_problems() -> None:
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_dict({"lr": -1, "epoch": 2, 3: 4})  # type: ignore[dict-item]
    assert info.value.problems == [
        "epoch: unknown option, got 2. Fix: did you mean 'epochs'?",
        "3: option names must be strings, got 3. Fix: quote the name.",
        "learning_rate: must be a positive number, got -1.0. Fix: use a value such as 3e-4.",
    ]


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json", ".YAML"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    cfg = full_config(tmp_path)
    path = cfg.save(tmp_path / "sub" / f"config{suffix}")
    assert path == tmp_path / "sub" / f"config{suffix}" and path.exists()
    assert TrainingConfig.load(path) == cfg
    assert TrainingConfig.load(str(path)) == cfg


def test_saved_files_are_readable_by_the_standard_parsers(tmp_path: Path) -> None:
    cfg = full_config(tmp_path)
    assert yaml.safe_load(cfg.save(tmp_path / "c.yaml").read_text()) == cfg.to_dict()
    assert json.loads(cfg.save(tmp_path / "c.json").read_text()) == cfg.to_dict()


def test_hand_written_yaml_with_aliases_and_exponent_floats(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "lr: 1e-3\nnum_epochs: 5\nadam_epsilon: 1E-8\nsave_every_n_epochs: 2\ncheckpoint_dir: ck\nrun_name: '1e-3'\n"
    )
    cfg = TrainingConfig.load(path)
    assert (cfg.learning_rate, cfg.epochs, cfg.adam_epsilon, cfg.checkpoint_frequency) == (1e-3, 5, 1e-8, 2)
    assert cfg.run_name == "1e-3"  # quoted stays a string


def test_unknown_keys_in_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("learning_rat: 0.1\nepochs: 0\n")
    with pytest.raises(ConfigError) as info:
        TrainingConfig.load(path)
    assert str(info.value).splitlines()[0] == f"TrainingConfig from {path} has 2 problems:"
    assert info.value.problems[0] == "learning_rat: unknown option, got 0.1. Fix: did you mean 'learning_rate'?"


@pytest.mark.parametrize(
    ("suffix", "text"), [(".yaml", "- 1\n- 2\n"), (".yaml", ""), (".json", "[1, 2]"), (".yml", "just text")]
)
def test_file_that_is_not_a_mapping(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"config file {path} has 1 problem:")) as info:
        TrainingConfig.load(path)
    assert info.value.problems[0].startswith("file: must hold a mapping of option names to values, got ")
    assert info.value.problems[0].endswith(f"Fix: write one 'name: value' per line in {path}.")


def test_invalid_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match=r"file: is not valid YAML \(.*\), got '.*c\.yaml'\. Fix: correct the file\."):
        TrainingConfig.load(tmp_path / "c.yaml")
    (tmp_path / "c.json").write_text("{epochs: 3}")
    with pytest.raises(ConfigError, match=r"file: is not valid JSON \(.*\), got '.*c\.json'\. Fix: correct the file\."):
        TrainingConfig.load(tmp_path / "c.json")


def test_yaml_cannot_run_code(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        TrainingConfig.load(path)


@pytest.mark.parametrize("name", ["c.toml", "c"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    suffix = repr(Path(name).suffix or "(no suffix)")
    message = f"path: unknown config file type {suffix}, got {str(tmp_path / name)!r}. Fix: use a name ending in .yaml, .yml or .json."
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainingConfig().save(tmp_path / name)
    (tmp_path / name).write_text("epochs: 3")
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainingConfig.load(tmp_path / name)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TrainingConfig.load(tmp_path / "nope.yaml")


def test_importing_config_does_not_import_yaml_or_torch() -> None:
    # A bare parent package skips trainforge/__init__.py (owned elsewhere), so this measures config/ alone.
    code = (
        "import sys, types, pathlib, importlib.util\n"
        "spec = importlib.util.find_spec('trainforge')\n"
        "pkg = types.ModuleType('trainforge'); pkg.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['trainforge'] = pkg\n"
        "import trainforge.config\n"
        "print(sorted(m for m in ('yaml', 'torch', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
