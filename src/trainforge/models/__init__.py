"""Model zoo: a small GPT and its presets."""

from trainforge.models.gpt import GPT, MODEL_PRESETS, GPTConfig, build_model

__all__ = ["GPT", "GPTConfig", "MODEL_PRESETS", "build_model"]
