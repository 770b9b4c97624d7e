"""Export failures are contained: a full disk (a file-size limit here) or a crashing writer costs the export,
never the run — ``train()`` returns, the weights are kept, and the results and the runs database say what failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from trainforge.export.isolate import IsolatedWriteError, can_isolate, run_isolated
from trainforge.models import GPT, GPTConfig
from trainforge.tracking.db import RunDB

REPO = Path(__file__).resolve().parents[2]
needs_fork = pytest.mark.skipif(not can_isolate(), reason="writers run in a forked child only on Linux")

# Runs in a child interpreter: a per-file size limit of 1 MiB (set before anything is written) lets the run files,
# metrics and the runs database through, but not the ~3 MiB model, so every export format meets "disk full".
# SIGXFSZ is ignored so that a write past the limit fails with EFBIG, as on a full disk, instead of killing us.
SCRIPT = textwrap.dedent("""
    import json, resource, signal, sys
    import torch
    from trainforge import TaskSpec, Trainer, TrainingConfig
    from trainforge.models import GPT, GPTConfig

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    torch.manual_seed(0)
    model_config = GPTConfig(vocab_size=32, max_seq_len=16, n_layer=1, n_head=2, d_model=256, dropout=0.0)
    task = TaskSpec.language_modeling(name="lm", vocab_size=32, max_seq_len=16)
    config = TrainingConfig(epochs=1, batch_size=8, learning_rate=1e-2, progress_bar=False, plots=False,
                            run_name="full-disk", export_bundle=True, export_formats=sys.argv[1].split(","))
    results = Trainer(GPT(model_config), model_config, config, task).train(torch.randint(0, 32, (32, 16)))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again: keep what train() returned
    torch.save(results["final_model_state"], "weights.pt")
    keys = ("export_status", "export_failed", "export_error", "export_dir", "run_dir", "final_loss")
    print("RESULTS " + json.dumps({k: results[k] for k in keys}))
""")


@needs_fork
def test_export_on_a_full_disk_returns_and_records_the_failure(tmp_path: Path) -> None:
    script = tmp_path / "train_full_disk.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(script), "torchscript,safetensors"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]  # before: SIGABRT (-6) from the TorchScript writer
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS "))
    results = json.loads(line[len("RESULTS "):])

    assert results["export_status"] == "failed" and results["export_failed"] == ["torchscript", "safetensors"]
    error = results["export_error"]
    assert "torchscript: script: the TorchScript writer crashed writing model.torchscript.pt (SIGABRT" in error
    assert "file-size limit (ulimit -f): 1.0 MiB" in error
    assert "safetensors: SafetensorError" in error and "File too large" in error

    # The manifest (small) was written and says the same; no partial model file is left behind.
    manifest = json.loads((tmp_path / results["export_dir"] / "manifest.json").read_text())
    assert manifest["failed"] == ["torchscript", "safetensors"] and manifest["ok"] == []
    assert not (tmp_path / results["export_dir"] / "model.torchscript.pt").exists()

    # The trained weights survived: they load into the model and are not the initial ones.
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    torch.manual_seed(0)
    fresh = GPT(GPTConfig(vocab_size=32, max_seq_len=16, n_layer=1, n_head=2, d_model=256, dropout=0.0))
    initial = {k: v.clone() for k, v in fresh.state_dict().items()}
    fresh.load_state_dict(state)
    assert any(not torch.equal(state[k], initial[k]) for k in initial)

    # The runs database: the run finished (not "running"), and its results say what failed.
    run = RunDB(tmp_path / "runs" / "trainforge_runs.db").run("full-disk")
    assert run["status"] == "finished" and run["error"] is None
    assert run["results"]["export_status"] == "failed"
    assert run["results"]["export_error"] == error
    assert run["final_loss"] == pytest.approx(results["final_loss"])


def _abort() -> None:
    os.abort()


def _hang() -> None:
    time.sleep(60)


def _fail() -> None:
    raise OSError(28, "No space left on device")


def _write(path: str) -> None:
    torch.save({"x": torch.ones(3)}, path)


@needs_fork
def test_a_writer_that_aborts_hangs_or_raises_fails_in_its_child_not_here(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    with pytest.raises(IsolatedWriteError, match=r"the test writer crashed writing model.pt \(SIGABRT; a full or "
                                                 r"unwritable disk is the usual cause; free space at .* MiB\)"):
        run_isolated(_abort, what="the test writer", target=target)
    with pytest.raises(IsolatedWriteError, match=r"the test writer did not finish within 1s and was stopped"):
        run_isolated(_hang, what="the test writer", target=target, timeout=1)
    with pytest.raises(IsolatedWriteError, match=r"^OSError: \[Errno 28\] No space left on device$"):
        run_isolated(_fail, what="the test writer", target=target)
    run_isolated(_write, str(target), what="the test writer", target=target)  # and a good write lands here
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.ones(3))
