"""Small builders shared by tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import torch


def tiny_gpt(vocab: int = 32, seq: int = 16, dropout: float = 0.0, seed: int = 0):
    from trainforge.models import GPT, GPTConfig

    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, max_seq_len=seq, n_layer=1, n_head=2, d_model=32, dropout=dropout)
    return GPT(cfg), cfg


def noisy_lm_blocks() -> tuple[torch.Tensor, torch.Tensor]:
    """40 train and 8 validation rows of 16 tokens (vocabulary 32): a learnable ramp with 20% random tokens, the
    same every call (the killed-and-resumed runs of the reliability and mid-epoch validation tests)."""
    g = torch.Generator().manual_seed(0)
    base = torch.arange(16).repeat(48, 1) % 32
    noise = torch.randint(0, 32, (48, 16), generator=g)
    keep = torch.rand(48, 16, generator=g) < 0.8
    blocks = torch.where(keep, base, noise)
    return blocks[:40], blocks[40:]


def lm_task(vocab: int = 32, seq: int = 16, **extra):
    from trainforge.tasks import TaskSpec

    return TaskSpec.language_modeling(name="lm", vocab_size=vocab, max_seq_len=seq, **extra)


def quiet_config(**overrides):
    from trainforge.config import TrainingConfig

    # Every step line reaches every dashboard (tests count them; the default thins lines of fast steps to 1/s).
    values = dict(epochs=2, batch_size=8, learning_rate=1e-2, progress_bar=False, log_every_n_steps=2,
                  dashboard_min_interval_s=0.0)
    values.update(overrides)
    return TrainingConfig(**values)


PAD = 0  # the pad id of padded_lm_rows


def padded_lm_rows(n: int = 20, seq: int = 16, pad: int = PAD, short=None):
    """[n, seq] token rows (vocab 32) padded with ``pad`` at the end: the rows of the bool mask ``short`` hold 3-5
    tokens, the others 12-16. The default mask alternates every 4 rows, so the micro-batches (of 4) of an
    accumulation window hold very different target counts: where a per-micro-batch mean and the token-normalised
    window loss differ."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 32, (n, seq), generator=g)
    short = (torch.arange(n) // 4) % 2 == 0 if short is None else short
    lengths = torch.where(short, torch.randint(3, 6, (n,), generator=g), torch.randint(12, seq + 1, (n,), generator=g))
    return ids.masked_fill(torch.arange(seq)[None, :] >= lengths[:, None], pad)
