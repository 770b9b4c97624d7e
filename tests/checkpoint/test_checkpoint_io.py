"""What a checkpoint holds, canonical keys, the older formats, and refusing files whose unpickling runs code."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import CheckpointError, Trainer
from trainforge.checkpoint import FORMAT_VERSION, canonical_state_dict, load_model_state, safe_load

MARKER = Path("PWNED")


def _train(data, resume_from=None, model=None, **overrides):
    if model is None:
        model, _ = tiny_gpt()
    _, model_config = tiny_gpt()
    config = quiet_config(**{"epochs": 1, **overrides})
    return Trainer(model, model_config, config, lm_task()).train(data, resume_from=resume_from)


# ------------------------------------------------------------------ contents


def test_checkpoint_holds_the_whole_run_and_loads_weights_only(lm_blocks):
    model, model_config = tiny_gpt()
    config = quiet_config(epochs=1, checkpoint_dir="ckpt")
    task = lm_task()
    Trainer(model, model_config, config, task).train(lm_blocks[:40], lm_blocks[40:])

    ckpt = torch.load(Path("ckpt") / "epoch_1.pt", map_location="cpu", weights_only=True)
    for key in ("format_version", "model", "optimizer", "scheduler", "scaler", "state", "rng", "sampler",
                "callbacks", "training_config", "task_spec", "model_config"):
        assert key in ckpt, key
    assert ckpt["format_version"] == FORMAT_VERSION
    assert list(ckpt["model"]) == list(model.state_dict())
    assert not any("_orig_mod." in k or k.startswith("module.") for k in ckpt["model"])
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt["model"][key], value), key
    assert ckpt["optimizer"]["state"] and ckpt["optimizer"]["param_groups"]
    assert ckpt["scheduler"]["last_epoch"] == 5  # 40 samples / batch 8 = 5 optimizer steps
    assert ckpt["scaler"] is None  # fp32 on CPU
    state = ckpt["state"]
    assert (state["epoch"], state["global_step"], state["batches_in_epoch"]) == (1, 5, 0)
    assert [row["epoch"] for row in state["history"]] == [1]
    assert state["best_epoch"] == 1 and state["best_metric"] == pytest.approx(state["history"][0]["val/loss"])
    assert {"python", "numpy", "torch"} <= set(ckpt["rng"])
    assert isinstance(ckpt["rng"]["torch"], torch.Tensor)
    assert ckpt["sampler"] is not None
    assert isinstance(ckpt["callbacks"], dict)
    assert ckpt["training_config"] == config.to_dict()
    assert ckpt["task_spec"] == task.to_dict()
    assert ckpt["model_config"]["vocab_size"] == 32 and ckpt["model_config"]["d_model"] == 32


# ------------------------------------------------------------------ canonical keys


@pytest.mark.parametrize(
    "key, canonical",
    [
        ("_orig_mod.tok_emb.weight", "tok_emb.weight"),
        ("module.tok_emb.weight", "tok_emb.weight"),
        ("module._orig_mod.tok_emb.weight", "tok_emb.weight"),
        ("_orig_mod.module.tok_emb.weight", "tok_emb.weight"),
        ("blocks.0._orig_mod.attn.qkv.weight", "blocks.0.attn.qkv.weight"),  # a compiled submodule: mid-key
        ("tok_emb.weight", "tok_emb.weight"),
    ],
)
def test_canonical_state_dict_strips_wrapper_prefixes(key, canonical):
    assert list(canonical_state_dict({key: torch.zeros(1)})) == [canonical]


def test_a_models_own_child_named_module_keeps_its_name():
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Linear(2, 2)
            self.weight = nn.Parameter(torch.ones(3))

    state = Wrapper().state_dict()
    canonical = canonical_state_dict(state)
    assert list(canonical) == list(state)  # not 'weight' twice: the Linear's weight must not overwrite ours
    assert torch.equal(canonical["weight"], torch.ones(3))


def test_prefixed_state_dict_loads_into_a_plain_model():
    source, _ = tiny_gpt(seed=3)
    target, _ = tiny_gpt(seed=4)
    prefixed = {f"module._orig_mod.{k}": v for k, v in source.state_dict().items()}
    load_model_state(target, prefixed, "wrapped.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_resume_from_a_compiled_ddp_state_dict_file(lm_blocks):
    source, _ = tiny_gpt(seed=3)
    torch.save({f"_orig_mod.module.{k}": v for k, v in source.state_dict().items()}, "wrapped.pt")
    with pytest.warns(UserWarning, match="holds model weights only"):
        _train(lm_blocks[:16], resume_from="wrapped.pt")


# ------------------------------------------------------------------ older formats


def _first_step_weights(data, start_state=None, resume_from=None):
    """Weights right before the first optimizer step, and the final weights of a 1-epoch run."""
    model, _ = tiny_gpt(seed=0)
    if start_state is not None:
        model.load_state_dict(start_state)
    seen = {}

    class Snapshot:
        def on_epoch_start(self, state):
            seen["start"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    _, model_config = tiny_gpt()
    trainer = Trainer(model, model_config, quiet_config(epochs=1), lm_task(), callbacks=[Snapshot()])
    results = trainer.train(data, resume_from=resume_from)
    return seen["start"], results["final_model_state"]


@pytest.mark.parametrize("layout", ["bare_state_dict", "model_state_dict"])
def test_older_checkpoint_formats_resume_from_their_weights(lm_blocks, layout):
    old_model, _ = tiny_gpt(seed=7)
    weights = old_model.state_dict()
    if layout == "bare_state_dict":
        torch.save(weights, "old.pt")
    else:
        optimizer = torch.optim.AdamW(old_model.parameters())
        torch.save({"model_state_dict": weights, "optimizer_state_dict": optimizer.state_dict(), "epoch": 4}, "old.pt")

    with pytest.warns(UserWarning, match=r"'old\.pt' holds model weights only \(an older format\): optimizer, "
                                         r"schedule and counters start fresh"):
        start, final = _first_step_weights(lm_blocks[:16], resume_from="old.pt")
    manual_start, manual_final = _first_step_weights(lm_blocks[:16], start_state=weights)
    fresh_start, _ = _first_step_weights(lm_blocks[:16])

    for key, value in weights.items():
        assert torch.equal(start[key], value), key
        assert torch.equal(final[key], manual_final[key]), key
    assert any(not torch.equal(fresh_start[k], v) for k, v in weights.items())  # the file's weights were used


def test_older_format_is_upgraded_by_safe_load():
    model, _ = tiny_gpt()
    torch.save({"model_state_dict": model.state_dict(), "epoch": 2}, "old.pt")
    ckpt = safe_load("old.pt")
    assert ckpt["format_version"] == 0 and ckpt["legacy_epoch"] == 2
    assert list(ckpt["model"]) == list(model.state_dict())


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_are_reported_as_corrupt_not_as_unsafe(seed):
    # Garbage makes torch's unpickler fail in many ways (UnpicklingError, IndexError, EOFError, ...): each is one
    # CheckpointError saying the file is corrupt, never a raw exception and never "could run code".
    rng = random.Random(seed)
    Path("garbage.pt").write_bytes(rng.randbytes(rng.randint(1, 4096)))
    with pytest.raises(CheckpointError, match=r"'garbage\.pt' is corrupt.*Fix: resume from an earlier checkpoint"):
        safe_load("garbage.pt")


def test_a_file_that_is_no_checkpoint_is_refused_clearly():
    torch.save([1, 2, 3], "list.pt")
    with pytest.raises(CheckpointError, match=r"'list\.pt' is not a checkpoint trainforge understands.*Fix: "):
        safe_load("list.pt")


# ------------------------------------------------------------------ a checkpoint can never run code


def write_marker(path: str) -> None:
    Path(path).write_text("code ran while loading a checkpoint")


class Exploit:
    def __reduce__(self):
        return (write_marker, (str(MARKER),))


@pytest.fixture
def malicious_checkpoint() -> Path:
    path = Path("malicious.pt")
    model, _ = tiny_gpt()
    torch.save({"format_version": 1, "model": model.state_dict(), "payload": Exploit()}, path)
    # The payload is live: an unsafe load really runs it (a test with a dud payload would prove nothing).
    torch.load(path, weights_only=False)
    assert MARKER.exists()
    MARKER.unlink()
    return path


def test_safe_load_refuses_a_pickle_that_runs_code(malicious_checkpoint):
    with pytest.raises(CheckpointError, match=r"Refused to load 'malicious\.pt'.*could run code .*write_marker.*"
                                              r"Fix: load only checkpoints you trust"):
        safe_load(malicious_checkpoint)
    assert not MARKER.exists()


def test_resume_from_refuses_a_pickle_that_runs_code(lm_blocks, malicious_checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused outright, not loaded with a warning
        with pytest.raises(CheckpointError, match=r"Refused to load 'malicious\.pt'"):
            _train(lm_blocks[:16], resume_from=str(malicious_checkpoint))
    assert not MARKER.exists()
    assert not Path("runs").exists()
