"""Kafka's primitive wire types and the zigzag varints.

Each type knows how to build a decoder ``(buf, pos) -> (value, new_pos)`` reading from a memoryview,
and an encoder ``(value, out) -> None`` appending bytes-like parts to a list.  Encoders append parts
instead of writing into one growing buffer so that a large ``records`` blob is referenced, not copied,
until the final ``b"".join`` (one copy in total).

Decoders never check bounds for fixed-width reads themselves: ``struct.unpack_from`` raises
``struct.error`` on a short buffer, and the struct machinery in :mod:`kcli.protocol.schema` turns that
into :class:`~kcli.errors.ProtocolError`.  Length-prefixed reads *are* checked here because slicing a
memoryview past its end silently truncates.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from kcli.errors import ProtocolError

# The bytes-like parts an encoder appends, joined once at the end.
Parts = list[bytes | bytearray | memoryview]
Decoder = Callable[[memoryview, int], tuple[Any, int]]
Encoder = Callable[[Any, Parts], None]

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")

_NULL_I16 = b"\xff\xff"
_NULL_I32 = b"\xff\xff\xff\xff"
# Below this size a bytes value is concatenated with its length prefix (fewer parts to join);
# above it the value is appended as its own part so it is copied only once, by the final join.
_INLINE_BYTES = 512


class FieldError(ProtocolError):
    """A ProtocolError that knows where in a message it happened.

    Struct and array codecs prepend their field name / element index to ``path`` while the error
    propagates, so the final message reads e.g. ``Produce v8 request: topic_data[0].partition_data[1]
    .records: ...`` -- enough to find a schema mistake or a broken peer without a debugger."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []
        self.context: str | None = None

    def __str__(self) -> str:
        where = ""
        for seg in self.path:
            where += seg if seg.startswith("[") or not where else "." + seg
        parts = [p for p in (self.context, where) if p]
        return ": ".join([*parts, self.message])


def as_buffer(data: bytes | bytearray | memoryview) -> memoryview:
    """A flat unsigned-byte memoryview over ``data`` (zero-copy)."""
    try:
        mv = data if isinstance(data, memoryview) else memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
    except (TypeError, ValueError, BufferError) as e:
        raise ProtocolError(f"cannot read protocol data from {type(data).__name__}: {e}") from None
    return mv


def _byte_part(value: Any) -> bytes | bytearray | memoryview:
    """``value`` as something whose ``len()`` is its size in bytes."""
    if type(value) is bytes or type(value) is bytearray:
        return value
    if isinstance(value, str):
        raise FieldError("expected bytes, got str")
    mv = memoryview(value)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


class Fixed:
    """A fixed-width big-endian number or boolean (int8/16/32/64, bool).

    ``code`` is the ``struct`` format character; the schema compiler merges runs of consecutive fixed
    fields into one ``struct.Struct`` so a partition entry is read with a single unpack."""

    nullable_ok = False

    def __init__(self, name: str, code: str, default: Any) -> None:
        self.name = name
        self.code = code
        self.default = default
        self.struct = struct.Struct(">" + code)
        self.size = self.struct.size
        self.min_size = self.size

    def __repr__(self) -> str:
        return self.name

    def decoder(self, nullable: bool = False) -> Decoder:
        unpack, size = self.struct.unpack_from, self.size

        def dec(buf: memoryview, pos: int) -> tuple[Any, int]:
            return unpack(buf, pos)[0], pos + size

        return dec

    def encoder(self, nullable: bool = False) -> Encoder:
        pack = self.struct.pack

        def enc(value: Any, out: Parts) -> None:
            out.append(pack(value))

        return enc


def _check_remaining(buf: memoryview, pos: int, n: int) -> int:
    end = pos + n
    if end > len(buf):
        raise FieldError(f"truncated: need {n} bytes at offset {pos}, only {len(buf) - pos} left")
    return end


def encode_compact_length(n: int) -> bytes:
    """A flexible version's length or array-count prefix: unsigned varint of ``n`` + 1 (0 is null)."""
    return encode_unsigned_varint(n + 1)


class String:
    """int16-length-prefixed UTF-8 (nullable: length -1 is null).

    The ``compact`` subclass (flexible versions) differs only in the length prefix: it shares the
    encoder (the prefix packer is picked when the closure is built, so the classic path pays nothing)
    and has its own decoder, as a shared one would cost the classic Produce/Fetch path a branch."""

    nullable_ok = True
    name = "string"
    default = ""
    min_size = 2
    compact = False

    def __repr__(self) -> str:
        return self.name

    def decoder(self, nullable: bool = False) -> Decoder:
        unpack = I16.unpack_from

        def dec(buf: memoryview, pos: int) -> tuple[Any, int]:
            n = unpack(buf, pos)[0]
            pos += 2
            if n < 0:
                if n == -1 and nullable:
                    return None, pos
                raise FieldError(f"invalid string length {n}")
            end = _check_remaining(buf, pos, n)
            return str(buf[pos:end], "utf-8"), end

        return dec

    def encoder(self, nullable: bool = False) -> Encoder:
        pack = encode_compact_length if self.compact else I16.pack
        null = b"\x00" if self.compact else _NULL_I16

        def enc(value: Any, out: Parts) -> None:
            if value is None:
                if not nullable:
                    raise FieldError("null is not allowed for this string")
                out.append(null)
                return
            if not isinstance(value, str):
                raise FieldError(f"expected str, got {type(value).__name__}")
            b = value.encode("utf-8")
            if len(b) > 0x7FFF:
                raise FieldError(f"string of {len(b)} bytes is longer than 32767")
            out.append(pack(len(b)) + b)

        return enc


class Bytes:
    """int32-length-prefixed bytes (nullable: length -1 is null).  Decodes to ``bytes`` (a copy:
    these fields are small group-protocol blobs that callers keep around).  ``compact`` as for
    :class:`String`."""

    nullable_ok = True
    name = "bytes"
    default: bytes | None = b""
    min_size = 4
    zero_copy = False
    compact = False

    def __repr__(self) -> str:
        return self.name

    def decoder(self, nullable: bool = False) -> Decoder:
        unpack, zero_copy = I32.unpack_from, self.zero_copy

        def dec(buf: memoryview, pos: int) -> tuple[Any, int]:
            n = unpack(buf, pos)[0]
            pos += 4
            if n < 0:
                if n == -1 and nullable:
                    return None, pos
                raise FieldError(f"invalid bytes length {n}")
            end = _check_remaining(buf, pos, n)
            return (buf[pos:end] if zero_copy else bytes(buf[pos:end])), end

        return dec

    def encoder(self, nullable: bool = False) -> Encoder:
        pack = encode_compact_length if self.compact else I32.pack
        null = b"\x00" if self.compact else _NULL_I32

        def enc(value: Any, out: Parts) -> None:
            if value is None:
                if not nullable:
                    raise FieldError("null is not allowed for these bytes")
                out.append(null)
                return
            part = _byte_part(value)
            n = len(part)
            if n <= _INLINE_BYTES:
                out.append(pack(n) + part)
            else:
                out.append(pack(n))
                out.append(part)

        return enc


class Records(Bytes):
    """A record-batch blob, kept opaque: decodes to a zero-copy memoryview slice of the input and
    encodes by reference, so a 1 MB Produce payload is copied once (into the outgoing frame)."""

    name = "records"
    default = None
    zero_copy = True


class CompactString(String):
    """Flexible versions' string: unsigned-varint length + 1 (0 is null), then UTF-8."""

    name = "compact_string"
    min_size = 1
    compact = True

    def decoder(self, nullable: bool = False) -> Decoder:
        def dec(buf: memoryview, pos: int) -> tuple[Any, int]:
            n, pos = decode_unsigned_varint(buf, pos)
            if n == 0:
                if nullable:
                    return None, pos
                raise FieldError("null is not allowed for this string")
            end = _check_remaining(buf, pos, n - 1)
            return str(buf[pos:end], "utf-8"), end

        return dec


class CompactBytes(Bytes):
    """Flexible versions' bytes: unsigned-varint length + 1 (0 is null), then the bytes."""

    name = "compact_bytes"
    min_size = 1
    compact = True

    def decoder(self, nullable: bool = False) -> Decoder:
        zero_copy = self.zero_copy

        def dec(buf: memoryview, pos: int) -> tuple[Any, int]:
            n, pos = decode_unsigned_varint(buf, pos)
            if n == 0:
                if nullable:
                    return None, pos
                raise FieldError("null is not allowed for these bytes")
            end = _check_remaining(buf, pos, n - 1)
            return (buf[pos:end] if zero_copy else bytes(buf[pos:end])), end

        return dec


class CompactRecords(CompactBytes):
    """A record-batch blob in a flexible version (zero-copy, like :class:`Records`)."""

    name = "compact_records"
    default = None
    zero_copy = True


INT8 = Fixed("int8", "b", 0)
INT16 = Fixed("int16", "h", 0)
INT32 = Fixed("int32", "i", 0)
INT64 = Fixed("int64", "q", 0)
BOOL = Fixed("bool", "?", False)
# Kafka's uuid (topic ids): 16 raw bytes, big-endian most- then least-significant long; the all-zero
# id is Kafka's ZERO_UUID, "no id".  Fixed width, so it joins the struct runs of its neighbours.
UUID = Fixed("uuid", "16s", bytes(16))
ZERO_UUID = bytes(16)
STRING = String()
BYTES = Bytes()
RECORDS = Records()

COMPACT_STRING = CompactString()
COMPACT_BYTES = CompactBytes()
COMPACT_RECORDS = CompactRecords()

PrimitiveType = Fixed | String | Bytes

_COMPACT: dict[type, PrimitiveType] = {String: COMPACT_STRING, Bytes: COMPACT_BYTES, Records: COMPACT_RECORDS}


def flexible_form(t: PrimitiveType) -> PrimitiveType:
    """The type a flexible version puts on the wire for a field declared ``t`` (KIP-482): strings,
    bytes and records become their compact forms; fixed-width types stay as they are."""
    return _COMPACT.get(type(t), t)


def skip_tagged_fields(buf: memoryview, pos: int) -> int:
    """Skip a tagged-field section (a count, then per field its tag, size and data); the position after.

    Used where kcli knows no tag (headers, structs without tagged fields): every one a peer sends is
    skipped, as Kafka's generated code keeps unknown tags aside."""
    count, pos = decode_unsigned_varint(buf, pos)
    for _ in range(count):
        _tag, pos = decode_unsigned_varint(buf, pos)
        size, pos = decode_unsigned_varint(buf, pos)
        pos = _check_remaining(buf, pos, size)
    return pos


NO_TAGGED_FIELDS = b"\x00"  # an empty tagged-field section


# --- zigzag varints (record batches, flexible versions) -------------------------------------------

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def encode_unsigned_varint(value: int) -> bytes:
    """Base-128 little-endian varint of a non-negative int (Kafka's ``UNSIGNED_VARINT``)."""
    if value < 0:
        raise ProtocolError(f"unsigned varint cannot be negative: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_unsigned_varint(
    buf: bytes | bytearray | memoryview, pos: int = 0, max_bytes: int = 5
) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; returns ``(value, new_pos)``.  At most ``max_bytes`` bytes
    (5 for 32-bit values, 10 for 64-bit) so a stream of 0xff cannot make us loop forever."""
    result = 0
    shift = 0
    end = len(buf)
    for i in range(max_bytes):
        if pos + i >= end:
            raise FieldError(f"truncated varint at offset {pos}")
        b = buf[pos + i]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos + i + 1
        shift += 7
    raise FieldError(f"varint longer than {max_bytes} bytes at offset {pos}")


def encode_varint(value: int) -> bytes:
    """Zigzag varint of a signed 32-bit int (Kafka's ``VARINT``)."""
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ProtocolError(f"varint out of int32 range: {value}")
    return encode_unsigned_varint(((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read a zigzag varint (signed 32-bit); returns ``(value, new_pos)``."""
    raw, pos = decode_unsigned_varint(buf, pos, 5)
    if raw > 0xFFFFFFFF:
        raise ProtocolError("varint out of int32 range")
    return (raw >> 1) ^ -(raw & 1), pos


def encode_varlong(value: int) -> bytes:
    """Zigzag varint of a signed 64-bit int (Kafka's ``VARLONG``)."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ProtocolError(f"varlong out of int64 range: {value}")
    return encode_unsigned_varint(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def decode_varlong(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read a zigzag varlong (signed 64-bit); returns ``(value, new_pos)``."""
    raw, pos = decode_unsigned_varint(buf, pos, 10)
    if raw > 0xFFFFFFFFFFFFFFFF:
        raise ProtocolError("varlong out of int64 range")
    return (raw >> 1) ^ -(raw & 1), pos
