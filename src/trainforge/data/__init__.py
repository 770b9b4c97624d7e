"""Data: coercion of user inputs, collators, the resumable sampler, the embedded default corpus
and memory-mapped token files (``TokenFile``, written by ``trainforge prepare``)."""

from trainforge.data.collators import get_collator, register_collator
from trainforge.data.inputs import as_dataset, split_dataset
from trainforge.data.sampler import ResumableSampler, epoch_permutation
from trainforge.data.tokenfile import TokenFile

__all__ = ["ResumableSampler", "TokenFile", "as_dataset", "get_collator", "register_collator", "epoch_permutation", "split_dataset"]
