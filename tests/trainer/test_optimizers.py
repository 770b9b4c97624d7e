"""Optimizers by name (torch's), your own optimizer and scheduler: they train, and a killed run resumes bitwise."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import ConfigError, Trainer, TrainingConfig, TrainingConfigBuilder
from trainforge.config.optimizers import OPTIMIZERS, REFUSED
from trainforge.errors import CheckpointError

# 24 samples / batch 4 = 6 steps per epoch; a step checkpoint every 4 steps; the crash comes after step 7.
SETTINGS = dict(epochs=2, batch_size=4, checkpoint_every_n_steps=4, learning_rate=1e-2)


class Crash:
    def on_step_end(self, state):
        if state.global_step == 7:
            raise KeyboardInterrupt  # as if the process were killed after the step-4 checkpoint


def _run(data, ckpt_dir, resume=None, crash=False, custom_optimizer=None, scheduler=None, **overrides):
    model, cfg = tiny_gpt(dropout=0.1, seed=1)  # dropout: the RNG state is part of what must resume exactly
    config = quiet_config(checkpoint_dir=str(ckpt_dir), **{**SETTINGS, **overrides})
    trainer = Trainer(model, cfg, config, lm_task(), callbacks=[Crash()] if crash else [],
                      optimizer=custom_optimizer, scheduler=scheduler)
    return trainer.train(data[:24], data[40:], resume)


def _killed_and_resumed(data, tag, **kwargs):
    full = _run(data, Path(f"full-{tag}"), **kwargs)
    with pytest.raises(KeyboardInterrupt):
        _run(data, Path(f"kill-{tag}"), crash=True, **kwargs)
    assert (Path(f"kill-{tag}") / "step_00000004.pt").exists()
    resumed = _run(data, Path(f"kill-{tag}"), resume="auto", **kwargs)
    assert resumed["loss_history"] == full["loss_history"]
    assert resumed["metrics_summary"]["lr"].tolist() == full["metrics_summary"]["lr"].tolist()
    for key, value in full["final_model_state"].items():
        assert torch.equal(value, resumed["final_model_state"][key]), key
    return full


def test_the_names_are_torch_optimizers_but_those_the_loop_cannot_drive():
    in_torch = {name.lower() for name, cls in vars(torch.optim).items()
                if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer}
    assert set(OPTIMIZERS) | set(REFUSED) == in_torch


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_by_name_trains_and_a_killed_run_resumes_bitwise(lm_blocks, name):
    weight_decay = 0.0 if name == "rprop" else 0.01  # Rprop has no weight decay (it warns when asked for one)
    full = _killed_and_resumed(lm_blocks, name, optimizer=name, weight_decay=weight_decay)
    losses = full["loss_history"]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] + 0.05


def test_optimizer_names_any_case_kwargs_and_decay_groups(lm_blocks):
    from trainforge.trainer.optim import build_optimizer

    model, cfg = tiny_gpt()
    config = quiet_config(optimizer="SGD", optimizer_kwargs={"momentum": 0.9, "nesterov": True}, epochs=1)
    assert config.optimizer == "sgd"
    assert Trainer(model, cfg, config, lm_task()).train(lm_blocks[:8])["global_step"] == 1
    opt = build_optimizer(model, config, torch.device("cpu"))
    groups = [(g["weight_decay"], g["momentum"], g["nesterov"], len(g["params"])) for g in opt.param_groups]
    assert type(opt) is torch.optim.SGD
    n_matrices = sum(1 for p in model.parameters() if p.dim() >= 2)
    assert groups[0] == (0.01, 0.9, True, n_matrices)  # decay only on matrices
    assert groups[1][0] == 0.0  # biases and norms: no decay
    adam = build_optimizer(model, quiet_config(optimizer="adam", adam_beta1=0.8), torch.device("cpu"))
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["betas"] == (0.8, 0.999)


def test_bad_optimizer_settings_are_one_clear_error_before_training():
    with pytest.raises(ConfigError) as info:
        TrainingConfig(optimizer="adamm", optimizer_kwargs={"momentun": 0.9})
    (problem,) = info.value.problems
    assert "optimizer: must be one of 'adamw', 'adam', 'sgd'" in problem and "did you mean 'adam'?" in problem
    with pytest.raises(ConfigError) as info:
        TrainingConfig(optimizer="sgd", optimizer_kwargs={"momentun": 0.9, "lr": 0.1})
    text = str(info.value)
    assert "SGD takes no keyword 'momentun'" in text and "did you mean 'momentum'?" in text
    assert "'lr' is set by the config" in text and "use learning_rate" in text
    with pytest.raises(ConfigError, match="LBFGS needs a closure"):
        TrainingConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="optimizer_kwargs: must be a dict with string keys"):
        TrainingConfig(optimizer_kwargs=[("momentum", 0.9)])
    built = TrainingConfigBuilder.tiny().with_optimization(optimizer="RMSprop", optimizer_kwargs={"alpha": 0.9}).build()
    assert built.optimizer == "rmsprop" and built.optimizer_kwargs == {"alpha": 0.9}


def test_optimizer_settings_round_trip_through_yaml(tmp_path):
    cfg = TrainingConfig(optimizer="adafactor", optimizer_kwargs={"beta2_decay": -0.7, "eps": [None, 0.001]})
    assert TrainingConfig.load(cfg.save(tmp_path / "c.yaml")) == cfg


def _sgd_factory(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def _schedule_factory(optimizer):
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=12)


def test_custom_optimizer_factory_and_scheduler_factory_train_and_resume_bitwise(lm_blocks):
    full = _killed_and_resumed(lm_blocks, "custom", custom_optimizer=_sgd_factory, scheduler=_schedule_factory)
    lrs = full["metrics_summary"]["lr"].tolist()
    assert lrs[0] != lrs[1] and max(lrs) <= 0.05  # the user's one-cycle schedule, not the config's cosine


def test_a_step_scheduler_is_stepped_once_per_optimizer_step(lm_blocks):
    model, cfg = tiny_gpt()
    config = quiet_config(epochs=2, batch_size=4, gradient_accumulation_steps=2)  # 3 optimizer steps per epoch
    results = Trainer(model, cfg, config, lm_task(), optimizer=_sgd_factory,
                      scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1)
                      ).train(lm_blocks[:24])
    assert results["metrics_summary"]["lr"].tolist() == pytest.approx([0.005, 0.0005])


def test_an_optimizer_instance_trains_and_resuming_with_another_optimizer_is_refused(lm_blocks):
    model, cfg = tiny_gpt()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    config = quiet_config(epochs=1, checkpoint_dir="inst")
    results = Trainer(model, cfg, config, lm_task(), optimizer=opt).train(lm_blocks[:16])
    assert results["global_step"] == 2 and opt.state  # the given instance did the steps
    model2, _ = tiny_gpt()
    with pytest.raises(CheckpointError, match="trained with the optimizer Adam, this run builds SGD"):
        Trainer(model2, cfg, config.replace(epochs=2, optimizer="sgd"), lm_task()).train(lm_blocks[:16],
                                                                                        resume_from="auto")


def test_bad_optimizer_and_scheduler_arguments_are_clear_errors(lm_blocks):
    model, cfg = tiny_gpt()
    with pytest.raises(ConfigError) as info:
        Trainer(model, cfg, quiet_config(), lm_task(), optimizer="sgd", scheduler=42)
    text = str(info.value)
    assert "use TrainingConfig(optimizer='sgd')" in text and "scheduler: expected a factory" in text
    other, _ = tiny_gpt()
    with pytest.raises(ConfigError, match="holds none of this model's parameters"):
        Trainer(model, cfg, quiet_config(), lm_task(), optimizer=torch.optim.SGD(other.parameters(), lr=0.1)
                ).train(lm_blocks[:8])
    with pytest.raises(ConfigError, match="ReduceLROnPlateau steps on a metric"):
        Trainer(model, cfg, quiet_config(), lm_task(),
                scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau).train(lm_blocks[:8])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(model, cfg, quiet_config(epochs=1, optimizer="rprop"), lm_task()).train(lm_blocks[:8])
    assert any("has no weight decay" in str(w.message) for w in caught)
