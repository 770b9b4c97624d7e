"""``trainforge generate RUN_OR_CHECKPOINT --prompt "def main(" --max-new-tokens 200``: text from a trained model.

``RUN_OR_CHECKPOINT`` is a run directory (``runs/<name>``), a run name, or a checkpoint file. From a run directory
the weights are its ``model.pt`` (the final weights ``trainforge train`` records), else ``best.pt`` or the newest
checkpoint in the run's ``checkpoint_dir``. The model is rebuilt from the recorded ``model_config`` (a trainforge
GPT, as ``trainforge export`` does); the tokenizer is the run's ``tokenizer/`` folder (or ``--tokenizer DIR``).

Also here: what ``trainforge train`` records for this command at the end of a run, and the sample it prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainforge.errors import ConfigError

__all__ = ["FINAL_WEIGHTS", "add_generate_parser", "load_for_generation", "record_final_model", "run_generate",
           "sample_after_training"]

FINAL_WEIGHTS = "model.pt"  # in the run directory: the weights at the end of `trainforge train`
SAMPLE_PROMPT = "def "  # the embedded corpus is Python source


def add_generate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``generate`` sub-command to ``subparsers``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "generate", help="generate text from a trained run or checkpoint",
        description="Continue a prompt with a trained causal language model (its run's tokenizer decodes).")
    parser.add_argument("target", metavar="RUN_OR_CHECKPOINT",
                        help="run directory (runs/<name>), run name, or checkpoint file")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="tokens to add (default 200)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold, e.g. 0.9")
    parser.add_argument("--seed", type=int, default=None, help="makes the sample reproducible")
    parser.add_argument("--tokenizer", default=None, help="a saved tokenizer folder (default: the run's)")
    parser.set_defaults(handler=run_generate)
    return parser


def run_generate(args: argparse.Namespace) -> int:
    """Print the continuation; 2 on an error (what was wrong and how to fix it)."""
    from trainforge.errors import TrainforgeError
    from trainforge.generation import generate

    try:
        model, tokenizer, source = load_for_generation(args.target, args.tokenizer)
        print(f"[trainforge] generating from {source}", file=sys.stderr)
        text = generate(model, args.prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, seed=args.seed, tokenizer=tokenizer)
    except TrainforgeError as exc:
        print(f"trainforge generate: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


def load_for_generation(target: str, tokenizer_dir: str | None = None) -> tuple[Any, Any, str]:
    """(model in eval mode with the trained weights, tokenizer, the weights file used) for ``target``."""
    from trainforge.checkpoint.io import safe_load
    from trainforge.data.tokenizers import load_tokenizer
    from trainforge.export.from_checkpoint import model_from_checkpoint

    weights, run_dir = _resolve(target)
    ckpt = safe_load(weights)
    if run_dir is not None and not ckpt.get("model_config") and (run_dir / "model_config.json").is_file():
        ckpt["model_config"] = json.loads((run_dir / "model_config.json").read_text())
    model = model_from_checkpoint(ckpt, None, str(weights)).eval()
    candidates = [Path(tokenizer_dir)] if tokenizer_dir else [d / "tokenizer" for d in _run_dirs(weights, run_dir)]
    found = next((d for d in candidates if d.is_dir()), None)
    if found is None:
        raise ConfigError([f"no tokenizer for {target!r}: looked in {', '.join(str(d) for d in candidates)}. Fix: pass "
                           "--tokenizer DIR (a folder written by save_tokenizer), or generate from the run directory "
                           "that trained the model."], what="generate")
    return model, load_tokenizer(found), str(weights)


def _resolve(target: str) -> tuple[Path, Path | None]:
    """The weights file and the run directory (None for a bare checkpoint file) that ``target`` names."""
    path = Path(target)
    if path.is_file():
        return path, _run_dir_of(path)
    run_dir = path if path.is_dir() else Path("runs") / target
    if not run_dir.is_dir():
        raise ConfigError([f"{target!r} is neither a checkpoint file nor a run directory (looked at {str(path)!r} and "
                           f"{str(run_dir)!r}). Fix: pass runs/<name>, a run name, or a .pt checkpoint."],
                          what="generate")
    if (run_dir / FINAL_WEIGHTS).is_file():
        return run_dir / FINAL_WEIGHTS, run_dir
    checkpoint_dir = _recorded_checkpoint_dir(run_dir)
    if checkpoint_dir is not None:
        from trainforge.checkpoint.manager import BEST, ranked_checkpoints

        if (checkpoint_dir / BEST).is_file():
            return checkpoint_dir / BEST, run_dir
        ranked = ranked_checkpoints(checkpoint_dir)
        if ranked:
            return ranked[0], run_dir
    raise ConfigError([f"{str(run_dir)!r} holds no weights: no {FINAL_WEIGHTS} (written by `trainforge train`) and no "
                       "checkpoint in its checkpoint_dir. Fix: pass a checkpoint file, or train with "
                       "checkpoint_dir=... set."], what="generate")


def _recorded_checkpoint_dir(run_dir: Path) -> Path | None:
    config = run_dir / "config.yaml"
    if not config.is_file():
        return None
    from trainforge.config.io import read_mapping

    value = read_mapping(config).get("checkpoint_dir")
    return Path(value) if value else None


def _run_dir_of(checkpoint: Path) -> Path | None:
    """A checkpoint's run directory: the folder holding it or its parent, when it has the run's config.yaml."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder
    return None


def _run_dirs(weights: Path, run_dir: Path | None) -> list[Path]:
    """Where a tokenizer may be: the run directory, the checkpoint's folders, and ``runs/<run_name>``."""
    from trainforge.checkpoint.io import safe_load

    dirs = [d for d in (run_dir, weights.parent, weights.parent.parent) if d is not None]
    ckpt = safe_load(weights)
    training = ckpt.get("training_config") or {}
    if training.get("output_dir"):
        dirs.append(Path(training["output_dir"]))
    if ckpt.get("run_name"):
        dirs.append(Path("runs") / str(ckpt["run_name"]))
    return list(dict.fromkeys(dirs))


# ---------------------------------------------------------------- at the end of `trainforge train`


def record_final_model(spec: dict[str, Any], results: dict[str, Any]) -> Path:
    """Write the final weights (with the model and task records) to ``<run_dir>/model.pt``, and the byte tokenizer
    of the embedded corpus to ``<run_dir>/tokenizer``, so ``trainforge generate <run_dir>`` needs nothing else."""
    from trainforge.checkpoint.io import FORMAT_VERSION, atomic_save
    from trainforge.data.tokenizers import ByteTokenizer, save_tokenizer

    run_dir = Path(results["run_dir"])
    record: dict[str, Any] = {"format_version": FORMAT_VERSION, "kind": "final", "run_name": results.get("run_name"),
                              "model": results["final_model_state"]}
    for key, name in (("model_config", "model_config.json"), ("task_spec", "task_spec.json")):
        if (run_dir / name).is_file():
            record[key] = json.loads((run_dir / name).read_text())
    path = atomic_save(record, run_dir / FINAL_WEIGHTS)
    data = spec.get("data") or {}
    if isinstance(data, dict) and "train" not in data and not (run_dir / "tokenizer").exists():
        save_tokenizer(ByteTokenizer(specials=()), run_dir / "tokenizer")  # the embedded corpus is UTF-8 bytes
    return path


def sample_after_training(spec: dict[str, Any], results: dict[str, Any], max_new_tokens: int = 120) -> str | None:
    """A short sample from the trained model (language models only; None otherwise)."""
    from trainforge.checkpoint.io import load_model_state
    from trainforge.data.tokenizers import load_tokenizer
    from trainforge.generation import generate
    from trainforge.runspec import build_model_from_spec

    run_dir = Path(results["run_dir"])
    task_file = run_dir / "task_spec.json"
    if not task_file.is_file() or json.loads(task_file.read_text()).get("task_type") != "language_modeling":
        return None
    if not (run_dir / "tokenizer").is_dir():
        return None
    model, _ = build_model_from_spec(spec["model"])
    load_model_state(model, results["final_model_state"], "the trained model")
    seed = int((spec.get("training") or {}).get("seed", 0))
    text: str = generate(model, SAMPLE_PROMPT, max_new_tokens, temperature=0.8, top_k=40, seed=seed,
                         tokenizer=load_tokenizer(run_dir / "tokenizer"))
    return text
