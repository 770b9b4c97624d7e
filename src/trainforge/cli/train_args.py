"""The command line of ``trainforge train`` split into its options and its free-form overrides.

Its own module so that ``cli.main`` (which runs it) and ``cli.jobs`` (which checks a queued train job's arguments
the same way) both import it downward.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["TRAIN_OPTIONS", "split_train_args"]

# Options of ``trainforge train`` that take a value; everything else on its command line is an override.
TRAIN_OPTIONS = ("--config", "--preset", "--nproc")


def split_train_args(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """``trainforge train`` arguments → (its options for argparse, the overrides in their order).

    >>> split_train_args(["--preset", "tiny", "--learning_rate", "0.002", "--epochs=1", "model.n_layer=2"])
    (['--preset', 'tiny'], ['--learning_rate', '0.002', '--epochs=1', 'model.n_layer=2'])

    Options are matched exactly (no abbreviations), so an override such as ``--pre 1`` is never taken for
    ``--preset``.
    """
    options: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-h", "--help") or word.split("=", 1)[0] in TRAIN_OPTIONS and "=" in word:
            options.append(word)
        elif word in TRAIN_OPTIONS:
            options.extend(words[i:i + 2])  # argparse says so if the value is missing
            i += 1
        else:
            overrides.append(word)
        i += 1
    return options, overrides
