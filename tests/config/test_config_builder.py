"""TrainingConfigBuilder: the quick reference blocks, immutability, every with_* method and its errors."""

from __future__ import annotations

import dataclasses
import itertools
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from trainforge.config import ConfigError, TrainingConfig, TrainingConfigBuilder
from trainforge.config.builder import (
    METHOD_KEYS,
    CheckpointingKwargs,
    LoggingKwargs,
    OptimizationKwargs,
    TrainingKwargs,
)
from trainforge.config.schema import TrainingConfigKwargs


def test_quick_reference_builder_block() -> None:
    config = (
        TrainingConfigBuilder.baseline()  # or .fast() or .quality()
        .with_training(epochs=10, learning_rate=5e-5)
        .with_logging(wandb_project="my-project", run_name="exp-1")
        .with_checkpointing(checkpoint_dir="./checkpoints", frequency=2)
        .with_optimization(compile_mode="default", gradient_accumulation_steps=4)
        .build()
    )
    assert isinstance(config, TrainingConfig)
    assert config.epochs == 10
    assert config.learning_rate == 5e-5
    assert config.wandb_project == "my-project"
    assert config.use_wandb is False  # naming a project does not turn W&B on
    assert config.run_name == "exp-1"
    assert config.checkpoint_dir == "./checkpoints"
    assert config.checkpoint_frequency == 2
    assert config.compile_mode == "default"
    assert config.gradient_accumulation_steps == 4
    # the rest comes from the baseline preset
    assert (config.weight_decay, config.warmup_ratio, config.batch_size) == (0.01, 0.1, 8)


@pytest.mark.parametrize("start", ["fast", "quality"])
def test_quick_reference_builder_block_other_presets(start: str) -> None:
    builder = getattr(TrainingConfigBuilder, start)()
    config = (
        builder.with_training(epochs=10, learning_rate=5e-5)
        .with_logging(wandb_project="my-project", run_name="exp-1")
        .with_checkpointing(checkpoint_dir="./checkpoints", frequency=2)
        .with_optimization(compile_mode="default", gradient_accumulation_steps=4)
        .build()
    )
    assert (config.epochs, config.learning_rate, config.checkpoint_frequency) == (10, 5e-5, 2)


def test_quick_reference_job_queue_block() -> None:
    base_config = TrainingConfig(epochs=2, batch_size=4, run_name="base", tags=["sweep"], warmup_ratio=0.1)
    search_space: dict[str, list[Any]] = {"learning_rate": [1e-5, 5e-5, 1e-4], "batch_size": [4, 8, 16]}
    trials = list(itertools.product(*search_space.values()))
    configs = []
    for trial_params in trials:
        trial_config = (
            TrainingConfigBuilder.from_config(base_config)
            .with_training(learning_rate=trial_params[0], batch_size=trial_params[1])
            .build()
        )
        configs.append(trial_config)
    assert [(c.learning_rate, c.batch_size) for c in configs] == trials
    for c in configs:
        assert (c.epochs, c.run_name, c.tags, c.warmup_ratio) == (2, "base", ["sweep"], 0.1)
        assert c.to_dict() | {"learning_rate": 0, "batch_size": 0} == base_config.to_dict() | {
            "learning_rate": 0,
            "batch_size": 0,
        }
    # the base config is untouched
    assert (base_config.learning_rate, base_config.batch_size) == (3e-4, 4)


def test_from_config_round_trip_and_mapping() -> None:
    cfg = TrainingConfig.from_preset("quality", run_name="q")
    assert TrainingConfigBuilder.from_config(cfg).build() == cfg
    assert TrainingConfigBuilder.from_config({"lr": 1e-3}).build().learning_rate == 1e-3


def test_default_builder_builds_defaults() -> None:
    assert TrainingConfigBuilder().build() == TrainingConfig()


def test_builder_is_immutable() -> None:
    base = TrainingConfigBuilder.baseline()
    snapshot = base.values
    changed = base.with_training(epochs=10).with_logging(tags=["x"]).with_checkpointing(checkpoint_dir="ck")
    changed = changed.with_optimization(precision="fp32").with_export(formats=["onnx"])
    assert base.values == snapshot
    assert base.build() == TrainingConfig.from_preset("baseline")
    assert changed is not base and changed != base
    with pytest.raises(AttributeError, match="immutable"):
        base._values = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        base._values["epochs"] = 1  # type: ignore[index]


def test_builder_does_not_share_mutable_values() -> None:
    tags = ["a"]
    builder = TrainingConfigBuilder().with_logging(tags=tags)
    tags.append("b")
    cfg = builder.build()
    cfg.tags.append("c")
    assert builder.build().tags == ["a"]


def test_branching_from_one_builder() -> None:
    base = TrainingConfigBuilder.tiny()
    a = base.with_training(learning_rate=1e-2)
    b = base.with_training(learning_rate=1e-4)
    assert (a.build().learning_rate, b.build().learning_rate, base.build().learning_rate) == (1e-2, 1e-4, 1e-3)


def test_with_training_every_keyword() -> None:
    cfg = (
        TrainingConfigBuilder()
        .with_training(
            epochs=4,
            max_steps=100,
            learning_rate=1e-3,
            batch_size=2,
            eval_batch_size=4,
            seed=1,
            deterministic=True,
            weight_decay=0.0,
            warmup_ratio=0.2,
            warmup_steps=5,
            lr_schedule="linear",
            min_lr_ratio=0.1,
            validation_split=0.1,
            max_train_samples=50,
            max_val_samples=10,
            num_workers=1,
            shuffle=False,
            early_stopping_patience=2,
            early_stopping_min_delta=0.01,
            monitor="val/accuracy",
            monitor_mode="max",
        )
        .build()
    )
    assert cfg == TrainingConfig(
        epochs=4,
        max_steps=100,
        learning_rate=1e-3,
        batch_size=2,
        eval_batch_size=4,
        seed=1,
        deterministic=True,
        weight_decay=0.0,
        warmup_ratio=0.2,
        warmup_steps=5,
        lr_schedule="linear",
        min_lr_ratio=0.1,
        validation_split=0.1,
        max_train_samples=50,
        max_val_samples=10,
        num_workers=1,
        shuffle=False,
        early_stopping_patience=2,
        early_stopping_min_delta=0.01,
        monitor="val/accuracy",
        monitor_mode="max",
    )


def test_with_training_aliases() -> None:
    cfg = (
        TrainingConfigBuilder()
        .with_training(num_train_epochs=5, lr=2e-4, per_device_train_batch_size=16, warmup_proportion=0.3)
        .build()
    )
    assert (cfg.epochs, cfg.learning_rate, cfg.batch_size, cfg.warmup_ratio) == (5, 2e-4, 16, 0.3)


def test_with_logging_every_keyword(tmp_path: Path) -> None:
    cfg = (
        TrainingConfigBuilder()
        .with_logging(
            use_wandb=True,
            wandb_project="p",
            wandb_entity="e",
            run_name="r",
            notes="n",
            tags=["t"],
            output_dir=tmp_path,
            log_every_n_steps=3,
            progress_bar=False,
        )
        .build()
    )
    assert (cfg.use_wandb, cfg.wandb_project, cfg.wandb_entity, cfg.run_name, cfg.notes) == (True, "p", "e", "r", "n")
    assert (cfg.tags, cfg.output_dir, cfg.log_every_n_steps, cfg.progress_bar) == (["t"], str(tmp_path), 3, False)
    assert TrainingConfigBuilder().with_logging(wandb_run_name="w").build().run_name == "w"


def test_with_checkpointing_every_keyword(tmp_path: Path) -> None:
    cfg = (
        TrainingConfigBuilder()
        .with_checkpointing(
            checkpoint_dir=tmp_path,
            frequency=3,
            keep_last_n=2,
            every_n_steps=100,
            save_best=False,
            resume_from="auto",
        )
        .build()
    )
    assert cfg.checkpoint_dir == str(tmp_path)
    assert (cfg.checkpoint_frequency, cfg.keep_last_n, cfg.checkpoint_every_n_steps) == (3, 2, 100)
    assert (cfg.save_best, cfg.resume_from_checkpoint) == (False, "auto")
    # the field names and the alias work too
    cfg = TrainingConfigBuilder().with_checkpointing(checkpoint_dir="ck", save_every_n_epochs=4).build()
    assert cfg.checkpoint_frequency == 4
    cfg = TrainingConfigBuilder().with_checkpointing(checkpoint_dir="ck", checkpoint_every_n_steps=7).build()
    assert cfg.checkpoint_every_n_steps == 7


def test_with_optimization_every_keyword() -> None:
    cfg = (
        TrainingConfigBuilder()
        .with_optimization(
            compile_mode="reduce-overhead",
            gradient_accumulation_steps=8,
            precision="bf16-mixed",
            use_amp=True,
            max_grad_norm=0.5,
            weight_decay=0.1,
            lr_schedule="constant",
            warmup_ratio=0.05,
            warmup_steps=20,
            min_lr_ratio=0.2,
            adam_beta1=0.8,
            adam_beta2=0.95,
            adam_epsilon=1e-6,
            device="cuda:0",
            strategy="ddp",
        )
        .build()
    )
    assert (cfg.compile_mode, cfg.gradient_accumulation_steps, cfg.precision, cfg.use_amp) == (
        "reduce-overhead",
        8,
        "bf16-mixed",
        True,
    )
    assert (cfg.max_grad_norm, cfg.weight_decay, cfg.lr_schedule, cfg.warmup_ratio, cfg.warmup_steps) == (
        0.5,
        0.1,
        "constant",
        0.05,
        20,
    )
    assert (cfg.min_lr_ratio, cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon) == (0.2, 0.8, 0.95, 1e-6)
    assert (cfg.device, cfg.strategy) == ("cuda:0", "ddp")
    cfg = TrainingConfigBuilder().with_optimization(grad_accum_steps=2, grad_clip=None).build()
    assert (cfg.gradient_accumulation_steps, cfg.max_grad_norm) == (2, None)


def test_with_export() -> None:
    cfg = TrainingConfigBuilder().with_export().build()
    assert (cfg.export_bundle, cfg.export_formats, cfg.export_dir) == (True, ["onnx", "torchscript"], "exports")
    cfg = TrainingConfigBuilder().with_export(formats=["safetensors"], export_dir="out").build()
    assert (cfg.export_bundle, cfg.export_formats, cfg.export_dir) == (True, ["safetensors"], "out")
    off = TrainingConfigBuilder().with_export(formats=["onnx"]).with_export(export_bundle=False).build()
    assert (off.export_bundle, off.export_formats) == (False, ["onnx"])  # formats kept when not given
    assert TrainingConfigBuilder().with_export(export_formats=["onnx"]).build().export_formats == ["onnx"]


def test_build_reports_every_problem_at_once() -> None:
    builder = TrainingConfigBuilder().with_training(epochs=0, lr=-1.0).with_checkpointing(keep_last_n=2)
    with pytest.raises(ConfigError) as info:
        builder.build()
    assert [p.split(":")[0] for p in info.value.problems] == ["epochs", "learning_rate", "keep_last_n"]


# ---------------------------------------------------------------- wrong keywords


def test_keyword_of_another_method_names_that_method() -> None:
    message = (
        "compile_mode: with_training() does not take this keyword, got 'default'. "
        "Fix: use .with_optimization(compile_mode='default')."
    )
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        TrainingConfigBuilder().with_training(compile_mode="default")  # type: ignore[call-arg]
    assert str(info.value).startswith("TrainingConfigBuilder.with_training() has 1 problem:")


def test_misspelled_keyword_did_you_mean() -> None:
    message = "lerning_rate: with_training() does not take this keyword, got 0.1. Fix: did you mean 'learning_rate'?"
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainingConfigBuilder().with_training(lerning_rate=0.1)  # type: ignore[call-arg]


def test_misspelled_keyword_of_another_method() -> None:
    message = (
        "compile_mod: with_training() does not take this keyword, got 'default'. "
        "Fix: did you mean 'compile_mode'? It is taken by .with_optimization()."
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainingConfigBuilder().with_training(compile_mod="default")  # type: ignore[call-arg]


def test_unrelated_keyword_lists_what_the_method_takes() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "zzz: with_export() does not take this keyword, got 1. "
            "Fix: with_export() takes 'export_bundle', 'formats', 'export_formats', 'export_dir'."
        ),
    ):
        TrainingConfigBuilder().with_export(zzz=1)


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        (
            "with_logging",
            {"checkpoint_dir": "ck"},
            "checkpoint_dir: with_logging() does not take this keyword, got 'ck'. Fix: use .with_checkpointing(checkpoint_dir='ck').",
        ),
        (
            "with_checkpointing",
            {"run_name": "r"},
            "run_name: with_checkpointing() does not take this keyword, got 'r'. Fix: use .with_logging(run_name='r').",
        ),
        (
            "with_optimization",
            {"epochs": 3},
            "epochs: with_optimization() does not take this keyword, got 3. Fix: use .with_training(epochs=3).",
        ),
        (
            "with_checkpointing",
            {"freq": 2},
            "freq: with_checkpointing() does not take this keyword, got 2. Fix: did you mean 'frequency'?",
        ),
        (
            "with_training",
            {"export_bundle": True},
            "export_bundle: with_training() does not take this keyword, got True. Fix: use .with_export(export_bundle=True).",
        ),
    ],
)
def test_wrong_keyword_per_method(method: str, kwargs: dict[str, object], message: str) -> None:
    builder = TrainingConfigBuilder()
    with pytest.raises(ConfigError, match=re.escape(message)):
        getattr(builder, method)(**kwargs)


def test_all_wrong_keywords_of_one_call_are_reported() -> None:
    with pytest.raises(ConfigError) as info:
        TrainingConfigBuilder().with_training(epochs=1, n_epochs=2, foo=3)  # type: ignore[call-arg]
    assert info.value.problems == [
        "epochs: given twice to with_training(), as 'epochs' and as 'n_epochs', got 1 and 2. Fix: give only one.",
        "foo: with_training() does not take this keyword, got 3. Fix: with_training() takes "
        + ", ".join(repr(k) for k in METHOD_KEYS["with_training"])
        + ".",
    ]


def test_unknown_key_in_builder_constructor() -> None:
    with pytest.raises(ConfigError, match=re.escape("epoch: unknown option, got 1. Fix: did you mean 'epochs'?")):
        TrainingConfigBuilder({"epoch": 1})


# ---------------------------------------------------------------- the typed surface agrees with the runtime one


@pytest.mark.parametrize(
    ("method", "typed"),
    [
        ("with_training", TrainingKwargs),
        ("with_logging", LoggingKwargs),
        ("with_checkpointing", CheckpointingKwargs),
        ("with_optimization", OptimizationKwargs),
    ],
)
def test_method_typeddicts_match_method_keys(method: str, typed: type) -> None:
    assert set(typing.get_type_hints(typed)) == set(METHOD_KEYS[method])
    field_names = {f.name for f in dataclasses.fields(TrainingConfig)}
    assert set(METHOD_KEYS[method].values()) <= field_names
    all_kwargs = typing.get_type_hints(TrainingConfigKwargs)
    for key, name in METHOD_KEYS[method].items():
        assert typing.get_type_hints(typed)[key] == all_kwargs[name], key


def test_every_field_is_reachable_from_some_with_method() -> None:
    reachable = {name for keys in METHOD_KEYS.values() for name in keys.values()}
    assert reachable == {f.name for f in dataclasses.fields(TrainingConfig)}
