"""`kcli perf`, the benchmark runner, and the fast paths the performance work added.

The fast paths (bulk encoding, Producer.send_many, decode_values, consume's bulk printing) must give
exactly what the general paths give; these tests pin that down.  No timing assertions: figures depend
on the machine.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kcli.client.producer import Producer
from kcli.storage import records

ROOT = Path(__file__).resolve().parent.parent

PRODUCE_SUMMARY = re.compile(
    r"^(\d+) records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
    r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$"
)
CONSUME_HEADER = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
    "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
)
KAFKA_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}"


# ---------------------------------------------------------------- kcli perf


def test_perf_produce_prints_kafka_summary_and_stores_the_records(kcli) -> None:
    out = kcli("perf", "produce", "bench", "--num-records", 500, "--record-size", 50).stdout.splitlines()
    match = PRODUCE_SUMMARY.match(out[-1])
    assert match, out
    assert match.group(1) == "500"
    stored = kcli("consume", "bench", "--from-beginning", "-e").stdout.splitlines()
    assert len(stored) == 500
    assert all(re.fullmatch(r"[A-Z]{50}", line) for line in stored)


def test_perf_produce_throttled_with_compression(kcli) -> None:
    out = kcli(
        "perf", "produce", "slow", "--num-records", 30, "--record-size", 10, "--throughput", 300, "-z", "lz4"
    ).stdout
    assert PRODUCE_SUMMARY.match(out.splitlines()[-1]), out
    assert len(kcli("consume", "slow", "-b", "-e").stdout.splitlines()) == 30


def test_perf_consume_prints_kafka_columns(kcli) -> None:
    kcli("perf", "produce", "bench", "--num-records", 400, "--record-size", 100)
    lines = kcli("perf", "consume", "bench", "--messages", 400).stdout.splitlines()
    assert lines[0] == CONSUME_HEADER
    fields = lines[1].split(", ")
    assert len(fields) == 10
    assert re.fullmatch(KAFKA_TIME, fields[0]) and re.fullmatch(KAFKA_TIME, fields[1])
    assert float(fields[2]) == pytest.approx(400 * 100 / 1024 / 1024, abs=1e-4)
    assert fields[4] == "400"


def test_perf_consume_stops_after_timeout_with_a_warning(kcli) -> None:
    kcli("perf", "produce", "few", "--num-records", 20, "--record-size", 5)
    proc = kcli("perf", "consume", "few", "--messages", 1000, "--timeout", 200, "--hide-header")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].split(", ")[4] == "20"
    assert "timeout (200 ms) exceeded" in proc.stderr


def test_perf_consume_of_missing_topic_fails(kcli) -> None:
    proc = kcli("perf", "consume", "nope", "--messages", 1, ok=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("kcli: error:")


# ---------------------------------------------------------------- fast paths = general paths


def _general_records(recs: list[tuple], base: int) -> bytes:
    return b"".join(records._encode_record(ts - base, i, k, v, h) for i, (k, v, h, ts) in enumerate(recs))


@pytest.mark.parametrize(
    "recs",
    [
        [(None, b"x" * n, [], 1000) for n in (0, 1, 63, 64, 99, 8191, 8192, 9000)],
        [(None, b"v%d" % i, (), 1000 + i * 37) for i in range(300)],  # varying timestamp deltas
        [(None, b"a", [], 1000), (None, b"b", [], 999)],  # a timestamp before the first
        [(None, b"a", [], 1000), (None, None, [], 1000)],  # a null value
        [(b"k", b"a", [], 1000), (None, b"b", [], 1000)],  # a key
        [(None, b"a", [("h", b"1")], 1000), (None, b"b", [], 1000)],  # headers
        [(None, b"z" * 20000, [], 5), (None, b"", [], 5)],  # longer than the varint table
        [(None, bytearray(b"ba"), [], 7), (None, memoryview(b"mv"), [], 7)],
        [(None, b"only", [], 3)],
    ],
)
@pytest.mark.parametrize("copies", [1, 40])  # a few records go one by one, many take the bulk path
def test_bulk_encoder_matches_the_per_record_one(recs: list[tuple], copies: int) -> None:
    recs = recs * copies
    base = recs[0][3]
    assert records.encode_records(recs, base) == _general_records(recs, base)
    batch = records.encode_batch(recs, 5)
    decoded = records.decode_records(batch)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in decoded] == [
        (None if k is None else bytes(k), None if v is None else bytes(v), list(h), ts)
        for k, v, h, ts in recs
    ]
    assert records.decode_values(batch) == [r.value for r in decoded]


def test_varint_table_matches_the_definition() -> None:
    for n in list(range(-3, 20000)) + [2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]:
        assert records.varint(n) == records._zigzag_bytes(n)
        assert records.read_varint(records.varint(n), 0) == (n, len(records.varint(n)))


def test_decode_values_rejects_what_decode_records_rejects() -> None:
    batch = bytearray(records.encode_batch([(None, b"abc", [], 1), (None, b"de", [], 1)]))
    batch[records.HEADER_SIZE + 5] = 9  # a value length that no longer matches the record length
    import struct

    struct.pack_into(">I", batch, 17, records.crc32c(bytes(batch[21:])))
    for decode in (records.decode_records, records.decode_values):
        with pytest.raises(records.CorruptRecordError):
            decode(bytes(batch))


class _Recorder:
    """A transport that keeps every batch it is given (producers over it run without idempotence)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.batches: list[tuple[int, bytes]] = []

    def partition_count(self, topic: str, create: bool = False) -> int:
        return self.partitions

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        self.batches.append((partition, batch))
        return 0

    def release(self, durable: bool = False) -> None:
        pass

    def close(self, durable: bool = True) -> None:
        pass


@pytest.mark.parametrize("batch_size,max_records,partitions", [(16384, 100_000, 1), (300, 7, 3), (1, 100, 2)])
def test_send_many_batches_like_send(batch_size: int, max_records: int, partitions: int) -> None:
    values = [b"v" * (i % 50) for i in range(1000)]
    results = []
    for bulk in (False, True):
        import random

        random.seed(7)  # the sticky partitioner picks partitions at random
        transport = _Recorder(partitions)
        producer = Producer(transport, batch_size=batch_size, max_batch_records=max_records, idempotence=False)
        if bulk:
            for start in range(0, len(values), 333):
                producer.send_many("t", values[start : start + 333], timestamp=42)
        else:
            for value in values:
                producer.send("t", value, timestamp=42)
        producer.close()
        results.append(transport.batches)
    assert results[0] == results[1]
    assert len(results[0]) > 1


def _batches(calls) -> list[tuple[int, bytes]]:
    transport = _Recorder(1)
    producer = Producer(transport, batch_size=1000, idempotence=False)
    for call in calls:
        call(producer)
    producer.close()
    return transport.batches


def test_bare_values_keep_their_timestamps_and_mix_with_keyed_records() -> None:
    """send_many keeps values bare (no tuple per record) with their timestamps by run; reads arriving at
    different times share a batch, and a keyed record turns the batch back into tuples."""
    values = [b"line %d" % i for i in range(300)]

    def bulk(producer: Producer) -> None:
        for start in range(0, 200, 50):
            producer.send_many("t", values[start : start + 50], timestamp=1000 + start)
        producer.send("t", b"keyed", b"k", timestamp=5000)
        producer.send_many("t", values[200:], timestamp=6000)

    def one_by_one(producer: Producer) -> None:
        for i, value in enumerate(values[:200]):
            producer.send("t", value, timestamp=1000 + i // 50 * 50)
        producer.send("t", b"keyed", b"k", timestamp=5000)
        for value in values[200:]:
            producer.send("t", value, timestamp=6000)

    batches = _batches([bulk])
    assert batches == _batches([one_by_one]) and len(batches) > 3
    decoded = [r for _p, batch in batches for r in records.decode_records(batch)]
    assert [r.value for r in decoded] == values[:200] + [b"keyed"] + values[200:]
    assert [r.timestamp for r in decoded[:200]] == [1000 + i // 50 * 50 for i in range(200)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_come_back_from_the_compressing_thread_in_order(codec: str) -> None:
    """With a codec, batches are compressed on a worker thread while the next ones are built; they must
    reach the transport (on the caller's thread) in send order, whole, as the codec frames them."""
    import threading

    from kcli.storage import compression

    class Recording(_Recorder):
        def produce(self, topic: str, partition: int, batch: bytes) -> int:
            assert threading.current_thread() is threading.main_thread()
            return super().produce(topic, partition, batch)

    transport = Recording(2)
    producer = Producer(transport, codec=compression.codec_id(codec), batch_size=700, idempotence=False)
    values = [b"record %d " % i + b"x" * (i % 40) for i in range(3000)]
    for start in range(0, 3000, 250):
        producer.send_many("t", values[start : start + 250], timestamp=1000 + start)
        assert producer.pending >= 0
    producer.close()
    assert len(transport.batches) > 10
    headers = [records.parse_header(batch) for _p, batch in transport.batches]
    assert {h.codec for h in headers} == {compression.codec_id(codec)}
    got = {p: [] for p in (0, 1)}
    for partition, batch in transport.batches:
        got[partition] += records.decode_values(batch)
    assert sorted(got[0] + got[1]) == sorted(values)
    for part in got.values():  # each partition holds its records in send order
        assert part == sorted(part, key=values.index)


@pytest.mark.parametrize("codec", [0, 4])  # none; zstd, whose batches come from the compressing thread
def test_a_batch_of_bare_values_too_large_for_the_partition_is_split(codec: int) -> None:
    class Refusing(_Recorder):
        def produce(self, topic: str, partition: int, batch: bytes) -> int:
            if len(batch) > 700:
                from kcli.errors import RecordTooLargeError

                raise RecordTooLargeError("too large")
            return super().produce(topic, partition, batch)

    transport = Refusing(1)
    producer = Producer(transport, batch_size=1 << 20, codec=codec, idempotence=False)
    values = [random.Random(i).randbytes(40) for i in range(40)]  # incompressible: the split must happen
    producer.send_many("t", values, timestamp=7)
    producer.close()
    decoded = [r for _p, batch in transport.batches for r in records.decode_records(batch)]
    assert len(transport.batches) > 1 and [r.value for r in decoded] == values
    assert {r.timestamp for r in decoded} == {7}


# ---------------------------------------------------------------- consume's bulk printing


def test_consume_default_format_prints_every_value(kcli) -> None:
    lines = [f"line {i}" if i % 7 else "" for i in range(3000)]
    kcli.produce_lines("t", "\n".join(lines) + "\n", "--batch-size", 512)
    assert kcli("consume", "t", "-b", "-e").stdout.split("\n")[:-1] == lines
    assert kcli("consume", "t", "-b", "-e", "-f", "%s\\n").stdout.split("\n")[:-1] == lines
    assert kcli("consume", "t", "-b", "-e", "-c", 5).stdout.split("\n")[:-1] == lines[:5]
    # starting inside a batch goes through the per-record filter
    assert kcli("consume", "t", "-o", 1234, "-e").stdout.split("\n")[:-1] == lines[1234:]
    assert kcli("consume", "t", "-o", 1234, "-e", "-c", 3).stdout.split("\n")[:-1] == lines[1234:1237]


# ---------------------------------------------------------------- benchmarks/run.py


def test_benchmark_runner_quick_with_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--records",
            "300",
            "--repeat",
            "1",
            "--startup-runs",
            "1",
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "met" in proc.stdout.splitlines()[0]
    result = json.loads(out.read_text())
    sections = {row["section"] for row in result["rows"]}
    assert {"1", "2", "3", "4", "5", "6", "7", "8", "11"} <= sections
    assert all(row["figure"] is not None for row in result["rows"] if row["section"] == "11"), proc.stdout
    for row in result["rows"]:
        assert set(row) >= {"name", "figure", "baseline", "ratio", "target", "met"}
        assert "DIFFER" not in row["note"] and "DISAGREE" not in row["note"]
