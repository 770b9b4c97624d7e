"""Every check a TrainingConfig must pass, as pure functions over a dict of field values.

One pass collects *all* problems: types first (a field with the wrong type skips its range and
cross-field checks, so one mistake is reported once), then each field's own checks (range, choices,
as declared with the field in ``fields.py``), then the rules that involve two fields (all of them here,
in :func:`cross_field_problems`). Each problem reads ``field: what is wrong, got <value!r>. Fix: how to fix it.``
"""

from __future__ import annotations

import copy
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from trainforge.config import optimizers as optimizer_names
from trainforge.config._suggest import closest, quote_list
from trainforge.config.setting import Rule, Setting
from trainforge.errors import bounded_repr

LR_SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16-mixed", "fp16-mixed")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
MONITOR_MODES = ("min", "max")
STRATEGIES = ("auto", "single", "ddp", "fsdp")
EXPORT_FORMATS = ("onnx", "torchscript", "safetensors")
LOGGERS = ("csv", "console", "wandb", "tensorboard", "mlflow")
DEVICES = ("auto", "cpu", "cuda", "mps", "cuda:N")
ON_CHECKPOINT_ERROR = ("warn", "stop")

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


def problem(name: str, what: str, value: Any, fix: str) -> str:
    """One problem line, in the format every config error uses."""
    return f"{name}: {what}, got {bounded_repr(value)}. Fix: {fix}"


# ---------------------------------------------------------------- types


def union_args(tp: Any) -> tuple[Any, ...]:
    """The members of a union type (``int | None`` -> ``(int, NoneType)``); any other type alone."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return (tp,)


def _accepts(tp: Any, value: Any) -> bool:
    for arg in union_args(tp):
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
    for arg in union_args(tp):
        if arg is type(None):
            continue
        if typing.get_origin(arg) is list:
            parts.append("a list of strings" if typing.get_args(arg) == (str,) else "a list")
        elif typing.get_origin(arg) is dict:
            parts.append("a dict with string keys")
        else:
            parts.append(names.get(arg, getattr(arg, "__name__", str(arg))))
    if type(None) in union_args(tp):
        parts.append("None")
    return " or ".join(parts)


def normalize(
    values: Mapping[str, Any], field_types: Mapping[str, Any], settings: Mapping[str, Setting]
) -> dict[str, Any]:
    """Lossless conversions applied before checking: paths to str, ints to float, lists copied (tuples too), and
    each field's declared ``clean`` on a str value."""
    out = dict(values)
    for name, value in values.items():
        tp = field_types.get(name)
        args = union_args(tp)
        spec = settings.get(name)
        if spec is not None and spec.path and isinstance(value, os.PathLike):
            out[name] = os.fspath(value)
        elif float in args and isinstance(value, int) and not isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (list, tuple)) and any(typing.get_origin(a) is list for a in args):
            out[name] = list(value)  # a copy: the caller's list must not change the config later
        elif isinstance(value, Mapping) and any(typing.get_origin(a) is dict for a in args):
            out[name] = copy.deepcopy(dict(value))  # a copy, like lists
        elif spec is not None and spec.clean is not None and isinstance(value, str):
            out[name] = spec.clean(value)
    return out


def type_problem(name: str, value: Any, tp: Any, default: Any) -> str | None:
    """The problem line when ``value`` does not match the field type ``tp``; None when it does."""
    if _accepts(tp, value):
        return None
    desc = _describe(tp)
    example = f" such as {default!r}" if default is not None and not isinstance(default, bool) else ""
    fix = f"pass {desc}{example}."
    if isinstance(value, str) and float in union_args(tp) and _looks_numeric(value):
        fix = f"pass a number, not a string: {name}={value} (no quotes)."
    return problem(name, f"must be {desc}", value, fix)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- ranges (used by the declarations in fields.py)


def at_least_1(v: Any) -> bool:
    return bool(v >= 1)


def zero_or_more(v: Any) -> bool:
    return bool(v >= 0)


def non_negative(v: Any) -> bool:
    return bool(math.isfinite(v) and v >= 0)


def positive(v: Any) -> bool:
    return bool(math.isfinite(v) and v > 0)


def fraction_below_1(v: Any) -> bool:
    return bool(0 <= v < 1)


def non_empty(v: Any) -> bool:
    return bool(v.strip())


AT_LEAST_1 = Rule(at_least_1, "must be at least 1")
AT_LEAST_1_OR_NONE = Rule(at_least_1, "must be at least 1 or None")
ZERO_OR_MORE = Rule(zero_or_more, "must be 0 or more")
POSITIVE = Rule(positive, "must be a positive number")
NON_NEGATIVE = Rule(non_negative, "must be a non-negative number")
FRACTION = Rule(fraction_below_1, "must be in [0, 1)")
NON_EMPTY_PATH_OR_NONE = Rule(non_empty, "must be a non-empty path or None")


# ---------------------------------------------------------------- checks of one value beyond a range or choices


def _choice_problem(name: str, allowed: tuple[str | None, ...], value: Any) -> str:
    words = [a for a in allowed if a is not None]
    what = f"must be {'None or ' if None in allowed else ''}one of {quote_list(words)}"
    guess = closest(value, words) if isinstance(value, str) else None
    fix = f"did you mean {guess!r}?" if guess else f"use one of {quote_list(words)}."
    return problem(name, what, value, fix)


def device_problems(device: str) -> list[str]:
    if _DEVICE.match(device):
        return []
    # "gpu" is the usual slip, and difflib would suggest 'cpu' for it: the opposite of what was meant.
    guess = "cuda" if device.lower() in ("gpu", "cuda0", "nvidia") else closest(device, DEVICES[:-1])
    fix = f"did you mean {guess!r}?" if guess else "use 'auto' to pick the best device, or 'cuda:0'."
    return [problem("device", f"must be one of {quote_list(DEVICES)}", device, fix)]


def optimizer_problems(name: str) -> list[str]:
    line = optimizer_names.name_problem(name)
    return [] if line is None else [line]


def _unknown_items(field: str, items: list[str], choices: Any, what: str) -> list[str]:
    """One problem per item of a list field that is not among ``choices``, with the closest choice as the fix."""
    found = []
    for item in items:
        if item not in choices:
            guess = closest(item, choices)
            fix = f"did you mean {guess!r}?" if guess else f"use any of {quote_list(choices)}."
            found.append(problem(field, f"each {what} must be one of {quote_list(choices)}", item, fix))
    return found


def logger_problems(loggers: list[str]) -> list[str]:
    return _unknown_items("loggers", loggers, LOGGERS, "logger")


def export_format_problems(formats: list[str]) -> list[str]:
    found = _unknown_items("export_formats", formats, EXPORT_FORMATS, "format")
    if len(set(formats)) != len(formats):
        found.append(problem("export_formats", "lists a format twice", formats, "list each format once."))
    return found


def value_problems(v: Mapping[str, Any], ok: set[str], settings: Mapping[str, Setting]) -> list[str]:
    """Each field's own checks (range, choices, any other), for the fields in ``ok`` (those whose type is right)."""
    found = []
    for name, spec in settings.items():
        if name not in ok:
            continue
        value = v[name]
        if spec.rule is not None and value is not None and not spec.rule.ok(value):
            found.append(problem(name, spec.rule.what, value, spec.fix))
        if spec.choices and value not in spec.choices:
            found.append(_choice_problem(name, spec.choices, value))
        if spec.check is not None and value is not None:
            found += spec.check(value)
    return found


# ---------------------------------------------------------------- rules across fields


def cross_field_problems(v: Mapping[str, Any], ok: set[str]) -> list[str]:
    """Rules that involve two fields; each runs only when both fields passed their own checks."""
    found = []

    def both(*names: str) -> bool:
        return all(n in ok for n in names)

    if both("optimizer", "optimizer_kwargs") and optimizer_names.name_problem(v["optimizer"]) is None:
        found += optimizer_names.kwargs_problems(v["optimizer"], v["optimizer_kwargs"])

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


def find_problems(
    values: Mapping[str, Any],
    field_types: Mapping[str, Any],
    defaults: Mapping[str, Any],
    settings: Mapping[str, Setting],
) -> list[str]:
    """Every problem of a complete, normalised dict of field values, in one list."""
    typed: list[str] = []
    ok: set[str] = set()
    for name, value in values.items():
        line = type_problem(name, value, field_types[name], defaults.get(name))
        if line is None:
            ok.add(name)
        else:
            typed.append(line)
    return [*typed, *value_problems(values, ok, settings), *cross_field_problems(values, ok)]
