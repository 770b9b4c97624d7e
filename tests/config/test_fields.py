"""The field declarations in config/fields.py are the single source of every TrainingConfig field.

Each dataclass field has exactly one declaration; the builder's keywords, the alias map, the override reader,
the typed keyword surfaces and the Lightning allowlist cover exactly the declared fields; and a field added only
to the declarations (in a copy of the package) appears in all of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainforge.config import ConfigError, TrainingConfig, TrainingConfigBuilder, parse_overrides, typed_surface
from trainforge.config.builder import METHOD_KEYS
from trainforge.config.fields import ALIASES, BUILDER_KEYWORDS, SETTINGS, TrainingFields, field_types, text_fields
from trainforge.config.keys import ALIASES as KEYS_ALIASES
from trainforge.config.keys import canonicalize
from trainforge.config.setting import Setting

FIELDS = [f.name for f in dataclasses.fields(TrainingConfig)]


def test_every_field_has_exactly_one_declaration() -> None:
    # TrainingConfig adds behaviour only: its fields are TrainingFields', each declared with setting(...).
    assert [f.name for f in dataclasses.fields(TrainingFields)] == FIELDS
    assert list(SETTINGS) == FIELDS
    for f in dataclasses.fields(TrainingConfig):
        assert isinstance(f.metadata.get("setting"), Setting), f"{f.name} is not declared with setting(...)"
        assert f.metadata["setting"].sections, f.name
    # An alias names one field and is no field's name; builder-only names are unique within their method.
    declared = [a for spec in SETTINGS.values() for a in spec.aliases]
    assert len(declared) == len(set(declared)) and not set(declared) & set(FIELDS)
    for method in METHOD_KEYS:
        per_field = [k for n, spec in SETTINGS.items() for k in (n, *spec.aliases, *spec.builder_aliases)
                     if f"with_{spec.sections[0]}" == method]
        assert len(per_field) == len(set(per_field)), method


def test_alias_map_is_derived_and_covers_exactly_the_declared_aliases() -> None:
    assert KEYS_ALIASES is ALIASES
    assert {a: n for n, spec in SETTINGS.items() for a in spec.aliases} == ALIASES
    # canonicalize accepts every field and every alias, under the field's name, and nothing else.
    for key in [*FIELDS, *ALIASES]:
        assert canonicalize({key: 1}, FIELDS) == ({ALIASES.get(key, key): 1}, []), key
    assert canonicalize({"lrr": 1}, FIELDS)[1] == ["lrr: unknown option, got 1. Fix: did you mean 'lr' (an alias of "
                                                   "'learning_rate')?"]


def test_builder_methods_take_exactly_the_declared_fields() -> None:
    assert METHOD_KEYS is BUILDER_KEYWORDS
    reachable = {name for keys in METHOD_KEYS.values() for name in keys.values()}
    assert reachable == set(FIELDS)
    for name, spec in SETTINGS.items():
        for section in spec.sections:
            assert METHOD_KEYS[f"with_{section}"][name] == name
        for alias in (*spec.aliases, *spec.builder_aliases):
            assert METHOD_KEYS[f"with_{spec.sections[0]}"][alias] == name


def test_every_declared_field_survives_the_override_reader_and_the_file_round_trip(tmp_path: Path) -> None:
    """Every field, written as ``--field-name=<its default>`` on a command line, reads back as that default."""
    cfg = TrainingConfig(checkpoint_dir=str(tmp_path), run_name="r1", notes="yes", monitor="val/loss")
    items = [f"--{name.replace('_', '-')}={json.dumps(value)}" for name, value in cfg.to_dict().items()]
    assert TrainingConfig.from_dict(parse_overrides(items)) == cfg
    assert TrainingConfig.load(cfg.save(tmp_path / "c.yaml")) == cfg
    assert text_fields() <= set(FIELDS) | set(ALIASES)


def test_text_fields_keep_what_was_typed() -> None:
    out = parse_overrides(["run_name=2024", "notes=yes", "wandb_run_name=007", "compile_mode=null", "model.n=4",
                           "epochs=2", "tags=[a]"])
    assert out == {"run_name": "2024", "notes": "yes", "wandb_run_name": "007", "compile_mode": None,
                   "model": {"n": 4}, "epochs": 2, "tags": ["a"]}
    cfg = TrainingConfig.from_dict(parse_overrides(["--wandb-run-name", "2024", "notes=on"]))
    assert (cfg.run_name, cfg.notes) == ("2024", "on")
    # A text field given a number is a choice problem about the text, not a type problem about a number.
    with pytest.raises(ConfigError, match="precision: must be one of 'auto', 'fp32', 'bf16-mixed', 'fp16-mixed', "
                                          "got '16'"):
        TrainingConfig.from_dict(parse_overrides(["precision=16"]))


def test_typed_surface_is_generated_from_the_declarations() -> None:
    # Out of date: run `python -m trainforge.config.typed_surface` and commit src/trainforge/config/_kwargs.py.
    assert typed_surface.TARGET.read_text(encoding="utf-8") == typed_surface.source()


def test_eval_every_n_steps_is_declared() -> None:
    assert TrainingConfig().eval_every_n_steps is None
    assert TrainingConfig(eval_every_n_steps=50).eval_every_n_steps == 50
    assert TrainingConfigBuilder().with_training(eval_every_n_steps=3).build().eval_every_n_steps == 3
    with pytest.raises(ConfigError) as info:
        TrainingConfig(eval_every_n_steps=0)
    assert info.value.problems == [
        "eval_every_n_steps: must be at least 1 or None, got 0. Fix: use a number of optimizer steps such as 500, "
        "or None to validate only at each epoch's end."
    ]
    assert field_types()["eval_every_n_steps"] == int | None


def test_lightning_allowlist_is_derived_from_the_declarations() -> None:
    pytest.importorskip("lightning")
    from trainforge.lightning import fields as lightning_fields

    by_flag = {flag: {n for n, s in SETTINGS.items() if s.lightning == flag}
               for flag in ("honoured", "data", "display", "refused")}
    assert set().union(*by_flag.values()) == set(FIELDS)
    assert by_flag["honoured"] | by_flag["data"] == lightning_fields.HONOURED
    assert set(lightning_fields.DATA_FIELDS) == by_flag["data"]
    assert by_flag["display"] == lightning_fields.DISPLAY_ONLY
    assert set(lightning_fields._WHY) <= by_flag["refused"]
    # A refused field set to a non-default value is refused by name; a honoured one is not.
    with pytest.raises(ConfigError, match="nan_guard=False: not applied by TrainingCoordinator"):
        lightning_fields.check_fields(TrainingConfig(nan_guard=False), datamodule_given=False)
    lightning_fields.check_fields(TrainingConfig(epochs=1, shuffle=False), datamodule_given=False)


def test_resume_rules_are_derived_from_the_declarations() -> None:
    from trainforge.trainer import resume

    assert resume.APPLIED_ON_RESUME == ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
                                        "max_grad_norm", "lr_schedule", "warmup_ratio", "warmup_steps", "min_lr_ratio")
    assert {n for n, s in SETTINGS.items() if s.resume != "warn"} == resume._RESUME_FREE
    # Whatever changes the training math warns when changed on resume.
    assert {"batch_size", "seed", "gradient_accumulation_steps", "optimizer", "precision"} <= {
        n for n, s in SETTINGS.items() if s.resume == "warn"}


# A field declared only in fields.py, in a copy of the package: everything derived must know it.
NEW_FIELD = '''
    warmup_cycles: int = setting(
        2, "logging", rule=AT_LEAST_1, fix="use a number of cycles such as 2.", aliases=("n_cycles",),
        lightning="honoured",
    )
    cycle_label: str | None = setting(None, "training", lightning="refused")
'''

CHECK_NEW_FIELD = '''
import os
import trainforge
assert trainforge.__file__.startswith(os.getcwd()), trainforge.__file__  # the copy, not the installed package
from trainforge.config import ConfigError, TrainingConfig, TrainingConfigBuilder, parse_overrides
from trainforge.config.builder import METHOD_KEYS
from trainforge.config.keys import ALIASES
from trainforge.config.typed_surface import source
from trainforge.lightning.fields import HONOURED, check_fields
from trainforge.trainer.resume import _RESUME_FREE

assert TrainingConfig().warmup_cycles == 2
assert TrainingConfig(n_cycles=5).warmup_cycles == 5
assert ALIASES["n_cycles"] == "warmup_cycles"
assert METHOD_KEYS["with_logging"]["n_cycles"] == "warmup_cycles"
assert TrainingConfigBuilder().with_logging(warmup_cycles=4).build().warmup_cycles == 4
try:
    TrainingConfigBuilder().with_training(warmup_cycles=4)
except ConfigError as exc:
    assert "use .with_logging(warmup_cycles=4)" in str(exc), exc
else:
    raise AssertionError("with_training took warmup_cycles")
try:
    TrainingConfig(warmup_cycles=0)
except ConfigError as exc:
    assert exc.problems == ["warmup_cycles: must be at least 1, got 0. Fix: use a number of cycles such as 2."]
else:
    raise AssertionError("warmup_cycles=0 accepted")
assert parse_overrides(["--cycle-label=2024"]) == {"cycle_label": "2024"}
assert TrainingConfig.from_dict(parse_overrides(["--warmup-cycles=3", "cycle_label=7"])).cycle_label == "7"
assert "    warmup_cycles: int" in source() and "    n_cycles: int" in source()
assert "warmup_cycles" in HONOURED and "cycle_label" not in HONOURED
assert "warmup_cycles" not in _RESUME_FREE  # a new field warns when changed on resume until declared harmless
try:
    check_fields(TrainingConfig(cycle_label="x"), datamodule_given=False)
except ConfigError as exc:
    assert "cycle_label='x': not applied by TrainingCoordinator" in str(exc), exc
else:
    raise AssertionError("the Lightning path accepted a refused field")
print("ok")
'''


def test_a_field_added_only_to_the_declarations_appears_everywhere(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    src = Path(__file__).resolve().parents[2] / "src" / "trainforge"
    copy = tmp_path / "trainforge"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    fields = copy / "config" / "fields.py"
    text = fields.read_text(encoding="utf-8")
    marker = "\n\n# ---------------------------------------------------------------- derived from the declarations"
    assert marker in text
    fields.write_text(text.replace(marker, NEW_FIELD + marker, 1), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", CHECK_NEW_FIELD], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
