"""Producer state snapshots: ``<20-digit offset>.snapshot`` beside the segments, in Kafka's format (v1).

``int16 version (1), uint32 CRC-32C of everything after it, int32 entry count``, then per entry ``int64
producer id, int16 epoch, int32 last sequence, int64 last offset, int32 offset delta, int64 timestamp,
int32 coordinator epoch, int64 current transaction's first offset (-1: none)``.  The offset in the name is
the log end when the snapshot was taken: the state is that of every batch below it.  kcli writes one entry
per remembered batch of a producer (up to 5, oldest first); Kafka keeps the last entry it reads per
producer, which is then the newest batch, so each reads the other's files.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from kcli.errors import CorruptRecordError
from kcli.storage.fileio import read_file, write_file
from kcli.storage.records import crc32c

SNAPSHOT_SUFFIX = ".snapshot"
VERSION = 1
_HEAD = struct.Struct(">hIi")  # version, crc, count
_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_FROM = 6  # the CRC covers the count and the entries


class SnapshotEntry(NamedTuple):
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_offset: int
    offset_delta: int
    timestamp: int
    coordinator_epoch: int
    current_txn_first_offset: int


def snapshot_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


def list_snapshots(directory: str) -> list[int]:
    """The offsets of the snapshot files in ``directory``, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(name[:20]) for name in names
                  if name.endswith(SNAPSHOT_SUFFIX) and len(name) == 20 + len(SNAPSHOT_SUFFIX) and name[:20].isdigit())


def encode_snapshot(entries: list[SnapshotEntry]) -> bytes:
    body = struct.pack(">i", len(entries)) + b"".join(_ENTRY.pack(*entry) for entry in entries)
    return struct.pack(">hI", VERSION, crc32c(body)) + body


def decode_snapshot(data: bytes, path: str | None = None) -> list[SnapshotEntry]:
    """The entries of a snapshot file's bytes; CorruptRecordError for anything but a whole, valid v1 file."""
    if len(data) < _HEAD.size:
        raise CorruptRecordError(f"producer snapshot of {len(data)} bytes is shorter than its header", path, 0)
    version, crc, count = _HEAD.unpack_from(data)
    if version != VERSION:
        raise CorruptRecordError(f"producer snapshot of unknown version {version}", path, 0)
    if crc32c(memoryview(data)[_CRC_FROM:]) != crc:
        raise CorruptRecordError(f"producer snapshot CRC mismatch (stored {crc})", path, 2)
    if count < 0 or len(data) != _HEAD.size + count * _ENTRY.size:
        raise CorruptRecordError(f"producer snapshot of {len(data)} bytes does not hold {count} entries", path, 6)
    return [SnapshotEntry(*_ENTRY.unpack_from(data, _HEAD.size + i * _ENTRY.size)) for i in range(count)]


def read_snapshot(path: str) -> list[SnapshotEntry]:
    """The entries of the snapshot file at ``path`` (FileNotFoundError, or CorruptRecordError)."""
    return decode_snapshot(read_file(path), path)


def write_snapshot(path: str, entries: list[SnapshotEntry]) -> None:
    """Write the file whole (temp + rename: readers see the old file or the new one).  Not fsynced: after a
    power cut a snapshot that did not reach the disk fails its CRC and an older one is used."""
    tmp = path + ".tmp"
    write_file(tmp, encode_snapshot(entries))
    os.replace(tmp, path)
