"""Sparse offset and time indexes (``.index``, ``.timeindex``) in Kafka's byte format.

Entries are kept in memory as arrays (loaded on first use, so opening a log of 1000 segments reads no
index) and appended to the file as they are made, so a concurrent reader sees every complete entry.
Unlike Kafka we never preallocate: files always have exactly their used size, which is what Kafka trims
them to on close, so Kafka reads ours and we read Kafka's (zero-filled entries after the used ones are
Kafka's preallocation, not entries).

Loading keeps what a file says and notes in ``problem`` what Kafka's sanity check would refuse (a size
that is not a whole number of entries, entries that do not increase, negative offsets or positions);
the segment checks the rest against its log and rebuilds an index that fails (see LogSegment.check_indexes).
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable

from kcli.storage.fileio import owned_fd, read_file, write_file

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


def _read_file(path: str) -> bytes:
    try:
        return read_file(path)
    except FileNotFoundError:
        return b""


class _Index:
    entry_size = 0

    def __init__(self, path: str, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._loaded = False
        self._afd: int | None = None
        self._close_afd: Callable[[], object] | None = None
        self._problem: str | None = None

    def _ensure(self) -> None:
        if not self._loaded:
            data = _read_file(self.path)
            self._problem = None
            if len(data) % self.entry_size:
                self._problem = f"size {len(data)} is not a multiple of {self.entry_size}"
            # whole entries up to the last non-zero byte: zeros after it are Kafka's preallocation
            used = -(-len(data[: len(data) - len(data) % self.entry_size].rstrip(b"\0")) // self.entry_size)
            self._problem = self._load(data[: used * self.entry_size]) or self._problem
            self._loaded = True

    def _load(self, data: bytes) -> str | None:  # pragma: no cover - abstract
        """Take the entries of ``data`` (whole entries); return what is wrong with them, if anything."""
        raise NotImplementedError

    @property
    def problem(self) -> str | None:
        """Why the file as loaded is not a usable index (Kafka's sanity check), or None."""
        self._ensure()
        return self._problem

    def persist(self) -> None:
        """Write the entries held in memory over the file (after ``replace``)."""
        self._ensure()
        self._rewrite(self._encode())
        self._problem = None

    def _encode(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def sane(self) -> bool:
        """Kafka's sanity check: the file size is a whole number of entries."""
        try:
            return os.path.getsize(self.path) % self.entry_size == 0
        except FileNotFoundError:
            return True

    def _write(self, data: bytes) -> None:
        # the append descriptor stays open for the writer's session: an entry per batch is common
        if self._afd is None:
            self._afd, self._close_afd = owned_fd(self, self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(self._afd, data)

    def close(self) -> None:
        if self._close_afd is not None:
            self._close_afd()
            self._afd = self._close_afd = None

    def _rewrite(self, data: bytes) -> None:
        self.close()
        tmp = self.path + ".tmp"
        write_file(tmp, data)
        os.replace(tmp, self.path)

    def delete(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class OffsetIndex(_Index):
    """``.index``: [int32 offset - base][int32 position] entries, offsets strictly increasing."""

    entry_size = 8

    def _load(self, data: bytes) -> str | None:
        flat = array("i")
        flat.frombytes(data)
        if sys.byteorder == "little":
            flat.byteswap()
        self._rel = flat[0::2]
        self._pos = flat[1::2]
        rel, pos = self._rel, self._pos
        if rel and (rel[0] < 0 or pos[0] < 0):
            return f"entry (offset {self.base_offset + rel[0]}, position {pos[0]}) is before the segment's start"
        for i in range(1, len(rel)):
            if rel[i] <= rel[i - 1] or pos[i] <= pos[i - 1]:
                return (f"entry (offset {self.base_offset + rel[i]}, position {pos[i]}) does not increase after "
                        f"(offset {self.base_offset + rel[i - 1]}, position {pos[i - 1]})")
        return None

    def _encode(self) -> bytes:
        return b"".join(_OFFSET_ENTRY.pack(r, p) for r, p in zip(self._rel, self._pos, strict=True))

    def replace(self, entries: list[tuple[int, int]]) -> None:
        """Hold these (absolute offset, position) entries instead of the file's (in memory; see persist)."""
        self._rel = array("i", [o - self.base_offset for o, _p in entries])
        self._pos = array("i", [p for _o, p in entries])
        self._loaded = True

    def __len__(self) -> int:
        self._ensure()
        return len(self._rel)

    def entries(self) -> list[tuple[int, int]]:
        """(absolute offset, position) pairs."""
        self._ensure()
        return [(self.base_offset + r, p) for r, p in zip(self._rel, self._pos, strict=True)]

    def lookup(self, offset: int) -> tuple[int, int]:
        """Largest entry with offset <= target, else (base offset, 0)."""
        self._ensure()
        i = bisect_right(self._rel, offset - self.base_offset)
        if i == 0:
            return self.base_offset, 0
        return self.base_offset + self._rel[i - 1], self._pos[i - 1]

    def last(self) -> tuple[int, int]:
        self._ensure()
        if not self._rel:
            return self.base_offset, 0
        return self.base_offset + self._rel[-1], self._pos[-1]

    def position_before(self, position: int) -> int:
        """The largest indexed position <= ``position`` (a batch starts there), else 0."""
        self._ensure()
        i = bisect_right(self._pos, position)
        return self._pos[i - 1] if i else 0

    def append(self, offset: int, position: int) -> None:
        self._ensure()
        rel = offset - self.base_offset
        if self._rel and rel <= self._rel[-1]:
            return
        self._write(_OFFSET_ENTRY.pack(rel, position))
        self._rel.append(rel)
        self._pos.append(position)

    def truncate_to_position(self, position: int) -> None:
        """Drop entries pointing at or past ``position`` (the log was cut there)."""
        self._ensure()
        keep = bisect_right(self._pos, position - 1) if self._pos else 0
        self._keep(keep)

    def truncate_to_offset(self, offset: int) -> None:
        """Drop entries for offsets >= ``offset``."""
        self._ensure()
        self._keep(bisect_right(self._rel, offset - 1 - self.base_offset))

    def _keep(self, n: int) -> None:
        if n == len(self._rel) and self._problem is None and os.path.exists(self.path) and self.sane():
            return
        del self._rel[n:]
        del self._pos[n:]
        self.persist()

    def reset(self) -> None:
        self.replace([])
        self.persist()


class TimeIndex(_Index):
    """``.timeindex``: [int64 timestamp][int32 offset - base] entries, timestamps strictly increasing."""

    entry_size = 12

    def _load(self, data: bytes) -> str | None:
        self._ts: list[int] = []
        self._rel: list[int] = []
        problem = None
        for ts, rel in _TIME_ENTRY.iter_unpack(data):
            if problem is None:
                if rel < 0:
                    problem = f"entry (timestamp {ts}, offset {self.base_offset + rel}) is before the segment's start"
                elif self._ts and (ts <= self._ts[-1] or rel < self._rel[-1]):
                    problem = (f"entry (timestamp {ts}, offset {self.base_offset + rel}) does not increase after "
                               f"(timestamp {self._ts[-1]}, offset {self.base_offset + self._rel[-1]})")
            self._ts.append(ts)
            self._rel.append(rel)
        return problem

    def _encode(self) -> bytes:
        return b"".join(_TIME_ENTRY.pack(t, r) for t, r in zip(self._ts, self._rel, strict=True))

    def replace(self, entries: list[tuple[int, int]]) -> None:
        """Hold these (timestamp, absolute offset) entries instead of the file's (in memory; see persist)."""
        self._ts = [t for t, _o in entries]
        self._rel = [o - self.base_offset for _t, o in entries]
        self._loaded = True

    def __len__(self) -> int:
        self._ensure()
        return len(self._ts)

    def entries(self) -> list[tuple[int, int]]:
        """(timestamp, absolute offset) pairs."""
        self._ensure()
        return [(t, self.base_offset + r) for t, r in zip(self._ts, self._rel, strict=True)]

    def last(self) -> tuple[int, int]:
        """The newest (timestamp, absolute offset) entry, else (-1, base offset)."""
        self._ensure()
        return (self._ts[-1], self.base_offset + self._rel[-1]) if self._ts else (-1, self.base_offset)

    def max_timestamp(self) -> int:
        self._ensure()
        return self._ts[-1] if self._ts else -1

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """Largest entry with timestamp <= target, else (-1, base offset)."""
        self._ensure()
        i = bisect_right(self._ts, timestamp)
        if i == 0:
            return -1, self.base_offset
        return self._ts[i - 1], self.base_offset + self._rel[i - 1]

    def maybe_append(self, timestamp: int, offset: int) -> None:
        self._ensure()
        if self._ts and timestamp <= self._ts[-1]:
            return
        self._write(_TIME_ENTRY.pack(timestamp, offset - self.base_offset))
        self._ts.append(timestamp)
        self._rel.append(offset - self.base_offset)

    def truncate_to_offset(self, offset: int) -> None:
        self._ensure()
        keep = len(self._rel)
        while keep and self.base_offset + self._rel[keep - 1] >= offset:
            keep -= 1
        if keep == len(self._rel) and self._problem is None and self.sane():
            return
        del self._ts[keep:]
        del self._rel[keep:]
        self.persist()

    def reset(self) -> None:
        self.replace([])
        self.persist()
