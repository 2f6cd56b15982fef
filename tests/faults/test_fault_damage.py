"""Damaged logs serve everything intact (issue 16): a batch whose length runs past its segment, a garbage
``.index``/``.timeindex``, and zeros after the last batch of the active segment.

The contract: every consumer (embedded ``kcli consume``, kcli through a broker, kafka-python and
confluent-kafka through a broker) reads every intact record before the damage, then gets a clear error
at the damage (embedded: one ``kcli: error:`` line naming the file, offset and position, exit 6; a
broker answers a fetch at the damage with CORRUPT_MESSAGE and logs the file and position).  A corrupt
index is rebuilt from the log, never an ``Invalid argument``; zeros after the last batch of the active
segment are the end of the data for a reader and a torn tail for the next writer.
"""

from __future__ import annotations

import os
import random
import re
import struct
import time
from pathlib import Path

import pytest
from support.brokers import ApiKey, call, connect

from kcli.inspect import indexes
from kcli.storage import checkpoint, records

from .harness import one_error_line

TOPIC = "t"
N = 3000


def fill(runner, n: int = N) -> Path:
    """A one-broker data dir with ``n`` records ``record-<i>`` in about six 20 kB segments of small batches;
    returns the partition dir."""
    runner("cluster", "init", "--brokers", "1")
    runner("topic", "create", TOPIC, "-p", "1", "-c", "segment.bytes=20000")
    runner("produce", TOPIC, "--batch-size", "50", input="".join(f"record-{i}\n" for i in range(n)))
    return Path(runner.data_dir) / "broker-0" / f"{TOPIC}-0"


def segments(part: Path) -> list[Path]:
    return sorted(part.glob("*.log"))


def batches(log_path: Path) -> list[tuple[int, records.BatchHeader]]:
    return list(records.iter_batches(log_path.read_bytes()))


def stretch_batch(log_path: Path, i: int) -> tuple[int, int]:
    """Make batch ``i``'s length field run far past the end of its segment; returns (position, base
    offset) of that batch."""
    position, header = batches(log_path)[i]
    with open(log_path, "r+b") as fh:
        fh.seek(position + 8)
        fh.write(struct.pack(">i", 1_000_000))
    return position, header.base_offset


def offsets(stdout: str) -> list[int]:
    return [int(line) for line in stdout.splitlines()]


def damaged_closed_segment(runner) -> tuple[Path, int, int]:
    """The middle batch of the second segment stretched: (its segment file, position, base offset)."""
    part = fill(runner)
    log_path = segments(part)[1]
    position, base = stretch_batch(log_path, len(batches(log_path)) // 2)
    return log_path, position, base


def assert_names_the_damage(line: str, log_path: Path, position: int) -> None:
    assert str(log_path) in line and f"position {position}" in line, line


# ---------------------------------------------------------------- a batch running past its segment


def test_embedded_consume_prints_every_record_before_a_batch_running_past_its_segment(kcli):
    log_path, position, base = damaged_closed_segment(kcli)
    for fmt in ("%o\\n", "%s\\n"):  # one record at a time, and the bulk path of the default format
        proc = kcli("consume", TOPIC, "-b", "-e", "-f", fmt, ok=False)
        assert proc.returncode == 6, proc.stderr
        lines = proc.stdout.splitlines()
        expected = [str(o) if fmt == "%o\\n" else f"record-{o}" for o in range(base)]
        assert lines == expected
        line = one_error_line(proc.stderr)
        assert_names_the_damage(line, log_path, position)
        assert f"offset {base}" in line


def test_broker_serves_the_batches_before_the_damage_and_answers_corrupt_message_at_it(brokers):
    log_path, position, base = damaged_closed_segment(brokers.runner)
    broker = brokers.start(0)
    seg_base = int(log_path.name[:20])

    def fetch(offset: int):
        sock = connect(broker.socket_path)
        try:
            body = {
                "replica_id": -1, "max_wait_ms": 1, "min_bytes": 0, "max_bytes": 1 << 20,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": TOPIC, "partitions": [
                    {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}],
            }
            return call(sock, ApiKey.FETCH, 4, body).responses[0].partitions[0]
        finally:
            sock.close()

    part = fetch(seg_base)  # one response holds every intact batch of the segment before the damage
    assert part.error_code == 0
    got = list(records.iter_batches(bytes(part.records)))
    assert got[0][1].base_offset == seg_base and got[-1][1].next_offset == base
    assert fetch(base).error_code == 2  # CORRUPT_MESSAGE, as Kafka answers
    assert f"{log_path}" in broker.log() and f"position {position}" in broker.log()

    proc = brokers.kcli("--bootstrap-server", broker.bootstrap, "consume", TOPIC, "-b", "-e", "-f", "%o\\n",
                        ok=False)
    assert proc.returncode == 6, proc.stderr
    assert offsets(proc.stdout) == list(range(base))
    line = one_error_line(proc.stderr)
    assert "CORRUPT_MESSAGE" in line and f"offset {base}" in line, line


def test_kafka_clients_read_up_to_the_damage(brokers):
    kafka = pytest.importorskip("kafka")
    confluent = pytest.importorskip("confluent_kafka")
    _log_path, _position, base = damaged_closed_segment(brokers.runner)
    broker = brokers.start(0)

    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    tp = kafka.TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list[int] = []
    error = None
    deadline = time.monotonic() + 30
    while error is None and time.monotonic() < deadline:
        try:
            for batch in consumer.poll(timeout_ms=500).values():
                got += [r.offset for r in batch]
        except kafka.errors.CorruptRecordError as exc:
            error = exc
    consumer.close()
    assert got == list(range(base)) and error is not None

    c = confluent.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                            "enable.auto.commit": False})
    c.assign([confluent.TopicPartition(TOPIC, 0, confluent.OFFSET_BEGINNING)])
    got, errors = [], []
    deadline = time.monotonic() + 30
    while not errors and time.monotonic() < deadline:
        for msg in c.consume(1000, 0.5):
            (errors.append(msg.error()) if msg.error() else got.append(msg.offset()))
    c.close()
    assert got == list(range(base))
    # librdkafka names CORRUPT_MESSAGE (code 2) INVALID_MSG
    assert errors[0].code() == confluent.KafkaError.INVALID_MSG and f"offset {base}" in errors[0].str()


# ---------------------------------------------------------------- garbage indexes


GARBAGE = {
    ".index": struct.pack(">iiii", 1, -4096, 2, 16),  # a negative position, then one inside a batch
    ".timeindex": struct.pack(">qiqi", 1, 370, 2, 371),  # entries that match no batch
}


def indexes_match_the_log(log_path: Path) -> bool:
    base = int(log_path.name[:20])
    seg = indexes.SegmentBatches()
    for position, header in batches(log_path):
        seg.add(position, header.base_offset, header.last_offset, header.max_timestamp)
    return not indexes.check_offset_index(
        str(log_path.with_suffix(".index")), base, seg, log_path.stat().st_size
    ) and not indexes.check_time_index(str(log_path.with_suffix(".timeindex")), base, seg)


@pytest.mark.parametrize("suffix", sorted(GARBAGE))
def test_a_garbage_index_is_rebuilt_from_the_log(brokers, suffix):
    part = fill(brokers.runner)
    stamps = [int(line.split()[1]) for line in brokers.kcli("consume", TOPIC, "-b", "-e", "-f", "%o %T\\n")
              .stdout.splitlines()]
    closed, active = segments(part)[1], segments(part)[-1]
    for log_path in (closed, active):
        log_path.with_suffix(suffix).write_bytes(GARBAGE[suffix])
    middle = [int(p.name[:20]) + 100 for p in (closed, active)]
    for start in ("earliest", *middle, f"s@{stamps[middle[0]]}", f"s@{stamps[middle[1]]}"):
        proc = brokers.kcli("consume", TOPIC, "-o", start, "-e", "-f", "%o\\n", ok=False)
        assert "Invalid argument" not in proc.stderr
        assert proc.returncode == 0, proc.stderr
        first = 0 if start == "earliest" else start if isinstance(start, int) else stamps.index(int(start[2:]))
        assert offsets(proc.stdout) == list(range(first, N)), start
    assert not indexes_match_the_log(active)  # a reader rebuilds in memory, never writes

    broker = brokers.start(0)  # start-up finds the active segment's index corrupt and rebuilds it
    assert indexes_match_the_log(active)
    assert re.search(rf"{re.escape(str(active.with_suffix(suffix)))}.*rebuil", broker.log()), broker.log()
    proc = brokers.kcli("--bootstrap-server", broker.bootstrap, "consume", TOPIC, "-o", middle[0], "-e",
                        "-f", "%o\\n")
    assert offsets(proc.stdout) == list(range(middle[0], N))
    assert indexes_match_the_log(closed)  # the closed segment's, once the broker used it
    assert re.search(rf"{re.escape(str(closed.with_suffix(suffix)))}.*rebuil", broker.log()), broker.log()


# ---------------------------------------------------------------- a zero-filled tail


@pytest.mark.parametrize("tail", [b"\0" * 4096, bytes(random.Random(16).randrange(256) for _ in range(300))],
                         ids=["zeros", "garbage"])
def test_a_damaged_tail_of_the_active_segment_ends_the_data(kcli, tail):
    part = fill(kcli)
    active = segments(part)[-1]
    with open(active, "ab") as fh:
        fh.write(tail)
    for state in (True, False):  # as a clean writer left it, and after a crash (no writer state)
        if not state:
            os.unlink(part / "kcli-writer-state")
        proc = kcli("consume", TOPIC, "-b", "-e", "-f", "%o\\n", ok=False)
        assert proc.returncode == 0, proc.stderr
        assert offsets(proc.stdout) == list(range(N))
    produced = kcli("produce", TOPIC, "--print-offsets", input="after\n")
    assert produced.stdout.split()[-1] == str(N)  # the zeros were cut: offsets continue the log
    assert "truncated" in produced.stderr, produced.stderr
    assert kcli("verify", ok=False).returncode == 0
    assert offsets(kcli("consume", TOPIC, "-b", "-e", "-f", "%o\\n").stdout) == list(range(N + 1))


def test_a_broker_reads_past_zeros_after_a_closed_segments_last_batch(brokers):
    kafka = pytest.importorskip("kafka")
    part = fill(brokers.runner)
    with open(segments(part)[1], "ab") as fh:
        fh.write(b"\0" * 100)
    broker = brokers.start(0)
    proc = brokers.kcli("--bootstrap-server", broker.bootstrap, "consume", TOPIC, "-b", "-e", "-f", "%o\\n")
    assert offsets(proc.stdout) == list(range(N))
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    tp = kafka.TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < N and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got += [r.offset for r in batch]
    consumer.close()
    assert got == list(range(N))


def test_recovery_cuts_zeros_after_a_closed_segments_last_batch_and_keeps_the_segments_after(kcli):
    part = fill(kcli)
    damaged = segments(part)[1]
    size = damaged.stat().st_size
    with open(damaged, "ab") as fh:
        fh.write(b"\0" * 300)
    os.unlink(part / "kcli-writer-state")  # a crash, with a recovery point before the damaged segment
    checkpoint.write_offsets(str(part.parent / checkpoint.RECOVERY_POINT), {(TOPIC, 0): 0})
    produced = kcli("produce", TOPIC, "--print-offsets", input="after\n")
    assert produced.stdout.split()[-1] == str(N)
    assert f"{damaged}: truncated 300 invalid bytes at position {size}" in produced.stderr, produced.stderr
    assert "deleted segment" not in produced.stderr
    assert damaged.stat().st_size == size
    assert offsets(kcli("consume", TOPIC, "-b", "-e", "-f", "%o\\n").stdout) == list(range(N + 1))


def test_zeros_over_a_closed_segments_last_batches_are_damage_not_the_end(brokers):
    part = fill(brokers.runner)
    log_path = segments(part)[1]
    position, header = batches(log_path)[-2]
    with open(log_path, "r+b") as fh:  # the last two batches zeroed: their offsets are gone
        fh.seek(position)
        fh.write(b"\0" * (log_path.stat().st_size - position))
    proc = brokers.kcli("consume", TOPIC, "-b", "-e", "-f", "%o\\n", ok=False)
    assert proc.returncode == 6 and offsets(proc.stdout) == list(range(header.base_offset))
    line = one_error_line(proc.stderr)
    assert_names_the_damage(line, log_path, position)
    assert f"offset {header.base_offset}" in line and "zero bytes" in line
    broker = brokers.start(0)
    proc = brokers.kcli("--bootstrap-server", broker.bootstrap, "consume", TOPIC, "-b", "-e", "-f", "%o\\n",
                        ok=False)
    assert proc.returncode == 6 and offsets(proc.stdout) == list(range(header.base_offset))
    assert f"{log_path} at position {position}" in broker.log()
