"""Which ``TrainingConfig`` fields ``TrainingCoordinator`` honours on the Lightning path, and the refusal of the rest.

Each field declares how the Lightning path treats it (``lightning=`` in :mod:`trainforge.config.fields`); the sets
below are derived from that. A field is honoured when the Coordinator applies it (most through Lightning's own
options, see :mod:`trainforge.lightning.coordinator`). Every other field is refused by name before fitting when it
is set to anything but its default — one ``ConfigError`` that lists each such field, its value, why, and the fix —
so a setting never does nothing without a word. Fields added to ``TrainingConfig`` later are refused until the
Coordinator learns them (their declaration's default is ``lightning="refused"``).
"""

from __future__ import annotations

from trainforge.config import TrainingConfig
from trainforge.config.fields import SETTINGS
from trainforge.errors import ConfigError, bounded_repr

__all__ = ["DATA_FIELDS", "DISPLAY_ONLY", "HONOURED", "check_fields"]

_USE_TRAINER = "Fix: use trainforge.Trainer for it, or leave it at its default on the Lightning path."

# Applied by the Coordinator (through Lightning, trainforge's optimizer/schedule/loss, or its own run files).
HONOURED = frozenset(name for name, spec in SETTINGS.items() if spec.lightning in ("honoured", "data"))

# Applied only when the Coordinator builds the data (train_data=/val_data=); a LightningDataModule builds its own
# loaders, so these are refused with one (batch_size, num_workers and shuffle always have a value: the
# datamodule's own win, as documented).
DATA_FIELDS = tuple(name for name, spec in SETTINGS.items() if spec.lightning == "data")

# Display pacing of trainforge's own console and dashboards, which a Lightning run does not use (Lightning paces
# its loggers with log_every_n_steps): accepted so that one config can drive both paths; it changes no result.
DISPLAY_ONLY = frozenset(name for name, spec in SETTINGS.items() if spec.lightning == "display")

# Why a refused field cannot be applied, where there is more to say than "no equivalent".
_WHY: dict[str, str] = {
    "resume_from_checkpoint": "the Lightning path does not resume a run (neither trainforge's .pt checkpoints nor "
                              "its own .ckpt files: the epoch history, best metric and rotation would restart). "
                              "Fix: train with trainforge.Trainer and resume with train(..., resume_from=...), or "
                              "leave it unset here",
    "nan_guard": "Lightning has no step guard that skips non-finite steps and rolls back. " + _USE_TRAINER,
    "nan_max_consecutive": "it configures trainforge's NaN guard, which Lightning does not have. " + _USE_TRAINER,
    "nan_lr_factor": "it configures trainforge's NaN guard, which Lightning does not have. " + _USE_TRAINER,
    "nan_max_rollbacks": "it configures trainforge's NaN guard, which Lightning does not have. " + _USE_TRAINER,
}


def check_fields(cfg: TrainingConfig, *, datamodule_given: bool) -> None:
    """Raise one ``ConfigError`` naming every set field the Coordinator cannot honour (nothing when all can)."""
    defaults = TrainingConfig().to_dict()
    problems: list[str] = []
    for name, value in cfg.to_dict().items():
        if value == defaults.get(name):
            continue
        if datamodule_given and name in DATA_FIELDS:
            problems.append(f"{name}={bounded_repr(value)}: a LightningDataModule builds its own data loaders, so the Coordinator "
                            "cannot apply it. Fix: pass the data as train_data=/val_data= (the Coordinator applies "
                            "it then), or apply it inside your datamodule and leave the field at its default")
        elif name not in HONOURED and name not in DISPLAY_ONLY:
            why = _WHY.get(name, f"the Lightning path has no equivalent of this trainforge.Trainer setting. "
                                 f"{_USE_TRAINER}")
            problems.append(f"{name}={bounded_repr(value)}: not applied by TrainingCoordinator: {why}")
    if problems:
        raise ConfigError(problems, what="TrainingCoordinator")
