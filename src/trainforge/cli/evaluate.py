"""``trainforge evaluate RUN_OR_CHECKPOINT --data DATA``: the validation metrics of trained weights on some data.

The weights and the model come as for ``trainforge generate`` (a run directory's ``model.pt``, else its best or
newest checkpoint, or a checkpoint file; a trainforge GPT is rebuilt from the recorded ``model_config``, any other
model from ``--model module:function``). The task is the run's recorded ``task_spec``; the numbers come from
``Trainer.evaluate``, the code that validates at each epoch's end, so they read like the epoch rows.

``--data`` is one of:

- ``corpus``: the embedded corpus's validation blocks (what ``trainforge train`` validates on by default);
- a data file or folder, read like ``data: {val: PATH}`` of a run file (text/csv/jsonl/images/arrays by extension,
  or ``--format``), tokenized with the run's ``tokenizer/``;
- ``module:function`` or ``file.py:function`` returning the data itself (anything ``val_data`` accepts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainforge.errors import ConfigError

__all__ = ["add_evaluate_parser", "evaluate_target", "run_evaluate"]


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to ``subparsers``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate", help="validation metrics of a trained run or checkpoint on some data",
        description="Evaluate trained weights: the same metrics as the epoch rows (val/loss, ...).")
    parser.add_argument("target", metavar="RUN_OR_CHECKPOINT",
                        help="run directory (runs/<name>), run name, or checkpoint file")
    parser.add_argument("--data", required=True,
                        help="'corpus', a data file/folder, or module:function returning the data")
    parser.add_argument("--format", default=None, help="the data file's format when its extension does not say")
    parser.add_argument("--model", default=None, help="module:function building the model (other than a trainforge GPT)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's eval/train batch size")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.set_defaults(handler=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    """Print the metrics; 2 on an error (what was wrong and how to fix it)."""
    from trainforge.errors import TrainforgeError

    try:
        metrics, source = evaluate_target(args.target, args.data, model_factory=args.model, data_format=args.format,
                                          batch_size=args.batch_size)
    except TrainforgeError as exc:
        print(f"trainforge evaluate: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"[trainforge] evaluated {source}", file=sys.stderr)
        for name, value in metrics.items():
            print(f"{name} {value:.6g}")
    return 0


def evaluate_target(target: str, data: str, *, model_factory: str | None = None, data_format: str | None = None,
                    batch_size: int | None = None) -> tuple[dict[str, float], str]:
    """``(metrics, weights file)`` for the weights ``target`` names on ``data`` (see the module docstring)."""
    from trainforge.checkpoint.io import load_model_state, safe_load
    from trainforge.cli.generate import _resolve
    from trainforge.config import TrainingConfig
    from trainforge.tasks import TaskSpec
    from trainforge.trainer import Trainer

    weights, run_dir = _resolve(target)
    ckpt = safe_load(weights)
    for key, name in (("model_config", "model_config.json"), ("task_spec", "task_spec.json")):
        if run_dir is not None and not ckpt.get(key) and (run_dir / name).is_file():
            ckpt[key] = json.loads((run_dir / name).read_text())
    if not ckpt.get("task_spec"):
        raise ConfigError([f"{str(weights)!r} records no task_spec (and no run directory with task_spec.json was "
                           "found). Fix: evaluate a run directory, or a checkpoint written by Trainer.train."],
                          what="evaluate")
    task = TaskSpec.from_dict(ckpt["task_spec"])
    if model_factory is not None:
        from trainforge.runspec import build_model_from_spec

        model, model_config = build_model_from_spec(model_factory)
        load_model_state(model, ckpt["model"], str(weights))
    else:
        from trainforge.export.from_checkpoint import model_from_checkpoint

        model, model_config = model_from_checkpoint(ckpt, None, str(weights)), ckpt.get("model_config")
    recorded = ckpt.get("training_config") or _recorded_config(run_dir)
    size = batch_size or recorded.get("eval_batch_size") or recorded.get("batch_size") or 8
    cfg = TrainingConfig(batch_size=int(size), precision=recorded.get("precision", "auto"), progress_bar=False)
    evaluation_data = _data(data, data_format, model_config, run_dir, weights)
    return Trainer(model, model_config, cfg, task).evaluate(evaluation_data), str(weights)


def _recorded_config(run_dir: Path | None) -> dict[str, Any]:
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        return {}
    from trainforge.config.io import read_mapping

    return dict(read_mapping(run_dir / "config.yaml"))


def _data(data: str, data_format: str | None, model_config: Any, run_dir: Path | None, weights: Path) -> Any:
    from trainforge.runspec import import_function

    block = int(_get(model_config, "max_seq_len") or 64)
    if data == "corpus":
        from trainforge.data.corpus import default_lm_dataset

        return default_lm_dataset(block_size=block, max_bytes=300_000)[1]  # `trainforge train`'s default size
    if ":" in data and not Path(data).exists():
        return import_function(data, "--data")()
    if not Path(data).exists():
        raise ConfigError([f"--data: {data!r} is not 'corpus', an existing file or folder, or module:function. "
                           "Fix: pass one of those."], what="evaluate")
    from trainforge.cli.generate import _run_dirs
    from trainforge.data.readers import _format_of, build_data_from_spec, read_text_blocks
    from trainforge.data.tokenizers import load_tokenizer

    # the run's tokenizer, found where `trainforge generate` looks (else the spec's default: bytes)
    tokenizer_dir = next((d / "tokenizer" for d in _run_dirs(weights, run_dir) if (d / "tokenizer").is_dir()), None)
    tokenizer = load_tokenizer(tokenizer_dir) if tokenizer_dir is not None else None
    if (data_format or _format_of(data)) == "text" and tokenizer is not None and \
            getattr(tokenizer, "eos_token_id", None) is None:
        return read_text_blocks(data, tokenizer, block, add_eos=False)  # e.g. the embedded corpus's plain bytes
    spec: dict[str, Any] = {"train": data, "block_size": block}
    if data_format:
        spec["format"] = data_format
    values, _, _ = build_data_from_spec(spec, model_config, tokenizer=tokenizer)
    return values


def _get(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)
