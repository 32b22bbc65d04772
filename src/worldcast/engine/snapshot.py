"""Saving a session (a world's state) to disk and restoring it, bit for bit.

A snapshot holds everything a session needs to go on exactly as if it had never stopped: its
request, positions and block layout, the prompt's cross-attention keys/values, the action ids,
the cached pages' contents (quantized pages as stored, scales included), the clean latents of
the blocks still cached, the noise generator's state and the VAE's streaming-decode state.

File layout (``FORMAT_VERSION`` 2; version 2 added the guidance branch's negative prompt)::

    b"WORLDCAST-SNAPSHOT\\n"
    one JSON line: {"version": 2, "length": <payload bytes>, "sha256": <hex of the payload>}
    payload: torch.save of plain data (tensors, numbers, strings, lists, dicts), read back with
             torch.load(weights_only=True) — no pickled code

Writes are atomic (a temporary file in the same directory, flushed and fsynced, then renamed over
the target), so a failed save leaves any earlier file intact. Reads check the magic, version,
length (truncation) and checksum (corruption) before unpickling anything, then the engine checks
that the snapshot was made for the same model and settings; any failure is a ``ValueError``
starting with ``snapshot:``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

MAGIC = b"WORLDCAST-SNAPSHOT\n"
FORMAT_VERSION = 2


def write_snapshot(path: str | Path, payload: dict) -> Path:
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    header = json.dumps({"version": FORMAT_VERSION, "length": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}).encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + header + data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_snapshot(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"snapshot: cannot read {path}: {err.strerror}") from None
    if not raw.startswith(MAGIC):
        raise ValueError(f"snapshot: {path} is not a worldcast snapshot")
    header_end = raw.find(b"\n", len(MAGIC))
    try:
        header = json.loads(raw[len(MAGIC):header_end])
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"snapshot: {path} has a damaged header") from None
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"snapshot: {path} is format version {header.get('version')}; this worldcast reads "
                         f"version {FORMAT_VERSION}")
    data = raw[header_end + 1:]
    if len(data) != header["length"]:
        raise ValueError(f"snapshot: {path} is truncated ({len(data)} of {header['length']} payload bytes)")
    if hashlib.sha256(data).hexdigest() != header["sha256"]:
        raise ValueError(f"snapshot: {path} is corrupt (checksum mismatch)")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def check_compatible(saved: dict, current: dict) -> None:
    """``saved`` and ``current`` engine fingerprints must agree; name the first field that differs."""
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise ValueError(f"snapshot: made for a different engine: {key} is {saved.get(key)!r} in the snapshot, "
                             f"{current.get(key)!r} here")
