"""parse_overrides: key=value, --key=value and --key value items from a command line or a sweep agent."""

from __future__ import annotations

import re

import pytest

from trainforge.config import ConfigError, TrainingConfig, parse_overrides


def test_value_types_follow_yaml() -> None:
    assert parse_overrides(
        ["a=1", "b=1.5", "c=true", "d=null", "e=hello", "f=[onnx, torchscript]", "g={x: 1}", "h='3'", "i=", "j=off"]
    ) == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": "hello",
        "f": ["onnx", "torchscript"],
        "g": {"x": 1},
        "h": "3",
        "i": None,
        "j": False,  # YAML 1.1, like the config files
    }


@pytest.mark.parametrize(
    ("text", "value"), [("1e-3", 1e-3), ("5E-5", 5e-5), ("-2e3", -2000.0), ("1.e-2", 0.01), (".5e1", 5.0)]
)
def test_exponent_numbers_are_floats(text: str, value: float) -> None:
    out = parse_overrides([f"lr={text}"])
    assert out == {"lr": value} and isinstance(out["lr"], float)


def test_exponent_floats_inside_lists_but_not_when_quoted() -> None:
    assert parse_overrides(["x=[1e-3, 2e-3]", "y='1e-3'", "z=e5", "w=1e"]) == {
        "x": [1e-3, 2e-3],
        "y": "1e-3",
        "z": "e5",
        "w": "1e",
    }


def test_all_three_forms() -> None:
    assert parse_overrides(["epochs=3", "--lr=1e-3", "--batch_size", "16", "--tags", "[a, b]"]) == {
        "epochs": 3,
        "lr": 1e-3,
        "batch_size": 16,
        "tags": ["a", "b"],
    }


def test_value_may_contain_equals_and_negative_numbers() -> None:
    assert parse_overrides(["notes=a=b", "--seed", "-1"]) == {"notes": "a=b", "seed": -1}


def test_dashes_in_keys_become_underscores() -> None:
    assert parse_overrides(["--learning-rate=5e-5", "--max-grad-norm", "0.5"]) == {
        "learning_rate": 5e-5,
        "max_grad_norm": 0.5,
    }


def test_dotted_keys_nest() -> None:
    assert parse_overrides(["model.n_layer=4", "--model.n_head=2", "model.attn.dropout=0.1", "epochs=1"]) == {
        "model": {"n_layer": 4, "n_head": 2, "attn": {"dropout": 0.1}},
        "epochs": 1,
    }


def test_last_value_wins() -> None:
    assert parse_overrides(["lr=1e-3", "lr=2e-3"]) == {"lr": 2e-3}


def test_empty() -> None:
    assert parse_overrides([]) == {}


def test_result_feeds_training_config() -> None:
    cfg = TrainingConfig.from_dict(
        parse_overrides(["--lr=1e-3", "num_epochs=5", "export_formats=[onnx]", "max_steps=null"])
    )
    assert (cfg.learning_rate, cfg.epochs, cfg.export_formats, cfg.max_steps) == (1e-3, 5, ["onnx"], None)


FORMS = "expected key=value, --key=value or --key value"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["lr"], f"'lr': has no value. Fix: {FORMS}."),
        (["--lr"], f"'--lr': has no value. Fix: {FORMS}."),
        (["--lr", "--epochs=3"], f"'--lr': has no value. Fix: {FORMS}."),
        (["=3"], f"'=3': '' is not a valid key. Fix: {FORMS}, with a key such as learning_rate or model.n_layer."),
        (
            ["a..b=3"],
            f"'a..b=3': 'a..b' is not a valid key. Fix: {FORMS}, with a key such as learning_rate or model.n_layer.",
        ),
        (
            ["1x=3"],
            f"'1x=3': '1x' is not a valid key. Fix: {FORMS}, with a key such as learning_rate or model.n_layer.",
        ),
        (
            ["model=3", "model.n_layer=4"],
            "'model.n_layer=4': 'model' was already set to 3, so it cannot have sub-keys. Fix: give model either a value or sub-keys.",
        ),
        (
            ["model.n_layer=4", "model=3"],
            "'model=3': 'model' already has sub-keys {'n_layer': 4}. Fix: give model either a value or sub-keys.",
        ),
    ],
)
def test_malformed_item(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        parse_overrides(items)
    assert str(info.value).startswith("overrides has 1 problem:")


def test_invalid_yaml_value() -> None:
    with pytest.raises(
        ConfigError, match=r"'k=\[1,': the value is not valid YAML \(.*\)\. Fix: quote it, e\.g\. key='\.\.\.'\."
    ):
        parse_overrides(["k=[1,"])


def test_every_malformed_item_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides(["ok=1", "bad", "=2", "--also-bad"])
    assert [p.split(":")[0] for p in info.value.problems] == ["'bad'", "'=2'", "'--also-bad'"]
