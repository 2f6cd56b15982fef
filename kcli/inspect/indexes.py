"""Raw reading of ``.index`` and ``.timeindex`` files, exactly as they are on disk.

``kcli.storage.index`` cleans up what it loads (drops trailing junk, non-increasing entries) because a
log needs a usable index; an inspection tool needs the opposite: every entry as written, so that it
can show and check them.  Kafka preallocates index files of active segments and fills them with
zeros, so (like Kafka's dump tool) reading stops at the first entry after the first whose offset is the
segment's base offset: that and everything after it is unused preallocated space.

The checks against a segment's batches (used by verify and repair) live here too: they define what a
usable index is.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field

OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")


@dataclass
class RawIndex:
    """Entries of one index file: (absolute offset, position) for ``.index``, (timestamp, absolute offset)
    for ``.timeindex``."""

    path: str
    base_offset: int
    entry_size: int
    file_size: int = 0
    entries: list[tuple[int, int]] = field(default_factory=list)
    slots: int = 0  # whole entries the file has room for, used or preallocated

    @property
    def trailing_bytes(self) -> int:
        """Bytes after the last whole entry: a file size that is not a multiple of the entry size."""
        return self.file_size % self.entry_size

    @property
    def preallocated(self) -> int:
        """Entry slots after the used ones (Kafka's zero-filled preallocation)."""
        return self.slots - len(self.entries)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return b""


def read_offset_index(path: str, base_offset: int) -> RawIndex:
    data = _read(path)
    index = RawIndex(path, base_offset, OFFSET_ENTRY.size, len(data), slots=len(data) // OFFSET_ENTRY.size)
    usable = index.slots * OFFSET_ENTRY.size
    for i, (rel, position) in enumerate(OFFSET_ENTRY.iter_unpack(data[:usable])):
        if rel == 0 and i > 0:
            break
        index.entries.append((base_offset + rel, position))
    return index


def read_time_index(path: str, base_offset: int) -> RawIndex:
    data = _read(path)
    index = RawIndex(path, base_offset, TIME_ENTRY.size, len(data), slots=len(data) // TIME_ENTRY.size)
    usable = index.slots * TIME_ENTRY.size
    for i, (timestamp, rel) in enumerate(TIME_ENTRY.iter_unpack(data[:usable])):
        if rel == 0 and i > 0:
            break
        index.entries.append((timestamp, base_offset + rel))
    return index


class SegmentBatches:
    """Positions, offsets and max timestamps of a segment's complete batches, for the index checks."""

    def __init__(self) -> None:
        self.positions = array("q")
        self.bases = array("q")
        self.lasts = array("q")
        self.max_ts = array("q")

    def add(self, position: int, base: int, last: int, max_ts: int) -> None:
        self.positions.append(position)
        self.bases.append(base)
        self.lasts.append(last)
        self.max_ts.append(max_ts)


def check_offset_index(path: str, base: int, seg: SegmentBatches, valid_end: int) -> list[str]:
    """Problems of an ``.index``: its size, entries that do not increase, and entries that do not point
    at the start of a batch holding their offset (``valid_end``: where the readable batches end)."""
    index = read_offset_index(path, base)
    out = []
    if index.trailing_bytes:
        out.append(
            f"size {index.file_size} is not a multiple of {index.entry_size} (Kafka rebuilds such an index)"
        )
    prev: tuple[int, int] | None = None
    for offset, position in index.entries:
        if prev is not None and (offset <= prev[0] or position <= prev[1]):
            out.append(
                f"entry (offset {offset}, position {position}) does not increase after "
                f"(offset {prev[0]}, position {prev[1]})"
            )
        prev = (offset, position)
        i = bisect_left(seg.positions, position)
        if i == len(seg.positions) or seg.positions[i] != position:
            where = (
                "past the end of the valid data" if position >= valid_end else "not at the start of a batch"
            )
            out.append(f"entry for offset {offset} points at position {position}, {where}")
        elif not seg.bases[i] <= offset <= seg.lasts[i]:
            out.append(
                f"entry for offset {offset} points at position {position}, which holds offsets "
                f"{seg.bases[i]}..{seg.lasts[i]}"
            )
    return out


def check_time_index(path: str, base: int, seg: SegmentBatches) -> list[str]:
    """Problems of a ``.timeindex``: its size, entries that do not increase, and entries whose offset is in
    no batch or in a batch whose max timestamp is not the entry's."""
    index = read_time_index(path, base)
    if index.entries[:1] == [(0, base)]:
        del index.entries[0]  # a zero-filled slot of a Kafka active segment's preallocated file, not an entry
    out = []
    if index.trailing_bytes:
        out.append(
            f"size {index.file_size} is not a multiple of {index.entry_size} (Kafka rebuilds such an index)"
        )
    prev: tuple[int, int] | None = None
    for timestamp, offset in index.entries:
        if prev is not None and (timestamp <= prev[0] or offset < prev[1]):
            out.append(
                f"entry (timestamp {timestamp}, offset {offset}) does not increase after "
                f"(timestamp {prev[0]}, offset {prev[1]})"
            )
        prev = (timestamp, offset)
        i = bisect_left(seg.lasts, offset)
        if i == len(seg.lasts) or seg.bases[i] > offset:
            out.append(
                f"entry (timestamp {timestamp}, offset {offset}) names an offset no batch of the segment holds"
            )
        elif seg.max_ts[i] != timestamp:
            out.append(
                f"entry (timestamp {timestamp}, offset {offset}) does not match the batch holding that "
                f"offset (max timestamp {seg.max_ts[i]})"
            )
    return out
