"""Kafka record batch v2 (magic 2): encode, decode, validate.

The layout is in docs/kafka-format.md.  The CRC covers bytes 21..end, so a leader can assign offsets
(rewrite ``baseOffset``) and stamp its epoch without touching the records: ``stamp`` does that in place.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from crc32c import crc32c

from kcli.errors import CorruptRecordError
from kcli.storage import compression

MAGIC = 2
HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the part of a batch not counted in batchLength
_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET_AND_LENGTH = struct.Struct(">qi")
_CRC_START = 21

ATTR_CODEC_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40

Header = tuple[str, bytes | None]


class BatchHeader:
    """The 61 fixed bytes at the start of a batch, decoded."""

    __slots__ = (
        "base_offset",
        "batch_length",
        "partition_leader_epoch",
        "magic",
        "crc",
        "attributes",
        "last_offset_delta",
        "base_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "records_count",
    )

    def __init__(self, fields: tuple) -> None:
        (
            self.base_offset,
            self.batch_length,
            self.partition_leader_epoch,
            self.magic,
            self.crc,
            self.attributes,
            self.last_offset_delta,
            self.base_timestamp,
            self.max_timestamp,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.records_count,
        ) = fields

    @property
    def size(self) -> int:
        """Bytes the whole batch takes on disk."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def codec(self) -> int:
        return self.attributes & ATTR_CODEC_MASK

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & ATTR_LOG_APPEND_TIME)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


class Record:
    """One decoded record; offsets and timestamps are absolute."""

    __slots__ = ("offset", "timestamp", "key", "value", "headers")

    def __init__(
        self, offset: int, timestamp: int, key: bytes | None, value: bytes | None, headers: list[Header]
    ) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers

    def __repr__(self) -> str:
        return f"Record(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, value={self.value!r})"


# ---------------------------------------------------------------- varints

def _zigzag_bytes(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_SMALL = [_zigzag_bytes(n) for n in range(-1, 16384)]


def varint(n: int) -> bytes:
    """Zigzag base-128 varint/varlong as Kafka writes them."""
    if -1 <= n < 16383:
        return _SMALL[n + 1]
    return _zigzag_bytes(n)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a zigzag varint at ``pos``; returns (value, next position)."""
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    result = b & 0x7F
    shift = 7
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")


# ---------------------------------------------------------------- encoding

def _encode_record(delta_ts: int, delta_off: int, key: bytes | None, value: bytes | None, headers) -> bytes:
    parts = [b"\x00", varint(delta_ts), varint(delta_off)]
    if key is None:
        parts.append(b"\x01")
    else:
        parts.append(varint(len(key)))
        parts.append(key)
    if value is None:
        parts.append(b"\x01")
    else:
        parts.append(varint(len(value)))
        parts.append(value)
    if headers:
        parts.append(varint(len(headers)))
        for hk, hv in headers:
            hkb = hk.encode()
            parts.append(varint(len(hkb)))
            parts.append(hkb)
            if hv is None:
                parts.append(b"\x01")
            else:
                parts.append(varint(len(hv)))
                parts.append(hv)
    else:
        parts.append(b"\x00")
    body = b"".join(parts)
    return varint(len(body)) + body


def encode_records(records: Sequence[tuple], base_timestamp: int) -> bytes:
    """Encode (key, value, headers, timestamp) tuples as the uncompressed records section."""
    enc = _encode_record
    return b"".join(
        [enc(ts - base_timestamp, i, key, value, headers) for i, (key, value, headers, ts) in enumerate(records)]
    )


def encode_batch(
    records: Sequence[tuple],
    base_offset: int = 0,
    codec: int = compression.NONE,
    *,
    level: int | None = None,
    log_append_time: bool = False,
    partition_leader_epoch: int = -1,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """Build one magic-2 batch from (key, value, headers, timestamp_ms) tuples."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    timestamps = [r[3] for r in records]
    base_ts = timestamps[0]
    max_ts = max(timestamps)
    body = encode_records(records, base_ts)
    if codec != compression.NONE:
        body = compression.compress(codec, body, level)
    attributes = codec | (ATTR_LOG_APPEND_TIME if log_append_time else 0)
    count = len(records)
    head = _HEADER.pack(
        base_offset,
        HEADER_SIZE - LOG_OVERHEAD + len(body),
        partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        count - 1,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    crc = crc32c(body, crc32c(head[_CRC_START:]))
    return head[:17] + struct.pack(">I", crc) + head[_CRC_START:] + body


def stamp(batch: bytearray | memoryview, base_offset: int, leader_epoch: int) -> None:
    """Assign ``base_offset`` and the leader epoch in place; neither is covered by the CRC."""
    struct.pack_into(">q", batch, 0, base_offset)
    struct.pack_into(">i", batch, 12, leader_epoch)


# ---------------------------------------------------------------- decoding

def parse_header(buf: bytes | memoryview, pos: int = 0) -> BatchHeader:
    """Decode and sanity-check the fixed header of the batch at ``pos``."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptRecordError("record batch shorter than its 61-byte header", position=pos)
    header = BatchHeader(_HEADER.unpack_from(buf, pos))
    if header.magic != MAGIC:
        raise CorruptRecordError(f"unsupported record batch magic {header.magic}", position=pos)
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(f"record batch length {header.batch_length} is too small", position=pos)
    return header


def peek_size(buf: bytes | memoryview, pos: int) -> tuple[int, int] | None:
    """(baseOffset, total size) of the batch at ``pos``, or None if fewer than 17 bytes remain."""
    if len(buf) - pos < 17:
        return None
    base, length = _OFFSET_AND_LENGTH.unpack_from(buf, pos)
    return base, length + LOG_OVERHEAD


def crc_valid(buf: bytes | memoryview, pos: int, header: BatchHeader) -> bool:
    """Whether the stored CRC-32C matches bytes 21..end of the batch at ``pos``."""
    view = memoryview(buf)[pos + _CRC_START : pos + header.size]
    return crc32c(view) == header.crc


def iter_batches(buf: bytes | memoryview, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) for each complete batch; stop quietly at a partial batch at the end.

    A batch whose fixed header is invalid raises CorruptRecordError with its position.
    """
    end = len(buf) if end is None else end
    while end - pos >= 17:
        header = parse_header(buf, pos) if end - pos >= HEADER_SIZE else None
        if header is None:
            return
        if pos + header.size > end:
            return
        yield pos, header
        pos += header.size


def decode_records(buf: bytes | memoryview, pos: int = 0, header: BatchHeader | None = None,
                   verify_crc: bool = True) -> list[Record]:
    """Decode every record of the batch at ``pos``.  Control batches decode to an empty list."""
    if header is None:
        header = parse_header(buf, pos)
    end = pos + header.size
    if end > len(buf):
        raise CorruptRecordError("record batch extends past the end of the data", position=pos)
    if verify_crc and not crc_valid(buf, pos, header):
        raise CorruptRecordError(f"record batch CRC mismatch (stored {header.crc})", position=pos)
    if header.is_control:
        return []
    body = bytes(buf[pos + HEADER_SIZE : end])
    if header.codec:
        body = compression.decompress(header.codec, body)
    try:
        return _decode_body(body, header)
    except (IndexError, ValueError) as exc:
        raise CorruptRecordError(f"malformed record in batch: {exc}", position=pos) from None


def _decode_body(body: bytes, header: BatchHeader) -> list[Record]:
    rv = read_varint
    base_offset = header.base_offset
    base_ts = header.base_timestamp
    append_time = header.max_timestamp if header.log_append_time else None
    out = []
    p = 0
    n = len(body)
    for _ in range(header.records_count):
        length, p = rv(body, p)
        rec_end = p + length
        if length < 0 or rec_end > n:
            raise ValueError("record length past end of batch")
        p += 1  # attributes, unused in v2
        ts_delta, p = rv(body, p)
        off_delta, p = rv(body, p)
        klen, p = rv(body, p)
        if klen < 0:
            key = None
        else:
            key = body[p : p + klen]
            p += klen
        vlen, p = rv(body, p)
        if vlen < 0:
            value = None
        else:
            value = body[p : p + vlen]
            p += vlen
        hcount, p = rv(body, p)
        headers = []
        for _h in range(hcount):
            hklen, p = rv(body, p)
            hk = body[p : p + hklen].decode("utf-8", "replace")
            p += hklen
            hvlen, p = rv(body, p)
            if hvlen < 0:
                hv = None
            else:
                hv = body[p : p + hvlen]
                p += hvlen
            headers.append((hk, hv))
        if p != rec_end:
            raise ValueError("record length does not match its fields")
        out.append(
            Record(base_offset + off_delta, append_time if append_time is not None else base_ts + ts_delta,
                   key, value, headers)
        )
    return out
