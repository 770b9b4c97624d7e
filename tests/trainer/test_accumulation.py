"""Token-normalised gradient accumulation (DESIGN item 10), checked on the gradients themselves.

``batch_size=2, gradient_accumulation_steps=4`` must give the gradients of ``batch_size=8`` at the first optimizer
step, also when micro-batches hold different numbers of targets (variable-length LM, classification with ignored
labels, seq2seq). The sampler's order is a pure function of (seed, epoch), so both runs see the same 8 samples in
their first window. Gradients are captured by ``register_post_accumulate_grad_hook`` (the value after the window's
last backward is the accumulated gradient) and snapshotted by a callback at ``on_step_end``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import tiny_gpt
from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.data.sampler import epoch_permutation
from trainforge.trainer.optim import lr_multiplier

SEED = 7


def config(**overrides) -> TrainingConfig:
    values = dict(epochs=1, learning_rate=1e-2, progress_bar=False, device="cpu", seed=SEED, shuffle=True,
                  max_grad_norm=None, log_every_n_steps=1)
    values.update(overrides)
    return TrainingConfig(**values)


class GradRecorder:
    """Keeps each parameter's latest gradient (from its hook) and copies them all at every step's end."""

    def __init__(self, model: nn.Module) -> None:
        self.latest: dict[str, torch.Tensor] = {}
        self.steps: dict[int, dict[str, torch.Tensor]] = {}
        self.model = model
        self.weights_before: dict[int, dict[str, torch.Tensor]] = {0: copy.deepcopy(model.state_dict())}
        for name, p in model.named_parameters():
            p.register_post_accumulate_grad_hook(lambda p, name=name: self._store(name, p))

    def _store(self, name: str, p: torch.Tensor) -> None:
        assert p.grad is not None
        self.latest[name] = p.grad.detach().clone()

    def on_step_end(self, state) -> None:
        self.steps[state.global_step] = dict(self.latest)
        self.latest = {}
        # the weights the next step's gradients are computed at
        self.weights_before[state.global_step] = copy.deepcopy(self.model.state_dict())


def run(build, task: TaskSpec, data, **overrides) -> tuple[dict, GradRecorder]:
    model = build()
    recorder = GradRecorder(model)
    results = Trainer(model, None, config(**overrides), task, callbacks=[recorder]).train(data)
    return results, recorder


def assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    # the tolerance is far below the gradients' size: the comparison is not vacuous
    assert max(float(g.abs().max()) for g in a.values()) > 1e-3


def compare_first_step(build, task: TaskSpec, data) -> None:
    full, rec_full = run(build, task, data, batch_size=8, gradient_accumulation_steps=1, max_steps=1)
    accum, rec_accum = run(build, task, data, batch_size=2, gradient_accumulation_steps=4, max_steps=1)
    assert full["global_step"] == accum["global_step"] == 1
    assert_same_grads(rec_full.steps[1], rec_accum.steps[1])
    # the reported loss of the step is token-weighted the same way
    assert accum["loss_history"][0] == pytest.approx(full["loss_history"][0], rel=1e-6)


# ------------------------------------------------------------------------------------------ data and models


def lm_sequences(n: int, seed: int = 0) -> list[torch.Tensor]:
    """1-D token tensors of lengths 5..16 (ids 1..31; 0 is the pad id)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, 17, (n,), generator=g).tolist()
    return [torch.randint(1, 32, (length,), generator=g) for length in lengths]


def build_gpt() -> nn.Module:
    return tiny_gpt(vocab=32, seq=16, dropout=0.0, seed=0)[0]


LM_TASK = TaskSpec.language_modeling(name="lm", vocab_size=32, max_seq_len=16, pad_token_id=0)


def build_bert() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, num_labels=3, max_position_embeddings=32,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return transformers.BertForSequenceClassification(cfg)


class TinySeq2Seq(nn.Module):
    """Masked-mean encoder, causal prefix-mean decoder: padding changes nothing for real positions."""

    def __init__(self, vocab: int = 32, seq: int = 16, d: int = 32) -> None:
        super().__init__()
        self.src = nn.Embedding(vocab, d)
        self.tgt = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        self.mix = nn.Linear(2 * d, d)
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids, decoder_input_ids, attention_mask=None):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        context = (self.src(input_ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        t = decoder_input_ids.shape[1]
        y = self.tgt(decoder_input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        y = y.cumsum(1) / torch.arange(1, t + 1, device=y.device)[None, :, None]
        h = torch.tanh(self.mix(torch.cat([y, context[:, None].expand_as(y)], -1)))
        return self.head(h + y)


def build_seq2seq() -> nn.Module:
    torch.manual_seed(0)
    return TinySeq2Seq()


# ------------------------------------------------------------------------------------------ b*k == k*b


def test_lm_accumulation_matches_the_full_batch_on_variable_length_data():
    compare_first_step(build_gpt, LM_TASK, lm_sequences(24))


def test_classification_accumulation_matches_the_full_batch():
    g = torch.Generator().manual_seed(1)
    data = []
    for i in range(24):
        ids = torch.randint(4, 64, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g)
        # some examples are ignored, so micro-batches hold different numbers of targets
        label = -100 if i % 3 == 0 else int(torch.randint(0, 3, (1,), generator=g))
        data.append({"input_ids": ids, "labels": torch.tensor(label)})
    task = TaskSpec.classification(name="cls", num_classes=3, vocab_size=64, max_seq_len=32, pad_token_id=0)
    compare_first_step(build_bert, task, data)


def test_seq2seq_accumulation_matches_the_full_batch():
    g = torch.Generator().manual_seed(2)
    data = []
    for _ in range(24):
        src = torch.randint(1, 32, (int(torch.randint(2, 10, (1,), generator=g)),), generator=g)
        tgt = torch.randint(1, 32, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
        data.append({"input_ids": src, "labels": tgt})
    task = TaskSpec.seq2seq(name="s2s", vocab_size=32, max_seq_len=16, pad_token_id=0)
    compare_first_step(build_seq2seq, task, data)


# ------------------------------------------------------------------------------------------ the partial last window


def hand_lm_grads(weights: dict[str, torch.Tensor], samples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gradient of sum(per-token CE over the samples' shifted tokens) / count(tokens), each sample unpadded."""
    model = build_gpt()
    model.load_state_dict(weights)
    total = sum(
        F.cross_entropy(model(s[None])[0, :-1], s[1:], reduction="sum") for s in samples
    )
    count = sum(s.numel() - 1 for s in samples)
    (total / count).backward()
    return {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize(("accumulation", "steps"), [(4, 2), (2, 3)])
def test_partial_last_window_is_one_micro_batch_normalised_by_its_own_tokens(accumulation, steps):
    # 10 samples in batches of 2 are 5 micro-batches: windows of 4+1 (accumulation 4) or 2+2+1 (accumulation 2).
    data = lm_sequences(10, seed=3)
    results, rec = run(build_gpt, LM_TASK, data, batch_size=2, gradient_accumulation_steps=accumulation)
    assert results["global_step"] == steps
    assert len(results["loss_history"]) == 1
    last = [data[i] for i in epoch_permutation(10, SEED, 0)[8:]]  # the 5th micro-batch: samples 9 and 10
    expected = hand_lm_grads(rec.weights_before[steps - 1], last)
    assert_same_grads(expected, rec.steps[steps])


def test_scheduler_steps_once_per_optimizer_step():
    data = lm_sequences(10, seed=4)
    lrs: dict[int, float] = {}

    class LrRecorder:
        def on_step_end(self, state):
            lrs[state.global_step] = state.last_metrics["lr"]

    cfg = config(epochs=2, batch_size=2, gradient_accumulation_steps=2, warmup_steps=2, lr_schedule="cosine",
                 min_lr_ratio=0.1)
    results = Trainer(build_gpt(), None, cfg, LM_TASK, callbacks=[LrRecorder()]).train(data)
    total = 6  # 2 epochs x ceil(5 micro-batches / 2)
    assert results["global_step"] == total

    def expected(step: int) -> float:
        return 1e-2 * lr_multiplier(step, total, 2, "cosine", 0.1)

    assert sorted(lrs) == list(range(1, total + 1))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected(step), rel=1e-9), step
    rows = results["metrics_summary"]
    assert list(rows["lr"]) == pytest.approx([expected(3), expected(6)], rel=1e-9)
    assert rows["lr"].iloc[-1] == pytest.approx(1e-3)  # decayed to min_lr_ratio at the end
