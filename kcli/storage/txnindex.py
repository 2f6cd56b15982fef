"""The transaction index: ``<base>.txnindex`` beside each segment lists the transactions aborted in it.

Kafka's format: 34-byte entries of ``int16 version (0), int64 producer id, int64 first offset, int64 last
offset (the ABORT marker's), int64 last stable offset (when the marker was written)``.  A read_committed
reader asks for the entries overlapping what it fetched and drops those producers' batches.  The entry is
appended before its marker, so a reader that sees the marker finds it; entries past the log end (a marker
that never made it, a truncation) are cut by the writer.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from kcli.errors import CorruptRecordError
from kcli.storage.fileio import open_fd, read_file, truncate_file

_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def encode_entry(entry: AbortedTxn) -> bytes:
    return _ENTRY.pack(0, *entry)


class TxnIndex:
    """One segment's transaction index file (created by the first append)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def append(self, entry: AbortedTxn) -> None:
        """Add one entry at the end (not fsynced: a log flush covers it, see :meth:`flush`)."""
        fd = open_fd(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            data = encode_entry(entry)
            if os.write(fd, data) != len(data):
                raise OSError(28, "short write", self.path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.path) from None
        finally:
            os.close(fd)

    def entries(self) -> list[AbortedTxn]:
        """Every whole entry, oldest first (a partial one at the end -- a torn write -- is ignored).
        CorruptRecordError for an entry of another version."""
        try:
            data = read_file(self.path)
        except FileNotFoundError:
            return []
        out = []
        for pos in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
            version, *fields = _ENTRY.unpack_from(data, pos)
            if version != 0:
                raise CorruptRecordError(f"transaction index entry of unknown version {version}", self.path, pos)
            out.append(AbortedTxn(*fields))
        return out

    def truncate(self, offset: int) -> None:
        """Drop the entries whose marker is at or past ``offset`` (and a partial entry at the end)."""
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            return
        keep = 0
        for entry in self.entries():
            if entry.last_offset >= offset:
                break
            keep += ENTRY_SIZE
        if keep != size:
            truncate_file(self.path, keep)
