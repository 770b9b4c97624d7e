"""``python cli/run_training.py ...``: the quick reference's CLI path, forwarding to ``trainforge``.

With no subcommand it means ``trainforge train``; ``--sweep-config sweep.yaml`` means ``trainforge sweep sweep.yaml``
(the quick reference's "parallel search" line).
"""

import sys

from trainforge.cli.main import main

_SUBCOMMANDS = {"train", "presets", "export", "runs", "sweep", "jobs"}


def _forward(args: list[str]) -> list[str]:
    for i, arg in enumerate(args):
        if arg == "--sweep-config" and i + 1 < len(args):
            return ["sweep", args[i + 1], *args[:i], *args[i + 2:]]
        if arg.startswith("--sweep-config="):
            return ["sweep", arg.split("=", 1)[1], *args[:i], *args[i + 1:]]
    if not args or args[0] not in _SUBCOMMANDS:
        return ["train", *args]
    return args


if __name__ == "__main__":
    raise SystemExit(main(_forward(sys.argv[1:])))
