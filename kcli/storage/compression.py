"""Batch compression codecs, framed exactly as Kafka's Java client writes and reads them.

Codec modules are imported on first use: a plain produce must not pay for zstd or lz4 at start-up.
"""

from __future__ import annotations

import struct
import threading
import zlib
from typing import TYPE_CHECKING

from kcli.errors import CorruptRecordError, UsageError

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODECS = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
CODEC_NAMES = {v: k for k, v in CODECS.items()}

# xerial snappy-java stream header: magic, version 1, compatible version 1.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024

if TYPE_CHECKING:
    import zstandard


def codec_id(name: str) -> int:
    """Map a codec name (as on the command line or in topic config) to Kafka's attribute bits."""
    try:
        return CODECS[name.lower()]
    except KeyError:
        raise UsageError(f"unknown compression codec {name!r}", hint="use none, gzip, snappy, lz4 or zstd") from None


def compress(codec: int, data: bytes, level: int | None = None) -> bytes:
    """Compress the records section of a batch with ``codec``."""
    if codec == NONE:
        return data
    if codec == GZIP:
        c = zlib.compressobj(level if level is not None else 6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == SNAPPY:
        return _snappy_xerial(data)
    if codec == LZ4:
        import lz4.frame

        framed: bytes = lz4.frame.compress(
            data,
            compression_level=level or 0,
            block_linked=False,
            content_checksum=False,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
        )
        return framed
    if codec == ZSTD:
        return _zstd_compressor(3 if level is None else level).compress(data)
    raise CorruptRecordError(f"unknown compression codec id {codec}")


_local = threading.local()


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    """One compressor per level and thread: making one per batch costs more than compressing 16 KB."""
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "zstd", None)
    if cache is None:
        cache = _local.zstd = {}
    comp = cache.get(level)
    if comp is None:
        import zstandard

        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Decompress a batch's records section; any codec failure is a corrupt batch, not a crash."""
    try:
        if codec == NONE:
            return bytes(data)
        if codec == GZIP:
            return zlib.decompress(bytes(data), 47)
        if codec == SNAPPY:
            return _unsnappy(bytes(data))
        if codec == LZ4:
            import lz4.frame

            plain: bytes = lz4.frame.decompress(bytes(data))
            return plain
        if codec == ZSTD:
            import zstandard

            d = zstandard.ZstdDecompressor().decompressobj()
            return d.decompress(bytes(data))
    except CorruptRecordError:
        raise
    except Exception as exc:  # every codec library has its own error types
        raise CorruptRecordError(f"cannot decompress {CODEC_NAMES.get(codec, codec)} data: {exc}") from None
    raise CorruptRecordError(f"unknown compression codec id {codec}")


def _snappy_xerial(data: bytes) -> bytes:
    import cramjam

    out = [_XERIAL_HEADER]
    for start in range(0, max(len(data), 1), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
        out.append(struct.pack(">i", len(block)))
        out.append(block)
    return b"".join(out)


def _unsnappy(data: bytes) -> bytes:
    import cramjam

    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    pos, out = 16, []
    while pos < len(data):
        if pos + 4 > len(data):
            raise CorruptRecordError("truncated xerial snappy block header")
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size < 0 or pos + size > len(data):
            raise CorruptRecordError("truncated xerial snappy block")
        out.append(bytes(cramjam.snappy.decompress_raw(data[pos : pos + size])))
        pos += size
    return b"".join(out)
