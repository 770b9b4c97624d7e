"""Reads W&B's offline transaction log (``run-*.wandb``) back into protobuf records, for tests.

wandb 0.31 has no Python reader for the file any more, so this follows its documented block format.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any


def read_wandb_records(path: Path, timeout_s: float = 60.0) -> list[Any]:
    """The records of a finished run's log, waiting until wandb's service has flushed them.

    ``run.finish()`` returns once the service has the exit record, but the service writes the file through a
    buffer: on a busy machine the file can still be (nearly) empty for a moment, so poll for the exit record.
    """
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        records = decode_wandb_log(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def decode_wandb_log(path: Path) -> list[Any]:
    """Decode a ``.wandb`` transaction log into ``wandb_internal_pb2.Record`` messages.

    wandb ships no Python reader for this file any more (the writer is the Go core), so this is the
    format spelled out: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then LevelDB-log style
    32 KiB blocks of chunks, each with a 7-byte header (crc32 uint32, length uint16, type uint8:
    1 full, 2 first, 3 middle, 4 last); a record may span blocks, and a block tail too short for a
    header is zero padding.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    if len(data) < 7:
        return []
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    block = 32768
    pos, pending, payloads = 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding up to the end of the block
            pos += left
            continue
        if pos + 7 + length > len(data):  # a chunk still being written
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
    records = []
    for payload in payloads:
        rec = pb.Record()
        rec.ParseFromString(payload)
        records.append(rec)
    return records


def items_of(items: Any) -> dict[str, Any]:
    """``{key: value}`` from a list of history/summary/config items (``key`` or ``nested_key``)."""
    out = {}
    for it in items:
        key = it.key or "/".join(it.nested_key)
        out[key] = json.loads(it.value_json)
    return out
