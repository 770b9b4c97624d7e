"""Models with different forward signatures and outputs train with no user-written adapter.

Every model here is real and tiny (Hugging Face models are built from configs, never downloaded); each test trains
for real and checks the loss mode the trainer chose, that the losses are finite, and that training helped.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainforge import TaskSpec, Trainer, TrainingConfig

VOCAB, SEQ = 32, 16


def config(**overrides) -> TrainingConfig:
    values = dict(epochs=3, batch_size=8, learning_rate=1e-2, progress_bar=False, device="cpu", seed=0,
                  log_every_n_steps=1)
    values.update(overrides)
    return TrainingConfig(**values)


def lm_task(vocab: int = VOCAB, seq: int = SEQ, **extra) -> TaskSpec:
    return TaskSpec.language_modeling(name="lm", vocab_size=vocab, max_seq_len=seq, **extra)


def assert_trained(results: dict, mode: str) -> None:
    losses = results["loss_history"]
    assert results["loss_mode"] == mode
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0], losses


def variable_length_lm(n: int = 24, vocab: int = VOCAB, pad: int = 0, seed: int = 0) -> list[torch.Tensor]:
    """Sequences of lengths 5..16 with ids in [1, vocab) (0 is the pad id): an arithmetic pattern to learn."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, SEQ + 1, (n,), generator=g).tolist()
    starts = torch.randint(1, vocab, (n,), generator=g).tolist()
    return [(torch.arange(length) + s) % (vocab - 1) + 1 for length, s in zip(lengths, starts)]


# ------------------------------------------------------------------------------------------ small custom models


class NanoGPTStyle(nn.Module):
    """``forward(idx, targets=None) -> (logits, loss)``; without targets only the last position's logits (nanoGPT)."""

    def __init__(self, vocab: int = VOCAB, seq: int = SEQ, d: int = 32) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.mix = nn.Linear(d, d)
        self.lm_head = nn.Linear(d, vocab)

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        # causal prefix mean: position t sees only positions <= t
        x = x.cumsum(1) / torch.arange(1, t + 1, device=idx.device)[None, :, None]
        x = x + torch.tanh(self.mix(x))
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss


class TinyLM(nn.Module):
    """Shared body of the small LMs below: causal prefix-mean mixing, logits for every position."""

    def __init__(self, vocab: int = VOCAB, seq: int = SEQ, d: int = 32) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.mix = nn.Linear(d, d)
        self.head = nn.Linear(d, vocab)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(t, device=ids.device))
        x = x.cumsum(1) / torch.arange(1, t + 1, device=ids.device)[None, :, None]
        return self.head(x + torch.tanh(self.mix(x)))


class DictOutput(TinyLM):
    def forward(self, input_ids):
        return {"logits": self.logits(input_ids), "hidden": None}


class ObjectOutput(TinyLM):
    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.logits(input_ids), loss=None)


class KwargsOnly(TinyLM):
    def forward(self, **kwargs):
        assert "labels" not in kwargs  # in logits mode the trainer computes the loss itself
        return self.logits(kwargs["input_ids"])


class OddName(TinyLM):
    def forward(self, seq):
        return self.logits(seq)


class LossOnly(TinyLM):
    """Returns only a scalar loss (Hugging Face convention: unshifted labels, -100 ignored; the model shifts)."""

    def forward(self, input_ids, labels):
        logits = self.logits(input_ids)[:, :-1]
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)


# ------------------------------------------------------------------------------------------ Hugging Face models


def hf_gpt2(seed: int = 0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(cfg), cfg


def hf_bert(seed: int = 0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, num_labels=3, max_position_embeddings=32,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return transformers.BertForSequenceClassification(cfg), cfg


def test_hf_gpt2_trains_on_token_blocks():
    model, cfg = hf_gpt2()
    g = torch.Generator().manual_seed(0)
    starts = torch.randint(0, 64, (32, 1), generator=g)
    data = (starts + torch.arange(16)) % 64  # [32, 16]
    results = Trainer(model, cfg, config(), lm_task(64, 32)).train(data)
    assert_trained(results, "logits")
    assert results["attention_implementation"].startswith("hf:")


def test_hf_gpt2_trains_on_variable_length_samples_with_attention_mask():
    model, cfg = hf_gpt2()
    seen_masks: list[torch.Tensor] = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: seen_masks.append(kwargs.get("attention_mask")), with_kwargs=True
    )
    data = variable_length_lm(vocab=64)
    results = Trainer(model, cfg, config(), lm_task(64, 32, pad_token_id=0)).train(data)
    assert_trained(results, "logits")
    masks = [m for m in seen_masks if m is not None]
    assert masks and any(bool((m == 0).any()) for m in masks)  # padded batches came with their mask


def _classification_data(n: int = 48, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Variable-length sequences whose class is set by their first token (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    seqs = []
    for y in labels.tolist():
        length = int(torch.randint(4, 12, (1,), generator=g))
        body = torch.randint(10, 64, (length,), generator=g)
        body[0] = 1 + y
        seqs.append(body)
    return seqs, labels


def bert_task(pad: int | None = 0) -> TaskSpec:
    return TaskSpec.classification(name="cls", num_classes=3, vocab_size=64, max_seq_len=32, pad_token_id=pad)


def test_hf_bert_classification_on_list_of_dicts():
    model, cfg = hf_bert()
    seqs, labels = _classification_data()
    data = [{"input_ids": s, "labels": y} for s, y in zip(seqs, labels)]
    results = Trainer(model, cfg, config(epochs=4, learning_rate=3e-3), bert_task()).train(data, data[:16])
    assert_trained(results, "logits")
    assert results["attention_implementation"].startswith("hf:")
    assert "val/accuracy" in results["metrics_summary"].columns


def test_hf_bert_classification_on_inputs_labels_tuple():
    model, cfg = hf_bert()
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (48,), generator=g)
    inputs = torch.randint(10, 64, (48, 8), generator=g)
    inputs[:, 0] = 1 + labels
    results = Trainer(model, cfg, config(epochs=4, learning_rate=3e-3), bert_task(None)).train((inputs, labels))
    assert_trained(results, "logits")


def test_nanogpt_style_targets_forward_trains_and_reports_the_shifted_lm_loss(lm_blocks):
    torch.manual_seed(0)
    model = NanoGPTStyle()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    # One batch of everything per epoch, no shuffle: epoch 1's train loss is the initial model's loss on it.
    cfg = config(epochs=3, batch_size=len(lm_blocks), shuffle=False, learning_rate=3e-2)
    results = Trainer(model, None, cfg, lm_task()).train(lm_blocks)
    assert_trained(results, "targets")

    reference = NanoGPTStyle()
    reference.load_state_dict(initial)
    with torch.no_grad():
        logits, _ = reference(lm_blocks, targets=lm_blocks)  # any targets: we only want full logits
        expected = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), lm_blocks[:, 1:].reshape(-1))
    assert results["loss_history"][0] == pytest.approx(float(expected), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("cls", [DictOutput, ObjectOutput, KwargsOnly, OddName], ids=lambda c: c.__name__)
def test_custom_outputs_and_signatures_train_on_logits(cls, lm_blocks):
    torch.manual_seed(0)
    model = cls()
    results = Trainer(model, None, config(), lm_task()).train(lm_blocks)
    assert_trained(results, "logits")


@pytest.mark.parametrize("cls", [ObjectOutput, KwargsOnly], ids=lambda c: c.__name__)
def test_custom_models_on_padded_variable_length_data(cls):
    torch.manual_seed(0)
    results = Trainer(cls(), None, config(), lm_task(pad_token_id=0)).train(variable_length_lm())
    assert_trained(results, "logits")


def test_loss_only_model_trains_on_its_own_loss(lm_blocks):
    torch.manual_seed(0)
    model = LossOnly()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = config(batch_size=len(lm_blocks), shuffle=False, learning_rate=3e-2)
    results = Trainer(model, None, cfg, lm_task()).train(lm_blocks, lm_blocks[:8])
    assert_trained(results, "model_loss")
    reference = LossOnly()
    reference.load_state_dict(initial)
    with torch.no_grad():
        expected = reference(lm_blocks, lm_blocks)
    assert results["loss_history"][0] == pytest.approx(float(expected), rel=1e-5)
    assert math.isfinite(results["metrics_summary"]["val/loss"].iloc[-1])
