"""``trainforge`` command line: ``train`` (the main job) and ``presets``.

``trainforge train`` with no arguments trains the ``tiny`` GPT on the embedded default corpus (the Python
standard library's own source, byte-level), prints the results table and the run directory.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Keys of a run file that are not TrainingConfig fields.
_SECTIONS = ("preset", "model", "data", "task")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainforge", description="Train custom PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model (default: tiny GPT on the embedded corpus)")
    train.add_argument("--config", help="YAML/JSON run file: TrainingConfig fields plus model:, data:, preset:")
    train.add_argument("--preset", help="training preset (see `trainforge presets`)")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=3 model.n_layer=4")
    train.add_argument("--nproc", type=int, default=None,
                       help="train with N processes (DDP): re-runs this command under torchrun --standalone")
    sub.add_parser("presets", help="list training and model presets")
    from trainforge.export.cli import add_export_parser  # argparse only; onnx etc. load when exporting

    add_export_parser(sub)
    from trainforge.cli.runs import add_runs_parser  # argparse only; the database loads when used

    add_runs_parser(sub)
    from trainforge.cli.jobs import add_jobs_parser  # argparse only, like the others
    from trainforge.cli.sweep import add_sweep_parser

    add_sweep_parser(sub)
    add_jobs_parser(sub)
    args, unknown = parser.parse_known_args(argv)
    from trainforge.errors import TrainforgeError

    try:
        if args.command == "presets":
            return _presets()
        if args.command in ("export", "runs", "sweep", "jobs"):
            return int(args.handler(args))
        if args.nproc is not None and args.nproc > 1:
            from trainforge.distributed.launch import launched_by_torchrun, relaunch, strip_nproc

            if not launched_by_torchrun():
                return relaunch(args.nproc, strip_nproc(list(argv) if argv is not None else sys.argv[1:]))
        return _train(args.config, args.preset, [*args.overrides, *unknown])
    except TrainforgeError as exc:
        print(f"trainforge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.command == "train":
            from trainforge.distributed.env import shutdown

            shutdown()  # leave the process group of a torchrun launch (no-op in one process)


def _presets() -> int:
    from trainforge.config import list_presets
    from trainforge.models import MODEL_PRESETS

    print("Training presets:")
    for name, text in list_presets().items():
        print(f"  {name:10s} {text}")
    print("Model presets:")
    for name, values in MODEL_PRESETS.items():
        print(f"  {name:10s} {values}")
    return 0


def load_run_spec(config: str | None, preset: str | None, overrides: list[str]) -> dict[str, Any]:
    """Merge preset → run file → overrides into one dict with ``training``, ``model``, ``data`` keys."""
    from trainforge.config import get_preset, parse_overrides
    from trainforge.config.io import read_mapping
    from trainforge.errors import ConfigError

    spec: dict[str, Any] = {}
    if config:
        if not Path(config).is_file():
            raise ConfigError([f"--config: file not found, got {config!r}. Fix: give the path of a YAML or JSON "
                               "run file (e.g. one written by TrainingConfig.save)."], what="command line")
        spec = dict(read_mapping(config))
    _deep_update(spec, parse_overrides(overrides))
    name = preset or spec.pop("preset", None) or "tiny"
    spec.pop("preset", None)
    training = dict(get_preset(name))
    training.update({k: v for k, v in spec.items() if k not in _SECTIONS})
    return {"training": training, "model": spec.get("model") or {}, "data": spec.get("data") or {},
            "task": spec.get("task") or {}, "preset": name, "source": config or "the command line"}


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def build_model_from_spec(model_spec: Any) -> tuple[Any, Any]:
    """``{preset: tiny, n_layer: 4}`` → a trainforge GPT; ``"pkg.mod:fn"`` or ``"file.py:fn"`` → the user's
    factory (imported only because the run file names it), which returns a model or ``(model, config)``."""
    from trainforge.errors import ConfigError
    from trainforge.models import build_model

    if isinstance(model_spec, str):
        target, _, func = model_spec.partition(":")
        if not func:
            raise ConfigError([f"model: expected 'module:function' or 'file.py:function', got {model_spec!r}."],
                              what="run file")
        if target.endswith(".py"):
            path = Path(target)
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None or not path.is_file():
                raise ConfigError([f"model: file {target!r} not found. Fix: give a path to a .py file."],
                                  what="run file")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)  # user code, run only because the run file names it
        else:
            try:
                module = importlib.import_module(target)
            except ImportError as exc:
                raise ConfigError([f"model: cannot import module {target!r} ({exc}). Fix: check the module path "
                                   "(run from the directory that contains it) or use 'file.py:function'."],
                                  what="run file") from exc
        factory = getattr(module, func, None)
        if not callable(factory):
            raise ConfigError([f"model: {target!r} has no function {func!r}. Fix: name a function there that "
                               "returns a model or (model, config)."], what="run file")
        made = factory()
        return made if isinstance(made, tuple) else (made, None)
    spec = dict(model_spec)
    return build_model(spec.pop("preset", "tiny"), **spec)


def _train(config: str | None, preset: str | None, overrides: list[str]) -> int:
    from trainforge.config import TrainingConfig
    from trainforge.data.corpus import default_lm_dataset
    from trainforge.errors import ConfigError
    from trainforge.tasks import TaskSpec
    from trainforge.trainer import Trainer

    spec = load_run_spec(config, preset, overrides)
    try:
        training_config = TrainingConfig.from_dict(spec["training"])
    except ConfigError as exc:  # say where the values came from
        raise ConfigError(exc.problems, what=f"TrainingConfig (from {spec['source']})") from exc
    if "train" in spec["data"]:
        return _train_on_files(spec, training_config)
    model, model_config = build_model_from_spec(spec["model"])
    block = int(getattr(model_config, "max_seq_len", 64))
    data = dict(spec["data"])
    max_bytes = int(data.pop("max_bytes", 300_000))
    if data:
        raise ConfigError([f"data: unknown keys {sorted(data)}; this version reads the embedded corpus "
                           "(data: {max_bytes: N})."], what="run file")
    train_blocks, val_blocks = default_lm_dataset(block_size=block, max_bytes=max_bytes)
    vocab = int(getattr(model_config, "vocab_size", 256))
    task = TaskSpec.language_modeling(name="stdlib-bytes", vocab_size=vocab, max_seq_len=block, **spec["task"])
    if _is_main():
        print(f"[trainforge] preset={spec['preset']} model={type(model).__name__} "
              f"train={len(train_blocks)} blocks val={len(val_blocks)} blocks of {block} bytes")
    results = Trainer(model, model_config, training_config, task).train(train_blocks, val_blocks)
    _print_results(results)
    return 0


def _train_on_files(spec: dict[str, Any], training_config: Any) -> int:
    """``data: {train: path, val: path, format: ...}``: the user's own files (see trainforge.data.readers)."""
    from trainforge.data.module import UniversalDataModule
    from trainforge.data.readers import build_data_from_spec, task_for_data, tokenizer_from_spec
    from trainforge.data.tokenizers import tokenizer_vocab_size
    from trainforge.trainer import Trainer

    data = dict(spec["data"])
    tokenizer = tokenizer_from_spec(data)
    model_spec = spec["model"]
    if isinstance(model_spec, dict) and tokenizer is not None and "vocab_size" not in model_spec:
        model_spec = {**model_spec, "vocab_size": tokenizer_vocab_size(tokenizer)}  # the model fits the tokenizer
    model, model_config = build_model_from_spec(model_spec)
    train, val, tokenizer = build_data_from_spec(data, model_config, tokenizer=tokenizer)
    task = task_for_data(data, train, tokenizer, model_config, name=str(spec["task"].get("name", "user-data")))
    cfg = training_config
    module = UniversalDataModule(train, val, task, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                 seed=cfg.seed, validation_split=cfg.validation_split, shuffle=cfg.shuffle,
                                 tokenizer=tokenizer)
    print(f"[trainforge] data={data['train']} format={data.get('format', 'auto')} {module} task={task.task_type}")
    results = Trainer(model, model_config, cfg, task).train(module.train_dataloader(), module.val_dataloader())
    _print_results(results)
    return 0


def _is_main() -> bool:
    """Rank 0 of a torchrun launch, or a single process: the one that prints."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _print_results(results: dict[str, Any]) -> None:
    if not _is_main():
        return
    print()
    print(results["metrics_summary"].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nbest epoch: {results['best_epoch']}   run directory: {results['run_dir']}")
    if results["checkpoint_paths"]:
        print(f"checkpoints: {', '.join(results['checkpoint_paths'])}")


if __name__ == "__main__":
    raise SystemExit(main())
