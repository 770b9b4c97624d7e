"""ConsoleLogger: the epoch line and the summary."""

from __future__ import annotations

import io

import pytest

from trainforge.logging import ConsoleLogger
from trainforge.logging.console import format_duration


def test_epoch_line_format() -> None:
    out = io.StringIO()
    lg = ConsoleLogger(total_epochs=10, stream=out)
    lg.log_step({"train/loss": 2.0}, step=1)  # prints nothing
    assert out.getvalue() == ""
    lg.log_epoch(
        {
            "epoch": 3,
            "train/loss": 2.31054,
            "val/loss": 2.40123,
            "val/perplexity": 11.0362,
            "lr": 3e-4,
            "epoch_time_s": 4.2,
            "tokens_per_s": 12345.6,
        },
        step=30,
    )
    assert out.getvalue() == (
        "epoch 3/10 | train/loss 2.3105 | val/loss 2.4012 | val/perplexity 11.04 | lr 3.00e-04 | 12.3k tok/s | 4.2s\n"
    )


def test_epoch_line_without_validation_or_extras() -> None:
    out = io.StringIO()
    ConsoleLogger(total_epochs=2, stream=out).log_epoch({"epoch": 1, "train/loss": 0.5, "val/accuracy": 0.875}, 4)
    assert out.getvalue() == "epoch 1/2 | train/loss 0.5000 | val/accuracy 0.8750\n"


def test_summary_uses_best_row_and_run_dir() -> None:
    out = io.StringIO()
    lg = ConsoleLogger(total_epochs=3, stream=out)
    for e, v in ((1, 2.5), (2, 2.1), (3, 2.2)):
        lg.log_epoch({"epoch": e, "train/loss": v - 0.1, "val/loss": v}, step=e)
    out.truncate(0)
    out.seek(0)
    lg.log_summary({"best_epoch": 2, "final_loss": 2.1, "training_time_s": 75.0, "run_dir": "runs/x"})
    lg.close()
    lg.close()
    assert out.getvalue() == (
        "training done: 3 epochs in 1m15s | best epoch 2 (val/loss 2.1000) | final loss 2.1000\n  run dir: runs/x\n"
    )


def test_default_stream_is_stdout_at_print_time(capsys: pytest.CaptureFixture[str]) -> None:
    lg = ConsoleLogger(total_epochs=1)
    lg.log_epoch({"epoch": 1, "train/loss": 1.0}, step=1)
    assert capsys.readouterr().out == "epoch 1/1 | train/loss 1.0000\n"


@pytest.mark.parametrize(("secs", "text"), [(0.04, "0.0s"), (59.94, "59.9s"), (60, "1m00s"), (3725, "1h02m")])
def test_format_duration(secs: float, text: str) -> None:
    assert format_duration(secs) == text
