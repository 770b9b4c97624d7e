"""A training run for the distributed tests, launched by torchrun (or as one process).

Trains the ``tiny`` preset (model and TrainingConfig) on a slice of the embedded corpus and writes, from rank 0,
``final.pt`` (the final weights) and ``results.json`` (loss history, world size) into ``--out``.

``--kill-at K`` SIGKILLs rank ``--kill-rank`` at the end of optimizer step K: a real crash, no clean-up.
``--nan-at 5,6,7`` wraps the model so that those training forwards (counted from fit start) return NaN logits
(the NaN guard skips them and, after 3 in a row, rolls back to its last good snapshot).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import torch


class NanAt(torch.nn.Module):
    """The model, with NaN logits on the training forwards numbered in ``calls`` (also a callback: fit start)."""

    def __init__(self, model: torch.nn.Module, calls: set[int]) -> None:
        super().__init__()
        self.inner, self.calls, self.n, self.armed = model, calls, 0, False

    def on_fit_start(self, state) -> None:
        self.armed = True  # the trainer's probe forwards before fit are not counted

    def forward(self, input_ids):
        logits = self.inner(input_ids)
        if self.training and self.armed:
            self.n += 1
            if self.n in self.calls:
                return logits * float("nan")
        return logits


class KillAt:
    def __init__(self, step: int, rank: int) -> None:
        self.step, self.rank = step, rank

    def on_step_end(self, state) -> None:
        if state.global_step == self.step and int(os.environ.get("RANK", "0")) == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--ckpt-dir", default=None)
    parser.add_argument("--every", type=int, default=None, help="checkpoint_every_n_steps")
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--kill-rank", type=int, default=1)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--max-bytes", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--accum", type=int, default=1, help="gradient_accumulation_steps")
    parser.add_argument("--export", default=None, help="export_dir (torchscript + safetensors bundle)")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--val-samples", type=int, default=None, help="keep the first N validation samples")
    parser.add_argument("--nan-at", default=None, help="comma-separated training forwards that return NaN")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from trainforge import TaskSpec, Trainer, TrainingConfig
    from trainforge.config import get_preset
    from trainforge.data.corpus import default_lm_dataset
    from trainforge.models import build_model

    torch.manual_seed(0)
    model, model_config = build_model("tiny")
    train, val = default_lm_dataset(block_size=model_config.max_seq_len, max_bytes=args.max_bytes)
    train = train[: len(train) // 4 * 4]  # divisible by the world sizes compared (no padded duplicates)
    if args.val_samples is not None:
        val = val[: args.val_samples]
    task = TaskSpec.language_modeling(name="tiny", vocab_size=model_config.vocab_size,
                                      max_seq_len=model_config.max_seq_len)
    values = {**get_preset("tiny"), "batch_size": args.batch_size, "epochs": args.epochs, "progress_bar": False,
              "output_dir": str(Path(args.out) / "run"), "checkpoint_dir": args.ckpt_dir,
              "checkpoint_every_n_steps": args.every, "device": args.device, "strategy": args.strategy,
              "gradient_accumulation_steps": args.accum, "max_steps": args.max_steps}
    if args.export:
        values.update(export_bundle=True, export_dir=args.export, export_formats=["torchscript", "safetensors"])
    if args.precision:
        values["precision"] = args.precision
    cfg = TrainingConfig.from_dict(values)
    callbacks: list = [KillAt(args.kill_at, args.kill_rank)] if args.kill_at is not None else []
    if args.nan_at:
        model = NanAt(model, {int(n) for n in args.nan_at.split(",")})
        callbacks.append(model)
    results = Trainer(model, model_config, cfg, task, callbacks=callbacks).train(train, val, resume_from=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(results["final_model_state"], out / "final.pt")
        summary = {"loss_history": results["loss_history"], "val_loss_history": results["val_loss_history"],
                   "world_size": results["world_size"], "strategy": results["strategy"],
                   "global_step": results["global_step"],
                   "checkpoint_paths": results["checkpoint_paths"], "export_dir": results.get("export_dir"),
                   "export_error": results.get("export_error"), "skipped_steps": results["skipped_steps"],
                   "nan_rollbacks": results["nan_rollbacks"]}
        (out / "results.json").write_text(json.dumps(summary))
    from trainforge.distributed import shutdown

    shutdown()


if __name__ == "__main__":
    main()
