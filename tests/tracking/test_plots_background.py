"""The end-of-run plots are drawn off the caller's path, and are there whenever someone looks."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.tracking.run import PlotFiles, wait_for_plots

ROOT = Path(__file__).resolve().parents[2]


def test_a_script_that_exits_right_after_train_still_writes_its_plots():
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        from tests.helpers import lm_task, quiet_config, tiny_gpt
        from trainforge import Trainer
        model, cfg = tiny_gpt()
        data = torch.randint(0, 32, (16, 16))
        Trainer(model, cfg, quiet_config(output_dir="runs/exit"), lm_task()).train(data[:12], data[12:])
        # no access to the results: the interpreter exits while the plot thread may still be drawing
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("loss.png", "metrics.png"):
        data = Path("runs/exit/plots", name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_plot_paths_are_known_at_once_and_behave_as_a_plain_list(lm_blocks):
    model, cfg = tiny_gpt()
    results = Trainer(model, cfg, quiet_config(output_dir="runs/bg", epochs=1), lm_task()).train(lm_blocks[:16])
    paths = results["plot_paths"]
    assert isinstance(paths, PlotFiles) and isinstance(paths, list)
    wait_for_plots()
    assert all(Path(p).is_file() for p in paths)
    assert list(paths) == ["runs/bg/plots/loss.png", "runs/bg/plots/metrics.png"]
    assert pickle.loads(pickle.dumps(paths)) == paths and type(copy.deepcopy(paths)) is list
