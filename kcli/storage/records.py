"""Kafka record batch v2 (magic 2): encode, decode, validate.

The layout is in docs/kafka-format.md.  The CRC covers bytes 21..end, so a leader can assign offsets
(rewrite ``baseOffset``) and stamp its epoch without touching the records: ``stamp`` does that in place.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, repeat
from operator import add, itemgetter, sub
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar, overload

from kcli.errors import CorruptRecordError
from kcli.storage import compression

# What batches are read from: a file's bytes, a received frame, or a view into either.
BytesLike = bytes | bytearray | memoryview


if TYPE_CHECKING:  # annotations only: a Protocol class costs every start-up to define

    class _Crc32c(Protocol):
        """The signature of ``crc32c.crc32c``: the CRC-32C of ``data``, continuing from ``value``."""

        def __call__(self, data: BytesLike, value: int = 0, /) -> int: ...


def _load_crc32c() -> _Crc32c:
    """The ``crc32c`` function, without running the crc32c package's ``__init__``.

    That ``__init__`` asks importlib.metadata for its own version, which imports email, zipfile and more:
    25-40 ms on the benchmark box, a third to a half of a small produce's start-up budget.  The C extension inside needs none of it, so
    load it directly (registered under its real name, so a later ``import crc32c`` reuses it), and fall
    back to the ordinary import if the package is laid out differently.
    """
    import sys
    from importlib.machinery import PathFinder

    name = "crc32c._crc32c"
    module: ModuleType | None = sys.modules.get(name)
    if module is None:
        try:
            package = PathFinder.find_spec("crc32c")
            spec = PathFinder.find_spec(name, package.submodule_search_locations) if package else None
            if spec is None or spec.loader is None:
                raise ImportError(name)
            module = spec.loader.create_module(spec)
            if module is None:  # the loader wants a default module: not the C extension expected here
                raise ImportError(name)
            spec.loader.exec_module(module)
            sys.modules[name] = module
        except Exception:
            from crc32c import crc32c as function

            return function
    found: _Crc32c = module.crc32c
    return found


crc32c = _load_crc32c()

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
# A record to encode: (key, value, headers, timestamp_ms).
RecordTuple = tuple[bytes | None, bytes | None, Sequence[Header], int]


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

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    def __init__(self, fields: tuple[int, ...]) -> None:
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


_TABLE_SIZE = 16384
# Fewer records are encoded one by one: the bulk path's tables take a few ms to build, which a `kcli produce`
# of a line or two would pay for nothing (and itemgetter of one index returns an item, not a tuple).
_BULK_MIN = 32
# _VARINTS[n] == varint(n) for 0 <= n < _TABLE_SIZE.  Built on first use (a few ms), so commands that never
# encode a batch, such as `kcli --version` or consume, do not pay for it at start-up.  The lazy tables of
# this module are built aside and then bound in one assignment: the broker encodes from several threads.
_VARINTS: list[bytes] = []
# _TAIL[n]: bytes a value of n bytes adds to a record: its length varint, itself, and the header count.
_TAIL = list(chain(range(2, 66), range(67, 8195), range(8196, _TABLE_SIZE + 4)))


def _varints() -> list[bytes]:
    """The small-varint table; zigzag of n >= 0 is 2n, so the bytes can be enumerated directly."""
    global _VARINTS
    if not _VARINTS:
        table = [bytes((z,)) for z in range(0, 0x80, 2)]
        table += [bytes((lo, hi)) for hi in range(1, 0x80) for lo in range(0x80, 0x100, 2)]
        table += [bytes((lo, mid, 1)) for mid in range(0x80, 0x100) for lo in range(0x80, 0x100, 2)]
        _VARINTS = table
    return _VARINTS


def varint(n: int) -> bytes:
    """Zigzag base-128 varint/varlong as Kafka writes them."""
    if _VARINTS and 0 <= n < _TABLE_SIZE:  # the table is built for bulk encoding, not for a few records
        return _VARINTS[n]
    if n == -1:
        return b"\x01"
    return _zigzag_bytes(n)


def read_varint(buf: BytesLike, pos: int) -> tuple[int, int]:
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

def _encode_record(
    delta_ts: int, delta_off: int, key: bytes | None, value: bytes | None, headers: Sequence[Header]
) -> bytes:
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


_TIMESTAMP = itemgetter(3)  # of a (key, value, headers, timestamp) record
# Per offset delta i, the same in every batch: (heads, their lengths, offsets) where heads[i] is the
# attributes byte, timestamp delta 0, offset delta i and a null key, and offsets[i] is offset delta i and
# a null key (for batches whose timestamps differ).  Replaced whole when it grows.
_HEADS: tuple[list[bytes], list[int], list[bytes]] = ([], [], [])


def _heads(n: int) -> tuple[list[bytes], list[int], list[bytes]]:
    """The per-offset-delta tables with at least ``n`` entries (grown by doubling, to _TABLE_SIZE)."""
    global _HEADS
    if len(_HEADS[0]) < n:
        want = min(_TABLE_SIZE, max(n, 2 * len(_HEADS[0]), 256))
        offsets = list(map(add, _varints()[:want], repeat(b"\x01")))
        heads = list(map(add, repeat(b"\x00\x00"), offsets))
        _HEADS = (heads, list(map(len, heads)), offsets)
    return _HEADS


def _encode_values(values: Sequence[bytes], deltas: list[int] | None) -> bytes | None:
    """The records section for null keys, no headers and non-null ``values`` whose timestamps are the
    batch's base timestamp plus ``deltas`` (None: all equal), assembled with C-level map/zip/join rather
    than a Python loop per record, which is most of the cost of producing small records.  None when the
    values or deltas do not fit the tables (or a value is None)."""
    n = len(values)
    if not _BULK_MIN <= n <= _TABLE_SIZE:
        return None
    var = _VARINTS or _varints()
    all_heads, all_head_lens, offsets_null_key = _heads(n)
    head_lens: Iterable[int]
    try:
        if deltas is None:
            heads = all_heads[:n]
            head_lens = all_head_lens[:n]
        else:
            if min(deltas) < 0:
                return None
            starts = {d: b"\x00" + var[d] for d in set(deltas)}
            heads = list(map(add, itemgetter(*deltas)(starts), offsets_null_key[:n]))
            head_lens = map(len, heads)
        lengths = list(map(len, values))
        bodies = list(map(add, head_lens, itemgetter(*lengths)(_TAIL)))
        # five pieces per record: length, head, value length, value, header count (0)
        pieces = [b"\x00"] * (5 * n)
        pieces[0::5] = itemgetter(*bodies)(var)
        pieces[1::5] = heads
        pieces[2::5] = itemgetter(*lengths)(var)
        pieces[3::5] = values
        return b"".join(pieces)
    except (TypeError, IndexError):  # a None value, a value or delta too large for the tables, ...
        return None


def _encode_unkeyed(records: Sequence[RecordTuple], base_timestamp: int) -> bytes | None:
    """:func:`_encode_values` for (key, value, headers, timestamp) tuples of that shape; None otherwise."""
    n = len(records)
    if not _BULK_MIN <= n <= _TABLE_SIZE:
        return None
    keys, values, headers, stamps = zip(*records, strict=True)
    if keys.count(None) != n or any(headers):
        return None
    same = stamps.count(base_timestamp) == n
    return _encode_values(values, None if same else list(map(sub, stamps, repeat(base_timestamp, n))))


def encode_records(records: Sequence[RecordTuple], base_timestamp: int,
                   offset_deltas: Sequence[int] | None = None) -> bytes:
    """Encode (key, value, headers, timestamp) tuples as the uncompressed records section; their offset
    deltas are 0, 1, 2... unless ``offset_deltas`` gives them (the cleaner keeps offsets, with gaps)."""
    enc = _encode_record
    if offset_deltas is not None:
        return b"".join([enc(ts - base_timestamp, delta, key, value, headers)
                         for delta, (key, value, headers, ts) in zip(offset_deltas, records, strict=True)])
    fast = _encode_unkeyed(records, base_timestamp)
    if fast is not None:
        return fast
    return b"".join(
        [enc(ts - base_timestamp, i, key, value, headers) for i, (key, value, headers, ts) in enumerate(records)]
    )


class Section:
    """A batch's uncompressed records section and what its header says about it: the two halves of
    encoding a batch, apart so that a producer can compress one batch on another thread while it builds
    the next (compressors release the GIL)."""

    __slots__ = ("body", "count", "base_timestamp", "max_timestamp")

    def __init__(self, body: bytes, count: int, base_timestamp: int, max_timestamp: int) -> None:
        self.body = body
        self.count = count
        self.base_timestamp = base_timestamp
        self.max_timestamp = max_timestamp


def record_section(records: Sequence[RecordTuple]) -> Section:
    """The section of (key, value, headers, timestamp_ms) tuples."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    timestamps = list(map(_TIMESTAMP, records))
    base_ts = timestamps[0]
    return Section(encode_records(records, base_ts), len(records), base_ts, max(timestamps))


def value_section(values: Sequence[bytes], runs: Sequence[tuple[int, int]]) -> Section:
    """The section of unkeyed, header-less records: ``values``, the first ``runs[0][0]`` of them stamped
    ``runs[0][1]``, the next ``runs[1][0]`` stamped ``runs[1][1]``, and so on.  What
    :func:`record_section` makes of the same records as tuples, without a tuple per record (the
    pipe-to-topic path)."""
    if not values:
        raise ValueError("a record batch needs at least one record")
    base_ts = runs[0][1]
    if len(runs) == 1:
        deltas = None
    else:
        deltas = []
        for count, ts in runs:
            deltas += [ts - base_ts] * count
    body = _encode_values(values, deltas)
    if body is None:
        stamps = [ts for count, ts in runs for _ in range(count)]
        body = encode_records(list(zip(repeat(None), values, repeat(()), stamps)), base_ts)
    return Section(body, len(values), base_ts, max(ts for _count, ts in runs))


def encode_batch(
    records: Sequence[RecordTuple],
    base_offset: int = 0,
    codec: int = compression.NONE,
    *,
    level: int | None = None,
    log_append_time: bool = False,
    partition_leader_epoch: int = -1,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    """Build one magic-2 batch from (key, value, headers, timestamp_ms) tuples."""
    return frame(
        record_section(records), codec, level=level, base_offset=base_offset, log_append_time=log_append_time,
        partition_leader_epoch=partition_leader_epoch, producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, transactional=transactional,
    )


def frame(section: Section, codec: int = compression.NONE, *, compressed: bytes | None = None,
          level: int | None = None, base_offset: int = 0, log_append_time: bool = False,
          partition_leader_epoch: int = -1, producer_id: int = -1, producer_epoch: int = -1,
          base_sequence: int = -1, transactional: bool = False, control: bool = False,
          last_offset_delta: int | None = None, delete_horizon: bool = False) -> bytes:
    """The batch: header and CRC around ``section``, compressed with ``codec`` here unless ``compressed``
    holds that already.  ``transactional``: part of a producer's transaction; ``control``: a transaction
    marker (see :mod:`kcli.storage.control`).  The cleaner's batches keep offsets with gaps
    (``last_offset_delta``, default count - 1) and may carry a delete horizon in their base timestamp
    (KIP-534: ``delete_horizon``)."""
    if compressed is not None:
        body = compressed
    elif codec != compression.NONE:
        body = compression.compress(codec, section.body, level)
    else:
        body = section.body
    count = section.count
    attributes = codec | (ATTR_LOG_APPEND_TIME if log_append_time else 0)
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    if control:
        attributes |= ATTR_CONTROL
    if delete_horizon:
        attributes |= ATTR_DELETE_HORIZON
    head = _HEADER.pack(
        base_offset,
        HEADER_SIZE - LOG_OVERHEAD + len(body),
        partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        count - 1 if last_offset_delta is None else last_offset_delta,
        section.base_timestamp,
        section.max_timestamp,
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

def parse_header(buf: BytesLike, pos: int = 0) -> BatchHeader:
    """Decode and sanity-check the fixed header of the batch at ``pos``."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptRecordError("record batch shorter than its 61-byte header", position=pos)
    header = BatchHeader(_HEADER.unpack_from(buf, pos))
    if header.magic != MAGIC:
        raise CorruptRecordError(f"unsupported record batch magic {header.magic}", position=pos)
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(f"record batch length {header.batch_length} is too small", position=pos)
    return header


def peek_size(buf: BytesLike, pos: int) -> tuple[int, int] | None:
    """(baseOffset, total size) of the batch at ``pos``, or None if fewer than 17 bytes remain."""
    if len(buf) - pos < 17:
        return None
    base, length = _OFFSET_AND_LENGTH.unpack_from(buf, pos)
    return base, length + LOG_OVERHEAD


def crc_valid(buf: BytesLike, pos: int, header: BatchHeader) -> bool:
    """Whether the stored CRC-32C matches bytes 21..end of the batch at ``pos``."""
    view = memoryview(buf)[pos + _CRC_START : pos + header.size]
    return crc32c(view) == header.crc


def iter_batches(buf: BytesLike, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
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


def decode_records(buf: BytesLike, pos: int = 0, header: BatchHeader | None = None,
                   verify_crc: bool = True) -> list[Record]:
    """Decode every record of the batch at ``pos``.  Control batches decode to an empty list."""
    return _decode(buf, pos, header, verify_crc, _decode_body)


def decode_values(buf: BytesLike, pos: int = 0, header: BatchHeader | None = None,
                  verify_crc: bool = True) -> list[bytes | None]:
    """The values of the records ``decode_records`` would return, with the same checks, but without
    building Record objects -- which cost as much as the parsing itself.  For readers that print values
    only (``consume``'s default format)."""
    return _decode(buf, pos, header, verify_crc, _decode_values)


_Decoded = TypeVar("_Decoded")


def _decode(buf: BytesLike, pos: int, header: BatchHeader | None, verify_crc: bool,
            body_decoder: Callable[[bytes, BatchHeader], list[_Decoded]]) -> list[_Decoded]:
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
        return body_decoder(body, header)
    except (IndexError, ValueError) as exc:
        raise CorruptRecordError(f"malformed record in batch: {exc}", position=pos) from None


class KeyWalk(NamedTuple):
    """What the log cleaner needs of a data batch's records, found without building a Record each: the
    uncompressed records section, where each record starts (the section's end last), each record's key,
    offset delta and timestamp delta, and which records hold a null value (tombstones)."""

    section: bytes
    starts: list[int]
    keys: list[bytes | None]
    offset_deltas: list[int]
    timestamp_deltas: list[int]
    nulls: list[int]


def walk_keys(buf: BytesLike, pos: int = 0, header: BatchHeader | None = None, verify_crc: bool = True) -> KeyWalk:
    """The keys of the data batch at ``pos`` and where its records lie (see :class:`KeyWalk`), with the
    checks ``decode_records`` makes of the batch, but skipping values and headers rather than decoding
    them: a key walk costs a fraction of a decode."""
    out = _decode(buf, pos, header, verify_crc, _walk_keys)
    return out[0] if out else KeyWalk(b"", [0], [], [], [], [])  # nothing: a control batch


def _walk_keys(body: bytes, header: BatchHeader) -> list[KeyWalk]:
    rv = read_varint
    z1, z2 = _ZIGZAG or _zigzag_tables()
    walk = KeyWalk(body, [], [], [], [], [])
    start, add_key, add_delta, add_ts = walk.starts.append, walk.keys.append, walk.offset_deltas.append, \
        walk.timestamp_deltas.append
    p = 0
    n = len(body)
    for i in range(header.records_count):
        start(p)
        b = body[p]
        if b < 0x80:
            end = p + 1 + z1[b]
            p += 1
        elif (c := body[p + 1]) < 0x80:
            end = p + 2 + z2[b | c << 8]
            p += 2
        else:
            length, p = rv(body, p)
            end = p + length
        if end <= p or end > n:
            raise ValueError("record length past end of batch")
        b = body[p + 1]  # after the attributes byte, unused in v2
        if b < 0x80:
            add_ts(z1[b])
            p += 2
        elif (c := body[p + 2]) < 0x80:
            add_ts(z2[b | c << 8])
            p += 3
        else:
            ts_delta, p = rv(body, p + 1)
            add_ts(ts_delta)
        b = body[p]
        if b < 0x80:
            add_delta(z1[b])
            p += 1
        elif (c := body[p + 1]) < 0x80:
            add_delta(z2[b | c << 8])
            p += 2
        else:
            off_delta, p = rv(body, p)
            add_delta(off_delta)
        b = body[p]
        if b < 0x80:
            klen = z1[b]
            p += 1
        else:
            klen, p = rv(body, p)
        if klen < 0:
            add_key(None)
        else:
            add_key(body[p : p + klen])
            p += klen
        if p >= end:
            raise ValueError("record length does not match its fields")
        if body[p] == 1:  # a value length of -1
            walk.nulls.append(i)
        p = end
    if p != n:
        raise ValueError("records section longer than its records")
    start(p)
    return [walk]


def splice_records(walk: KeyWalk, picks: Sequence[int], timestamp_deltas: Sequence[int]) -> bytes:
    """A records section of the records ``picks`` of ``walk``, with their timestamp deltas now
    ``timestamp_deltas``: a record whose delta stays is copied whole, the others get a new length and
    delta before their bytes from the offset delta on."""
    section, starts, old = walk.section, walk.starts, walk.timestamp_deltas
    out: list[bytes] = []
    append = out.append
    for i, delta in zip(picks, timestamp_deltas, strict=True):
        begin, end = starts[i], starts[i + 1]
        if old[i] == delta:
            append(section[begin:end])
            continue
        _length, p = read_varint(section, begin)
        _delta, rest = read_varint(section, p + 1)
        stamp = varint(delta)
        append(varint(end - rest + 1 + len(stamp)))
        append(b"\x00")
        append(stamp)
        append(section[rest:end])
    return b"".join(out)


# Zigzag varints of one and two bytes, decoded by table lookup (_ZIGZAG = z1, z2): z1[b] for one byte b < 0x80,
# and z2[b | c << 8] for b >= 0x80 followed by c < 0x80.  Small deltas, null keys and lengths below 8192 --
# nearly every field of nearly every record -- then cost one subscript instead of a call or five
# arithmetic steps.  Built on the first decode (produce never needs them).
_ZIGZAG: tuple[list[int], list[int]] | None = None


def _zigzag_tables() -> tuple[list[int], list[int]]:
    global _ZIGZAG
    if _ZIGZAG is None:
        decoded = list(chain.from_iterable(zip(range(0, 8192), range(-1, -8193, -1), strict=True)))  # 0,-1,1,..
        two = list(chain.from_iterable(chain(repeat(0, 128), decoded[c << 7 : (c + 1) << 7]) for c in range(128)))
        _ZIGZAG = (decoded[:128], two)
    return _ZIGZAG


@overload
def _decode_body(body: bytes, header: BatchHeader, values_only: Literal[False] = False) -> list[Record]: ...
@overload
def _decode_body(body: bytes, header: BatchHeader, values_only: Literal[True]) -> list[bytes | None]: ...
def _decode_body(
    body: bytes, header: BatchHeader, values_only: bool = False
) -> list[Record] | list[bytes | None]:
    """Walk the records section once; build Records, or with ``values_only`` just collect the values."""
    rv = read_varint
    z1, z2 = _ZIGZAG or _zigzag_tables()
    base_offset = header.base_offset
    base_ts = header.base_timestamp
    append_time = header.max_timestamp if header.log_append_time else None
    out: list[Any] = []  # Records, or with values_only the values
    append = out.append
    p = 0
    n = len(body)
    for _ in range(header.records_count):
        b = body[p]
        if b < 0x80:
            length = z1[b]
            p += 1
        elif (c := body[p + 1]) < 0x80:
            length = z2[b | c << 8]
            p += 2
        else:
            length, p = rv(body, p)
        rec_end = p + length
        if length < 0 or rec_end > n:
            raise ValueError("record length past end of batch")
        b = body[p + 1]  # after the attributes byte, unused in v2
        if b < 0x80:
            ts_delta = z1[b]
            p += 2
        elif (c := body[p + 2]) < 0x80:
            ts_delta = z2[b | c << 8]
            p += 3
        else:
            ts_delta, p = rv(body, p + 1)
        b = body[p]
        if b < 0x80:
            off_delta = z1[b]
            p += 1
        elif (c := body[p + 1]) < 0x80:
            off_delta = z2[b | c << 8]
            p += 2
        else:
            off_delta, p = rv(body, p)
        b = body[p]
        if b == 1:
            key = None
            p += 1
        else:
            if b < 0x80:
                klen = z1[b]
                p += 1
            else:
                klen, p = rv(body, p)
            if klen < 0:
                key = None
            else:
                key = body[p : p + klen]
                p += klen
        b = body[p]
        if b < 0x80:
            vlen = z1[b]
            p += 1
        elif (c := body[p + 1]) < 0x80:
            vlen = z2[b | c << 8]
            p += 2
        else:
            vlen, p = rv(body, p)
        if vlen < 0:
            value = None
        else:
            value = body[p : p + vlen]
            p += vlen
        headers: list[Header] = []
        if body[p] == 0:
            p += 1
        else:
            hcount, p = rv(body, p)
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
        if values_only:
            append(value)
        else:
            append(Record(base_offset + off_delta, base_ts + ts_delta if append_time is None else append_time,
                          key, value, headers))
    return out


def _decode_values(body: bytes, header: BatchHeader) -> list[bytes | None]:
    values = _common_values(body, header.records_count)
    return values if values is not None else _decode_body(body, header, values_only=True)


def _common_values(body: bytes, count: int) -> list[bytes | None] | None:
    """The values of a records section in the shape producers write nearly always -- one- or two-byte
    record and value lengths, a one-byte timestamp delta, a one- or two-byte offset delta, a null key, no
    headers -- found by skipping the fields around them rather than decoding each.  Every record must
    end exactly where its value and the zero header count end, and the last exactly at the end of the
    section; None as soon as a record has another shape (the full walk then decides, and reports)."""
    z1, z2 = _ZIGZAG or _zigzag_tables()
    out: list[bytes | None] = []
    append = out.append
    p = 0
    try:
        for _ in range(count):
            b = body[p]
            if b < 0x80:
                end = p + 1 + z1[b]
                q = p + 2  # past the length and the attributes byte
            elif (c := body[p + 1]) < 0x80:
                end = p + 2 + z2[b | c << 8]
                q = p + 3
            else:
                return None
            if body[q] < 0x80 and body[q + 1] < 0x80 and body[q + 2] == 1:
                q += 3
            elif body[q] < 0x80 and body[q + 2] < 0x80 and body[q + 3] == 1:
                q += 4
            else:
                return None
            b = body[q]
            if b < 0x80:
                q += 1
                v = q + z1[b]
            elif (c := body[q + 1]) < 0x80:
                q += 2
                v = q + z2[b | c << 8]
            else:
                return None
            if v + 1 != end or v < q or body[v]:
                return None
            append(body[q:v])
            p = end
    except IndexError:
        return None
    return out if p == len(body) else None
