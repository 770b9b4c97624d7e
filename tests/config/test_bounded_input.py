"""Hostile config files: alias bombs, huge files, deep nesting and huge values are refused at once, and every
error message shows values cut short."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from trainforge.config import TrainingConfig, parse_overrides
from trainforge.errors import REPR_LIMIT, ConfigError, InputTooLarge, bounded_repr
from trainforge.sweeps import load_sweep

# "Billion laughs": nine levels of nine aliases each stand for 9^9 (387 million) strings.
BOMB = "# 'billion laughs': 9 levels of 9 aliases each\n" + "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)


def test_a_443_byte_alias_bomb_is_refused_in_well_under_a_second(tmp_path: Path) -> None:
    assert len(BOMB.encode()) == 443
    for name in ("config.yaml", "sweep.yaml"):
        path = tmp_path / name
        path.write_text(BOMB)
        started = time.perf_counter()
        with pytest.raises(InputTooLarge) as info:
            TrainingConfig.load(path) if name == "config.yaml" else load_sweep(path)
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0, f"took {elapsed:.2f}s"  # a generous bound, only to catch a hang
        assert isinstance(info.value, ConfigError)
        assert f"config file {path} has 1 problem" in str(info.value)
        assert "file: expands to more than 250,000 values once its aliases (*name) are expanded" in str(info.value)


def test_an_alias_bomb_in_an_override_or_a_merge_key_is_refused(tmp_path: Path) -> None:
    levels = ["&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    value = "[" + ", ".join(levels) + "]"  # each element: 9 copies of the one before
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"the value is not valid YAML \(expands to more than 250,000 values"):
        parse_overrides([f"tags={value}"])
    assert time.perf_counter() - started < 1.0  # a generous bound, only to catch a hang
    merge = "a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7}\n" + "".join(
        f"{b}: &{b} {{<<: [{', '.join(['*' + a] * 1)}], {b}x: [{', '.join(['*' + a] * 8)}]}}\n"
        for a, b in zip("abcdefgh", "bcdefghi"))
    path = tmp_path / "merge.yaml"
    path.write_text(merge)
    with pytest.raises(InputTooLarge, match="expands to more than"):
        TrainingConfig.load(path)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from trainforge.config.io import MAX_FILE_BYTES

    path = tmp_path / "big.json"
    path.write_text('{"notes": "' + "x" * MAX_FILE_BYTES + '"}')
    size = f"{path.stat().st_size:,}"
    with pytest.raises(InputTooLarge, match=rf"file: is {size} bytes, over the limit of 2,000,000 bytes"):
        TrainingConfig.load(path)


def test_deep_nesting_is_a_clear_error_not_a_recursion_crash(tmp_path: Path) -> None:
    for name, text in (("deep.json", "[" * 100_000 + "]" * 100_000),
                       ("deep.yaml", "a: " + "[" * 100_000 + "]" * 100_000)):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InputTooLarge, match="file: is nested too deeply to read"):
            TrainingConfig.load(path)


def test_error_messages_show_values_cut_short(tmp_path: Path) -> None:
    huge = list(range(100_000))
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"batch_size": huge, "lerning_rate": "y" * 50_000}))
    with pytest.raises(ConfigError) as info:
        TrainingConfig.load(path)
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("lerning_rate: unknown option, got 'yyyy") and len(problems[0]) < 400
    assert problems[1].startswith("batch_size: must be an integer, got [0, 1, 2, 3, 4, 5, ...]. Fix:")
    assert len(bounded_repr("z" * 10_000)) <= REPR_LIMIT
    assert bounded_repr({"a": [1, 2]}) == "{'a': [1, 2]}"  # short values are shown whole
    with pytest.raises(ConfigError) as sweep_info:
        from trainforge.sweeps import parse_sweep

        parse_sweep({"method": "grid", "parameters": {"learning_rate": {"values": [1e-3]}}, "seed": "s" * 10_000})
    (seed,) = [p for p in sweep_info.value.problems if p.startswith("seed:")]
    assert len(seed) < REPR_LIMIT + 60
