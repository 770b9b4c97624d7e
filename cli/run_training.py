"""``python cli/run_training.py ...``: the quick reference's CLI path, forwarding to ``trainforge``.

With no subcommand it means ``trainforge train``.
"""

import sys

from trainforge.cli.main import main

_SUBCOMMANDS = {"train", "presets"}

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in _SUBCOMMANDS:
        args = ["train", *args]
    raise SystemExit(main(args))
