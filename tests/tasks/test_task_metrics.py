"""MetricAccumulator: token-weighted loss and perplexity, shifted accuracy, distributed sums."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainforge.tasks import MetricAccumulator, TaskSpec, metrics_from_sums


def lm(**extra: object) -> TaskSpec:
    return TaskSpec.language_modeling(name="lm", vocab_size=5, max_seq_len=16, **extra)  # type: ignore[arg-type]


def two_uneven_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two LM batches with very different token counts (1 target vs 7 targets) and different losses."""
    torch.manual_seed(0)
    small_labels = torch.tensor([[1, 2, -100, -100]])  # 1 target after the shift
    small_logits = torch.randn(1, 4, 5) * 4
    big_labels = torch.randint(0, 5, (1, 8))  # 7 targets after the shift
    big_logits = torch.randn(1, 8, 5) * 0.1
    return [(small_logits, small_labels), (big_logits, big_labels)]


def test_loss_and_perplexity_are_token_weighted_across_batches() -> None:
    task = lm()
    metrics = task.new_metrics()
    sums, counts, per_batch_means = 0.0, 0, []
    for logits, labels in two_uneven_batches():
        metrics.update(logits, labels)
        # Reference from F.cross_entropy on the explicitly shifted tensors.
        flat_logits = logits[:, :-1].reshape(-1, 5)
        flat_targets = labels[:, 1:].reshape(-1)
        batch_sum = F.cross_entropy(flat_logits, flat_targets, ignore_index=-100, reduction="sum").item()
        batch_count = int((flat_targets != -100).sum())
        sums += batch_sum
        counts += batch_count
        per_batch_means.append(batch_sum / batch_count)
    assert counts == 8
    result = metrics.compute()
    assert set(result) == {"loss", "perplexity", "accuracy"}
    assert result["loss"] == pytest.approx(sums / counts, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(sums / counts), rel=1e-6)
    # The mean of per-batch means is clearly different here, and must not be what is reported.
    naive = sum(per_batch_means) / len(per_batch_means)
    assert abs(naive - result["loss"]) > 0.1
    assert result["perplexity"] != pytest.approx(math.exp(naive), rel=1e-2)


def test_accuracy_is_on_shifted_labels_and_ignores_ignore_index() -> None:
    task = lm()
    # Argmax at positions 0, 1, 2 is 1, 2, 4; the targets after the shift are 1, 3, -100.
    logits = torch.full((1, 4, 5), -5.0)
    logits[0, 0, 1] = logits[0, 1, 2] = logits[0, 2, 4] = logits[0, 3, 0] = 5.0
    labels = torch.tensor([[0, 1, 3, -100]])
    metrics = task.new_metrics()
    metrics.update(logits, labels)
    assert metrics.compute()["accuracy"] == pytest.approx(1 / 2)


def test_classification_metrics_match_hand_computation() -> None:
    task = TaskSpec.classification(name="cls", num_classes=3)
    metrics = task.new_metrics()
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 2, 2])
    metrics.update(logits, labels)
    expected_loss = F.cross_entropy(logits, labels).item()
    result = metrics.compute()
    assert list(result) == ["loss", "accuracy"]
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_vision_and_seq2seq_metrics() -> None:
    vision = TaskSpec.vision_classification(name="img", num_classes=2)
    vm = vision.new_metrics()
    vm.update(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    assert vm.compute()["accuracy"] == 0.5

    s2s = TaskSpec.seq2seq(name="s2s", vocab_size=3, max_seq_len=4)
    sm = s2s.new_metrics()
    logits = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]]])
    labels = torch.tensor([[0, 2, -100]])  # no shift: position 0 right, position 1 wrong, position 2 ignored
    sm.update(logits, labels)
    result = sm.compute()
    assert result["accuracy"] == 0.5
    expected = F.cross_entropy(logits[0], labels[0], ignore_index=-100).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(expected), rel=1e-6)


def test_label_smoothing_loss_is_smoothed_but_perplexity_is_plain_nll() -> None:
    torch.manual_seed(4)
    logits = torch.randn(2, 6, 5)
    labels = torch.randint(0, 5, (2, 6))
    metrics = lm(label_smoothing=0.2).new_metrics()
    metrics.update(logits, labels)
    result = metrics.compute()
    flat_logits, flat_targets = logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1)
    smoothed = F.cross_entropy(flat_logits, flat_targets, label_smoothing=0.2).item()
    plain = F.cross_entropy(flat_logits, flat_targets).item()
    assert result["loss"] == pytest.approx(smoothed, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(plain), rel=1e-6)


def test_precomputed_loss_sum_is_reused() -> None:
    task = lm()
    logits, labels = two_uneven_batches()[1]
    loss_sum, _ = task.loss_sum(logits, labels)
    with_given, recomputed = task.new_metrics(), task.new_metrics()
    with_given.update(logits, labels, loss_sum=loss_sum)
    recomputed.update(logits, labels)
    assert torch.equal(with_given.tensors(), recomputed.tensors())


def test_update_does_not_track_gradients() -> None:
    logits = torch.randn(1, 4, 5, requires_grad=True)
    metrics = lm().new_metrics()
    metrics.update(logits, torch.tensor([[1, 2, 3, 4]]))
    assert not metrics.tensors().requires_grad


def test_perplexity_overflow_is_inf_and_empty_is_nan() -> None:
    assert metrics_from_sums([1000.0, 1000.0, 1.0, 0.0], ["loss", "perplexity"]) == {
        "loss": 1000.0,
        "perplexity": math.inf,
    }
    empty = lm().new_metrics().compute()
    assert all(math.isnan(v) for v in empty.values())


def test_tensors_sum_across_ranks_gives_global_metrics() -> None:
    """Simulated all-reduce: adding each rank's tensors() then compute_from == one accumulator over all data."""
    task = lm()
    batches = two_uneven_batches()
    ranks = [task.new_metrics(), task.new_metrics(), task.new_metrics()]  # rank 2 sees no data
    everything = task.new_metrics()
    for rank, (logits, labels) in zip(ranks, batches):
        rank.update(logits, labels)
        everything.update(logits, labels)
    tensors = [r.tensors() for r in ranks]
    assert all(t.dtype == torch.float64 and t.shape == (4,) for t in tensors)
    assert torch.equal(tensors[2], torch.zeros(4, dtype=torch.float64))
    reduced = torch.stack(tensors).sum(0)
    global_metrics = ranks[0].compute_from(reduced)
    assert global_metrics == pytest.approx(everything.compute())

    merged = task.new_metrics()
    for r in ranks:
        merged.merge(r)
    assert merged.compute() == pytest.approx(everything.compute())


def test_reset_and_state_dict_round_trip() -> None:
    task = lm()
    metrics = task.new_metrics()
    for logits, labels in two_uneven_batches():
        metrics.update(logits, labels)
    state = metrics.state_dict()
    assert state["count"] == 8.0
    restored = MetricAccumulator(task)
    restored.load_state_dict(state)
    assert restored.compute() == pytest.approx(metrics.compute())
    # Updates after a restore keep accumulating on top of the restored sums.
    logits, labels = two_uneven_batches()[0]
    restored.update(logits, labels)
    assert restored.state_dict()["count"] == 9.0
    metrics.reset()
    assert metrics.state_dict()["count"] == 0.0
    assert metrics.names == ["loss", "perplexity", "accuracy"]
