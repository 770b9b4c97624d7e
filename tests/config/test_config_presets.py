"""Preset registry: data, descriptions, lookup errors, and that every preset builds."""

from __future__ import annotations

import re

import pytest

from trainforge.config import PRESETS, ConfigError, TrainingConfig, TrainingConfigBuilder, get_preset, list_presets


def test_registry_names_and_descriptions() -> None:
    assert set(PRESETS) == {"baseline", "fast", "quality", "tiny"}
    descriptions = list_presets()
    assert set(descriptions) == set(PRESETS)
    for text in descriptions.values():
        assert text and "\n" not in text


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config(name: str) -> None:
    cfg = TrainingConfig.from_preset(name)
    assert cfg.problems() == []
    assert TrainingConfigBuilder.preset(name).build() == cfg
    assert getattr(TrainingConfigBuilder, name)().build() == cfg


def test_preset_values() -> None:
    baseline = TrainingConfig.from_preset("baseline")
    assert (baseline.learning_rate, baseline.epochs, baseline.weight_decay, baseline.warmup_ratio) == (
        5e-5,
        3,
        0.01,
        0.1,
    )
    fast = TrainingConfig.from_preset("fast")
    assert fast.epochs < baseline.epochs and fast.batch_size > baseline.batch_size
    assert fast.compile_mode is None and fast.precision == "auto"
    quality = TrainingConfig.from_preset("quality")
    assert quality.epochs > baseline.epochs and quality.learning_rate < baseline.learning_rate
    assert quality.early_stopping_patience == 3
    tiny = TrainingConfig.from_preset("tiny")
    assert (tiny.epochs, tiny.batch_size, tiny.learning_rate, tiny.warmup_ratio, tiny.log_every_n_steps) == (
        2,
        16,
        1e-3,
        0.1,
        5,
    )
    assert tiny.device == "cpu" and tiny.precision == "fp32"


def test_get_preset_returns_a_copy() -> None:
    d = get_preset("baseline")
    d["epochs"] = 99
    assert PRESETS["baseline"]["epochs"] == 3
    assert get_preset("baseline")["epochs"] == 3


def test_unknown_preset_did_you_mean() -> None:
    message = "preset: unknown preset, got 'qualty'. Fix: did you mean 'quality'? Choose one of 'baseline', 'fast', 'quality', 'tiny'."
    with pytest.raises(ConfigError, match=re.escape(message)):
        get_preset("qualty")
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainingConfigBuilder.preset("qualty")


def test_unknown_preset_without_close_match() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape("preset: unknown preset, got 'xyz'. Fix: Choose one of 'baseline', 'fast', 'quality', 'tiny'."),
    ):
        get_preset("xyz")
