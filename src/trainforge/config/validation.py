"""Every check a TrainingConfig must pass, as pure functions over a dict of field values.

One pass collects *all* problems: types first (a field with the wrong type skips its range and
cross-field checks, so one mistake is reported once), then ranges and choices, then rules that
involve two fields. Each problem reads ``field: what is wrong, got <value!r>. Fix: how to fix it.``
"""

from __future__ import annotations

import copy
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from trainforge.config import optimizers as optimizer_names
from trainforge.config._suggest import closest, quote_list
from trainforge.errors import bounded_repr
from trainforge.safe_paths import NAME_RULE, is_safe_name

LR_SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16-mixed", "fp16-mixed")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
MONITOR_MODES = ("min", "max")
STRATEGIES = ("auto", "single", "ddp", "fsdp")
EXPORT_FORMATS = ("onnx", "torchscript", "safetensors")
LOGGERS = ("csv", "console", "wandb", "tensorboard", "mlflow")
DEVICES = ("auto", "cpu", "cuda", "mps", "cuda:N")
ON_CHECKPOINT_ERROR = ("warn", "stop")
PATH_FIELDS = frozenset({"checkpoint_dir", "resume_from_checkpoint", "output_dir", "export_dir"})

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


def problem(name: str, what: str, value: Any, fix: str) -> str:
    """One problem line, in the format every config error uses."""
    return f"{name}: {what}, got {bounded_repr(value)}. Fix: {fix}"


# ---------------------------------------------------------------- types


def _union_args(tp: Any) -> tuple[Any, ...]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return (tp,)


def _accepts(tp: Any, value: Any) -> bool:
    for arg in _union_args(tp):
        if arg is type(None) and value is None:
            return True
        if arg is bool and isinstance(value, bool):
            return True
        # bool is a subclass of int in Python, but True is never a sensible epoch count.
        if arg is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if arg is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if arg is str and isinstance(value, str):
            return True
        if typing.get_origin(arg) is list and isinstance(value, list):
            (item,) = typing.get_args(arg)
            return all(_accepts(item, v) for v in value)
        if typing.get_origin(arg) is dict and isinstance(value, dict):
            return all(isinstance(k, str) for k in value)
    return False


def _describe(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "True or False", str: "a string"}
    parts = []
    for arg in _union_args(tp):
        if arg is type(None):
            continue
        if typing.get_origin(arg) is list:
            parts.append("a list of strings" if typing.get_args(arg) == (str,) else "a list")
        elif typing.get_origin(arg) is dict:
            parts.append("a dict with string keys")
        else:
            parts.append(names.get(arg, getattr(arg, "__name__", str(arg))))
    if type(None) in _union_args(tp):
        parts.append("None")
    return " or ".join(parts)


def normalize(values: Mapping[str, Any], field_types: Mapping[str, Any]) -> dict[str, Any]:
    """Lossless conversions applied before checking: paths to str, ints to float, lists copied (tuples too)."""
    out = dict(values)
    for name, value in values.items():
        tp = field_types.get(name)
        args = _union_args(tp)
        if name in PATH_FIELDS and isinstance(value, os.PathLike):
            out[name] = os.fspath(value)
        elif float in args and isinstance(value, int) and not isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (list, tuple)) and any(typing.get_origin(a) is list for a in args):
            out[name] = list(value)  # a copy: the caller's list must not change the config later
        elif isinstance(value, Mapping) and any(typing.get_origin(a) is dict for a in args):
            out[name] = copy.deepcopy(dict(value))  # a copy, like lists
        elif name == "optimizer" and isinstance(value, str):
            out[name] = value.strip().lower()  # torch's class names in any case: "AdamW" is "adamw"
    return out


def type_problem(name: str, value: Any, tp: Any, default: Any) -> str | None:
    """The problem line when ``value`` does not match the field type ``tp``; None when it does."""
    if _accepts(tp, value):
        return None
    desc = _describe(tp)
    example = f" such as {default!r}" if default is not None and not isinstance(default, bool) else ""
    fix = f"pass {desc}{example}."
    if isinstance(value, str) and float in _union_args(tp) and _looks_numeric(value):
        fix = f"pass a number, not a string: {name}={value} (no quotes)."
    return problem(name, f"must be {desc}", value, fix)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- ranges


def _at_least_1(v: Any) -> bool:
    return bool(v >= 1)


def _non_negative(v: Any) -> bool:
    return bool(math.isfinite(v) and v >= 0)


def _positive(v: Any) -> bool:
    return bool(math.isfinite(v) and v > 0)


def _fraction_below_1(v: Any) -> bool:
    return bool(0 <= v < 1)


def _non_empty(v: Any) -> bool:
    return bool(v.strip())


# (field, predicate on a non-None value, what is wrong, fix)
_RANGES: list[tuple[str, Callable[[Any], bool], str, str]] = [
    (
        "epochs",
        _at_least_1,
        "must be at least 1",
        "use a number of epochs such as 3 (cap training with max_steps instead).",
    ),
    ("max_steps", _at_least_1, "must be at least 1 or None", "use a number of optimizer steps, or None for no cap."),
    ("learning_rate", _positive, "must be a positive number", "use a value such as 3e-4."),
    ("batch_size", _at_least_1, "must be at least 1", "use a batch size such as 8."),
    (
        "eval_batch_size",
        _at_least_1,
        "must be at least 1 or None",
        "use a batch size such as 16, or None to use batch_size.",
    ),
    (
        "gradient_accumulation_steps",
        _at_least_1,
        "must be at least 1",
        "use 1 for no accumulation, or the number of micro-batches per optimizer step.",
    ),
    ("seed", lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1", "use a seed such as 42."),
    ("weight_decay", _non_negative, "must be a non-negative number", "use a value such as 0.01, or 0.0 for none."),
    ("adam_beta1", _fraction_below_1, "must be in [0, 1)", "use a value such as 0.9."),
    ("adam_beta2", _fraction_below_1, "must be in [0, 1)", "use a value such as 0.999."),
    ("adam_epsilon", _positive, "must be a positive number", "use a value such as 1e-8."),
    (
        "max_grad_norm",
        _non_negative,
        "must be a non-negative number or None",
        "use a value such as 1.0, or None (or 0) to disable clipping.",
    ),
    (
        "warmup_ratio",
        _fraction_below_1,
        "must be in [0, 1)",
        "use a fraction of the training steps such as 0.1, or 0.0 for no warmup.",
    ),
    (
        "warmup_steps",
        lambda v: v >= 0,
        "must be 0 or more, or None",
        "use a number of optimizer steps, or None to use warmup_ratio.",
    ),
    (
        "min_lr_ratio",
        lambda v: 0 <= v <= 1,
        "must be in [0, 1]",
        "use a fraction of learning_rate such as 0.1, or 0.0 to decay to zero.",
    ),
    ("validation_split", _fraction_below_1, "must be in [0, 1)", "use a fraction such as 0.1, or 0.0 for no split."),
    (
        "max_train_samples",
        _at_least_1,
        "must be at least 1 or None",
        "use a number of samples, or None to use them all.",
    ),
    ("max_val_samples", _at_least_1, "must be at least 1 or None", "use a number of samples, or None to use them all."),
    ("eval_every_n_steps", _at_least_1, "must be at least 1 or None",
     "use a number of optimizer steps, or None to validate at epoch ends only."),
    (
        "num_workers",
        lambda v: v >= 0,
        "must be 0 or more",
        "use 0 to load data in the main process, or a small number such as 2.",
    ),
    (
        "early_stopping_patience",
        _at_least_1,
        "must be at least 1 or None",
        "use a number of epochs such as 3, or None to turn early stopping off.",
    ),
    (
        "dashboard_min_interval_s",
        _non_negative,
        "must be a non-negative number of seconds",
        "use 1.0 (the default), or 0 to send every step line to W&B, TensorBoard and MLflow.",
    ),
    (
        "early_stopping_min_delta",
        _non_negative,
        "must be a non-negative number",
        "use 0.0, or the smallest change that counts as an improvement.",
    ),
    ("monitor", _non_empty, "must be a metric name or None", "use a name such as 'val/loss', or None for the default."),
    (
        "checkpoint_dir",
        _non_empty,
        "must be a non-empty path or None",
        "use a directory such as './checkpoints', or None.",
    ),
    (
        "checkpoint_frequency",
        _at_least_1,
        "must be at least 1",
        "use 1 to save every epoch, or N to save every N epochs.",
    ),
    (
        "checkpoint_every_n_steps",
        _at_least_1,
        "must be at least 1 or None",
        "use a number of optimizer steps, or None.",
    ),
    (
        "keep_last_n",
        _at_least_1,
        "must be at least 1 or None",
        "use a number such as 3, or None to keep every checkpoint.",
    ),
    ("resume_from_checkpoint", _non_empty, "must be a path, 'auto' or None", "use a checkpoint path, 'auto', or None."),
    ("output_dir", _non_empty, "must be a non-empty path or None", "use a directory such as './runs/exp-1', or None."),
    (
        "run_name",
        is_safe_name,
        f"must be one plain name ({NAME_RULE})",
        "use a name such as 'exp-1' (it becomes the directory runs/<run_name> and exports/<run_name>).",
    ),
    ("wandb_project", _non_empty, "must be a non-empty name or None", "use a project name, or None for 'trainforge'."),
    ("log_every_n_steps", _at_least_1, "must be at least 1", "use a value such as 10."),
    ("export_dir", _non_empty, "must be a non-empty path", "use a directory such as 'exports'."),
    (
        "nan_max_consecutive",
        _at_least_1,
        "must be at least 1",
        "use the number of NaN/Inf steps in a row that triggers a rollback, such as 3.",
    ),
    (
        "nan_lr_factor",
        lambda v: 0 < v < 1,
        "must be in (0, 1) or None",
        "use a factor such as 0.5 to halve the learning rate at each rollback, or None to keep it.",
    ),
    (
        "nan_max_rollbacks",
        lambda v: v >= 0,
        "must be 0 or more",
        "use a number such as 2, or 0 to stop at the first NaN/Inf streak.",
    ),
]

# (field, allowed values; None allowed when listed)
_CHOICES: list[tuple[str, tuple[str | None, ...]]] = [
    ("lr_schedule", LR_SCHEDULES),
    ("precision", PRECISIONS),
    ("compile_mode", (None, *COMPILE_MODES)),
    ("monitor_mode", MONITOR_MODES),
    ("strategy", STRATEGIES),
    ("on_checkpoint_error", ON_CHECKPOINT_ERROR),
]


def _choice_problem(name: str, allowed: tuple[str | None, ...], value: Any) -> str:
    words = [a for a in allowed if a is not None]
    what = f"must be {'None or ' if None in allowed else ''}one of {quote_list(words)}"
    guess = closest(value, words) if isinstance(value, str) else None
    fix = f"did you mean {guess!r}?" if guess else f"use one of {quote_list(words)}."
    return problem(name, what, value, fix)


def value_problems(v: Mapping[str, Any], ok: set[str]) -> list[str]:
    """Ranges and choices of the fields in ``ok`` (those whose type is right)."""
    found = []
    for name, check, what, fix in _RANGES:
        if name in ok and v[name] is not None and not check(v[name]):
            found.append(problem(name, what, v[name], fix))
    for name, allowed in _CHOICES:
        if name in ok and v[name] not in allowed:
            found.append(_choice_problem(name, allowed, v[name]))
    if "device" in ok and not _DEVICE.match(v["device"]):
        # "gpu" is the usual slip, and difflib would suggest 'cpu' for it: the opposite of what was meant.
        guess = "cuda" if v["device"].lower() in ("gpu", "cuda0", "nvidia") else closest(v["device"], DEVICES[:-1])
        fix = f"did you mean {guess!r}?" if guess else "use 'auto' to pick the best device, or 'cuda:0'."
        found.append(problem("device", f"must be one of {quote_list(DEVICES)}", v["device"], fix))
    if "optimizer" in ok:
        line = optimizer_names.name_problem(v["optimizer"])
        if line is not None:
            found.append(line)
        elif "optimizer_kwargs" in ok:
            found += optimizer_names.kwargs_problems(v["optimizer"], v["optimizer_kwargs"])
    if "loggers" in ok:
        for name in v["loggers"]:
            if name not in LOGGERS:
                guess = closest(name, LOGGERS)
                fix = f"did you mean {guess!r}?" if guess else f"use any of {quote_list(LOGGERS)}."
                found.append(problem("loggers", f"each logger must be one of {quote_list(LOGGERS)}", name, fix))
    if "export_formats" in ok:
        for fmt in v["export_formats"]:
            if fmt not in EXPORT_FORMATS:
                guess = closest(fmt, EXPORT_FORMATS)
                fix = f"did you mean {guess!r}?" if guess else f"use any of {quote_list(EXPORT_FORMATS)}."
                found.append(
                    problem("export_formats", f"each format must be one of {quote_list(EXPORT_FORMATS)}", fmt, fix)
                )
        if len(set(v["export_formats"])) != len(v["export_formats"]):
            found.append(
                problem("export_formats", "lists a format twice", v["export_formats"], "list each format once.")
            )
    return found


# ---------------------------------------------------------------- rules across fields


def cross_field_problems(v: Mapping[str, Any], ok: set[str]) -> list[str]:
    """Rules that involve two fields; each runs only when both fields passed their own checks."""
    found = []

    def both(*names: str) -> bool:
        return all(n in ok for n in names)

    for name in ("checkpoint_every_n_steps", "keep_last_n"):
        if both(name, "checkpoint_dir") and v[name] is not None and v["checkpoint_dir"] is None:
            found.append(
                problem(
                    name,
                    "needs checkpoint_dir, which is None",
                    v[name],
                    f"set checkpoint_dir (e.g. './checkpoints') or leave {name} unset.",
                )
            )
    if (
        both("resume_from_checkpoint", "checkpoint_dir")
        and v["resume_from_checkpoint"] == "auto"
        and v["checkpoint_dir"] is None
    ):
        found.append(
            problem(
                "resume_from_checkpoint",
                "'auto' looks for the latest checkpoint in checkpoint_dir, which is None",
                "auto",
                "set checkpoint_dir, or give the path of a checkpoint file.",
            )
        )
    if both("precision", "use_amp") and v["precision"] in ("bf16-mixed", "fp16-mixed") and not v["use_amp"]:
        found.append(
            problem(
                "precision",
                "mixed precision needs use_amp=True, but use_amp is False",
                v["precision"],
                "set use_amp=True, or precision='fp32'.",
            )
        )
    steps_set = both("warmup_steps", "max_steps") and None not in (v["warmup_steps"], v["max_steps"])
    if steps_set and v["warmup_steps"] >= v["max_steps"]:
        found.append(
            problem(
                "warmup_steps",
                f"must be smaller than max_steps ({v['max_steps']})",
                v["warmup_steps"],
                "lower warmup_steps or raise max_steps.",
            )
        )
    if both("export_bundle", "export_formats") and v["export_bundle"] and not v["export_formats"]:
        found.append(
            problem(
                "export_formats",
                "is empty but export_bundle is True",
                v["export_formats"],
                f"list at least one of {quote_list(EXPORT_FORMATS)}, or set export_bundle=False.",
            )
        )
    if both("strategy", "device") and v["strategy"] == "fsdp" and v["device"] == "mps":
        found.append(
            problem(
                "strategy",
                "'fsdp' runs on CUDA (nccl) or CPU (gloo) devices, but device is 'mps' (no process-group backend "
                "shards on it)",
                "fsdp",
                "use device='cpu' or 'cuda', or strategy='auto' on mps.",
            )
        )
    return found


def find_problems(values: Mapping[str, Any], field_types: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """Every problem of a complete, normalised dict of field values, in one list."""
    typed: list[str] = []
    ok: set[str] = set()
    for name, value in values.items():
        line = type_problem(name, value, field_types[name], defaults.get(name))
        if line is None:
            ok.add(name)
        else:
            typed.append(line)
    return [*typed, *value_problems(values, ok), *cross_field_problems(values, ok)]
