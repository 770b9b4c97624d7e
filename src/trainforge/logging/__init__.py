"""Metrics logging: a small protocol, console and CSV backends (standard library only), W&B lazily.

``trainforge.logging.wandb_logger.WandbLogger`` is not imported here on purpose: importing this
package must not import ``wandb`` (or ``tqdm``, which :class:`ProgressBar` imports when it shows a bar).
"""

from __future__ import annotations

from trainforge.logging.base import Logger, MultiLogger, NullLogger
from trainforge.logging.console import ConsoleLogger
from trainforge.logging.csv_logger import CSVLogger
from trainforge.logging.factory import build_loggers
from trainforge.logging.progress import ProgressBar

__all__ = [
    "CSVLogger",
    "ConsoleLogger",
    "Logger",
    "MultiLogger",
    "NullLogger",
    "ProgressBar",
    "build_loggers",
]
