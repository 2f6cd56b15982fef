"""Byte compatibility with an independent implementation: kafka-python's record reader and builder."""

from __future__ import annotations

import glob
import json
import os
import warnings

import pytest

with warnings.catch_warnings():  # kafka-python's protocol modules use deprecated importlib.resources calls
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.codec
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
    from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
    from kafka.record.util import calc_crc32c

from kcli.cluster.datadir import DataDir
from kcli.storage import compression, records
from kcli.storage.log import PartitionLog

TS = 1_650_000_000_000
CODECS = sorted(compression.CODECS.items(), key=lambda kv: kv[1])


def _sample(n: int) -> list[tuple]:
    out = []
    for i in range(n):
        key = None if i % 5 == 0 else f"key-{i}".encode()
        value = None if i % 7 == 3 else (b"" if i % 7 == 4 else f"value {i} ".encode() * (1 + i % 4))
        headers = [] if i % 3 else [("h", f"{i}".encode()), ("nul", None)]
        out.append((key, value, headers, TS + i * 10))
    return out


def _kp_fields(batch) -> list[tuple]:
    return [(r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in batch]


# ---------------------------------------------------------------- kcli writes, kafka-python reads


@pytest.mark.parametrize(("name", "codec"), CODECS)
def test_kafka_python_reads_kcli_batches(name, codec):
    recs = _sample(50)
    data = records.encode_batch(recs, base_offset=1000, codec=codec)
    batch = DefaultRecordBatch(bytearray(data))
    assert batch.validate_crc()
    assert batch.magic == 2
    assert batch.compression_type == codec
    assert batch.base_offset == 1000
    assert batch.last_offset_delta == 49
    assert batch.first_timestamp == TS
    assert batch.max_timestamp == TS + 490
    assert batch.producer_id == -1
    assert _kp_fields(batch) == [(1000 + i, k, v, h, ts) for i, (k, v, h, ts) in enumerate(recs)]


def test_kafka_python_reads_a_kcli_segment_file(kcli):
    """A real segment written by `kcli produce` (several batches, every codec) read with MemoryRecords."""
    expected = []
    for name, _codec in CODECS:
        lines = [f"{name}-{i}" for i in range(300)]
        kcli(
            "produce",
            "t",
            "-z",
            name,
            "--batch-size",
            "1000",
            "-K",
            "-",
            input="".join(f"k{i}-{x}\n" for i, x in enumerate(lines)),
        )
        expected += [(f"k{i}".encode(), x.encode()) for i, x in enumerate(lines)]
    seg = os.path.join(kcli.data_dir, "broker-0", "t-0", "00000000000000000000.log")
    with open(seg, "rb") as fh:
        data = fh.read()
    mr = MemoryRecords(data)
    got, codecs_seen, nbatches = [], set(), 0
    while mr.has_next():
        batch = mr.next_batch()
        assert batch.validate_crc()
        nbatches += 1
        codecs_seen.add(batch.compression_type)
        for r in batch:
            got.append((r.offset, r.key, r.value))
    assert mr.valid_bytes() == len(data)
    assert codecs_seen == {c for _n, c in CODECS}
    assert nbatches > len(CODECS)  # --batch-size 1000 really split the input
    assert got == [(i, k, v) for i, (k, v) in enumerate(expected)]


# ---------------------------------------------------------------- kafka-python writes, kcli reads


def _kp_build(recs: list[tuple], codec: int, batch_size: int = 1 << 24) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=batch_size,
    )
    for i, (key, value, headers, ts) in enumerate(recs):
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=headers) is not None
    return bytes(builder.build())


@pytest.mark.parametrize(("name", "codec"), CODECS)
def test_kcli_reads_kafka_python_batches(name, codec):
    recs = _sample(60)
    data = _kp_build(recs, codec)
    header = records.parse_header(data)
    assert header.codec == codec  # compressible data: kafka-python did not fall back to none
    assert header.size == len(data)
    assert records.crc_valid(data, 0, header)
    got = records.decode_records(data)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got] == [
        (i, k, v, h, ts) for i, (k, v, h, ts) in enumerate(recs)
    ]


SIZES = [
    0,
    1,
    2,
    62,
    63,
    64,
    65,
    127,
    128,
    8188,
    8189,
    8190,
    8191,
    8192,
    8193,
    16378,
    16379,
    16383,
    16384,
    20000,
]


@pytest.mark.parametrize(
    "shape",
    ["same-timestamp", "rising-timestamps", "big-timestamp-gaps", "falling-timestamp", "null-value", "many"],
)
def test_records_section_is_byte_identical_to_kafka_pythons(shape):
    """kcli's encoder (including its fast path for unkeyed, headerless records) writes the same record bytes
    as kafka-python's builder, for value and length-varint sizes at every varint boundary."""
    values = [bytes([65 + i % 26]) * n for i, n in enumerate(SIZES)]
    stamps = [TS] * len(values)
    if shape == "rising-timestamps":
        stamps = [TS + i * 7 for i in range(len(values))]
    elif shape == "big-timestamp-gaps":
        stamps = [TS + i * 9000 for i in range(len(values))]
    elif shape == "falling-timestamp":
        stamps[5] = TS - 1
    elif shape == "null-value":
        values[3] = None
    elif shape == "many":
        values = [str(i).encode() for i in range(20_000)]
        stamps = [TS + i // 100 for i in range(len(values))]
    recs = [(None, v, [], ts) for v, ts in zip(values, stamps, strict=True)]
    ours = records.encode_batch(recs, codec=compression.NONE)
    theirs = _kp_build(recs, DefaultRecordBatch.CODEC_NONE)
    # every byte but partitionLeaderEpoch (kcli writes -1 like Kafka's producer, kafka-python 0), CRC included
    assert ours[61:] == theirs[61:]
    assert ours[:12] + ours[16:] == theirs[:12] + theirs[16:]
    got = records.decode_records(ours)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got] == [
        (i, None, v, [], ts) for i, (_k, v, _h, ts) in enumerate(recs)
    ]


def test_kcli_reads_memory_records_builder_output_with_producer_state():
    mrb = MemoryRecordsBuilder(
        magic=2,
        compression_type=DefaultRecordBatch.CODEC_ZSTD,
        batch_size=1 << 20,
        producer_id=4242,
        producer_epoch=3,
        base_sequence=17,
    )
    recs = _sample(20)
    for key, value, headers, ts in recs:
        assert mrb.append(ts, key, value, headers) is not None
    mrb.close()
    data = bytes(mrb.buffer())
    header = records.parse_header(data)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (4242, 3, 17)
    assert header.last_sequence == 17 + 19
    assert [(r.key, r.value, r.headers, r.timestamp) for r in records.decode_records(data)] == [
        (k, v, h, ts) for k, v, h, ts in recs
    ]


def test_kcli_reads_raw_snappy_block_without_xerial_framing():
    """Kafka readers also accept a bare snappy block; build one by hand with kafka-python's pieces."""
    recs = _sample(30)
    plain = bytearray(_kp_build(recs, DefaultRecordBatch.CODEC_NONE))
    raw = kafka.codec.snappy_encode(bytes(plain[61:]), xerial_compatible=False)
    batch = bytearray(plain[:61]) + raw
    batch[21:23] = (DefaultRecordBatch.CODEC_SNAPPY).to_bytes(2, "big")
    batch[8:12] = (len(batch) - 12).to_bytes(4, "big")
    batch[17:21] = calc_crc32c(bytes(batch[21:])).to_bytes(4, "big")
    assert DefaultRecordBatch(bytearray(batch)).validate_crc()
    got = records.decode_records(bytes(batch))
    assert [(r.key, r.value, r.headers) for r in got] == [(k, v, h) for k, v, h, _ts in recs]


def test_kcli_consume_reads_kafka_python_batches_appended_to_a_partition(kcli):
    """Batches built by kafka-python (every codec), stored with PartitionLog.append, read back by
    `kcli consume -b -e`."""
    kcli.in_process("topic", "create", "interop")
    recs = []
    batches = []
    for b, (_name, codec) in enumerate(CODECS * 2):
        chunk = [
            (
                f"k{b}-{i}".encode(),
                f"v{b}-{i} ".encode() * 20,
                [("batch", str(b).encode()), ("n", None)],
                TS + b * 1000 + i,
            )
            for i in range(25)
        ]
        if b == 2:
            chunk[0] = (None, None, [], TS + 2000)
        recs += chunk
        batches.append(_kp_build(chunk, codec))
    datadir = DataDir(str(kcli.data_dir))
    with datadir.partition_lock("interop", 0):
        log = PartitionLog(datadir.partition_dir(0, "interop", 0))
        log.open_for_append(None)
        bases = [log.append(b).base_offset for b in batches]
        log.release()
    assert bases == list(range(0, 250, 25))
    # stored bytes are kafka-python's, with only baseOffset and the leader epoch rewritten
    seg = glob.glob(os.path.join(datadir.partition_dir(0, "interop", 0), "*.log"))
    with open(seg[0], "rb") as fh:
        stored = fh.read()
    pos = 0
    for built, base in zip(batches, bases, strict=True):
        kept = stored[pos : pos + len(built)]
        assert int.from_bytes(kept[:8], "big") == base
        assert kept[8:12] == built[8:12] and kept[16:] == built[16:]
        pos += len(built)
    assert pos == len(stored)
    out = kcli("consume", "interop", "-b", "-e", "--json").stdout
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["offset"] for g in got] == list(range(250))

    def text(b):
        return None if b is None else b.decode()

    assert [(g["key"], g["value"], g["headers"], g["timestamp"]) for g in got] == [
        (text(k), text(v), [[hk, text(hv)] for hk, hv in h], ts) for k, v, h, ts in recs
    ]
    mr = MemoryRecords(stored)
    assert [b.compression_type for b in iter(mr.next_batch, None)] == [c for _n, c in CODECS] * 2
