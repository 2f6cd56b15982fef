"""Record batch v2 codec, compression framing, CRC-32C and the murmur2 partitioner."""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c

from kcli.client.partitioner import DefaultPartitioner, murmur2, partition_for_key
from kcli.errors import CorruptRecordError
from kcli.storage import compression, records

CODECS = sorted(compression.CODECS.items(), key=lambda kv: kv[1])
TS = 1_700_000_000_000

SAMPLE = [
    (b"k1", b"v1", [], TS),
    (None, b"value with null key", [], TS + 1),
    (b"key with null value", None, [], TS + 2),
    (None, None, [], TS + 3),
    (b"", b"", [], TS + 4),
    (b"\x00\xff\xfe binary", bytes(range(256)), [("h1", b"x"), ("h-null", None), ("h-empty", b"")], TS + 5),
    (b"k", "ünïcödé ✓".encode(), [("ключ", "значение".encode())], TS - 1000),  # timestamp before the base
    (b"big", b"x" * 70_000, [], TS + 99_999),
]


def _fields(recs: list[records.Record]) -> list[tuple]:
    return [(r.key, r.value, r.headers, r.timestamp) for r in recs]


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize(("name", "codec"), CODECS)
def test_batch_round_trip_every_codec(name, codec):
    batch = records.encode_batch(SAMPLE, base_offset=1234, codec=codec)
    header = records.parse_header(batch)
    assert header.magic == 2
    assert header.size == len(batch)
    assert header.codec == codec
    assert header.base_offset == 1234
    assert header.last_offset == 1234 + len(SAMPLE) - 1
    assert header.records_count == len(SAMPLE)
    assert header.base_timestamp == TS
    assert header.max_timestamp == TS + 99_999
    assert header.partition_leader_epoch == -1
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)
    assert records.crc_valid(batch, 0, header)
    decoded = records.decode_records(batch)
    assert [r.offset for r in decoded] == list(range(1234, 1234 + len(SAMPLE)))
    assert _fields(decoded) == [(k, v, h, ts) for k, v, h, ts in SAMPLE]
    if codec != compression.NONE:
        # the records section really is compressed: the 70 kB run of 'x' shrinks
        assert len(batch) < 20_000


def test_batch_layout_is_kafkas():
    """Field positions of docs/kafka-format.md, read with struct independently of the codec's own parser."""
    batch = records.encode_batch([(b"k", b"v", [("a", b"b")], TS)], base_offset=7, codec=compression.NONE)
    base, length, epoch, magic, crc, attrs, lod, bts, mts, pid, pep, bseq, count = struct.unpack_from(
        ">qiibIhiqqqhii", batch
    )
    assert (base, length, epoch, magic, attrs, lod, bts, mts, count) == (
        7,
        len(batch) - 12,
        -1,
        2,
        0,
        0,
        TS,
        TS,
        1,
    )
    assert (pid, pep, bseq) == (-1, -1, -1)
    assert crc == crc32c(batch[21:])
    # one record: length, attributes 0, ts delta 0, offset delta 0, key len 1 'k', value len 1 'v', 1 header
    body = batch[61:]
    expected_body = bytes([0, 0, 0]) + b"\x02k" + b"\x02v" + b"\x02" + b"\x02a" + b"\x02b"
    assert body == bytes([len(expected_body) * 2]) + expected_body


def test_stamp_does_not_touch_crc():
    batch = bytearray(records.encode_batch([(None, b"v", [], TS)] * 3))
    crc_before = bytes(batch[17:21])
    records.stamp(batch, 10_000_000_000, 42)
    header = records.parse_header(batch)
    assert header.base_offset == 10_000_000_000
    assert header.partition_leader_epoch == 42
    assert bytes(batch[17:21]) == crc_before
    assert records.crc_valid(batch, 0, header)
    assert [r.offset for r in records.decode_records(batch)] == [10_000_000_000 + i for i in range(3)]


@pytest.mark.parametrize(
    "n",
    [
        0,
        1,
        -1,
        63,
        -64,
        64,
        -65,
        8191,
        8192,
        16382,
        16383,
        16384,
        2**31 - 1,
        -(2**31),
        2**62,
        2**63 - 1,
        -(2**63),
    ],
)
def test_varint_round_trip(n):
    enc = records.varint(n)
    value, end = records.read_varint(enc + b"\x99", 0)
    assert (value, end) == (n, len(enc))


def test_varint_known_encodings():
    # protobuf zigzag: 0->0, -1->1, 1->2, -2->3, 300 -> 600 = ac 04
    assert records.varint(0) == b"\x00"
    assert records.varint(-1) == b"\x01"
    assert records.varint(1) == b"\x02"
    assert records.varint(-2) == b"\x03"
    assert records.varint(300) == b"\xd8\x04"
    assert records.varint(-(2**63)) == b"\xff" * 9 + b"\x01"


def test_log_append_time_batch_reports_max_timestamp():
    batch = records.encode_batch([(None, b"a", [], 5), (None, b"b", [], 9)], log_append_time=True)
    header = records.parse_header(batch)
    assert header.log_append_time
    assert [r.timestamp for r in records.decode_records(batch)] == [9, 9]


@pytest.mark.parametrize("codec", [c for _n, c in CODECS])
def test_corrupt_body_is_a_corrupt_record_error(codec):
    batch = bytearray(records.encode_batch(SAMPLE[:6], codec=codec))
    batch[-3] ^= 0x55
    with pytest.raises(CorruptRecordError, match="CRC"):
        records.decode_records(batch)
    # with the CRC check off, a broken codec stream is still an error, never a crash
    if codec != compression.NONE:
        bad = bytearray(records.encode_batch(SAMPLE[:6], codec=codec))
        bad[61:] = b"\x00" * (len(bad) - 61)
        with pytest.raises(CorruptRecordError):
            records.decode_records(bad, verify_crc=False)


def test_bad_header_fields_are_errors():
    batch = bytearray(records.encode_batch([(None, b"v", [], TS)]))
    bad_magic = bytearray(batch)
    bad_magic[16] = 1
    with pytest.raises(CorruptRecordError, match="magic"):
        records.parse_header(bad_magic)
    short_length = bytearray(batch)
    struct.pack_into(">i", short_length, 8, 20)
    with pytest.raises(CorruptRecordError, match="too small"):
        records.parse_header(short_length)
    with pytest.raises(CorruptRecordError):
        records.parse_header(batch[:40])


def test_iter_batches_stops_at_partial_tail():
    batches = [records.encode_batch([(None, str(i).encode(), [], TS + i)], base_offset=i) for i in range(5)]
    data = b"".join(batches)
    for cut in (1, 16, 17, 40, 61, len(batches[-1]) - 1):
        got = list(records.iter_batches(data[:-cut]))
        assert [h.base_offset for _p, h in got] == [0, 1, 2, 3]
    assert [p for p, _h in records.iter_batches(data)] == [sum(map(len, batches[:i])) for i in range(5)]


def test_decode_rejects_record_lengths_that_do_not_add_up():
    batch = bytearray(records.encode_batch([(b"k", b"value", [], TS)]))
    batch[61] += 2  # record length now claims more bytes than the batch holds
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    with pytest.raises(CorruptRecordError, match="malformed"):
        records.decode_records(batch)


def test_snappy_reader_accepts_raw_block_and_xerial_multi_block():
    import cramjam

    data = bytes(range(256)) * 1000  # > 32 KiB: several xerial blocks
    framed = compression.compress(compression.SNAPPY, data)
    assert framed.startswith(b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1))
    assert compression.decompress(compression.SNAPPY, framed) == data
    raw = bytes(cramjam.snappy.compress_raw(data))
    assert compression.decompress(compression.SNAPPY, raw) == data


def test_lz4_frames_use_independent_blocks():
    import lz4.frame

    framed = compression.compress(compression.LZ4, b"abc" * 100_000)
    # FLG byte: version 01, bit 5 = block independence
    assert framed[:4] == b"\x04\x22\x4d\x18"
    assert framed[4] & 0x20
    assert lz4.frame.decompress(framed) == b"abc" * 100_000


def test_gzip_and_zstd_are_standard_streams():
    import gzip

    import zstandard

    data = b"hello " * 1000
    assert gzip.decompress(compression.compress(compression.GZIP, data)) == data
    assert (
        zstandard.ZstdDecompressor().decompressobj().decompress(compression.compress(compression.ZSTD, data))
        == data
    )


# ---------------------------------------------------------------- murmur2 (docs/kafka-format.md)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"abc", 479470107),
    ],
)
def test_murmur2_signed_vectors(key, expected):
    assert murmur2(key) == expected


@pytest.mark.parametrize(
    ("key", "partition"),
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566)],
)
def test_murmur2_partition_mapping_1000(key, partition):
    assert partition_for_key(key, 1000) == partition
    assert DefaultPartitioner().partition("t", key, 1000) == partition


def test_sticky_partitioner_for_null_keys():
    p = DefaultPartitioner()
    first = p.partition("t", None, 8)
    assert all(p.partition("t", None, 8) == first for _ in range(50))
    p.batch_sent("t", first, 8)
    second = p.partition("t", None, 8)
    assert second != first and 0 <= second < 8
    assert DefaultPartitioner().partition("t", None, 1) == 0
