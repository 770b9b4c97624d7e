"""The export bundle at the end of a training run (``export_bundle=True``), for ``Trainer`` and
``TrainingCoordinator`` alike: it never raises, and the results say what was exported and what failed."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from torch import nn

from trainforge.config import TrainingConfig
from trainforge.tasks import TaskSpec

__all__ = ["export_after_training"]


def export_after_training(model: nn.Module, task: TaskSpec, training_config: TrainingConfig, run_name: str, *,
                          model_config: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """Write ``export_dir/<run_name>/`` with ``training_config.export_formats``; returns results entries.

    ``export_dir`` (``None`` when no bundle was written), ``export_manifest``, ``export_status`` (``"ok"``,
    ``"partial"`` or ``"failed"``), ``export_failed`` (the formats that failed) and ``export_error`` (one line per
    failed format, ``None`` when all passed). Any failure — a format that cannot be exported, a full disk, a
    writer that crashes (it runs in a child process) — is recorded and warned about, never raised: the model
    is trained and stays in ``results['final_model_state']`` and the checkpoints.
    """
    from trainforge.export.bundle import ExportWarning, export_bundle
    from trainforge.safe_paths import inside

    cfg = training_config
    out_dir = Path(cfg.export_dir) / run_name
    try:
        inside(cfg.export_dir, out_dir)  # (run_name is one plain name: the bundle is always below export_dir)
        manifest = export_bundle(model, task, out_dir, cfg.export_formats, model_config=model_config,
                                 training_config=cfg, tokenizer=tokenizer, run_name=run_name)
    except Exception as exc:  # a bundle-level failure (e.g. no room even for the manifest)
        error = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"Export to {str(out_dir)!r} failed: {error}. The trained model is kept "
                      "(results['final_model_state'], checkpoints); retry with `trainforge export`.",
                      ExportWarning, stacklevel=2)
        return {"export_dir": None, "export_manifest": None, "export_status": "failed",
                "export_failed": list(cfg.export_formats), "export_error": error}
    failed = list(manifest["failed"])
    errors = "; ".join(f"{fmt}: {manifest['formats'][fmt].get('error')}" for fmt in failed)
    status = "ok" if not failed else ("partial" if manifest["ok"] else "failed")
    if status == "failed":
        warnings.warn(f"Export to {str(out_dir)!r}: every format failed (manifest.json says why). The trained model "
                      "is kept (results['final_model_state'], checkpoints); retry with `trainforge export`.",
                      ExportWarning, stacklevel=2)
    return {"export_dir": str(out_dir), "export_manifest": manifest, "export_status": status,
            "export_failed": failed, "export_error": errors or None}
