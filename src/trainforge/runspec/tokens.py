"""A run file's ``data: {tokens: DIR}``: train on the token files ``trainforge prepare`` wrote into DIR.

Windows of ``model.max_seq_len`` tokens from ``DIR/train.bin`` (memory-mapped: memory does not grow with the
corpus); ``DIR/val.bin`` is the validation data when it exists. The model's vocabulary defaults to the corpus's
(``vocab_size`` in meta.json) and must hold it; the tokenizer in ``DIR/tokenizer`` is saved with the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainforge.errors import ConfigError
from trainforge.runspec.model import build_model_from_spec

KEYS = ("tokens", "stride")


def train_on_tokens(spec: dict[str, Any], cfg: Any, callbacks: Sequence[Any],
                    say: Callable[[str], None] | None) -> dict[str, Any]:
    """Build the model, the TokenFiles and the task a ``data: {tokens: DIR}`` run file names, and train."""
    from trainforge.data.module import UniversalDataModule
    from trainforge.data.tokenfile import TokenFile, read_meta
    from trainforge.data.tokenizers import load_tokenizer, model_vocab_size
    from trainforge.tasks import TaskSpec
    from trainforge.trainer import Trainer

    data = dict(spec["data"])
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError([f"data: unknown keys {unknown} next to tokens:; a token folder takes data: {{tokens: DIR}} "
                           "(optionally stride: N, the tokens between window starts)."], what="run")
    directory = Path(str(data["tokens"]))
    meta = read_meta(directory)  # a clear error for a folder that prepare did not finish
    vocab = int(meta["vocab_size"])
    model_spec = spec["model"]
    if isinstance(model_spec, dict) and "vocab_size" not in model_spec:
        model_spec = {**model_spec, "vocab_size": vocab}  # the model fits the corpus unless told otherwise
    model, model_config = build_model_from_spec(model_spec)
    rows = model_vocab_size(model) or getattr(model_config, "vocab_size", None)
    if rows is not None and int(rows) < vocab:
        raise ConfigError([f"data.tokens {str(directory)!r} holds ids of a {vocab}-token vocabulary (meta.json "
                           f"vocab_size) but the model's token embedding has {rows} rows. Fix: set model.vocab_size: "
                           f"{vocab} (or leave it out: it defaults to the corpus's), or prepare the text with a smaller "
                           "tokenizer."], what="run")
    block = getattr(model_config, "max_seq_len", None)
    if not isinstance(block, int):
        raise ConfigError([f"data.tokens needs the model's max_seq_len for the window length, but the model config "
                           f"({type(model_config).__name__}) has none. Fix: give the model a max_seq_len."], what="run")
    stride = data.get("stride")
    train = TokenFile(directory / "train.bin", block, stride)
    val = TokenFile(directory / "val.bin", block, stride) if "val.bin" in meta["files"] else None
    task = TaskSpec.language_modeling(name=str((spec.get("task") or {}).get("name", directory.name or "tokens")),
                                      vocab_size=int(rows or vocab), max_seq_len=block,
                                      **{k: v for k, v in (spec.get("task") or {}).items() if k != "name"})
    tokenizer_dir = directory / "tokenizer"
    tokenizer = load_tokenizer(tokenizer_dir) if tokenizer_dir.is_dir() else None
    module = UniversalDataModule(train, val, task, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                 seed=cfg.seed, validation_split=cfg.validation_split, shuffle=cfg.shuffle,
                                 tokenizer=tokenizer, max_train_samples=cfg.max_train_samples,
                                 max_val_samples=cfg.max_val_samples)
    if say is not None:
        say(f"[trainforge] data={directory} train={len(train):,} windows of {block} tokens "
            f"({meta['train_tokens']:,} tokens, {meta['dtype']}) val="
            f"{f'{len(val):,} windows' if val is not None else 'none'} vocab={vocab} model={type(model).__name__}")
    trainer = Trainer(model, model_config, cfg, module.task_spec, callbacks=callbacks)
    return trainer.train(module.train_dataloader(), module.val_dataloader())
