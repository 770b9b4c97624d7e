"""Loss values of every task type, checked against hand computation and F.cross_entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainforge.tasks import TaskSpec, losses

# One sequence of 3 tokens over a 4-token vocabulary.
LOGITS_1x3x4 = [
    [1.0, 2.0, 0.5, -1.0],
    [0.0, 0.0, 3.0, 1.0],
    [2.0, -2.0, 0.0, 1.0],
]


def log_softmax(row: list[float]) -> list[float]:
    """Log-softmax written out in plain Python, independent of torch."""
    top = max(row)
    log_z = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - log_z for v in row]


def lm(**extra: object) -> TaskSpec:
    return TaskSpec.language_modeling(name="lm", vocab_size=4, max_seq_len=8, **extra)  # type: ignore[arg-type]


def test_lm_loss_matches_hand_computation_with_shift() -> None:
    logits = torch.tensor([LOGITS_1x3x4])
    labels = torch.tensor([[3, 1, 2]])
    # Position 0 predicts token 1 (id 1), position 1 predicts token 2 (id 2); position 2 predicts nothing.
    expected = -log_softmax(LOGITS_1x3x4[0])[1] - log_softmax(LOGITS_1x3x4[1])[2]
    loss, count = lm().loss_sum(logits, labels)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert count.dtype == torch.int64 and count.dim() == 0
    assert count.item() == 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_lm_ignores_minus_100_labels() -> None:
    logits = torch.tensor([LOGITS_1x3x4])
    labels = torch.tensor([[3, -100, 2]])
    loss, count = lm().loss_sum(logits, labels)
    assert count.item() == 1
    assert loss.item() == pytest.approx(-log_softmax(LOGITS_1x3x4[1])[2], rel=1e-6)


def test_lm_targets_from_input_ids_ignore_pad_tokens() -> None:
    task = lm(pad_token_id=0)
    batch = {"input_ids": torch.tensor([[3, 1, 0]])}
    labels = task.targets(batch)
    assert labels.tolist() == [[3, 1, -100]]
    assert batch["input_ids"].tolist() == [[3, 1, 0]], "the model's input must not be modified"
    loss, count = task.loss_sum(torch.tensor([LOGITS_1x3x4]), labels)
    assert count.item() == 1
    assert loss.item() == pytest.approx(-log_softmax(LOGITS_1x3x4[0])[1], rel=1e-6)


def test_lm_targets_respect_attention_mask() -> None:
    batch = {"input_ids": torch.tensor([[3, 1, 2]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    assert lm().targets(batch).tolist() == [[3, 1, -100]]


def test_lm_pad_equal_to_eos_only_masks_by_attention_mask() -> None:
    # GPT-2 style: pad id == eos id. A real EOS (mask 1) must stay a target; padding (mask 0) must not.
    task = lm(pad_token_id=3, eos_token_id=3)
    batch = {"input_ids": torch.tensor([[1, 3, 3]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    assert task.targets(batch).tolist() == [[1, 3, -100]]
    # Without a mask, the pad id is all there is to go on.
    assert task.targets({"input_ids": torch.tensor([[1, 3, 3]])}).tolist() == [[1, -100, -100]]


def test_lm_targets_of_plain_ids_are_the_ids_in_int64() -> None:
    ids = torch.tensor([[3, 1, 2]])
    assert lm().targets({"input_ids": ids}) is ids, "nothing to mask: no copy on the hot path"
    short = torch.tensor([[3, 1, 2]], dtype=torch.int32)
    labels = lm().targets({"input_ids": short})
    assert labels.dtype == torch.long and labels.tolist() == [[3, 1, 2]]


def test_lm_explicit_labels_are_used_as_given() -> None:
    labels = torch.tensor([[-100, 1, 2]])
    assert lm(pad_token_id=1).targets({"input_ids": torch.tensor([[3, 1, 2]]), "labels": labels}) is labels


def test_prepare_targets_and_align_logits_agree_with_loss_sum() -> None:
    torch.manual_seed(0)
    task = lm()
    logits = torch.randn(2, 5, 4)
    labels = torch.randint(0, 4, (2, 5))
    labels[0, 3] = -100
    aligned, targets = task.align_logits(logits), task.prepare_targets(labels)
    assert aligned.shape == (2, 4, 4) and targets.shape == (2, 4)
    mean = F.cross_entropy(aligned.reshape(-1, 4), targets.reshape(-1), ignore_index=-100)
    loss, count = task.loss_sum(logits, labels)
    assert count.item() == 7
    assert (loss / count).item() == pytest.approx(mean.item(), rel=1e-6)


def test_classification_loss_matches_hand_computation() -> None:
    task = TaskSpec.classification(name="cls", num_classes=4)
    logits = torch.tensor(LOGITS_1x3x4)  # [B=3, C=4]
    labels = torch.tensor([0, 2, -100])
    expected = -log_softmax(LOGITS_1x3x4[0])[0] - log_softmax(LOGITS_1x3x4[1])[2]
    loss, count = task.loss_sum(logits, labels)
    assert count.item() == 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert task.prepare_targets(labels) is labels
    assert task.align_logits(logits) is logits


def test_vision_classification_loss_matches_hand_computation() -> None:
    task = TaskSpec.vision_classification(name="img", num_classes=4)
    logits = torch.tensor(LOGITS_1x3x4)
    labels = torch.tensor([1, 1, 3])
    expected = sum(-log_softmax(row)[y] for row, y in zip(LOGITS_1x3x4, [1, 1, 3]))
    loss, count = task.loss_sum(logits, labels)
    assert count.item() == 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_seq2seq_loss_has_no_shift() -> None:
    task = TaskSpec.seq2seq(name="s2s", vocab_size=4, max_seq_len=8)
    logits = torch.tensor([LOGITS_1x3x4])
    labels = torch.tensor([[3, 1, -100]])
    expected = -log_softmax(LOGITS_1x3x4[0])[3] - log_softmax(LOGITS_1x3x4[1])[1]
    loss, count = task.loss_sum(logits, labels)
    assert count.item() == 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert task.count_targets(labels).item() == 2


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_sum_over_count_equals_f_cross_entropy_mean(smoothing: float) -> None:
    torch.manual_seed(1)
    task = lm(label_smoothing=smoothing)
    logits = torch.randn(3, 6, 4)
    labels = torch.randint(0, 4, (3, 6))
    labels[1, 2:] = -100
    loss, count = task.loss_sum(logits, labels)
    mean = F.cross_entropy(
        logits[:, :-1].reshape(-1, 4), labels[:, 1:].reshape(-1), ignore_index=-100, label_smoothing=smoothing
    )
    assert (loss / count).item() == pytest.approx(mean.item(), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_give_float32_loss(dtype: torch.dtype) -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 5, 4).to(dtype)
    labels = torch.randint(0, 4, (2, 5))
    loss, _ = lm().loss_sum(logits, labels)
    reference, _ = lm().loss_sum(logits.float(), labels)
    assert loss.dtype == torch.float32
    # Same input values, computed in float32: equal up to float32 rounding.
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_loss_stays_float32_under_cpu_autocast() -> None:
    logits = torch.randn(2, 5, 4)
    labels = torch.randint(0, 4, (2, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = lm().loss_sum(logits.bfloat16(), labels)
    assert loss.dtype == torch.float32


def test_int32_labels_are_accepted() -> None:
    logits = torch.tensor([LOGITS_1x3x4])
    loss32, _ = lm().loss_sum(logits, torch.tensor([[3, 1, 2]], dtype=torch.int32))
    loss64, _ = lm().loss_sum(logits, torch.tensor([[3, 1, 2]]))
    assert loss32.item() == loss64.item()


@pytest.mark.parametrize(
    "task",
    [
        TaskSpec.language_modeling(name="lm", vocab_size=7, max_seq_len=16, pad_token_id=0),
        TaskSpec.seq2seq(name="s2s", vocab_size=7, max_seq_len=16),
    ],
    ids=["lm", "seq2seq"],
)
def test_micro_batch_loss_sums_over_total_count_equal_full_batch_mean(task: TaskSpec) -> None:
    """Token-normalised accumulation: sum of micro-batch loss_sum / total count_targets == full-batch mean."""
    torch.manual_seed(3)
    input_ids = torch.randint(1, 7, (6, 9))
    # Uneven padding so micro-batches hold very different numbers of real tokens.
    for row, length in enumerate([9, 2, 5, 9, 3, 7]):
        input_ids[row, length:] = 0
    batch = {"input_ids": input_ids}
    if task.task_type == "seq2seq":
        batch["labels"] = input_ids.masked_fill(input_ids == 0, -100)
    labels = task.targets(batch)
    logits = torch.randn(6, 9, 7, dtype=torch.float64)

    full_sum, full_count = task.loss_sum(logits, labels)
    full_mean = full_sum / full_count
    reference = F.cross_entropy(
        task.align_logits(logits).reshape(-1, 7), task.prepare_targets(labels).reshape(-1), ignore_index=-100
    )
    assert full_mean.item() == pytest.approx(reference.item(), rel=1e-9)

    chunks = [slice(0, 1), slice(1, 3), slice(3, 6)]
    total = sum(task.count_targets(labels[c]) for c in chunks)
    assert isinstance(total, torch.Tensor) and total.item() == full_count.item()
    accumulated = sum(task.loss_sum(logits[c], labels[c])[0] / total for c in chunks)
    assert torch.allclose(torch.as_tensor(accumulated), full_mean, rtol=1e-6, atol=1e-6)
    # The mean of per-micro-batch means is a different (wrong) number here.
    naive = sum(task.loss_sum(logits[c], labels[c])[0] / task.count_targets(labels[c]) for c in chunks) / 3
    assert not torch.allclose(torch.as_tensor(naive), full_mean, rtol=1e-3)


def test_count_targets_equals_loss_sum_count() -> None:
    task = lm(pad_token_id=0)
    labels = task.targets({"input_ids": torch.tensor([[1, 2, 0, 0], [3, 3, 3, 0]])})
    _, count = task.loss_sum(torch.randn(2, 4, 4), labels)
    assert task.count_targets(labels).item() == count.item() == 3


def test_hot_path_never_reads_tensor_values() -> None:
    """Meta tensors have no values: any .item()/bool()/tolist() in the hot path would raise here."""
    meta = torch.device("meta")
    task = TaskSpec.language_modeling(name="lm", vocab_size=10, max_seq_len=8, pad_token_id=0, eos_token_id=0)
    batch = {
        "input_ids": torch.empty(2, 5, dtype=torch.long, device=meta),
        "attention_mask": torch.empty(2, 5, dtype=torch.long, device=meta),
    }
    labels = task.targets(batch)
    logits = torch.empty(2, 5, 10, dtype=torch.bfloat16, device=meta)
    loss, count = task.loss_sum(logits, labels)
    assert loss.device == meta and loss.dtype == torch.float32 and count.dtype == torch.int64
    task.count_targets(labels)
    smoothed = TaskSpec.classification(name="c", num_classes=3, label_smoothing=0.1)
    for spec, lg, lb in [
        (task, logits, labels),
        (smoothed, torch.empty(4, 3, device=meta), torch.empty(4, dtype=torch.long, device=meta)),
    ]:
        metrics = spec.new_metrics()
        metrics.update(lg, lb)
        metrics.update(lg, lb)
        assert metrics.tensors().shape == (4,)


def test_pure_helpers() -> None:
    labels = torch.tensor([[5, 6, 7]])
    assert losses.shift_labels(labels).tolist() == [[6, 7]]
    assert losses.causal_lm_targets(labels, -100).tolist() == [[6, 7, -100]]
    assert losses.drop_last_position(torch.zeros(1, 3, 2)).shape == (1, 2, 2)
    assert losses.count_valid(torch.tensor([1, -100, 2]), -100).item() == 2
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert losses.correct_predictions(logits, torch.tensor([1, 1, -100]), -100).item() == 1
    assert losses.compute_dtype(torch.bfloat16) == torch.float32
    assert losses.compute_dtype(torch.float64) == torch.float64
    ids = torch.tensor([[1, 0]], dtype=torch.int32)
    out = losses.labels_from_input_ids(ids, pad_token_id=0)
    assert out.dtype == torch.long and out.tolist() == [[1, -100]]
    plain = torch.tensor([[1, 2]])
    assert losses.labels_from_input_ids(plain) is plain  # no padding: no copy in the hot loop
