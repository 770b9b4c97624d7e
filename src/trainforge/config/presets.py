"""Named starting points for a TrainingConfig. Presets are plain data: a dict of field values each.

Values not listed keep the TrainingConfig defaults. ``tiny`` trains the test-suite's tiny GPT on CPU in
seconds and doubles as the test fixture.
"""

from __future__ import annotations

import copy
from typing import Any

from trainforge.config._suggest import did_you_mean, quote_list
from trainforge.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {
        "epochs": 3,
        "learning_rate": 5e-5,
        "batch_size": 8,
        "weight_decay": 0.01,
        "warmup_ratio": 0.1,
        "lr_schedule": "cosine",
    },
    "fast": {
        # compile stays off: its warm-up can cost more than a short run saves.
        "epochs": 1,
        "learning_rate": 1e-4,
        "batch_size": 32,
        "weight_decay": 0.01,
        "warmup_ratio": 0.05,
        "lr_schedule": "linear",
        "precision": "auto",
        "compile_mode": None,
        "log_every_n_steps": 50,
    },
    "quality": {
        "epochs": 10,
        "learning_rate": 2e-5,
        "batch_size": 8,
        "weight_decay": 0.01,
        "warmup_ratio": 0.1,
        "lr_schedule": "cosine",
        "min_lr_ratio": 0.1,
        "early_stopping_patience": 3,
        "save_best": True,
    },
    "tiny": {
        "epochs": 2,
        "learning_rate": 1e-3,
        "batch_size": 16,
        "warmup_ratio": 0.1,
        "log_every_n_steps": 5,
        "device": "cpu",
        "precision": "fp32",
        "num_workers": 0,
    },
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "baseline": "Fine-tuning defaults: 3 epochs, lr 5e-5, weight decay 0.01, 10% warmup, cosine decay.",
    "fast": "Quick iteration: 1 epoch, batch 32, lr 1e-4, linear decay, no compile.",
    "quality": "Longer, gentler run: 10 epochs, lr 2e-5, cosine to 10%, early stopping after 3 epochs.",
    "tiny": "CPU smoke test: 2 epochs, batch 16, lr 1e-3, fp32; trains a tiny model in seconds "
    "(run: trainforge train --preset tiny).",
}


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    return dict(PRESET_DESCRIPTIONS)


def get_preset(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s values; an unknown name is a ``ConfigError`` with a did-you-mean."""
    if name not in PRESETS:
        hint = did_you_mean(name, PRESETS) if isinstance(name, str) else ""
        raise ConfigError(
            [f"preset: unknown preset, got {name!r}. Fix: {hint}Choose one of {quote_list(PRESETS)}."],
            what="preset",
        )
    return copy.deepcopy(PRESETS[name])
