"""Export a trained model: ONNX, TorchScript and safetensors, each checked against the eager model.

``export_bundle(model, task, out_dir, formats)`` writes a self-contained bundle (see
:mod:`trainforge.export.bundle`); ``export_checkpoint(path)`` does the same from a checkpoint file, and
``trainforge export CHECKPOINT`` from the command line (:mod:`trainforge.export.cli`).

onnx, onnxruntime and safetensors are imported only when a format that needs them is exported.
"""

from trainforge.export.bundle import ARTEFACTS, FORMATS, ExportWarning, export_bundle, normalize_formats
from trainforge.export.from_checkpoint import DEFAULT_FORMATS, export_checkpoint

__all__ = [
    "ARTEFACTS",
    "DEFAULT_FORMATS",
    "FORMATS",
    "ExportWarning",
    "export_bundle",
    "export_checkpoint",
    "normalize_formats",
]
