"""Reads W&B's offline transaction log (``run-*.wandb``) back into protobuf records, for tests.

wandb 0.31 has no Python reader for the file any more, so this follows its documented block format.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any


def read_wandb_records(path: Path) -> list[Any]:
    """Decode a ``.wandb`` transaction log into ``wandb_internal_pb2.Record`` messages.

    wandb ships no Python reader for this file any more (the writer is the Go core), so this is the
    format spelled out: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then LevelDB-log style
    32 KiB blocks of chunks, each with a 7-byte header (crc32 uint32, length uint16, type uint8:
    1 full, 2 first, 3 middle, 4 last); a record may span blocks, and a block tail too short for a
    header is zero padding.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
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
