"""``training.ipynb`` runs top to bottom in a real kernel with no error output, in under 3 minutes on a CPU."""

from __future__ import annotations

import time

from tests.notebook.kernel import REPO, errors, nbformat, run_notebook, text_of

NOTEBOOK = REPO / "training.ipynb"


def test_training_notebook_runs_top_to_bottom(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRAINFORGE_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.delenv("ALLOW_NOTEBOOK_DDP", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel shares 2 cores with another test worker (as conftest)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    run_notebook(nb, REPO, timeout=180)
    elapsed = time.perf_counter() - started
    assert not errors(nb), errors(nb)
    assert elapsed < 180
    code = [c for c in nb.cells if c.cell_type == "code"]
    everything = "".join(text_of(c) for c in code)
    assert "✅ All required classes imported" in everything
    assert "<class 'utils.training.training_core.TrainingCoordinator'>" in everything
    assert "refused as expected" in everything
    assert "best trial:" in everything
    assert any(o.output_type == "display_data" and "image/png" in o.data for c in code for o in c.outputs)  # plots
    assert (tmp_path / "exports" / "notebook-baseline" / "manifest.json").is_file()
    assert (tmp_path / "checkpoints" / "epoch_3.pt").is_file()
