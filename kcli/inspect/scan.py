"""Reading a ``.log`` file batch by batch without trusting it.

dump-log, verify and repair all walk segments the same way, so they agree on what counts as a torn tail
(the last batch runs past the end of the file: a write cut short) and what counts as corruption (a
header no writer produces).  A batch whose CRC does not match is still yielded, flagged, because its
length is usable and the batches after it can still be read, which is what Kafka's dump tool shows.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from crc32c import crc32c

from kcli.errors import CorruptRecordError
from kcli.storage import records

TORN = "torn"
CORRUPT = "corrupt"
_CHUNK = 1 << 20
_MIN_LENGTH = records.HEADER_SIZE - records.LOG_OVERHEAD  # 49: a batch with no records section
_OFFSET_AND_LENGTH = struct.Struct(">qi")


@dataclass(slots=True)
class Batch:
    """One complete batch: its position, decoded header, whether its CRC holds, and (if asked) its bytes."""

    position: int
    header: records.BatchHeader
    crc_ok: bool
    data: memoryview | None = None


@dataclass(slots=True)
class Stop:
    """Why reading ended before the end of the file: ``kind`` is TORN or CORRUPT."""

    position: int
    kind: str
    reason: str
    invalid_bytes: int


class _Window:
    """Sequential reads through a 1 MiB window: one pread per MiB rather than two per batch."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.start = 0
        self.buf = b""

    def get(self, position: int, length: int) -> memoryview:
        offset = position - self.start
        if offset < 0 or offset + length > len(self.buf):
            self.buf = os.pread(self.fd, max(length, _CHUNK), position)
            self.start, offset = position, 0
        return memoryview(self.buf)[offset : offset + length]


def scan_log(
    path: str, start: int = 0, end: int | None = None, with_data: bool = False
) -> Iterator[Batch | Stop]:
    """Yield each batch of ``path`` from ``start`` up to ``end`` (default: the file size), then a Stop if
    the bytes that remain are not a whole valid batch."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        end = size if end is None else min(end, size)
        window = _Window(fd)
        position = start
        while position < end:
            remaining = end - position
            if remaining < 17:
                yield Stop(position, TORN, f"{remaining} bytes, too few for a batch header", remaining)
                return
            head = window.get(position, min(records.HEADER_SIZE, remaining))
            _base, length = _OFFSET_AND_LENGTH.unpack_from(head)
            if length < _MIN_LENGTH:
                yield Stop(
                    position,
                    CORRUPT,
                    f"batch length {length} is below the minimum of {_MIN_LENGTH}",
                    remaining,
                )
                return
            size_of_batch = length + records.LOG_OVERHEAD
            if size_of_batch > remaining:
                yield Stop(
                    position,
                    TORN,
                    f"a batch of {size_of_batch} bytes with only {remaining} bytes left",
                    remaining,
                )
                return
            try:
                header = records.parse_header(head)
            except CorruptRecordError as exc:
                yield Stop(position, CORRUPT, exc.reason, remaining)
                return
            batch = window.get(position, size_of_batch)
            crc_ok = crc32c(batch[21:]) == header.crc
            yield Batch(position, header, crc_ok, batch if with_data else None)
            position += size_of_batch
    finally:
        os.close(fd)


def header_at(fd: int, position: int, size: int) -> records.BatchHeader | None:
    """The header of a complete batch at ``position``, or None if there is none (Kafka's index checks
    read a batch wherever an index entry points)."""
    if size - position < records.HEADER_SIZE or position < 0:
        return None
    try:
        header = records.parse_header(os.pread(fd, records.HEADER_SIZE, position))
    except CorruptRecordError:
        return None
    if position + header.size > size:
        return None
    return header


def headers_from(fd: int, position: int, size: int) -> Iterator[tuple[int, records.BatchHeader]]:
    """(position, header) of consecutive batches from ``position``, stopping quietly at anything invalid."""
    while True:
        header = header_at(fd, position, size)
        if header is None:
            return
        yield position, header
        position += header.size


def batch_records(batch: Batch) -> list[records.Record]:
    """Decode a batch's records, control batches included (the storage codec skips those, but an
    inspection tool shows their markers).  Raises CorruptRecordError for undecodable data."""
    header = batch.header
    if batch.data is None:
        raise ValueError("scan_log(..., with_data=True) is needed to decode records")
    if header.is_control:
        fields = [getattr(header, name) for name in records.BatchHeader.__slots__]
        fields[records.BatchHeader.__slots__.index("attributes")] = header.attributes & ~records.ATTR_CONTROL
        header = records.BatchHeader(tuple(fields))
    try:
        return records.decode_records(batch.data, 0, header, verify_crc=False)
    except (IndexError, ValueError, struct.error) as exc:
        raise CorruptRecordError(f"malformed record in batch: {exc}") from None


CONTROL_TYPES = {
    0: "ABORT",
    1: "COMMIT",
    2: "LEADER_CHANGE",
    3: "SNAPSHOT_HEADER",
    4: "SNAPSHOT_FOOTER",
    5: "KRAFT_VERSION",
    6: "KRAFT_VOTERS",
}


def control_marker(record: records.Record) -> tuple[str, int, int | None]:
    """(type name, type id, coordinator epoch for transaction markers) of a control record."""
    key = record.key or b""
    type_id = struct.unpack_from(">h", key, 2)[0] if len(key) >= 4 else -1
    name = CONTROL_TYPES.get(type_id, "UNKNOWN")
    epoch = None
    if type_id in (0, 1) and record.value is not None and len(record.value) >= 6:
        epoch = struct.unpack_from(">i", record.value, 2)[0]
    return name, type_id, epoch
