"""TrainingConfig: defaults, aliases, unknown keys and every validation message (pinned)."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from trainforge.config import ConfigError, TrainingConfig
from trainforge.config.keys import ALIASES
from trainforge.config.schema import TrainingConfigKwargs


def one_problem(**kwargs: Any) -> str:
    """The single problem line ``TrainingConfig(**kwargs)`` reports."""
    with pytest.raises(ConfigError) as info:
        TrainingConfig(**kwargs)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


# ---------------------------------------------------------------- construction


def test_defaults_are_valid_and_documented_values() -> None:
    cfg = TrainingConfig()
    assert cfg.epochs == 3
    assert cfg.learning_rate == 3e-4
    assert cfg.batch_size == 8
    assert cfg.max_grad_norm == 1.0
    assert cfg.lr_schedule == "cosine"
    assert cfg.precision == "auto"
    assert cfg.checkpoint_frequency == 1
    assert cfg.tags == []
    assert cfg.export_formats == ["onnx", "torchscript"]
    assert cfg.export_dir == "exports"
    assert cfg.strategy == "auto"
    assert cfg.problems() == []


def test_mutable_defaults_are_not_shared() -> None:
    a, b = TrainingConfig(), TrainingConfig()
    a.tags.append("x")
    a.export_formats.append("safetensors")
    assert b.tags == [] and b.export_formats == ["onnx", "torchscript"]


def test_quick_reference_constructor_calls() -> None:
    cfg = TrainingConfig(epochs=10, learning_rate=5e-5, batch_size=4, wandb_project="my-project", use_wandb=True)
    assert (cfg.epochs, cfg.learning_rate, cfg.batch_size, cfg.use_wandb, cfg.wandb_project) == (
        10,
        5e-5,
        4,
        True,
        "my-project",
    )
    cfg = TrainingConfig(
        epochs=10, learning_rate=5e-5, batch_size=4, checkpoint_dir="./checkpoints", checkpoint_frequency=2
    )
    assert cfg.checkpoint_dir == "./checkpoints" and cfg.checkpoint_frequency == 2
    cfg = TrainingConfig(
        epochs=10,
        learning_rate=5e-5,
        batch_size=4,
        compile_mode="default",
        gradient_accumulation_steps=4,
        export_bundle=True,
        export_formats=["onnx", "torchscript"],
        use_wandb=True,
        wandb_project="my-project",
        checkpoint_dir="./checkpoints",
    )
    assert cfg.compile_mode == "default" and cfg.export_bundle and cfg.gradient_accumulation_steps == 4


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        TrainingConfig(3)  # type: ignore[misc]


def test_wandb_without_project_is_fine() -> None:
    assert TrainingConfig(use_wandb=True).wandb_project is None


def test_paths_are_stored_as_str(tmp_path: Path) -> None:
    cfg = TrainingConfig(
        checkpoint_dir=tmp_path / "ck",
        output_dir=tmp_path / "out",
        export_dir=tmp_path / "ex",
        resume_from_checkpoint=tmp_path / "ck" / "epoch_1.pt",
    )
    assert cfg.checkpoint_dir == str(tmp_path / "ck")
    assert cfg.output_dir == str(tmp_path / "out")
    assert cfg.export_dir == str(tmp_path / "ex")
    assert cfg.resume_from_checkpoint == str(tmp_path / "ck" / "epoch_1.pt")


def test_ints_are_accepted_for_floats_and_stored_as_float() -> None:
    cfg = TrainingConfig(learning_rate=1, max_grad_norm=0, warmup_ratio=0)
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.max_grad_norm == 0.0 and isinstance(cfg.max_grad_norm, float)


def test_lists_are_copied() -> None:
    tags = ["a"]
    cfg = TrainingConfig(tags=tags)
    tags.append("b")
    assert cfg.tags == ["a"]


def test_tuples_are_accepted_for_lists() -> None:
    assert TrainingConfig(tags=("a", "b")).tags == ["a", "b"]  # type: ignore[arg-type]


def test_equality_and_dataclasses_replace() -> None:
    assert TrainingConfig(epochs=5) == TrainingConfig(epochs=5)
    assert TrainingConfig(epochs=5) != TrainingConfig(epochs=6)
    assert dataclasses.replace(TrainingConfig(), epochs=7).epochs == 7


def test_kwargs_typeddict_matches_fields_and_aliases() -> None:
    """The typed constructor surface (for mypy and IDEs) must list every field and alias, with the field's type."""
    hints = typing.get_type_hints(TrainingConfigKwargs)
    field_hints = typing.get_type_hints(TrainingConfig)
    fields = [f.name for f in dataclasses.fields(TrainingConfig)]
    assert set(hints) == set(fields) | set(ALIASES)
    path_fields = {"checkpoint_dir", "resume_from_checkpoint", "output_dir", "export_dir"}
    for name in fields:
        if name not in path_fields:
            assert hints[name] == field_hints[name], name
    for alias, name in ALIASES.items():
        assert set(typing.get_args(hints[alias]) or [hints[alias]]) <= set(
            typing.get_args(field_hints[name]) or [field_hints[name]]
        ), alias


# ---------------------------------------------------------------- aliases and unknown keys


@pytest.mark.parametrize(
    ("alias", "name", "value"),
    [
        ("save_every_n_epochs", "checkpoint_frequency", 2),
        ("n_epochs", "epochs", 7),
        ("num_epochs", "epochs", 7),
        ("num_train_epochs", "epochs", 7),
        ("lr", "learning_rate", 1e-3),
        ("grad_accum_steps", "gradient_accumulation_steps", 4),
        ("accumulation_steps", "gradient_accumulation_steps", 4),
        ("gradient_clip_val", "max_grad_norm", 0.5),
        ("grad_clip", "max_grad_norm", 0.5),
        ("per_device_train_batch_size", "batch_size", 32),
        ("warmup_proportion", "warmup_ratio", 0.2),
        ("wandb_run_name", "run_name", "exp-1"),
    ],
)
def test_alias_sets_canonical_field(alias: str, name: str, value: Any) -> None:
    cfg = TrainingConfig(**{alias: value})
    assert getattr(cfg, name) == value
    assert alias not in cfg.to_dict()
    assert TrainingConfig.from_dict({alias: value}) == cfg


def test_alias_with_canonical_name_is_a_problem() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "learning_rate: given twice, as 'lr' and as 'learning_rate', got 0.1 and 0.2. Fix: give only one."
        ),
    ):
        TrainingConfig(lr=0.1, learning_rate=0.2)


def test_two_aliases_of_one_field_are_a_problem() -> None:
    assert one_problem(n_epochs=2, num_epochs=3) == (
        "epochs: given twice, as 'n_epochs' and as 'num_epochs', got 2 and 3. Fix: give only one."
    )


def test_unknown_key_did_you_mean_field() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("lerning_rate: unknown option, got 0.001. Fix: did you mean 'learning_rate'?")
    ):
        TrainingConfig(lerning_rate=0.001)  # type: ignore[call-arg]


def test_unknown_key_did_you_mean_alias() -> None:
    assert one_problem(grad_clipp=1.0) == (
        "grad_clipp: unknown option, got 1.0. Fix: did you mean 'grad_clip' (an alias of 'max_grad_norm')?"
    )


def test_unknown_key_without_close_match() -> None:
    assert one_problem(zzzz=1) == (
        "zzzz: unknown option, got 1. Fix: remove it; the valid options are the fields of TrainingConfig."
    )


def test_every_unknown_key_is_listed() -> None:
    with pytest.raises(ConfigError) as info:
        TrainingConfig(epoch=3, batchsize=4)  # type: ignore[call-arg]
    assert info.value.problems == [
        "epoch: unknown option, got 3. Fix: did you mean 'epochs'?",
        "batchsize: unknown option, got 4. Fix: did you mean 'batch_size'?",
    ]
    assert str(info.value).startswith("TrainingConfig has 2 problems:\n  - epoch: unknown option")


# ---------------------------------------------------------------- one problem per check, messages pinned

PINNED: list[tuple[dict[str, Any], str]] = [
    # types
    ({"epochs": "3"}, "epochs: must be an integer, got '3'. Fix: pass an integer such as 3."),
    ({"epochs": True}, "epochs: must be an integer, got True. Fix: pass an integer such as 3."),
    ({"batch_size": 8.0}, "batch_size: must be an integer, got 8.0. Fix: pass an integer such as 8."),
    ({"max_steps": 1.5}, "max_steps: must be an integer or None, got 1.5. Fix: pass an integer or None."),
    (
        {"learning_rate": "1e-3"},
        "learning_rate: must be a number, got '1e-3'. Fix: pass a number, not a string: learning_rate=1e-3 (no quotes).",
    ),
    ({"learning_rate": None}, "learning_rate: must be a number, got None. Fix: pass a number such as 0.0003."),
    ({"weight_decay": True}, "weight_decay: must be a number, got True. Fix: pass a number such as 0.01."),
    ({"deterministic": "yes"}, "deterministic: must be True or False, got 'yes'. Fix: pass True or False."),
    ({"use_amp": 1}, "use_amp: must be True or False, got 1. Fix: pass True or False."),
    ({"lr_schedule": 3}, "lr_schedule: must be a string, got 3. Fix: pass a string such as 'cosine'."),
    ({"tags": "a,b"}, "tags: must be a list of strings, got 'a,b'. Fix: pass a list of strings such as []."),
    ({"tags": ["a", 1]}, "tags: must be a list of strings, got ['a', 1]. Fix: pass a list of strings such as []."),
    ({"checkpoint_dir": 3}, "checkpoint_dir: must be a string or None, got 3. Fix: pass a string or None."),
    # ranges
    (
        {"epochs": 0},
        "epochs: must be at least 1, got 0. Fix: use a number of epochs such as 3 (cap training with max_steps instead).",
    ),
    (
        {"max_steps": 0},
        "max_steps: must be at least 1 or None, got 0. Fix: use a number of optimizer steps, or None for no cap.",
    ),
    ({"learning_rate": -0.001}, "learning_rate: must be a positive number, got -0.001. Fix: use a value such as 3e-4."),
    ({"learning_rate": 0}, "learning_rate: must be a positive number, got 0.0. Fix: use a value such as 3e-4."),
    ({"learning_rate": math.inf}, "learning_rate: must be a positive number, got inf. Fix: use a value such as 3e-4."),
    ({"batch_size": 0}, "batch_size: must be at least 1, got 0. Fix: use a batch size such as 8."),
    (
        {"eval_batch_size": 0},
        "eval_batch_size: must be at least 1 or None, got 0. Fix: use a batch size such as 16, or None to use batch_size.",
    ),
    (
        {"gradient_accumulation_steps": 0},
        "gradient_accumulation_steps: must be at least 1, got 0. "
        "Fix: use 1 for no accumulation, or the number of micro-batches per optimizer step.",
    ),
    ({"seed": -1}, "seed: must be between 0 and 2**32 - 1, got -1. Fix: use a seed such as 42."),
    ({"seed": 2**32}, "seed: must be between 0 and 2**32 - 1, got 4294967296. Fix: use a seed such as 42."),
    (
        {"weight_decay": -0.1},
        "weight_decay: must be a non-negative number, got -0.1. Fix: use a value such as 0.01, or 0.0 for none.",
    ),
    ({"adam_beta1": 1.0}, "adam_beta1: must be in [0, 1), got 1.0. Fix: use a value such as 0.9."),
    ({"adam_beta2": -0.5}, "adam_beta2: must be in [0, 1), got -0.5. Fix: use a value such as 0.999."),
    ({"adam_epsilon": 0.0}, "adam_epsilon: must be a positive number, got 0.0. Fix: use a value such as 1e-8."),
    (
        {"max_grad_norm": -1.0},
        "max_grad_norm: must be a non-negative number or None, got -1.0. Fix: use a value such as 1.0, or None (or 0) to disable clipping.",
    ),
    (
        {"warmup_ratio": 1.0},
        "warmup_ratio: must be in [0, 1), got 1.0. Fix: use a fraction of the training steps such as 0.1, or 0.0 for no warmup.",
    ),
    (
        {"warmup_ratio": math.nan},
        "warmup_ratio: must be in [0, 1), got nan. Fix: use a fraction of the training steps such as 0.1, or 0.0 for no warmup.",
    ),
    (
        {"warmup_steps": -1},
        "warmup_steps: must be 0 or more, or None, got -1. Fix: use a number of optimizer steps, or None to use warmup_ratio.",
    ),
    (
        {"min_lr_ratio": 1.5},
        "min_lr_ratio: must be in [0, 1], got 1.5. Fix: use a fraction of learning_rate such as 0.1, or 0.0 to decay to zero.",
    ),
    (
        {"validation_split": 1.0},
        "validation_split: must be in [0, 1), got 1.0. Fix: use a fraction such as 0.1, or 0.0 for no split.",
    ),
    (
        {"max_train_samples": 0},
        "max_train_samples: must be at least 1 or None, got 0. Fix: use a number of samples, or None to use them all.",
    ),
    (
        {"max_val_samples": 0},
        "max_val_samples: must be at least 1 or None, got 0. Fix: use a number of samples, or None to use them all.",
    ),
    (
        {"num_workers": -1},
        "num_workers: must be 0 or more, got -1. Fix: use 0 to load data in the main process, or a small number such as 2.",
    ),
    (
        {"early_stopping_patience": 0},
        "early_stopping_patience: must be at least 1 or None, got 0. Fix: use a number of epochs such as 3, or None to turn early stopping off.",
    ),
    (
        {"early_stopping_min_delta": -0.1},
        "early_stopping_min_delta: must be a non-negative number, got -0.1. Fix: use 0.0, or the smallest change that counts as an improvement.",
    ),
    (
        {"monitor": ""},
        "monitor: must be a metric name or None, got ''. Fix: use a name such as 'val/loss', or None for the default.",
    ),
    (
        {"checkpoint_dir": " "},
        "checkpoint_dir: must be a non-empty path or None, got ' '. Fix: use a directory such as './checkpoints', or None.",
    ),
    (
        {"checkpoint_frequency": 0},
        "checkpoint_frequency: must be at least 1, got 0. Fix: use 1 to save every epoch, or N to save every N epochs.",
    ),
    (
        {"checkpoint_every_n_steps": 0, "checkpoint_dir": "ck"},
        "checkpoint_every_n_steps: must be at least 1 or None, got 0. Fix: use a number of optimizer steps, or None.",
    ),
    (
        {"keep_last_n": 0, "checkpoint_dir": "ck"},
        "keep_last_n: must be at least 1 or None, got 0. Fix: use a number such as 3, or None to keep every checkpoint.",
    ),
    (
        {"resume_from_checkpoint": ""},
        "resume_from_checkpoint: must be a path, 'auto' or None, got ''. Fix: use a checkpoint path, 'auto', or None.",
    ),
    (
        {"output_dir": ""},
        "output_dir: must be a non-empty path or None, got ''. Fix: use a directory such as './runs/exp-1', or None.",
    ),
    (
        {"run_name": "a/b"},
        "run_name: must be one plain name (letters, digits, '.', '_' and '-' only, at most 100 characters, not '.' or "
        "'..'), got 'a/b'. Fix: use a name such as 'exp-1' (it becomes the directory runs/<run_name> and "
        "exports/<run_name>).",
    ),
    (
        {"wandb_project": ""},
        "wandb_project: must be a non-empty name or None, got ''. Fix: use a project name, or None for 'trainforge'.",
    ),
    ({"log_every_n_steps": 0}, "log_every_n_steps: must be at least 1, got 0. Fix: use a value such as 10."),
    ({"export_dir": ""}, "export_dir: must be a non-empty path, got ''. Fix: use a directory such as 'exports'."),
    # choices
    (
        {"lr_schedule": "cosin"},
        "lr_schedule: must be one of 'cosine', 'linear', 'constant', got 'cosin'. Fix: did you mean 'cosine'?",
    ),
    (
        {"lr_schedule": "step"},
        "lr_schedule: must be one of 'cosine', 'linear', 'constant', got 'step'. Fix: use one of 'cosine', 'linear', 'constant'.",
    ),
    (
        {"precision": "bf16"},
        "precision: must be one of 'auto', 'fp32', 'bf16-mixed', 'fp16-mixed', got 'bf16'. Fix: did you mean 'bf16-mixed'?",
    ),
    (
        {"compile_mode": "max_autotune"},
        "compile_mode: must be None or one of 'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs', "
        "got 'max_autotune'. Fix: did you mean 'max-autotune'?",
    ),
    ({"monitor_mode": "minimum"}, "monitor_mode: must be one of 'min', 'max', got 'minimum'. Fix: did you mean 'min'?"),
    (
        {"strategy": "dp"},
        "strategy: must be one of 'auto', 'single', 'ddp', 'fsdp', got 'dp'. Fix: did you mean 'ddp'?",
    ),
    (
        {"device": "gpu"},
        "device: must be one of 'auto', 'cpu', 'cuda', 'mps', 'cuda:N', got 'gpu'. Fix: did you mean 'cuda'?",
    ),
    (
        {"device": "cuda:x"},
        "device: must be one of 'auto', 'cpu', 'cuda', 'mps', 'cuda:N', got 'cuda:x'. Fix: did you mean 'cuda'?",
    ),
    (
        {"device": "xla"},
        "device: must be one of 'auto', 'cpu', 'cuda', 'mps', 'cuda:N', got 'xla'. "
        "Fix: use 'auto' to pick the best device, or 'cuda:0'.",
    ),
    (
        {"export_formats": ["onnx", "tflite"]},
        "export_formats: each format must be one of 'onnx', 'torchscript', 'safetensors', got 'tflite'. "
        "Fix: use any of 'onnx', 'torchscript', 'safetensors'.",
    ),
    (
        {"export_formats": ["onnx", "onnx"]},
        "export_formats: lists a format twice, got ['onnx', 'onnx']. Fix: list each format once.",
    ),
    # across fields
    (
        {"checkpoint_every_n_steps": 500},
        "checkpoint_every_n_steps: needs checkpoint_dir, which is None, got 500. "
        "Fix: set checkpoint_dir (e.g. './checkpoints') or leave checkpoint_every_n_steps unset.",
    ),
    (
        {"keep_last_n": 3},
        "keep_last_n: needs checkpoint_dir, which is None, got 3. "
        "Fix: set checkpoint_dir (e.g. './checkpoints') or leave keep_last_n unset.",
    ),
    (
        {"resume_from_checkpoint": "auto"},
        "resume_from_checkpoint: 'auto' looks for the latest checkpoint in checkpoint_dir, which is None, got 'auto'. "
        "Fix: set checkpoint_dir, or give the path of a checkpoint file.",
    ),
    (
        {"precision": "fp16-mixed", "use_amp": False},
        "precision: mixed precision needs use_amp=True, but use_amp is False, got 'fp16-mixed'. "
        "Fix: set use_amp=True, or precision='fp32'.",
    ),
    (
        {"precision": "bf16-mixed", "use_amp": False},
        "precision: mixed precision needs use_amp=True, but use_amp is False, got 'bf16-mixed'. "
        "Fix: set use_amp=True, or precision='fp32'.",
    ),
    (
        {"warmup_steps": 100, "max_steps": 100},
        "warmup_steps: must be smaller than max_steps (100), got 100. Fix: lower warmup_steps or raise max_steps.",
    ),
    (
        {"export_bundle": True, "export_formats": []},
        "export_formats: is empty but export_bundle is True, got []. "
        "Fix: list at least one of 'onnx', 'torchscript', 'safetensors', or set export_bundle=False.",
    ),
    (
        {"strategy": "fsdp", "device": "mps"},
        "strategy: 'fsdp' runs on CUDA (nccl) or CPU (gloo) devices, but device is 'mps' (no process-group backend "
        "shards on it), got 'fsdp'. Fix: use device='cpu' or 'cuda', or strategy='auto' on mps.",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), PINNED, ids=[m.split(":")[0] + "-" + str(i) for i, (_, m) in enumerate(PINNED)]
)
def test_pinned_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        TrainingConfig(**kwargs)
    assert info.value.problems == [message]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_grad_norm": None},
        {"max_grad_norm": 0},
        {"device": "cuda:3"},
        {"device": "mps"},
        {"compile_mode": "max-autotune-no-cudagraphs"},
        {"precision": "fp32", "use_amp": False},
        {"warmup_steps": 10, "max_steps": 11, "warmup_ratio": 0.5},
        {"min_lr_ratio": 1.0},
        {"checkpoint_dir": "ck", "keep_last_n": 1, "checkpoint_every_n_steps": 1, "resume_from_checkpoint": "auto"},
        {"export_bundle": False, "export_formats": []},
        {"export_bundle": True, "export_formats": ["safetensors"]},
        {"strategy": "ddp", "device": "cpu"},
        {"wandb_entity": "team", "use_wandb": False},
        {"early_stopping_patience": 1, "monitor": "val/accuracy", "monitor_mode": "max"},
    ],
)
def test_valid_edge_values(kwargs: dict[str, Any]) -> None:
    TrainingConfig(**kwargs)


def test_one_error_reports_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        TrainingConfig(
            epochs=0,
            lerning_rate=1e-3,  # type: ignore[call-arg]
            batch_size="8",  # type: ignore[arg-type]
            lr_schedule="cosin",
            keep_last_n=2,
            precision="fp16-mixed",
            use_amp=False,
        )
    err = info.value
    assert err.problems == [
        "lerning_rate: unknown option, got 0.001. Fix: did you mean 'learning_rate'?",
        "batch_size: must be an integer, got '8'. Fix: pass an integer such as 8.",
        "epochs: must be at least 1, got 0. Fix: use a number of epochs such as 3 (cap training with max_steps instead).",
        "lr_schedule: must be one of 'cosine', 'linear', 'constant', got 'cosin'. Fix: did you mean 'cosine'?",
        "keep_last_n: needs checkpoint_dir, which is None, got 2. "
        "Fix: set checkpoint_dir (e.g. './checkpoints') or leave keep_last_n unset.",
        "precision: mixed precision needs use_amp=True, but use_amp is False, got 'fp16-mixed'. "
        "Fix: set use_amp=True, or precision='fp32'.",
    ]
    assert str(err).splitlines()[0] == "TrainingConfig has 6 problems:"
    assert len(str(err).splitlines()) == 7
    assert isinstance(err, ValueError)


def test_a_wrong_type_skips_that_fields_other_checks() -> None:
    # keep_last_n has the wrong type: one type problem, no "needs checkpoint_dir" on top of it.
    with pytest.raises(ConfigError) as info:
        TrainingConfig(keep_last_n="3")  # type: ignore[arg-type]
    assert info.value.problems == ["keep_last_n: must be an integer or None, got '3'. Fix: pass an integer or None."]


# ---------------------------------------------------------------- validate(), replace(), helpers


def test_validate_after_mutation_reports_all_problems() -> None:
    cfg = TrainingConfig()
    cfg.epochs = 0
    cfg.learning_rate = -1.0
    assert len(cfg.problems()) == 2
    with pytest.raises(ConfigError, match=r"TrainingConfig has 2 problems:\n  - epochs: must be at least 1, got 0\."):
        cfg.validate()


def test_validate_normalises_paths(tmp_path: Path) -> None:
    cfg = TrainingConfig()
    cfg.checkpoint_dir = tmp_path  # type: ignore[assignment]
    cfg.validate()
    assert cfg.checkpoint_dir == str(tmp_path)


def test_replace_returns_new_validated_config() -> None:
    base = TrainingConfig(epochs=3, tags=["a"])
    new = base.replace(lr=1e-3, epochs=5)
    assert (new.learning_rate, new.epochs) == (1e-3, 5)
    assert (base.learning_rate, base.epochs) == (3e-4, 3)
    new.tags.append("b")
    assert base.tags == ["a"]
    with pytest.raises(ConfigError, match=re.escape("epochs: must be at least 1, got 0.")):
        base.replace(epochs=0)
    with pytest.raises(ConfigError, match=re.escape("epoch: unknown option, got 0. Fix: did you mean 'epochs'?")):
        base.replace(epoch=0)  # type: ignore[call-arg]


def test_from_preset() -> None:
    cfg = TrainingConfig.from_preset("baseline")
    assert (cfg.learning_rate, cfg.epochs, cfg.warmup_ratio) == (5e-5, 3, 0.1)
    assert TrainingConfig.from_preset("tiny", epochs=1).epochs == 1
    with pytest.raises(ConfigError, match="did you mean 'baseline'"):
        TrainingConfig.from_preset("baseline2")


def test_resolved_values() -> None:
    assert TrainingConfig(batch_size=4).resolved_eval_batch_size == 4
    assert TrainingConfig(batch_size=4, eval_batch_size=16).resolved_eval_batch_size == 16
    assert TrainingConfig().resolved_monitor(has_validation=True) == "val/loss"
    assert TrainingConfig().resolved_monitor(has_validation=False) == "train/loss"
    assert TrainingConfig(monitor="val/accuracy").resolved_monitor(has_validation=True) == "val/accuracy"
