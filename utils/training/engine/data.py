"""``from utils.training.engine.data import UniversalDataModule`` (and the collator registry)."""

from trainforge.data.collators import collator_names, get_collator, register_collator
from trainforge.data.module import UniversalDataModule

__all__ = ["UniversalDataModule", "collator_names", "get_collator", "register_collator"]
