"""User metrics (``Trainer(metrics=...)``), ``Trainer.evaluate`` and ``Trainer.predict`` on real tiny models."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from tests.distributed.launch_helpers import env, torchrun
from tests.distributed.metrics_script import CLASSES, HandF1, hand_f1, make_data, make_model, make_trainer
from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.errors import ConfigError

pytest.importorskip("torchmetrics")


def _best(history: list[dict], key: str) -> int:
    """The epoch of the first maximum of ``key`` (ties keep the earlier epoch, as "better by > min_delta")."""
    best_epoch, best = None, -math.inf
    for row in history:
        if row[key] > best:
            best, best_epoch = row[key], row["epoch"]
    return int(best_epoch)


def _val_f1_by_hand(state: dict, val: tuple[torch.Tensor, torch.Tensor]) -> float:
    model = make_model()
    model.load_state_dict(state)
    with torch.no_grad():
        ids = model(val[0]).argmax(-1)
    return hand_f1(ids, val[1])


def test_torchmetrics_and_plain_metric_logged_monitored_and_equal_to_hand_computation(tmp_path):
    trainer = make_trainer(tmp_path)
    val = make_data(37, seed=1)
    results = trainer.train(make_data(96, seed=0), val)

    history = results["metrics_summary"].to_dict("records")
    assert {"val/f1", "val/hand_f1", "val/loss", "val/accuracy"} <= set(history[0])
    expected = _val_f1_by_hand(results["final_model_state"], val)
    assert history[-1]["val/f1"] == pytest.approx(expected, abs=1e-6)
    assert history[-1]["val/hand_f1"] == pytest.approx(expected, abs=1e-12)
    assert len({round(r["val/f1"], 9) for r in history}) > 1  # the metric moves, so best_epoch is a real choice
    assert results["monitor"] == "val/f1"
    assert results["best_epoch"] == _best(history, "val/f1")
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val/f1"]) for r in rows] == pytest.approx([r["val/f1"] for r in history])
    assert [float(r["val/hand_f1"]) for r in rows] == pytest.approx([r["val/hand_f1"] for r in history])


def test_user_metric_names_checked_and_monitor_typo_refused(tmp_path):
    task = TaskSpec.vision_classification(name="toy", num_classes=CLASSES, image_size=4, num_channels=1)
    with pytest.raises(ConfigError, match="already logs as 'val/loss'"):
        Trainer(make_model(), None, TrainingConfig(), task, metrics={"loss": HandF1()})
    with pytest.raises(ConfigError, match="has no update, compute, reset"):
        Trainer(make_model(), None, TrainingConfig(), task, metrics={"f1": object()})
    with pytest.raises(ConfigError, match="expected a dict"):
        Trainer(make_model(), None, TrainingConfig(), task, metrics=[HandF1()])
    cfg = TrainingConfig(epochs=1, monitor="val/hand_f2", progress_bar=False, track_runs=False, plots=False,
                         export_bundle=False, output_dir=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="did you mean 'val/hand_f1'"):
        Trainer(make_model(), None, cfg, task, metrics={"hand_f1": HandF1()}).train(make_data(16, 0), make_data(8, 1))


def test_lm_metric_gets_valid_positions_flattened(tmp_path, lm_blocks):
    from trainforge.models import build_model

    seen: list[tuple[torch.Size, torch.Size]] = []

    class Count:
        def reset(self) -> None:
            self.n = 0

        def update(self, preds, target) -> None:
            seen.append((preds.shape, target.shape))
            self.n += target.numel()

        def compute(self) -> float:
            return float(self.n)

    torch.manual_seed(0)
    model, model_config = build_model("tiny", vocab_size=32, max_seq_len=16, n_layer=1, d_model=16, n_head=2)
    task = TaskSpec.language_modeling(name="lm", vocab_size=32, max_seq_len=16)
    cfg = TrainingConfig(epochs=1, batch_size=8, progress_bar=False, track_runs=False, plots=False,
                         export_bundle=False, output_dir=str(tmp_path / "r"))
    trainer = Trainer(model, model_config, cfg, task, metrics={"targets": Count()})
    results = trainer.train(lm_blocks[:32], lm_blocks[32:])
    assert results["metrics_summary"]["val/targets"].iloc[-1] == 16 * 15  # 16 blocks, 15 predicted positions each
    assert all(p[0] == t[0] and p[1] == 32 and len(t) == 1 for p, t in seen)


def test_evaluate_equals_epoch_end_validation(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    val = make_data(37, seed=1)
    results = trainer.train(make_data(96, seed=0), val)
    last = results["metrics_summary"].to_dict("records")[-1]
    evaluated = trainer.evaluate(val)
    assert set(evaluated) == {k for k in last if k.startswith("val/")}
    for key, value in evaluated.items():
        assert value == pytest.approx(last[key], rel=1e-9, abs=1e-12), key


def test_predict_in_data_order_with_shuffle_on(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, shuffle=True)
    trainer.training_config.batch_size = 5  # several batches, one short
    trainer.training_config.monitor, trainer.training_config.monitor_mode = None, "min"  # no validation data
    x, y = make_data(23, seed=2)
    trainer.train(make_data(96, seed=0))
    logits = trainer.predict((x, y))
    with torch.no_grad():
        expected = trainer.model.cpu()(x)
    assert logits.shape == (23, CLASSES)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
    ids = trainer.predict(x, output="ids")  # unlabelled data
    assert torch.equal(ids, expected.argmax(-1))
    samples = [{"pixel_values": a, "labels": b} for a, b in zip(x, y)]  # a list of samples
    torch.testing.assert_close(trainer.predict(samples), expected, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="output"):
        trainer.predict(x, output="probs")


def test_predict_lm_token_ids(tmp_path, lm_blocks):
    from trainforge.models import build_model

    torch.manual_seed(0)
    model, model_config = build_model("tiny", vocab_size=32, max_seq_len=16, n_layer=1, d_model=16, n_head=2)
    task = TaskSpec.language_modeling(name="lm", vocab_size=32, max_seq_len=16)
    cfg = TrainingConfig(epochs=1, batch_size=8, shuffle=True, progress_bar=False, track_runs=False, plots=False,
                         export_bundle=False, output_dir=str(tmp_path / "r"))
    trainer = Trainer(model, model_config, cfg, task)
    trainer.train(lm_blocks[:32])
    ids = trainer.predict(lm_blocks[32:], output="ids")
    model.eval()
    with torch.no_grad():
        expected = model(lm_blocks[32:]).argmax(-1)
    assert torch.equal(ids, expected)


def test_metrics_under_ddp_with_two_gloo_ranks(tmp_path):
    import subprocess

    from tests.distributed import metrics_script

    out = tmp_path / "ddp"
    cmd = [*torchrun(), "--standalone", "--nproc_per_node=2", metrics_script.__file__, "--out", str(out)]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert data["world_size"] == 2
    history = data["history"]
    state = torch.load(out / "final.pt", weights_only=True)
    expected = _val_f1_by_hand(state, make_data(37, seed=1))  # over all 37 samples, both ranks' shards
    assert history[-1]["val/f1"] == pytest.approx(expected, abs=1e-6)
    assert history[-1]["val/hand_f1"] == pytest.approx(expected, abs=1e-12)
    assert data["best_epoch"] == _best(history, "val/f1")
    assert data["evaluate"]["val/f1"] == pytest.approx(history[-1]["val/f1"], abs=1e-12)
    assert data["evaluate"]["val/loss"] == pytest.approx(history[-1]["val/loss"], rel=1e-9)


def test_import_trainforge_does_not_import_torchmetrics():
    import subprocess
    import sys

    code = "import sys, trainforge; from trainforge import Trainer; print('torchmetrics' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_plain_metric_returning_a_vector_is_a_clear_error(tmp_path):
    class PerClass(HandF1):
        def compute(self):
            return torch.zeros(CLASSES)

    trainer = make_trainer(tmp_path, epochs=1)
    trainer.metrics = {"per_class": PerClass()}
    trainer.training_config.monitor = None
    trainer.training_config.monitor_mode = "min"
    with pytest.raises(ConfigError, match=r"one number.*\(3,\)"):
        trainer.evaluate(make_data(8, seed=1))

