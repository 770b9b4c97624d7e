"""Optimizers by name: ``TrainingConfig(optimizer="sgd", optimizer_kwargs={"momentum": 0.9})``.

The names are torch's own optimizers (``torch.optim``), lower-cased. Two are left out because the loop cannot drive
them: ``LBFGS`` needs a closure that re-evaluates the loss, ``SparseAdam`` only takes sparse gradients, and ``Muon``
only 2-D matrices (see :data:`REFUSED`). A test keeps :data:`OPTIMIZERS` in step with ``torch.optim``.

Checked before step 0 (with every other config problem): the name, and that each ``optimizer_kwargs`` key is a
keyword of that optimizer (did-you-mean). ``torch`` is imported only for the keyword check.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from trainforge.config._suggest import did_you_mean, quote_list

# lower-case name -> class name in torch.optim
OPTIMIZERS: dict[str, str] = {
    "adamw": "AdamW",
    "adam": "Adam",
    "sgd": "SGD",
    "adafactor": "Adafactor",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "adamax": "Adamax",
    "asgd": "ASGD",
    "nadam": "NAdam",
    "radam": "RAdam",
    "rprop": "Rprop",
}
# Not offered, and why (the error says so instead of "unknown").
REFUSED: dict[str, str] = {
    "lbfgs": "LBFGS needs a closure that re-evaluates the loss on every step, which a training loop over batches "
             "does not have",
    "sparseadam": "SparseAdam takes only sparse gradients (nn.Embedding(sparse=True)); dense models fail in its step",
    "muon": "Muon updates only 2-D weight matrices, and every model has biases, norms or embeddings it cannot take "
            "(pair it with another optimizer in your own torch.optim.Optimizer subclass)",
}
# Keywords the config sets itself: passing them in optimizer_kwargs would make two sources of one value.
_OWNED = {"params": "the trainer passes the parameters",
          "lr": "use learning_rate (the schedule multiplies it)",
          "weight_decay": "use weight_decay (never applied to biases and norms)"}


def optimizer_class(name: str) -> Any:
    """The ``torch.optim`` class of a (valid, lower-case) optimizer name."""
    import torch.optim

    return getattr(torch.optim, OPTIMIZERS[name])


def keywords(name: str) -> list[str]:
    """The constructor keywords of optimizer ``name`` (without ``params``)."""
    sig = inspect.signature(optimizer_class(name).__init__)
    return [p for p in sig.parameters if p not in ("self", "params")]


def name_problem(value: str) -> str | None:
    """The problem line for an optimizer name that is not offered; None when it is."""
    if value in OPTIMIZERS:
        return None
    if value in REFUSED:
        return (f"optimizer: {value!r} is not supported: {REFUSED[value]}, got {value!r}. Fix: use one of "
                f"{quote_list(OPTIMIZERS)}, or pass your own optimizer to Trainer(optimizer=...).")
    hint = did_you_mean(value, OPTIMIZERS)
    return (f"optimizer: must be one of {quote_list(OPTIMIZERS)} (torch.optim's, any case), got {value!r}. Fix: "
            f"{hint}Or pass your own optimizer (an instance, or a factory params -> Optimizer) to "
            "Trainer(optimizer=...).")


def kwargs_problems(name: str, kwargs: Mapping[str, Any]) -> list[str]:
    """One line per ``optimizer_kwargs`` key that optimizer ``name`` does not take (or that the config owns)."""
    accepted = keywords(name)
    found = []
    for key, value in kwargs.items():
        if not isinstance(key, str):
            found.append(f"optimizer_kwargs: keys must be keyword names (strings), got {key!r}. Fix: e.g. "
                         "{'momentum': 0.9}.")
        elif key in _OWNED:
            found.append(f"optimizer_kwargs: {key!r} is set by the config, got {key}={value!r}. Fix: "
                         f"{_OWNED[key]}.")
        elif key not in accepted:
            hint = did_you_mean(key, accepted)
            found.append(f"optimizer_kwargs: {OPTIMIZERS[name]} takes no keyword {key!r}, got {key}={value!r}. Fix: "
                         f"{hint}{OPTIMIZERS[name]} takes {quote_list([k for k in accepted if k not in _OWNED])}.")
    return found


__all__ = ["OPTIMIZERS", "REFUSED", "kwargs_problems", "keywords", "name_problem", "optimizer_class"]
