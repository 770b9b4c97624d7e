"""The built-in metrics and the run's own go through one collection (MetricSet), with one reduction for the
built-ins, and give exactly the values of the task's summed form (MetricAccumulator) and of a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from tests.distributed.metrics_script import CLASSES, HandF1, hand_f1, make_data, make_model
from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.tasks.metrics import Accuracy, Loss, Perplexity, SumMetric, builtin_metrics
from trainforge.trainer.user_metrics import MetricSet

TASKS = {
    "lm": lambda: TaskSpec.language_modeling(name="lm", vocab_size=6, max_seq_len=8),
    "lm_smoothed": lambda: TaskSpec.language_modeling(name="lm", vocab_size=6, max_seq_len=8, label_smoothing=0.1),
    "classification": lambda: TaskSpec.classification(name="c", num_classes=6),
    "seq2seq": lambda: TaskSpec.seq2seq(name="s", vocab_size=6, max_seq_len=8),
    "vision": lambda: TaskSpec.vision_classification(name="v", num_classes=6, image_size=2),
}


def _batches(task: TaskSpec, n: int = 3) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        if task.is_token_task:
            labels = torch.randint(0, 6, (2, 3 + i), generator=g)
            labels[0, -1] = -100
            logits = torch.randn(2, 3 + i, 6, generator=g) * (1 + i)
        else:
            labels = torch.randint(0, 6, (4 + i,), generator=g)
            labels[0] = -100
            logits = torch.randn(4 + i, 6, generator=g) * (1 + i)
        out.append((logits, labels))
    return out


@pytest.mark.parametrize("name", list(TASKS))
def test_builtin_objects_equal_the_summed_form_exactly(name: str) -> None:
    task = TASKS[name]()
    accumulator = task.new_metrics()
    metrics = MetricSet(task)
    metrics.reset()
    assert metrics.names == task.metric_names
    for logits, labels in _batches(task):
        accumulator.update(logits, labels)
        metrics.update(logits, labels)
    assert metrics.compute() == accumulator.compute()  # bitwise: the same sums in the same order


def test_loss_only_batches_match_the_summed_form() -> None:
    task = TASKS["lm_smoothed"]()
    accumulator, metrics = task.new_metrics(), MetricSet(task)
    metrics.reset()
    for loss_sum, count in [(torch.tensor(6.5), torch.tensor(4)), (torch.tensor(2.25), torch.tensor(3))]:
        accumulator.update_loss(loss_sum, count)
        metrics.update_loss(loss_sum, count)
    values = metrics.compute()
    assert values["loss"] == accumulator.compute()["loss"] == pytest.approx(8.75 / 7)
    assert values["perplexity"] == accumulator.compute()["perplexity"]
    assert math.isnan(values["accuracy"]) and math.isnan(accumulator.compute()["accuracy"])


def test_the_builtins_are_metric_objects_of_the_user_protocol() -> None:
    task = TASKS["lm"]()
    made = builtin_metrics(task)
    assert list(made) == ["loss", "perplexity", "accuracy"]
    for metric in made.values():
        assert isinstance(metric, SumMetric) and all(callable(getattr(metric, m)) for m in ("update", "compute",
                                                                                          "reset"))
    # Unsmoothed: perplexity is exp of the loss's own sums (the cross-entropy is computed once per batch).
    assert isinstance(made["perplexity"], Perplexity) and made["perplexity"].of is made["loss"]
    assert made["perplexity"].size == 0
    smoothed = builtin_metrics(TASKS["lm_smoothed"]())
    assert smoothed["perplexity"].size == 2  # its own plain-NLL sums
    # Used on their own, as a user would use any metric object.
    loss, acc = Loss(), Accuracy()
    logits, target = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 0, -100])
    for metric in (loss, acc):
        metric.update(logits, target)
    assert loss.compute() == pytest.approx(F.cross_entropy(logits[:2], target[:2]).item())
    assert acc.compute() == 0.5
    acc.reset()
    assert math.isnan(acc.compute())


class _Recorder:
    """A plain metric that records what it was given."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen: list[tuple[Tensor, Tensor]] = []
        self.resets = getattr(self, "resets", 0) + 1

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.seen.append((preds, target))

    def compute(self) -> float:
        return float(sum(int(t.numel()) for _, t in self.seen))


def test_one_collection_resets_updates_and_computes_builtins_and_user_metrics_with_one_reduction() -> None:
    task = TASKS["lm"]()
    recorder = _Recorder()
    metrics = MetricSet(task, {"seen": recorder})
    assert metrics.names == ["loss", "perplexity", "accuracy", "seen"]
    metrics.reset()
    batches = _batches(task)
    for logits, labels in batches:
        metrics.update(logits, labels)
    calls: list[Tensor] = []

    def two_identical_ranks(sums: Tensor) -> Tensor:  # what an all-reduce over two ranks with the same data gives
        calls.append(sums)
        return sums * 2

    values = metrics.compute(two_identical_ranks)
    assert len(calls) == 1 and calls[0].numel() == 4  # loss [sum, count] + accuracy [correct, count], one call
    alone = MetricSet(task)
    alone.reset()
    for logits, labels in batches:
        alone.update(logits, labels)
    single = alone.compute()
    assert {k: values[k] for k in single} == pytest.approx(single, rel=1e-12)  # ratios of doubled sums
    # The user metric got the flattened, shifted targets that count (the torchmetrics convention).
    expected_targets = sum(int((labels[:, 1:] != -100).sum()) for _, labels in batches)
    assert values["seen"] == expected_targets
    metrics.reset()
    assert recorder.resets == 3 and math.isnan(metrics.compute()["loss"])


def test_a_validation_pass_reports_builtins_and_user_metrics_equal_to_a_hand_computation(tmp_path) -> None:
    cfg = TrainingConfig(epochs=2, batch_size=8, learning_rate=0.05, warmup_steps=0, output_dir=str(tmp_path / "r"),
                         progress_bar=False, track_runs=False, plots=False, export_bundle=False, seed=0)
    task = TaskSpec.vision_classification(name="toy", num_classes=CLASSES, image_size=4, num_channels=1)
    trainer = Trainer(make_model(), None, cfg, task, metrics={"hand_f1": HandF1()})
    val = make_data(37, seed=1)
    results = trainer.train(make_data(64, seed=0), val)
    model = make_model()
    model.load_state_dict(results["final_model_state"])
    with torch.no_grad():
        logits = model(val[0])
    expected = {
        "loss": F.cross_entropy(logits, val[1], reduction="sum").double().item() / 37,
        "accuracy": (logits.argmax(-1) == val[1]).sum().item() / 37,
        "hand_f1": hand_f1(logits.argmax(-1), val[1]),
    }
    last = results["metrics_summary"].to_dict("records")[-1]
    assert {k: last[f"val/{k}"] for k in expected} == pytest.approx(expected, rel=1e-5)
    assert trainer.evaluate(val) == pytest.approx({f"val/{k}": v for k, v in expected.items()}, rel=1e-5)
