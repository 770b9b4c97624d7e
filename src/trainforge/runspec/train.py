"""Build and train what a run spec names (the dict :func:`~trainforge.runspec.load_run_spec` returns).

One builder for ``trainforge train``, queue jobs and sweep trials: the model from ``model:`` (``{preset: tiny,
...}`` or ``module:function``, see :mod:`trainforge.runspec.model`), the data from ``data:`` (the embedded corpus
``{max_bytes: N}``, the user's files ``{train: path, ...}``, a prepared token folder ``{tokens: DIR}``, see
:mod:`trainforge.runspec.tokens`, or the user's ``module:function`` returning ``(train, val)`` or
``(train, val, task)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trainforge.errors import ConfigError
from trainforge.runspec.model import build_model_from_spec
from trainforge.runspec.spec import import_function


def train_spec(spec: dict[str, Any], callbacks: Sequence[Any] = (), say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build everything the run spec names and train; returns ``Trainer.train``'s results.

    ``say`` receives one line describing the data (the CLI prints it; jobs and trials stay quiet).
    """
    from trainforge.config import TrainingConfig
    from trainforge.tasks import TaskSpec
    from trainforge.trainer import Trainer

    try:
        training_config = TrainingConfig.from_dict(spec["training"])
    except ConfigError as exc:  # say where the values came from
        raise ConfigError(exc.problems, what=f"TrainingConfig (from {spec.get('source', 'the run spec')})") from exc
    from trainforge.checkpoint.rng import seed_everything

    # The model is built here, before Trainer.train seeds: seed now too, so that the same config gives the same
    # initial weights in any process (a sweep's first trial in a fresh worker used to differ from a re-run).
    seed_everything(training_config.seed)
    data = spec.get("data") or {}
    task_extra = dict(spec.get("task") or {})
    if isinstance(data, str):
        model, model_config = build_model_from_spec(spec["model"])
        made = import_function(data, "data")()
        if isinstance(made, dict):
            train, val, task = made["train"], made.get("val"), made.get("task")
        elif isinstance(made, tuple) and len(made) in (2, 3):
            train, val, task = made if len(made) == 3 else (*made, None)
        else:
            raise ConfigError([f"data: {data!r} must return (train, val), (train, val, task_spec) or a dict with "
                               f"train/val/task, got {type(made).__name__}."], what="run")
        if task is None:
            vocab = int(getattr(model_config, "vocab_size", 256))
            block = int(getattr(model_config, "max_seq_len", 64))
            task = TaskSpec.language_modeling(name="user-data", vocab_size=vocab, max_seq_len=block, **task_extra)
        trainer = Trainer(model, model_config, training_config, task, callbacks=callbacks)
        return trainer.train(train, val)
    if "train" in data:
        return _train_on_files(spec, training_config, callbacks, say)
    if "tokens" in data:
        from trainforge.runspec.tokens import train_on_tokens

        return train_on_tokens(spec, training_config, callbacks, say)
    from trainforge.data.corpus import default_lm_dataset

    model, model_config = build_model_from_spec(spec["model"])
    block = int(getattr(model_config, "max_seq_len", 64))
    rest = dict(data)
    max_bytes = int(rest.pop("max_bytes", 300_000))
    if rest:
        raise ConfigError([f"data: unknown keys {sorted(rest)}; the embedded corpus takes data: {{max_bytes: N}}, "
                           "files take data: {train: path, ...}, token files from `trainforge prepare` take data: {tokens: DIR}, or "
                           "give data: 'module:function'."], what="run")
    train_blocks, val_blocks = default_lm_dataset(block_size=block, max_bytes=max_bytes)
    vocab = int(getattr(model_config, "vocab_size", 256))
    task = TaskSpec.language_modeling(name="stdlib-bytes", vocab_size=vocab, max_seq_len=block, **task_extra)
    if say is not None:
        say(f"[trainforge] preset={spec.get('preset')} model={type(model).__name__} train={len(train_blocks)} "
            f"blocks val={len(val_blocks)} blocks of {block} bytes (the embedded stdlib corpus)")
    return Trainer(model, model_config, training_config, task, callbacks=callbacks).train(train_blocks, val_blocks)


def _train_on_files(
    spec: dict[str, Any], cfg: Any, callbacks: Sequence[Any], say: Callable[[str], None] | None
) -> dict[str, Any]:
    """``data: {train: path, val: path, format: ...}``: the user's own files (see trainforge.data.readers)."""
    from trainforge.data.module import UniversalDataModule
    from trainforge.data.readers import build_data_from_spec, task_for_data, tokenizer_from_spec
    from trainforge.data.tokenizers import tokenizer_vocab_size
    from trainforge.trainer import Trainer

    data = dict(spec["data"])
    tokenizer = tokenizer_from_spec(data)
    model_spec = spec["model"]
    if isinstance(model_spec, dict) and tokenizer is not None and "vocab_size" not in model_spec:
        model_spec = {**model_spec, "vocab_size": tokenizer_vocab_size(tokenizer)}
    model, model_config = build_model_from_spec(model_spec)
    train, val, tokenizer = build_data_from_spec(data, model_config, tokenizer=tokenizer)
    task = task_for_data(data, train, tokenizer, model_config, name=str((spec.get("task") or {}).get("name",
                                                                                                  "user-data")))
    module = UniversalDataModule(train, val, task, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                 seed=cfg.seed, validation_split=cfg.validation_split, shuffle=cfg.shuffle,
                                 tokenizer=tokenizer)
    if say is not None:
        say(f"[trainforge] data={data['train']} format={data.get('format', 'auto')} {module} task={task.task_type}")
    trainer = Trainer(model, model_config, cfg, task, callbacks=callbacks)
    return trainer.train(module.train_dataloader(), module.val_dataloader())
