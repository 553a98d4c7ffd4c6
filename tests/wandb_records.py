"""Read back what a W&B offline run recorded, from its ``run-*.wandb`` file.

The file is W&B's LevelDB-style log: a 7-byte header, then 32 KiB blocks of records,
each with a 7-byte header (CRC, length, type: full / first / middle / last) around
a serialised ``wandb_internal_pb2.Record``. No mocks: this reads the real file.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from google.protobuf.message import DecodeError

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    position, pending = HEADER, b""
    while position + HEADER <= len(data):
        left = BLOCK - position % BLOCK
        if left < HEADER:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        if length == 0 and kind == 0:
            position += left
            continue
        if position + HEADER + length > len(data):
            raise DecodeError("a record is cut off at the end of the file (still being written?)")
        payload = data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            yield pending + payload
            pending = b""


class IncompleteRunFile(DecodeError):
    """The run file parses but has no ``exit`` record yet: W&B is still writing it."""


def read_offline_run(run_dir: Path, wait_seconds: float = 60.0) -> dict:
    """``{"history": [row dicts], "config": {...}, "group": str}`` of the offline run in ``run_dir``.

    W&B's service process may still be writing the file when ``wandb.finish`` has
    returned (seen on a loaded machine: a record cut off at the end, or records still
    missing), so the file is read again until it parses and holds the run's closing
    ``exit`` record, for up to ``wait_seconds``; then the last error is raised.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return _parse_run(run_dir)
        except DecodeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _parse_run(run_dir: Path) -> dict:
    from wandb.proto import wandb_internal_pb2

    (run_file,) = Path(run_dir).glob("run-*.wandb")
    history, config, group, finished = [], {}, "", False
    for payload in _payloads(run_file.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            group = record.run.run_group or group
        elif kind == "exit":
            finished = True
    if not finished:
        raise IncompleteRunFile(f"{run_file}: no exit record (the run is not finished or not yet written)")
    return {"history": history, "config": config, "group": group}


def logged_keys(run: dict) -> set[str]:
    """Every metric key that appears in the run's history."""
    return {key for row in run["history"] for key in row}
