"""``python prepare_child.py '{"inputs": [...], "out": DIR}'``: a ``prepare`` that a test kills part-way.

It prints a marker line and pauses at each point where a kill should land: ``chunk N`` after the N-th chunk is
encoded (before it is written), ``fsync N`` at the N-th fsync of a file (1: train.bin, 2: val.bin, 3: meta.json,
each between its bytes being written and its rename into place).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from typing import Any

from trainforge.data import prepare as prepare_module


def _say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def main(args: dict[str, Any]) -> None:
    counts = {"chunk": 0, "fsync": 0}
    encode, fsync = prepare_module._encode, os.fsync

    def marked_encode(chunk: Any) -> Any:
        ids = encode(chunk)
        counts["chunk"] += 1
        _say(f"chunk {counts['chunk']}")
        time.sleep(0.2)
        return ids

    def marked_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # files only (not the folder's fsync after a rename)
            counts["fsync"] += 1
            _say(f"fsync {counts['fsync']}")
            time.sleep(0.2)
        fsync(fd)

    prepare_module._encode = marked_encode  # type: ignore[assignment]
    os.fsync = marked_fsync  # type: ignore[assignment]
    prepare_module.prepare(args["inputs"], args["out"], workers=1, chunk_bytes=5_000)
    _say("done")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
