"""``export_bundle``: every requested format of a model, checked against the eager model, plus what is needed
to run it without trainforge.

Layout of ``out_dir`` (the bundle directory itself, e.g. ``export_dir/<run_name>``)::

    model.onnx               ONNX, dynamic batch (and sequence) axes            (format "onnx")
    model.torchscript.pt     TorchScript (scripted, or traced as the fallback)  (format "torchscript")
    model.safetensors        the weights, tied weights stored once              (format "safetensors")
    model_config.json        the architecture config (when known)
    training_config.yaml     the TrainingConfig (when given)
    task_spec.json           TaskSpec.to_dict()
    tokenizer/               the tokenizer (when one is given; byte-level needs none)
    inference.py             standalone predictor: numpy + onnxruntime or torch
    README.md, requirements.txt
    manifest.json            sha256 + size of every other file, versions, parity and latency per format

A format that fails to export or to match the eager model (max abs difference above ``tolerance``) is recorded
in the manifest with the error and warned about (:class:`ExportWarning`); the other formats are still written.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import re
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainforge.atomic import atomic_write_text
from trainforge.config import TrainingConfig
from trainforge.safe_paths import inside
from trainforge.tasks import TaskSpec

from .isolate import IsolatedWriteError
from .parity import DEFAULT_TOLERANCE, ParityResult, compare, run_fresh
from .wrapper import Samples, export_samples, make_wrapper

__all__ = ["ARTEFACTS", "FORMATS", "ExportWarning", "export_bundle", "file_digest", "normalize_formats"]

FORMATS = ("onnx", "torchscript", "safetensors")
ARTEFACTS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "safetensors": "model.safetensors"}
_ALIASES = {"ts": "torchscript", "jit": "torchscript", "st": "safetensors", "onnxruntime": "onnx", "ort": "onnx"}
TORCHSCRIPT_METHODS = ("script", "trace")
BUNDLE_VERSION = 1
_TEMPLATE = Path(__file__).parent / "templates" / "inference.py"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ExportWarning(UserWarning):
    """A format failed to export or did not match the eager model (details in the manifest)."""


def normalize_formats(formats: str | Sequence[str]) -> list[str]:
    """``"onnx,ts"`` or ``["ONNX", "torchscript"]`` -> ``["onnx", "torchscript"]``; unknown names raise ValueError."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"export formats must be strings, got {item!r}")
        name = item.strip().lower()
        if not name:
            continue
        name = _ALIASES.get(name, name)
        if name not in FORMATS:
            import difflib

            close = difflib.get_close_matches(name, FORMATS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown export format {item!r}{hint}; choose from {', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no export format given; choose from {', '.join(FORMATS)}")
    return out


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, Any]:
    from trainforge._version import __version__

    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "trainforge": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for dist in ("onnx", "onnxruntime", "onnxscript", "safetensors"):
        versions[dist] = _version(dist)
    return versions


def _short(exc: BaseException, limit: int = 600) -> str:
    named = isinstance(exc, IsolatedWriteError)  # its message already names the child's error type
    text = _ANSI.sub("", str(exc) if named else f"{type(exc).__name__}: {exc}").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # torch.onnx wraps the real cause after a long preamble; keep the head and the exception summary.
    summary = next((i for i, ln in enumerate(lines) if "Exception summary" in ln), None)
    if summary is not None:
        lines = lines[:1] + lines[summary + 1 : summary + 4]
    text = " | ".join(lines)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module behind torch.compile / DDP / DataParallel wrappers."""
    for _ in range(4):
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if type(model).__name__ in ("DistributedDataParallel", "DataParallel", "FullyShardedDataParallel"):
            inner = getattr(model, "module", None)
            if isinstance(inner, nn.Module):
                model = inner
                continue
        break
    return model


def _config_dict(config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    if isinstance(config, Mapping):
        data: Any = dict(config)
    elif is_dataclass(config) and not isinstance(config, type):
        data = asdict(config)
    elif hasattr(config, "to_dict"):
        data = config.to_dict()
    else:
        data = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _save_tokenizer(tokenizer: Any, task: TaskSpec, out: Path) -> dict[str, Any] | None:
    target = out / "tokenizer"
    if tokenizer is None or (isinstance(tokenizer, str) and tokenizer.lower() in ("byte", "bytes", "byte-level")):
        if tokenizer is not None or (task.vocab_size == 256 and task.task_type != "vision_classification"):
            return {"type": "byte", "vocab_size": 256, "note": "UTF-8 bytes are the token ids; nothing to load"}
        return None
    if hasattr(tokenizer, "save_pretrained"):
        target.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(target))
        return {"type": "huggingface", "path": "tokenizer", "class": type(tokenizer).__name__}
    if isinstance(tokenizer, (str, os.PathLike)):
        src = Path(tokenizer)
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
            return {"type": "files", "path": "tokenizer"}
        if src.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / src.name)
            return {"type": "file", "path": f"tokenizer/{src.name}"}
        raise ValueError(f"tokenizer path {str(src)!r} does not exist")
    if hasattr(tokenizer, "save"):  # e.g. a `tokenizers.Tokenizer`
        target.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(target / "tokenizer.json"))
        return {"type": "tokenizers", "path": "tokenizer/tokenizer.json"}
    warnings.warn(
        f"export: the tokenizer ({type(tokenizer).__name__}) has no save_pretrained()/save() and is not a path; "
        "it is not included in the bundle",
        ExportWarning,
        stacklevel=3,
    )
    return {"type": type(tokenizer).__name__, "saved": False}


def _output_info(task: TaskSpec, samples: Samples, outputs: Sequence[np.ndarray]) -> dict[str, Any]:
    """How the logits relate to the inputs, and which output axes are dynamic."""
    axes: dict[int, str] = {0: "batch"}
    kind = "per_example"
    first = outputs[0]
    if task.is_token_task and first.ndim == 3:
        kind = "last_position_only"
        for i, spec in enumerate(samples.specs):
            if 1 in spec.axes and all(o.shape[1] == c[i].shape[1] for o, c in zip(outputs, samples.cases)):
                axes[1] = spec.axes[1]
                kind = "per_position"
        if kind != "per_position" and any(o.shape[1] != 1 for o in outputs):
            kind = "fixed_length"
    shape: list[Any] = [axes.get(d, first.shape[d]) for d in range(first.ndim)]
    return {"name": "logits", "dtype": "float32", "shape": shape, "kind": kind, "axes": axes}


def _fresh_parity(
    fmt: str, path: Path, samples: Samples, expected: Sequence[np.ndarray], tolerance: float
) -> ParityResult:
    cases = [[t.numpy() for t in case] for case in samples.cases]
    shapes = [[list(t.shape) for t in case] for case in samples.cases]
    try:
        actual = run_fresh(fmt, path, samples.names, cases)
    except RuntimeError as exc:
        return ParityResult(False, None, tolerance, [], str(exc), True)
    return compare(expected, actual, shapes, tolerance)


def _export_traced_format(
    fmt: str,
    model: nn.Module,
    task: TaskSpec,
    samples: Samples,
    expected: Sequence[np.ndarray],
    path: Path,
    tolerance: float,
    output_axes: dict[int, str],
    onnx_exporters: Sequence[str],
    seq_cap: int | None,
) -> dict[str, Any]:
    """Try each exporter of ``fmt`` in turn; the first whose reload matches the eager model is kept."""
    from .onnx_export import export_onnx
    from .torchscript import export_torchscript

    methods = list(onnx_exporters) if fmt == "onnx" else list(TORCHSCRIPT_METHODS)
    attempts: list[dict[str, Any]] = []
    record: dict[str, Any] = {"status": "failed", "file": None, "method": None, "parity": None, "error": None}
    best: tuple[ParityResult, str, Path] | None = None  # the closest mismatching artefact, kept for debugging
    for method in methods:
        attempt: dict[str, Any] = {"method": method}
        start = time.perf_counter()
        # Each attempt writes under its own folder with the final file name (ONNX external data refers to it).
        tmp = path.parent / f".{fmt}-{method}.tmp" / path.name
        shutil.rmtree(tmp.parent, ignore_errors=True)
        try:
            if fmt == "onnx":
                wrapper = make_wrapper(model, task, samples.names).eval()
                info = export_onnx(wrapper, samples.example, samples.specs, tmp, exporter=method,
                                   max_seq_len=seq_cap, output_axes=output_axes)
            else:
                info = export_torchscript(model, task, samples.names, samples.example, tmp, method=method)
            attempt.update({k: v for k, v in info.items() if k != "method"})
        except Exception as exc:
            attempt.update(ok=False, stage="export", error=_short(exc), seconds=round(time.perf_counter() - start, 3))
            attempts.append(attempt)
            _discard(tmp)
            continue
        attempt["export_seconds"] = round(time.perf_counter() - start, 3)
        parity = _fresh_parity(fmt, tmp, samples, expected, tolerance)
        attempt.update(ok=parity.passed, stage="parity", max_abs_diff=parity.max_abs_diff, error=parity.error)
        attempts.append(attempt)
        if parity.passed:
            _install(tmp, path)
            if best is not None:
                _discard(best[2])
            record.update(status="ok", file=path.name, method=method, parity=parity.to_dict(), error=None)
            break
        if best is None or (parity.max_abs_diff or float("inf")) < (best[0].max_abs_diff or float("inf")):
            if best is not None:
                _discard(best[2])
            best = (parity, method, tmp)
        else:
            _discard(tmp)
    if record["status"] != "ok":
        record["error"] = "; ".join(f"{a['method']}: {a.get('error')}" for a in attempts) or "no exporter tried"
        if best is not None:
            # Kept so the mismatch can be inspected; inference.py only picks formats whose status is "ok".
            _install(best[2], path)
            record.update(file=path.name, method=best[1], parity=best[0].to_dict())
    record["attempts"] = attempts
    return record


def _install(tmp: Path, path: Path) -> None:
    """Move an attempt's file (and its ONNX external data, if any) into the bundle."""
    for item in tmp.parent.iterdir():
        os.replace(item, path.parent / item.name)
    _discard(tmp)


def _discard(tmp: Path) -> None:
    shutil.rmtree(tmp.parent, ignore_errors=True)


def _export_safetensors(
    model: nn.Module,
    wrapper: nn.Module | None,
    task: TaskSpec,
    samples: Samples,
    expected: Sequence[np.ndarray] | None,
    path: Path,
    tolerance: float,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    from .safetensors_export import export_safetensors, max_weight_diff, reload_into_copy

    record: dict[str, Any] = {"status": "failed", "file": None, "method": "save_model", "parity": None, "error": None}
    start = time.perf_counter()
    try:
        info = export_safetensors(model, path, metadata)
        record.update(file=path.name, tensors=info["tensors"], export_seconds=round(time.perf_counter() - start, 3))
    except Exception as exc:
        path.unlink(missing_ok=True)
        record["error"] = _short(exc)
        return record
    try:
        if expected is not None:
            fresh = reload_into_copy(model, path)
            fresh_wrapper = make_wrapper(fresh, task, samples.names).eval()
            with torch.no_grad():
                actual = [fresh_wrapper(*case).detach().float().cpu().numpy() for case in samples.cases]
            shapes = [[list(t.shape) for t in case] for case in samples.cases]
            parity = compare(expected, actual, shapes, tolerance, fresh_process=False)
            parity_dict = parity.to_dict()
            parity_dict["check"] = "weights reloaded into a zeroed copy of the model, outputs compared"
        else:
            diff = max_weight_diff(model, path)
            parity = ParityResult(diff <= tolerance, diff, tolerance, [], None, False)
            parity_dict = parity.to_dict()
            parity_dict["check"] = "saved tensors compared with the state dict (the eager forward failed)"
    except Exception as exc:
        record["error"] = f"reload check failed: {_short(exc)}"
        return record
    record["parity"] = parity_dict
    if parity.passed:
        record["status"] = "ok"
    else:
        record["error"] = parity.error or "reloaded weights differ"
    return record


def _requirements(statuses: Mapping[str, str]) -> str:
    lines = ["# Packages inference.py needs (ONNX Runtime for model.onnx, torch for model.torchscript.pt).",
             "numpy>=1.24"]
    if statuses.get("onnx") == "ok":
        lines.append(f"onnxruntime>={_version('onnxruntime') or '1.17'}")
    if statuses.get("torchscript") == "ok" or statuses.get("safetensors") == "ok":
        major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
        lines.append(f"torch>={major_minor}  # TorchScript files load in the torch version that saved them or newer")
    if statuses.get("safetensors") == "ok":
        lines.append(f"safetensors>={_version('safetensors') or '0.4'}")
    return "\n".join(lines) + "\n"


def _readme(manifest: Mapping[str, Any]) -> str:
    task = manifest["task"]
    ttype = task["task_type"]
    name = manifest.get("run_name") or task.get("name") or "model"
    rows = []
    for fmt, rec in manifest["formats"].items():
        parity = rec.get("parity") or {}
        diff = parity.get("max_abs_diff")
        diff_text = "-" if diff is None else f"{diff:.2e}"
        rows.append(f"| {fmt} | {rec.get('file') or '-'} | {rec['status']} | {rec.get('method') or '-'} | {diff_text} |")
    if ttype == "language_modeling":
        example = 'python inference.py --text "def f("' if task.get("vocab_size") == 256 else "python inference.py --tokens 1,2,3"
        what = "prints the next-token prediction and a greedy continuation"
    elif ttype == "seq2seq":
        example = 'python inference.py --text "hello"' if task.get("vocab_size") == 256 else "python inference.py --tokens 1,2,3"
        what = "prints a greedy decode of the target sequence"
    elif ttype == "classification":
        example = 'python inference.py --text "some text"' if task.get("vocab_size") == 256 else "python inference.py --tokens 1,2,3"
        what = "prints the predicted label and its probability"
    else:
        example = "python inference.py --npy image.npy   # float32 [C, H, W] or [B, C, H, W]"
        what = "prints the predicted label and its probability"
    inputs = ", ".join(f"`{i['name']}` {i['shape']} {i['dtype']}" for i in manifest["inputs"])
    out = manifest["output"]
    lines = [
        f"# {name}: exported {ttype} model",
        "",
        f"Exported by trainforge {manifest['versions'].get('trainforge')} with torch {manifest['versions'].get('torch')} "
        f"on {manifest['created']}.",
        "",
        "## Files",
        "",
        "| format | file | status | exporter | max abs diff vs eager |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Each artefact was reloaded (ONNX through ONNX Runtime and TorchScript in a fresh process) and compared "
        f"with the eager PyTorch model on two inputs of different batch size and sequence length; a format whose "
        f"max abs difference exceeds {manifest['tolerance']:g} is marked `failed`. `manifest.json` has the "
        "details, the sha256 and size of every file, and the versions used.",
        "",
        "## Inputs and output",
        "",
        f"Inputs: {inputs}. Output: `logits` {out['shape']} ({out['kind'].replace('_', ' ')}).",
    ]
    if out["kind"] == "last_position_only":
        lines += ["", "This model returns only the last position's logits when called without targets (nanoGPT "
                  "style); the export keeps that behaviour."]
    lines += [
        "",
        "## Run it",
        "",
        "```bash",
        "pip install -r requirements.txt",
        example,
        "python inference.py --help",
        "```",
        "",
        f"`inference.py` needs only numpy plus onnxruntime (for `model.onnx`) or torch (for `model.torchscript.pt`); "
        f"it {what}. `--format onnx|torchscript` picks the backend, `--json` prints machine-readable output. "
        "It checks the model file's sha256 against `manifest.json` before loading it and refuses a changed file "
        "(`--skip-verify` loads it anyway).",
        "",
        "In Python:",
        "",
        "```python",
        "import onnxruntime as ort",
        "sess = ort.InferenceSession('model.onnx')",
        f"logits = sess.run(None, {{'{manifest['inputs'][0]['name']}': x}})[0]",
        "# or: import torch; m = torch.jit.load('model.torchscript.pt'); logits = m(torch.from_numpy(x))",
        "```",
    ]
    lat = manifest.get("latency")
    if isinstance(lat, dict) and "eager" in lat:
        lines += ["", "## Latency (ms, median, this machine)", "", "| backend | batch 1 | batch 8 |", "|---|---|---|"]
        for backend in ("eager", "torchscript", "onnxruntime"):
            row = lat.get(backend)
            if isinstance(row, dict):
                lines.append(f"| {backend} | {row.get('batch_1', '-')} | {row.get('batch_8', '-')} |")
    return "\n".join(lines) + "\n"


def export_bundle(
    model: nn.Module,
    task: TaskSpec,
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = ("onnx", "torchscript"),
    *,
    model_config: Any = None,
    training_config: TrainingConfig | Mapping[str, Any] | None = None,
    tokenizer: Any = None,
    sample_batch: Mapping[str, Tensor] | None = None,
    measure_latency: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    onnx_exporters: Sequence[str] = ("dynamo", "legacy"),
    run_name: str | None = None,
) -> dict[str, Any]:
    """Export ``model`` in ``formats`` into the bundle directory ``out_dir``; returns the manifest.

    Args:
        model: the trained model (any forward the Trainer accepts); it is not modified (its train/eval mode is
            restored; a model on an accelerator is copied to the CPU).
        task: its TaskSpec; decides the graph inputs (``input_field``, plus ``decoder_input_ids`` for seq2seq)
            and the sample inputs.
        out_dir: the bundle directory itself (the Trainer passes ``export_dir / run_name``).
        formats: any of ``"onnx"``, ``"torchscript"``, ``"safetensors"`` (or one comma-separated string).
        model_config: architecture config (dict, dataclass or object with ``to_dict``); default ``model.config``.
        training_config: written as ``training_config.yaml``.
        tokenizer: a Hugging Face tokenizer (``save_pretrained``), a ``tokenizers.Tokenizer``, a file or folder
            path, or ``"byte"``; byte-level (``vocab_size == 256``) text tasks need none.
        sample_batch: a batch dict like the training data's, used instead of made-up inputs.
        measure_latency: time eager / TorchScript / ONNX Runtime at batch 1 and 8 into ``manifest["latency"]``.
        tolerance: max abs difference allowed between an artefact and the eager model.
        onnx_exporters: the ONNX exporters to try, in order (``"dynamo"``, ``"legacy"``).
        run_name: recorded in the manifest and README (default: the training config's ``run_name``).

    Never raises for a format that fails (it is recorded in the manifest and warned about with
    :class:`ExportWarning`); raises ``TypeError``/``ValueError`` only for unusable arguments.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__qualname__}")
    if not isinstance(task, TaskSpec):
        raise TypeError(f"task must be a TaskSpec, got {type(task).__qualname__}")
    fmts = normalize_formats(formats)
    bad_exporters = [e for e in onnx_exporters if e not in ("dynamo", "legacy")]
    if bad_exporters or not onnx_exporters:
        raise ValueError(f"onnx_exporters must be a non-empty sequence of 'dynamo'/'legacy', got {onnx_exporters!r}")
    if isinstance(training_config, TrainingConfig):
        training_dict: dict[str, Any] | None = training_config.to_dict()
    elif isinstance(training_config, Mapping):
        training_dict = dict(training_config)
    elif training_config is None:
        training_dict = None
    else:
        raise TypeError(f"training_config must be a TrainingConfig or a dict, got {type(training_config).__qualname__}")
    run_name = run_name or (training_dict or {}).get("run_name") or None

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*ARTEFACTS.values(), "model.onnx.data", "manifest.json"]:
        inside(out, out / stale).unlink(missing_ok=True)  # only ever inside the bundle directory
    for leftover in out.glob(".*.tmp"):  # attempt folders of an interrupted export
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(inside(out, leftover), ignore_errors=True)

    base = _unwrap(model)
    on_cpu = all(t.device.type == "cpu" for t in [*base.parameters(), *base.buffers()])
    work = base if on_cpu else copy.deepcopy(base).cpu()
    was_training = work.training
    work.eval()
    float_dtype = next((p.dtype for p in work.parameters() if p.is_floating_point()), torch.float32)
    # A model that knows its own context length (trainforge's GPT) bounds the sample lengths and ONNX's seq axis.
    seq_cap = task.max_seq_len
    own_cap = getattr(base, "max_seq_len", None)
    if isinstance(own_cap, int) and not isinstance(own_cap, bool) and own_cap > 0:
        seq_cap = own_cap if seq_cap is None else min(seq_cap, own_cap)
    try:
        samples = export_samples(work, task, sample_batch, dtype=float_dtype, max_seq_len=seq_cap)
        return _export(work, task, out, fmts, samples, model_config, training_config, training_dict, tokenizer,
                       measure_latency, tolerance, onnx_exporters, run_name, seq_cap)
    finally:
        work.train(was_training)


def _export(
    model: nn.Module,
    task: TaskSpec,
    out: Path,
    fmts: list[str],
    samples: Samples,
    model_config: Any,
    training_config: Any,
    training_dict: dict[str, Any] | None,
    tokenizer: Any,
    measure_latency: bool,
    tolerance: float,
    onnx_exporters: Sequence[str],
    run_name: str | None,
    seq_cap: int | None,
) -> dict[str, Any]:
    # --- configs and tokenizer
    _write_json(out / "task_spec.json", task.to_dict())
    config_dict = _config_dict(model_config if model_config is not None else getattr(model, "config", None))
    if config_dict is not None:
        _write_json(out / "model_config.json", config_dict)
    if training_dict is not None:
        from trainforge.config.io import write_mapping

        if isinstance(training_config, TrainingConfig):
            training_config.save(out / "training_config.yaml")
        else:
            write_mapping(training_dict, out / "training_config.yaml")
    tokenizer_info = _save_tokenizer(tokenizer, task, out)

    # --- the eager reference
    wrapper = make_wrapper(model, task, samples.names).eval()
    expected: list[np.ndarray] | None = None
    eager_error: str | None = None
    try:
        with torch.no_grad():
            expected = [wrapper(*case).detach().float().cpu().numpy() for case in samples.cases]
    except Exception as exc:
        eager_error = f"the eager model failed on the sample inputs: {_short(exc)}"
    output: dict[str, Any] = (
        _output_info(task, samples, expected)
        if expected is not None
        else {"name": "logits", "dtype": "float32", "shape": None, "kind": "unknown", "axes": {0: "batch"}}
    )

    # --- each format
    records: dict[str, dict[str, Any]] = {}
    for fmt in fmts:
        path = out / ARTEFACTS[fmt]
        start = time.perf_counter()
        try:
            if fmt == "safetensors":
                meta = {"task_spec": task.to_dict(), "model_config": config_dict, "format": "trainforge-export"}
                record = _export_safetensors(model, wrapper if expected is not None else None, task, samples,
                                             expected, path, tolerance, meta)
            elif expected is None:
                record = {"status": "failed", "file": None, "method": None, "parity": None, "error": eager_error,
                          "attempts": []}
            else:
                record = _export_traced_format(fmt, model, task, samples, expected, path, tolerance,
                                               output["axes"], onnx_exporters, seq_cap)
        except Exception as exc:  # a bug in an exporter path must not lose the other formats
            record = {"status": "failed", "file": None, "method": None, "parity": None, "error": _short(exc)}
        record["seconds"] = round(time.perf_counter() - start, 3)
        records[fmt] = record
        if record["status"] != "ok":
            warnings.warn(f"export: format {fmt!r} failed: {record['error']}", ExportWarning, stacklevel=3)

    statuses = {fmt: rec["status"] for fmt, rec in records.items()}

    # --- standalone files
    shutil.copyfile(_TEMPLATE, out / "inference.py")
    (out / "requirements.txt").write_text(_requirements(statuses), encoding="utf-8")

    latency: dict[str, Any] | None = None
    if measure_latency and expected is not None:
        from .latency import measure_latency as _measure

        try:
            latency = _measure(
                wrapper,
                samples.with_batch,
                samples.names,
                onnx_path=out / ARTEFACTS["onnx"] if statuses.get("onnx") == "ok" else None,
                torchscript_path=out / ARTEFACTS["torchscript"] if statuses.get("torchscript") == "ok" else None,
                iters=20,
                budget_s=0.5,
            )
        except Exception as exc:
            latency = {"error": _short(exc)}

    manifest: dict[str, Any] = {
        "bundle_version": BUNDLE_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_name": run_name,
        "bundle_dir": str(out.resolve()),
        "task": {"task_type": task.task_type, "name": task.name, "vocab_size": task.vocab_size,
                 "num_classes": task.num_classes, "max_seq_len": task.max_seq_len},
        "inputs": [s.to_dict() for s in samples.specs],
        "output": {k: v for k, v in output.items() if k != "axes"},
        "tolerance": tolerance,
        "formats": records,
        "ok": [f for f, s in statuses.items() if s == "ok"],
        "failed": [f for f, s in statuses.items() if s != "ok"],
        "eager_error": eager_error,
        "tokenizer": tokenizer_info,
        "latency": latency,
        "versions": _versions(),
    }
    (out / "README.md").write_text(_readme(manifest), encoding="utf-8")
    manifest["files"] = {
        p.relative_to(out).as_posix(): {"sha256": file_digest(p), "size": p.stat().st_size}
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not any(part.endswith(".tmp") for part in p.relative_to(out).parts)
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n", mode=0o644)
    return manifest
