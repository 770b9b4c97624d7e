"""Tiny models that use (and record) the attention mask they receive, plus their hand-computed masked losses.

Each model is *causal or pooled over the mask*: with right padding, the outputs at real positions do not depend on
whether a mask is given, so the same samples give the same numbers in every container (a tensor carries no mask).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VOCAB = 24
PAD = 0


def _ones(ids: Tensor, mask: Tensor | None) -> Tensor:
    return torch.ones_like(ids) if mask is None else mask


class Recorder(nn.Module):
    """Keeps every attention mask (and token_type_ids) its forward received, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[Tensor | None] = []
        self.token_types: list[Tensor | None] = []

    def record(self, mask: Tensor | None, token_type_ids: Tensor | None = None) -> None:
        self.masks.append(None if mask is None else mask.detach().clone())
        self.token_types.append(None if token_type_ids is None else token_type_ids.detach().clone())


class MaskedLM(Recorder):
    """Causal LM: position ``t`` sees the masked mean of the embeddings at ``0..t``."""

    def __init__(self, vocab: int = VOCAB, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        self.record(attention_mask)
        m = _ones(input_ids, attention_mask)
        e = self.emb(input_ids) * m.unsqueeze(-1)
        mean = torch.cumsum(e, 1) / torch.cumsum(m, 1).clamp(min=1).unsqueeze(-1)
        return self.head(torch.tanh(mean))


class MaskedClassifier(Recorder):
    """Masked mean-pool, plus a token-type embedding when given."""

    def __init__(self, vocab: int = VOCAB, classes: int = 3, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.types = nn.Embedding(2, d)
        self.head = nn.Linear(d, classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        self.record(attention_mask, token_type_ids)
        m = _ones(input_ids, attention_mask).unsqueeze(-1)
        e = self.emb(input_ids)
        if token_type_ids is not None:
            e = e + self.types(token_type_ids)
        return self.head(torch.tanh((e * m).sum(1) / m.sum(1).clamp(min=1)))


class MaskedSeq2Seq(Recorder):
    """Encoder: masked mean; decoder: causal mean of its inputs plus the encoding."""

    def __init__(self, vocab: int = VOCAB, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None) -> Tensor:
        self.record(attention_mask)
        assert decoder_input_ids is not None
        m = _ones(input_ids, attention_mask).unsqueeze(-1)
        enc = (self.emb(input_ids) * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)
        d = self.emb(decoder_input_ids)
        steps = torch.arange(1, d.shape[1] + 1, dtype=d.dtype).view(1, -1, 1)
        return self.head(torch.tanh(torch.cumsum(d, 1) / steps + enc))


def lm_loss(model: MaskedLM, ids: Tensor, mask: Tensor | None, labels: Tensor | None = None) -> float:
    """The masked causal-LM loss by hand: every position with mask 0 (or label -100) is ignored."""
    with torch.no_grad():
        logits = model(ids, mask)
    if labels is None:
        labels = ids.masked_fill(_ones(ids, mask) == 0, -100)
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(), labels[:, 1:].reshape(-1)))


def class_loss(model: MaskedClassifier, ids: Tensor, mask: Tensor | None, labels: Tensor,
               token_type_ids: Tensor | None = None) -> float:
    with torch.no_grad():
        logits = model(ids, mask, token_type_ids)
    return float(F.cross_entropy(logits.double(), labels))


def seq2seq_loss(model: MaskedSeq2Seq, ids: Tensor, mask: Tensor | None, labels: Tensor, start: int = PAD) -> float:
    dec = torch.full_like(labels, start)
    dec[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, PAD)
    with torch.no_grad():
        logits = model(ids, mask, dec)
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), labels.reshape(-1)))
