"""``Trainer``: checks its inputs, builds every component from the configs, then runs ``loop.fit``."""

from __future__ import annotations

import json
import secrets
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from trainforge import __version__
from trainforge.callbacks.early_stopping import EarlyStopping
from trainforge.checkpoint.io import (
    atomic_write_text,
    canonical_state_dict,
)
from trainforge.checkpoint.ownership import claim_directories, new_run_id, stored_run_name, write_run_record
from trainforge.checkpoint.rng import seed_everything
from trainforge.checkpoint.saver import CheckpointSaver
from trainforge.config import TrainingConfig
from trainforge.data.collators import get_collator
from trainforge.data.inputs import as_dataset, label_alias_note, limit_samples, split_dataset
from trainforge.data.module import resume_handle
from trainforge.data.sampler import ResumableSampler
from trainforge.data.streaming import ResumableIterable
from trainforge.data.tensor_loader import (
    TensorBatchLoader,
    batches_on,
    every_target_counts,
    finishes_batches,
    is_tensor_backed,
)
from trainforge.data.tokenizers import check_vocab, save_tokenizer
from trainforge.distributed import fsdp
from trainforge.distributed.env import DistEnv, from_environment
from trainforge.errors import ConfigError, DataError, TrainforgeError
from trainforge.notebook.guardrails import check_not_data_parallel, check_notebook_strategy, notebook_device
from trainforge.safe_paths import inside
from trainforge.tasks import TaskSpec
from trainforge.trainer import val_sets
from trainforge.trainer.adapter import ModelAdapter
from trainforge.trainer.attention import describe_attention, enable_fast_sdpa
from trainforge.trainer.events import Callback, Event, fire
from trainforge.trainer.guard import LrScale, StepGuard, decides_on_device
from trainforge.trainer.loop import Loader, Parts, _to_device, fit
from trainforge.trainer.monitor import Monitor
from trainforge.trainer.optim import (
    OptimizerArg,
    SchedulerFactory,
    build_optimizer,
    build_scheduler,
    custom_optimizer,
)
from trainforge.trainer.precision import autocast_factory, make_scaler, resolve_device, resolve_precision
from trainforge.trainer.preemption import Preemption
from trainforge.trainer.results import build_results
from trainforge.trainer.resume import RunCheckpoint, config_dict, find_checkpoint, rebase_position
from trainforge.trainer.state import TrainState
from trainforge.trainer.user_metrics import UserMetrics, check_metrics


class Trainer:
    """Trains a plain ``nn.Module`` on a task.

    Args:
        model: the model to train (any ``nn.Module``; see ``trainer.adapter`` for the forwards it adapts to).
        config: the model's own architecture config (dataclass, dict, Hugging Face config or None); stored
            with checkpoints and exports.
        training_config: how to train; defaults to ``TrainingConfig()``.
        task_spec: what the task is (loss, metrics, fields), e.g. ``TaskSpec.language_modeling(...)``.
        callbacks: extra observers with ``on_<event>(state)`` methods.
        optimizer: your own optimizer instead of ``training_config.optimizer``: an instance built on the model's
            parameters, or a factory ``params -> Optimizer`` (called with the trainable parameters).
        scheduler: your own learning-rate schedule instead of the config's: a factory ``optimizer -> LRScheduler``,
            stepped once per optimizer step. Both are saved in checkpoints and resumed exactly.
        metrics: your own validation metrics, ``{name: metric}``: torchmetrics ``Metric`` objects or any object with
            ``update(preds, target)`` / ``compute()`` / ``reset()``; logged as ``val/<name>`` and usable as
            ``monitor`` (what ``update`` receives, and the rule in distributed runs: ``trainer/user_metrics.py``).
    """

    def __init__(
        self,
        model: nn.Module,
        config: Any = None,
        training_config: TrainingConfig | None = None,
        task_spec: TaskSpec | None = None,
        *,
        callbacks: Sequence[Any] = (),
        optimizer: OptimizerArg = None,
        scheduler: SchedulerFactory = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(config, TrainingConfig) and (training_config is None or isinstance(training_config, TaskSpec)):
            raise ConfigError(
                ["Trainer arguments are shifted: the 2nd argument is the model's architecture config and the 3rd "
                 "the TrainingConfig, got a TrainingConfig as 2nd. Fix: Trainer(model, model_config, "
                 "training_config, task_spec), or pass model_config=None."],
                what="Trainer",
            )
        problems = []
        if not isinstance(model, nn.Module):
            problems.append(f"model: expected a torch.nn.Module, got {type(model).__qualname__}. "
                            "Fix: pass the model instance (not its class or a state dict).")
        if (data_parallel := check_not_data_parallel(model)) is not None:
            problems.append(data_parallel)
        if training_config is not None and not isinstance(training_config, TrainingConfig):
            problems.append(f"training_config: expected a TrainingConfig, got {type(training_config).__qualname__}. "
                            "Fix: build one with TrainingConfig(...) or TrainingConfigBuilder.")
        if not isinstance(task_spec, TaskSpec):
            problems.append(f"task_spec: expected a TaskSpec, got {type(task_spec).__qualname__}. "
                            "Fix: e.g. TaskSpec.language_modeling(name='lm', vocab_size=..., max_seq_len=...).")
        problems += _extension_problems(optimizer, scheduler)
        problems += check_metrics(metrics, task_spec if isinstance(task_spec, TaskSpec) else None)
        if problems:
            raise ConfigError(problems, what="Trainer")
        assert isinstance(task_spec, TaskSpec)
        self.model = model
        self.model_config = config
        self.training_config = training_config if training_config is not None else TrainingConfig()
        self.task_spec = task_spec
        self.callbacks = list(callbacks)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.metrics = dict(metrics or {})
        _check_model_config(config, task_spec)

    # ------------------------------------------------------------------ train
    def train(self, train_data: Any, val_data: Any = None, resume_from: str | Path | None = None) -> dict[str, Any]:
        """Train and return the results dict (``loss_history``, ``metrics_summary``, ``best_epoch``,
        ``checkpoint_paths``, ``final_model_state`` and extras).

        Args:
            train_data: a Dataset, DataLoader, HF Dataset, tensor [N, T], list of samples or (inputs, labels).
            val_data: the same forms, a dict of named sets ``{"wiki": ..., "code": ...}`` (logged as
                ``val/<name>/loss`` etc.; the first one monitored by default), or None (then ``validation_split``
                may carve one from train_data).
            resume_from: ``"auto"`` (newest checkpoint in ``checkpoint_dir``) or a checkpoint path; overrides
                ``training_config.resume_from_checkpoint``.
        """
        cfg = self.training_config
        cfg.validate()
        task = self.task_spec
        check_notebook_strategy(cfg.strategy)  # a kernel is one process: ddp/fsdp there need ALLOW_NOTEBOOK_DDP=1
        dist_env = from_environment(cfg.strategy)
        device = _device_for(notebook_device(cfg.device), dist_env)  # one GPU in a notebook, said so
        seed_everything(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        train_loader, sampler, samples_per_batch, val_loaders = self._loaders(train_data, val_data, dist_env)
        monitor = Monitor.for_run(cfg, task, has_validation=bool(val_loaders),  # a typo fails here, not never
                                  user_metrics=self.metrics, val_sets=list(val_loaders))
        model = self.model.to(device)
        precision = resolve_precision(cfg.precision, cfg.use_amp, device)
        skeleton = None
        if dist_env.sharded:  # FSDP shards in place, before the optimizer sees the parameters (now DTensor shards)
            if fsdp.is_fsdp(model):
                raise ConfigError(["strategy='fsdp' shards the model in place, and this model is already sharded "
                                   "(by an earlier train() or fully_shard). Fix: build a fresh model (load the "
                                   "checkpoint to continue), or train it under strategy='fsdp' only once."],
                                  what="Trainer.train")
            if isinstance(self.optimizer, torch.optim.Optimizer):
                raise ConfigError(["optimizer: strategy='fsdp' replaces the model's parameters with shards, so an "
                                   "optimizer built beforehand holds the old ones. Fix: pass a factory, "
                                   "optimizer=lambda params: torch.optim.AdamW(params, lr=...)."], what="Trainer")
            fsdp.check_backend(device)
            skeleton = fsdp.plain_skeleton(model)  # on the meta device: checkpoint checks and the export's module
            fsdp.shard(model, precision, device)
        adapter = ModelAdapter(model, task)
        optimizer = (build_optimizer(model, cfg, device) if self.optimizer is None
                     else custom_optimizer(model, self.optimizer))
        steps_per_epoch = _steps_per_epoch(train_loader, cfg.gradient_accumulation_steps)
        total_steps = _total_steps(cfg, steps_per_epoch)
        lr_scale = LrScale()  # lowered by the step guard's rollbacks; the schedule multiplies by it
        scheduler = build_scheduler(optimizer, cfg, total_steps, self.scheduler, lr_scale=lr_scale)
        scaler = make_scaler(precision, device)
        callbacks = self._callbacks(monitor)
        state = TrainState()
        state.reset_epoch_sums(device)

        states = RunCheckpoint(model, optimizer, scheduler, scaler, callbacks, cfg, task, self.model_config, dist_env,
                               sampler, samples_per_batch, device, skeleton=skeleton, total_steps=total_steps)
        resume = resume_from if resume_from is not None else cfg.resume_from_checkpoint
        checkpoint = find_checkpoint(resume, cfg.checkpoint_dir)
        pending_rng = None
        run_name = cfg.run_name
        run_id = new_run_id()
        if checkpoint is not None:
            pending_rng = states.restore(checkpoint, state)
            rebase_position(checkpoint, state, samples_per_batch, dist_env, device)
            if isinstance(checkpoint.get("run_id"), str):
                run_id = checkpoint["run_id"]  # the same run, continued
            run_name = run_name or stored_run_name(checkpoint, checkpoint["_path"], f"run-{run_id[:12]}")
        run_name = states.run_name = run_name or _new_run_name(None if cfg.output_dir else Path("runs"))
        states.run_id = run_id
        run_dir = Path(cfg.output_dir) if cfg.output_dir else Path("runs") / run_name

        tokenizer = getattr(train_loader, "tokenizer", None)
        check_vocab(model, tokenizer, task)  # tokenizer vs model embedding vs TaskSpec, before any batch
        # Probe one batch before step 0: bad token ids, label ranges and unusable outputs fail here, clearly.
        first = next(iter(train_loader), None)
        if first is None:
            raise DataError("train_data produced no batches. Fix: pass at least one sample (and batch_size ≤ N "
                            "if the DataLoader drops the last batch).")
        first = _to_device(first, device)
        task.validate_batch(first)
        with autocast_factory(precision, device)():
            mode = adapter.probe(model, first, task.targets(first))
        if dist_env.sharded:  # the root keeps its parameters unsharded after a forward: back to the DTensor shards
            fsdp.reshard(model)  # (``model.parameters()`` below must be the optimizer's, for clipping)
        kernels = enable_fast_sdpa(device)
        attention = describe_attention(model)
        from trainforge.tracking.memory import estimate_before_training

        # (not under FSDP: the sample forward is collective there, and the estimate is of an unsharded model)
        memory = estimate_before_training(model, first, adapter, task, autocast_factory(precision, device),
                                          optimizer=optimizer, device=device,
                                          accumulation=cfg.gradient_accumulation_steps) \
            if dist_env.is_main and not dist_env.sharded else None

        from trainforge.logging import ProgressBar, build_loggers  # after validation: no files for bad input

        if dist_env.is_main:  # one run per directory: before step 0 and before this run writes anything
            # An earlier train() in this process may still draw its plots into this directory (this run resumes or
            # overwrites it): let it finish before its files are removed or appended to.
            if (tracking_run := sys.modules.get("trainforge.tracking.run")) is not None:
                tracking_run.wait_for_plots()
            removed = claim_directories(cfg.checkpoint_dir, run_dir, run_id=run_id, resumed=checkpoint is not None,
                                        may_start_over=str(resume) == "auto", overwrite=cfg.overwrite)
            if removed:
                print(f"[trainforge] overwrite=True: removed {len(removed)} files of the earlier run "
                      f"({', '.join(Path(p).name for p in removed[:6])}{' ...' if len(removed) > 6 else ''}).")
            _write_run_files(run_dir, cfg, task, self.model_config)
            write_run_record(run_dir, run_id, run_name)
            if tokenizer is not None:
                save_tokenizer(tokenizer, run_dir / "tokenizer")
        progress = ProgressBar(total=total_steps, desc=run_name, enabled=cfg.progress_bar and dist_env.is_main,
                               initial=state.global_step)
        tracker = None
        if cfg.track_runs and dist_env.is_main:  # the experiment database: <run_dir parent>/trainforge_runs.db
            from trainforge.tracking.run import start_run

            tracker = start_run(run_name, run_dir, config=cfg.to_dict(), task_spec=task.to_dict(),
                                model_config=config_dict(self.model_config), version=__version__)
        logger = build_loggers(
            run_dir=str(run_dir), total_epochs=cfg.epochs, use_wandb=cfg.use_wandb, wandb_project=cfg.wandb_project,
            wandb_entity=cfg.wandb_entity, run_name=run_name, notes=cfg.notes, tags=cfg.tags,
            is_main_process=dist_env.is_main, resume=checkpoint is not None,
            console_stream=cast(TextIO, progress.stream()) if progress.enabled else None,
            loggers=cfg.loggers, extra=[tracker] if tracker is not None else [],
            dashboard_min_interval_s=cfg.dashboard_min_interval_s,
        )
        logger.log_config({"training": cfg.to_dict(), "task": task.to_dict(),
                           "model": config_dict(self.model_config), "precision": precision,
                           "attention": attention, "device": str(device), "world_size": dist_env.world_size})
        if dist_env.is_main:
            n_params = sum(p.numel() for p in model.parameters())
            resumed = f" | resumed at step {state.global_step}" if checkpoint is not None else ""
            progress.write(
                f"[trainforge] {run_name} | {n_params / 1e6:.2f}M params | attention {attention} | {precision} on "
                f"{device} | {total_steps if total_steps is not None else '?'} steps{resumed} | run dir {run_dir}"
            )
            if memory is not None:
                progress.write(f"[trainforge] {memory.summary()}")
            if (note := label_alias_note(train_data, task)) is not None:
                progress.write(f"[trainforge] {note}")
        for row in state.history:  # a resumed run is the same run: its metrics file keeps the earlier epochs
            logger.log_epoch(row, int(row.get("step", 0)))

        forward_model = _wrap(model, cfg, dist_env, device)

        def build(st: TrainState, kind: str) -> dict[str, Any] | None:
            # Checkpoints hold the epoch's running sums over all ranks, so they resume on any world size.
            sums = tuple(dist_env.sum(x) for x in st.epoch_sums()) if dist_env.enabled else None
            # FSDP: gathering the full model and optimizer state is collective, so every rank builds the payload
            payload = states.payload(st, kind) if dist_env.is_main or dist_env.sharded else None
            if not dist_env.is_main or payload is None:
                return None
            if sums is not None:
                payload["state"].update(epoch_loss_sum=sums[0].cpu(), epoch_targets=sums[1].cpu())
            return payload

        def saved(st: TrainState, path: Path) -> None:
            st.checkpoint_path = str(path)
            fire(callbacks, Event.CHECKPOINT_SAVED, st)

        saver = CheckpointSaver(cfg.checkpoint_dir, build=build, checkpoint_frequency=cfg.checkpoint_frequency,
                                keep_last_n=cfg.keep_last_n, save_best=cfg.save_best, on_saved=saved,
                                wait_each=_observes_checkpoints(callbacks), on_error=cfg.on_checkpoint_error,
                                barrier=dist_env.barrier, run_id=run_id)

        params = [p for p in model.parameters() if p.requires_grad]

        def snapshot(st: TrainState) -> dict[str, Any]:  # the guard's rollback point: what a checkpoint holds
            payload = states.payload(st, "snapshot")
            if parts.pending_rng is not None:  # resumed, RNG not restored yet: the checkpoint's RNG is the state's
                payload["rng"] = parts.pending_rng
            return payload

        def restore(payload: dict[str, Any], st: TrainState) -> None:  # a rollback is a resume from memory
            payload["_path"] = f"<last good state in memory, step {payload['state']['global_step']}>"
            parts.pending_rng = states.restore(payload, st)

        def save_step(st: TrainState) -> str | None:  # the guard's stop path: the restored good state
            st.checkpoint_path = None
            saver.step(st)
            return st.checkpoint_path

        guard = states.guard = StepGuard(
            enabled=cfg.nan_guard, max_consecutive=cfg.nan_max_consecutive, lr_factor=cfg.nan_lr_factor,
            max_rollbacks=cfg.nan_max_rollbacks, optimizer=optimizer, params=params, lr_scale=lr_scale,
            snapshot=snapshot, restore=restore, save=save_step if cfg.checkpoint_dir else None,
            on_device=decides_on_device(optimizer, dist_env.enabled or dist_env.sharded, scaler is not None),
            scaled=scaler is not None, agree=dist_env.sum if dist_env.enabled else None,
            say=progress.write if dist_env.is_main else (lambda line: None))
        if checkpoint is not None:
            guard.load_state_dict(checkpoint)  # counters, lr scale, and the snapshot of a streak in progress
        parts = Parts(
            cfg=cfg, task=task, model=forward_model, raw_model=model, adapter=adapter, optimizer=optimizer,
            scheduler=scheduler, scaler=scaler, train_loader=train_loader, sampler=sampler, val_loaders=val_loaders,
            samples_per_batch=samples_per_batch,
            device=device, autocast=autocast_factory(precision, device), dist=dist_env, callbacks=callbacks,
            logger=logger, progress=progress, saver=saver, monitor=monitor, guard=guard,
            pending_rng=pending_rng, compile_pending=forward_model is not model and cfg.compile_mode is not None,
            params=params,
            every_target_counts=every_target_counts(train_loader, task),
            batches_on_device=batches_on(train_loader, device),
            user_metrics=UserMetrics(self.metrics, task) if self.metrics else None,
        )
        parts.preemption = preemption = Preemption()  # SIGTERM/SIGINT: stop at a step boundary, with a checkpoint
        from trainforge.tracking.telemetry import LoopTelemetry, flops_per_token, peak_flops

        seq_len = next((int(v.shape[1]) for v in first.values() if v.dim() >= 2), None)
        parts.telemetry = LoopTelemetry(device, flops_per_token(model, seq_len), peak_flops(device, precision))
        started = time.perf_counter()
        try:
            with preemption:
                fit(parts, state)
        except BaseException as exc:
            saver.abort()  # an interrupted run's last checkpoint is durable first
            state.exception = exc
            fire(callbacks, Event.EXCEPTION, state)
            progress.close()
            logger.close()
            if tracker is not None:
                from trainforge.tracking.run import exit_status

                tracker.finish(exit_status(exc), {"epochs_completed": state.epoch, "global_step": state.global_step,
                                                  "best_epoch": state.best_epoch, "best_metric": state.best_metric},
                               error=f"{type(exc).__name__}: {exc}")
            if isinstance(exc, IndexError) and "index out of range" in str(exc):
                raise DataError(
                    f"A token or label id is out of the model's range ({exc}). Fix: make sure every id is below "
                    f"the model's vocab_size / num_classes (TaskSpec vocab_size={task.vocab_size})."
                ) from exc
            raise
        saver.close()  # FIT_END waited for the commits: this only stops the commit thread
        progress.close()
        # FSDP: the full weights, gathered to rank 0 (other ranks get {}); the plain module's keys either way
        final_state = fsdp.full_model_state(model) if dist_env.sharded else None
        results = build_results(
            state, model, final_state=final_state, checkpoint_dir=cfg.checkpoint_dir, run_dir=run_dir,
            training_time_s=time.perf_counter() - started,
            extras={"precision": precision, "attention_implementation": attention, "sdpa_kernels": kernels,
                    "loss_mode": mode, "device": str(device), "world_size": dist_env.world_size,
                    "strategy": dist_env.strategy, "checkpoint_errors": saver.errors, "run_name": run_name,
                    "skipped_steps": len(guard.records), "skipped_step_records": list(guard.records),
                    "nan_rollbacks": guard.rollbacks, "preempted": preemption.received is not None},
        )
        results["final_model_state"] = canonical_state_dict(results["final_model_state"])
        if cfg.export_bundle and dist_env.is_main:
            plain = model if skeleton is None else fsdp.materialize(skeleton, results["final_model_state"])
            results.update(self._export(plain, run_name, tokenizer))
        tokens_per_s = [r["tokens_per_s"] for r in state.history if isinstance(r.get("tokens_per_s"), float)]
        results["telemetry"] = parts.telemetry.summary(results["training_time_s"],
                                                       sum(tokens_per_s) / len(tokens_per_s) if tokens_per_s else None)
        results["memory_estimate"] = memory.to_dict() if memory is not None else None
        results["monitor"] = monitor.name
        results["last_checkpoint"] = results["checkpoint_paths"][-1] if results["checkpoint_paths"] else None
        logger.log_summary({k: v for k, v in results.items() if isinstance(v, (int, float, str)) or v is None})
        logger.close()
        if dist_env.is_main:  # plots into the run directory, then the final row of the experiment database
            from trainforge.tracking.run import finish_run

            finish_run(tracker, results, status="interrupted" if results.get("preempted") else "finished",
                       plots=cfg.plots)
        self.results = results
        return results

    # ------------------------------------------------------ evaluate, predict
    def evaluate(self, data: Any) -> dict[str, float]:
        """The validation metrics of the model's current weights on ``data`` (any form ``val_data`` accepts):
        ``{"val/loss": ..., "val/perplexity": ..., "val/<your metric>": ...}``, the keys of the epoch rows, from
        the code that validates at each epoch's end (a dict of named sets gives ``val/<set>/<metric>``). Under torchrun each process evaluates its shard and the
        metrics are reduced over all of them."""
        from trainforge.trainer.offline import evaluate_data

        return evaluate_data(self, data)

    def predict(self, data: Any, output: str = "logits") -> Any:
        """The model's outputs on ``data`` in data order (never shuffled, whatever the config says).

        Args:
            data: any form ``val_data`` accepts; labels are not needed.
            output: ``"logits"`` (the raw logits) or ``"ids"`` (their argmax: class ids, or token ids per position).

        Returns one tensor ``[N, ...]`` (on the CPU) when every batch has the same shape after the first dimension,
        else a list with one tensor per sample (e.g. padded token sequences of different lengths). Under torchrun
        every process predicts all of ``data``.
        """
        from trainforge.trainer.offline import predict_data

        return predict_data(self, data, output)

    def _export(self, model: nn.Module, run_name: str, tokenizer: Any) -> dict[str, Any]:
        """The export bundle, after training. Any failure is reported, never raised: the model is trained."""
        from trainforge.export.after_training import export_after_training

        return export_after_training(model, self.task_spec, self.training_config, run_name,
                                     model_config=self.model_config, tokenizer=tokenizer)

    # ------------------------------------------------------------ building
    def _loaders(
        self, train_data: Any, val_data: Any, dist_env: DistEnv
    ) -> tuple[Loader, ResumableSampler | ResumableIterable | None, int, dict[str, Loader]]:
        cfg, task = self.training_config, self.task_spec
        train = as_dataset(train_data, task, "train_data")
        val = val_sets.val_datasets(val_data, task) if val_data is not None else None  # {name: set}
        if val is None and cfg.validation_split > 0 and not isinstance(train, DataLoader):
            train, split = split_dataset(train, cfg.validation_split, cfg.seed)
            val = {val_sets.UNNAMED: split}
        collate = get_collator(task)  # the task's built-in collator from the registry

        sampler: ResumableSampler | ResumableIterable | None = None
        samples_per_batch = cfg.batch_size
        if isinstance(train, DataLoader):
            train_loader: Loader = train
            handle = resume_handle(train)  # a UniversalDataModule loader: resume by arithmetic on its sampler
            if handle is not None:
                sampler, samples_per_batch = handle
        else:
            train = limit_samples(train, cfg.max_train_samples)
            if isinstance(train, IterableDataset):
                # rank/worker sharding + resume by arithmetic (skips without collating)
                train = sampler = ResumableIterable(train, cfg.batch_size, rank=dist_env.rank,
                                                    world_size=dist_env.world_size)
                train_loader = _loader(train, cfg.batch_size, None, collate, cfg.num_workers, cfg.seed, task)
            else:
                sampler = ResumableSampler(len(train), cfg.seed, cfg.shuffle, dist_env.rank,  # type: ignore[arg-type]
                                           dist_env.world_size)
                train_loader = _loader(train, cfg.batch_size, sampler, collate, cfg.num_workers, cfg.seed, task)
        make_val = lambda ds, s: _loader(ds, cfg.eval_batch_size or cfg.batch_size, s, collate,  # noqa: E731
                                         cfg.num_workers, cfg.seed, task)
        val_loaders = val_sets.val_loaders(val, cfg, dist_env, make_val) if val is not None else {}
        return train_loader, sampler, samples_per_batch, val_loaders

    def _callbacks(self, monitor: Monitor) -> list[Any]:
        cfg = self.training_config
        callbacks = list(self.callbacks)
        if cfg.early_stopping_patience is not None:
            callbacks.append(EarlyStopping(cfg.early_stopping_patience, monitor=monitor))
        return callbacks


# ---------------------------------------------------------------- helpers
def _loader(dataset: Dataset[Any], batch_size: int, sampler: Sampler[int] | None, collate: Any,
            num_workers: int, seed: int, task: TaskSpec) -> DataLoader[Any] | TensorBatchLoader:
    if num_workers == 0 and is_tensor_backed(dataset):  # same batches, without DataLoader plumbing
        return TensorBatchLoader(dataset, batch_size, sampler, collate if finishes_batches(task) else None)
    # The loader's own generator keeps its per-iterator seed draw off the global RNG (exact resume).
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, generator=generator, persistent_workers=False)


def _steps_per_epoch(loader: Loader, accumulation: int) -> int | None:
    try:
        n = len(loader)
    except TypeError:  # an iterable dataset of unknown length
        return None
    return -(-n // accumulation)


def _total_steps(cfg: TrainingConfig, steps_per_epoch: int | None) -> int | None:
    if steps_per_epoch is None:
        if cfg.max_steps is None and cfg.lr_schedule != "constant":
            warnings.warn("The training data has no length and max_steps is not set: the learning rate stays "
                          "constant after warmup. Fix: set max_steps for a decaying schedule.", stacklevel=3)
        return cfg.max_steps
    total = cfg.epochs * steps_per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total


def _device_for(name: str, dist_env: DistEnv) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and dist_env.enabled:  # modulo: ranks may share a GPU (gloo, tests)
        return torch.device("cuda", dist_env.local_rank % max(torch.cuda.device_count(), 1))
    return device


def _wrap(model: nn.Module, cfg: TrainingConfig, dist_env: DistEnv, device: torch.device) -> nn.Module:
    """What runs forward: compiled and/or DDP-wrapped (FSDP: ``model`` is already sharded in place). Checkpoints
    always hold the plain module's weights."""
    wrapped: nn.Module = model
    if cfg.compile_mode is not None:
        try:
            wrapped = torch.compile(model, mode=cfg.compile_mode)  # type: ignore[assignment]
        except Exception as exc:  # e.g. an unsupported Python/platform
            warnings.warn(f"torch.compile unavailable ({exc}); training in eager mode.", stacklevel=3)
    if dist_env.enabled and not dist_env.sharded:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        wrapped = DistributedDataParallel(wrapped, device_ids=ids)
    return wrapped


def _observes_checkpoints(callbacks: Sequence[Any]) -> bool:
    """Whether a callback has its own ``on_checkpoint_saved`` (``Callback``'s no-op does not count).

    Only then does a checkpoint save wait for its commit: the event promises a complete file under its name.
    """
    for cb in callbacks:
        hook = getattr(cb, "on_checkpoint_saved", None)
        if hook is not None and getattr(hook, "__func__", hook) is not Callback.on_checkpoint_saved:
            return True
    return False


def _new_run_name(parent: Path | None) -> str:
    """A fresh run's name: the time and a random tag, drawn again while ``parent/<name>`` exists (a generated name
    must never lead a fresh run into another run's directory, where it would be refused)."""
    while True:
        name = f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        if parent is None or not (parent / name).exists():
            return name


def _config_value(config: Any, key: str) -> Any:
    if isinstance(config, dict):
        return config.get(key)
    return getattr(config, key, None)


def _extension_problems(optimizer: Any, scheduler: Any) -> list[str]:
    """The ``optimizer`` / ``scheduler`` arguments have a usable type (what they build is checked in train)."""
    problems = []
    if optimizer is not None and not (isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer)):
        hint = (f" To choose one by name, use TrainingConfig(optimizer={optimizer!r})." if isinstance(optimizer, str)
                else "")
        problems.append(f"optimizer: expected a torch.optim.Optimizer or a factory params -> Optimizer, got "
                        f"{type(optimizer).__qualname__}.{hint} Fix: e.g. optimizer=lambda params: "
                        "torch.optim.SGD(params, lr=0.1, momentum=0.9).")
    if scheduler is not None and (not callable(scheduler) or (not isinstance(scheduler, type)
                                                               and hasattr(scheduler, "get_last_lr"))):
        problems.append(f"scheduler: expected a factory optimizer -> LRScheduler, got {type(scheduler).__qualname__}. "
                        "Fix: pass a function that builds it on the optimizer it is given (the trainer builds the "
                        "optimizer), e.g. scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 100).")
    return problems


def _check_model_config(config: Any, task: TaskSpec) -> None:
    if config is None or task.vocab_size is None:
        return
    model_vocab = _config_value(config, "vocab_size")
    if isinstance(model_vocab, int) and model_vocab != task.vocab_size:
        raise ConfigError(
            [f"vocab_size: the model config says {model_vocab} but the TaskSpec says {task.vocab_size!r}. "
             "Fix: use the same vocabulary size in both (the TaskSpec's must match the model's output layer)."],
            what="Trainer",
        )


def _write_run_files(run_dir: Path, cfg: TrainingConfig, task: TaskSpec, model_config: Any) -> None:
    from trainforge.config._yaml import yaml_dumps

    run_dir.mkdir(parents=True, exist_ok=True)  # each record is written atomically: old file or whole new one
    atomic_write_text(inside(run_dir, run_dir / "config.yaml"), yaml_dumps(cfg.to_dict()))
    atomic_write_text(inside(run_dir, run_dir / "task_spec.json"), json.dumps(task.to_dict(), indent=2))
    atomic_write_text(inside(run_dir, run_dir / "model_config.json"), json.dumps(config_dict(model_config), indent=2))


__all__ = ["Trainer", "TrainforgeError"]
