"""One real tiny training per TaskSpec type: the metric columns, and val/loss against a hand computation.

The hand computation runs the trained model on each validation sample on its own (no padding at all) and takes the
token-weighted mean cross-entropy: sum of per-target losses over the whole set / number of targets.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import lm_task, tiny_gpt
from trainforge import TaskSpec, Trainer, TrainingConfig


def config(**overrides) -> TrainingConfig:
    values = dict(epochs=3, batch_size=8, learning_rate=1e-2, progress_bar=False, device="cpu", seed=0)
    values.update(overrides)
    return TrainingConfig(**values)


def check_results(results: dict, present: tuple[str, ...], absent: tuple[str, ...]) -> float:
    df = results["metrics_summary"]
    for column in ("epoch", "train/loss", "val/loss", *present):
        assert column in df.columns, list(df.columns)
    for column in absent:
        assert column not in df.columns, list(df.columns)
    losses = results["loss_history"]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    assert list(df["epoch"]) == [1, 2, 3]
    return float(df["val/loss"].iloc[-1])


def trained(model: nn.Module, results: dict) -> nn.Module:
    model.load_state_dict(results["final_model_state"])
    return model.eval()


# ------------------------------------------------------------------------------------------ language modelling


def test_language_modeling(lm_blocks):
    model, cfg = tiny_gpt()
    train, val = lm_blocks[:40], lm_blocks[40:]
    results = Trainer(model, cfg, config(), lm_task()).train(train, val)
    val_loss = check_results(results, ("val/perplexity", "val/accuracy"), ())
    df = results["metrics_summary"]
    assert df["val/perplexity"].iloc[-1] == pytest.approx(math.exp(val_loss), rel=1e-6)

    model = trained(model, results)
    total, count = 0.0, 0
    with torch.no_grad():
        for seq in val:
            logits = model(seq[None])[0]
            total += float(F.cross_entropy(logits[:-1].double(), seq[1:], reduction="sum"))
            count += seq.numel() - 1
    assert val_loss == pytest.approx(total / count, abs=1e-5)


# ------------------------------------------------------------------------------------------ text classification


class TextClassifier(nn.Module):
    """Embedding, masked mean pooling, linear head: ``forward(input_ids, attention_mask=None) -> [B, C]``."""

    def __init__(self, vocab: int = 64, classes: int = 3, d: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.hidden = nn.Linear(d, d)
        self.head = nn.Linear(d, classes)

    def forward(self, input_ids, attention_mask=None):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        x = torch.tanh(self.hidden(self.emb(input_ids)))
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled)


def classification_samples(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        y = int(torch.randint(0, 3, (1,), generator=g))
        length = int(torch.randint(3, 10, (1,), generator=g))
        ids = torch.randint(4, 64, (length,), generator=g)
        ids[torch.rand(length, generator=g) < 0.5] = 1 + y  # the class token dominates the sequence
        samples.append({"input_ids": ids, "labels": torch.tensor(y)})
    return samples


def test_text_classification():
    torch.manual_seed(0)
    model = TextClassifier()
    task = TaskSpec.classification(name="cls", num_classes=3, vocab_size=64, max_seq_len=16, pad_token_id=0)
    val = classification_samples(20, seed=1)
    results = Trainer(model, None, config(), task).train(classification_samples(64, seed=0), val)
    val_loss = check_results(results, ("val/accuracy",), ("val/perplexity",))
    assert results["loss_mode"] == "logits"

    model = trained(model, results)
    with torch.no_grad():
        losses = [F.cross_entropy(model(s["input_ids"][None]).double(), s["labels"][None]) for s in val]
    assert val_loss == pytest.approx(float(torch.stack(losses).mean()), abs=1e-5)


# ------------------------------------------------------------------------------------------ seq2seq


class TinySeq2Seq(nn.Module):
    """``forward(input_ids, decoder_input_ids, attention_mask=None) -> [B, T_dec, V]``.

    The encoder is a masked mean of token embeddings; the decoder is causal (a prefix mean), so neither sees padding.
    """

    def __init__(self, vocab: int = 32, seq: int = 16, d: int = 32) -> None:
        super().__init__()
        self.src = nn.Embedding(vocab, d)
        self.tgt = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        self.mix = nn.Linear(2 * d, d)
        self.head = nn.Linear(d, vocab)
        self.calls: list[torch.Tensor] = []

    def forward(self, input_ids, decoder_input_ids, attention_mask=None):
        self.calls.append(decoder_input_ids)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        context = (self.src(input_ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        t = decoder_input_ids.shape[1]
        y = self.tgt(decoder_input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        y = y.cumsum(1) / torch.arange(1, t + 1, device=y.device)[None, :, None]
        h = torch.tanh(self.mix(torch.cat([y, context[:, None].expand_as(y)], -1)))
        return self.head(h + y)


def seq2seq_samples(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Targets are the source's tokens + 1 (a different length from the source: one token dropped)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        length = int(torch.randint(3, 9, (1,), generator=g))
        src = torch.randint(1, 30, (length,), generator=g)
        samples.append({"input_ids": src, "labels": src[1:] + 1})
    return samples


def test_seq2seq_with_decoder_inputs_built_by_the_collator():
    torch.manual_seed(0)
    model = TinySeq2Seq()
    task = TaskSpec.seq2seq(name="s2s", vocab_size=32, max_seq_len=16, pad_token_id=0)
    val = seq2seq_samples(16, seed=1)
    results = Trainer(model, None, config(), task).train(seq2seq_samples(64, seed=0), val)
    val_loss = check_results(results, ("val/perplexity", "val/accuracy"), ())
    assert results["loss_mode"] == "logits"
    assert all(bool((d[:, 0] == 0).all()) for d in model.calls)  # decoder starts from the start (= pad) id

    model = trained(model, results)
    total, count = 0.0, 0
    with torch.no_grad():
        for s in val:
            labels = s["labels"]
            decoder_input = torch.cat([torch.zeros(1, dtype=labels.dtype), labels[:-1]])
            logits = model(s["input_ids"][None], decoder_input[None])[0]
            total += float(F.cross_entropy(logits.double(), labels, reduction="sum"))
            count += labels.numel()
    assert val_loss == pytest.approx(total / count, abs=1e-5)


# ------------------------------------------------------------------------------------------ vision


class TinyConvNet(nn.Module):
    def __init__(self, channels: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, padding=1)
        self.head = nn.Linear(8, classes)

    def forward(self, pixel_values):
        return self.head(F.relu(self.conv(pixel_values)).mean((2, 3)))


def images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 8x8 RGB images; the class is the brightest channel's index (or 3 when all are dim)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5
    for i, y in enumerate(labels.tolist()):
        if y < 3:
            x[i, y] += 1.5
    return x, labels


def test_vision_classification_on_images_labels_tuple():
    torch.manual_seed(0)
    model = TinyConvNet()
    task = TaskSpec.vision_classification(name="vision", num_classes=4, image_size=8, num_channels=3)
    val_x, val_y = images(20, seed=1)
    results = Trainer(model, None, config(), task).train(images(64, seed=0), (val_x, val_y))
    val_loss = check_results(results, ("val/accuracy",), ("val/perplexity",))
    assert results["loss_mode"] == "logits"

    model = trained(model, results)
    with torch.no_grad():
        expected = F.cross_entropy(model(val_x).double(), val_y)
    assert val_loss == pytest.approx(float(expected), abs=1e-5)
