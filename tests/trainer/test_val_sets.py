"""``val_data`` as a dict of named validation sets: ``val/<name>/<metric>``, each equal to evaluating that set alone,
the first set monitored by default, and clear errors for bad names and monitor typos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.errors import ConfigError, DataError, DataTypeError

METRICS = ("loss", "perplexity", "accuracy", "targets")


class TargetCount:
    """A hand-written metric: the number of predicted positions it was given since ``reset``."""

    def reset(self) -> None:
        self.n = 0

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.n += int(target.numel())

    def compute(self) -> float:
        return float(self.n)


def _sets(lm_blocks):
    wiki = lm_blocks[40:48]  # a tensor [8, 16]
    code = list(torch.randint(0, 32, (5, 16), generator=torch.Generator().manual_seed(3)))  # a list of 5 samples
    return wiki, code


def _trainer(**config):
    model, cfg = tiny_gpt()
    return Trainer(model, cfg, quiet_config(**config), lm_task(), metrics={"targets": TargetCount()})


def _alone(trainer: Trainer, data, name: str) -> dict[str, float]:
    """``trainer.evaluate`` of one unnamed set, its keys renamed as the named set's."""
    return {f"val/{name}/{k[len('val/'):]}": v for k, v in trainer.evaluate(data).items()}


def test_two_named_sets_are_logged_separately_and_each_equals_evaluating_it_alone(lm_blocks):
    wiki, code = _sets(lm_blocks)
    trainer = _trainer(epochs=2, checkpoint_dir="ck", eval_every_n_steps=2)
    results = trainer.train(lm_blocks[:40], {"wiki": wiki, "code": code})

    rows = results["metrics_summary"].to_dict("records")
    keys = [k for k in rows[-1] if k.startswith("val/")]
    assert keys == [f"val/{s}/{m}" for s in ("wiki", "code") for m in METRICS]
    assert "val/loss" not in rows[-1]
    assert rows[-1]["val/wiki/targets"] == 8 * 15 and rows[-1]["val/code/targets"] == 5 * 15  # by hand
    final = {**_alone(trainer, wiki, "wiki"), **_alone(trainer, code, "code")}
    assert {k: rows[-1][k] for k in keys} == final
    assert trainer.evaluate({"wiki": wiki, "code": code}) == final  # evaluate(dict): the same keys and values

    model, _ = tiny_gpt()  # the first epoch's row: the epoch-1 checkpoint's weights, each set alone
    model.load_state_dict(torch.load(Path("ck") / "epoch_1.pt", weights_only=False)["model"])
    at_epoch_1 = Trainer(model, None, quiet_config(), lm_task(), metrics={"targets": TargetCount()})
    assert {k: rows[0][k] for k in keys} == {**_alone(at_epoch_1, wiki, "wiki"), **_alone(at_epoch_1, code, "code")}

    assert results["eval_history"] and all(set(keys) <= set(r) for r in results["eval_history"])  # mid-epoch too
    assert results["monitor"] == "val/wiki/loss"  # the first set, by default
    everything = [*results["eval_history"], *rows]
    assert results["best_metric"] == min(r["val/wiki/loss"] for r in everything)


def test_an_explicit_monitor_on_the_second_set_is_followed(lm_blocks):
    wiki, code = _sets(lm_blocks)
    results = _trainer(epochs=3, monitor="val/code/loss").train(lm_blocks[:40], {"wiki": wiki, "code": code})
    rows = results["metrics_summary"].to_dict("records")
    assert results["monitor"] == "val/code/loss"
    assert results["best_metric"] == min(r["val/code/loss"] for r in rows)
    assert results["best_epoch"] == min(rows, key=lambda r: r["val/code/loss"])["epoch"]


def test_a_monitor_typo_fails_before_step_zero_listing_the_valid_names(lm_blocks):
    wiki, code = _sets(lm_blocks)
    trainer = _trainer(monitor="val/cod/loss", output_dir="out")
    with pytest.raises(ConfigError) as err:
        trainer.train(lm_blocks[:40], {"wiki": wiki, "code": code})
    message = str(err.value)
    assert "'val/cod/loss'" in message and "did you mean 'val/code/loss'?" in message
    assert "'val/wiki/loss'" in message and "'val/code/accuracy'" in message and "'val/wiki/targets'" in message
    assert not Path("out").exists()  # refused before the run wrote anything


@pytest.mark.parametrize("val, fragment", [
    ({}, "val_data is an empty dict"),
    ({"": "x"}, "names must be non-empty strings without '/'"),
    ({"a/b": "x"}, "got ['a/b']"),
    ({"wiki": None}, "the validation set(s) ['wiki'] are None"),
])
def test_bad_named_sets_are_clear_errors(lm_blocks, val, fragment):
    with pytest.raises(DataError) as err:
        _trainer(output_dir="out").train(lm_blocks[:40], val)
    assert fragment in str(err.value) and "Fix:" in str(err.value)
    assert not Path("out").exists()


def test_a_bad_set_is_named_in_the_error(lm_blocks):
    with pytest.raises(DataTypeError, match=r"Expected val_data\['code'\] to be Dataset or DataLoader, got builtins.str"):
        _trainer(output_dir="out").train(lm_blocks[:40], {"wiki": lm_blocks[40:], "code": "raw text"})
    assert not Path("out").exists()
