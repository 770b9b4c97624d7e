"""The loop's events and the callback protocol.

Callbacks are small objects with optional ``on_<event>(state)`` methods. They observe the run and may ask it to
stop with ``state.request_stop(reason)``; they never change the math (loss, gradients, learning rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainforge.trainer.state import TrainState


class Event(str, Enum):
    """The events fired by ``loop.fit``, in the order of its pseudocode::

        FIT_START
        while epochs remain and no stop was requested:
            EPOCH_START
            for each optimizer step (one accumulation window):
                forward + backward per micro-batch, clip, optimizer and scheduler step
                STEP_END
                (eval_every_n_steps: mid-epoch validation -> EVAL_END; state.last_metrics is its row, "mid_epoch")
                (step checkpoint, or best.pt after a mid-epoch best -> CHECKPOINT_SAVED)
            validation -> EVAL_END
            EPOCH_END          (the epoch's row is in state.history; early stopping decides here)
            (epoch / best checkpoints -> CHECKPOINT_SAVED)
        (wait for the checkpoint commits still running)
        FIT_END
        EXCEPTION          (instead of FIT_END when the loop raises; the commits are waited for first)

    ``CHECKPOINT_SAVED`` means the file is complete under its final name (``state.checkpoint_path``). A checkpoint's
    bytes are written on the training thread and its commit (fsync, rename) runs on a background thread, so when a
    callback defines ``on_checkpoint_saved`` each save waits for its commit before the event fires; without one,
    training does not wait, and ``state.checkpoint_path`` names the file that is being committed. Every commit is
    done before ``FIT_END`` or ``EXCEPTION`` fires.
    """

    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    STEP_END = "step_end"
    EVAL_END = "eval_end"
    EPOCH_END = "epoch_end"
    CHECKPOINT_SAVED = "checkpoint_saved"
    FIT_END = "fit_end"
    EXCEPTION = "exception"


_HOOKS = {event: f"on_{event.value}" for event in Event}  # fire() runs every step: no string building there


class Callback:
    """Optional base class: every hook is a no-op. Any object with some ``on_<event>`` methods works too.

    A callback with state that must survive a resume defines ``state_dict()`` and ``load_state_dict()``.
    """

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_eval_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_checkpoint_saved(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...
    def on_exception(self, state: TrainState) -> None: ...


def fire(callbacks: Sequence[Any], event: Event, state: TrainState) -> None:
    """Call ``on_<event>`` on every callback that defines it, in order."""
    name = _HOOKS[event]
    for cb in callbacks:
        hook = getattr(cb, name, None)
        if hook is not None:
            hook(state)


def callback_key(cb: Any, index: int) -> str:
    """A stable name for a callback's saved state."""
    return f"{index}:{type(cb).__qualname__}"
