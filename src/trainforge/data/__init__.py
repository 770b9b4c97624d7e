"""Data: coercion of user inputs, collators, the resumable sampler and the embedded default corpus."""

from trainforge.data.collators import get_collator, register_collator
from trainforge.data.inputs import as_dataset, split_dataset
from trainforge.data.sampler import ResumableSampler, epoch_permutation

__all__ = ["ResumableSampler", "as_dataset", "get_collator", "register_collator", "epoch_permutation", "split_dataset"]
