"""kcli's own producer is idempotent: a batch it sends again (a lost answer, a leader killed, an acks=all
timeout) is stored once, in order -- through brokers, embedded, and after a broker restarts.

Each value is checked to be read back exactly once, in input order per partition; the batches' headers
are checked to carry a producer id and contiguous sequence numbers (and none with --no-idempotence).
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from support.runner import KCLI

from kcli.client.embedded import EmbeddedTransport
from kcli.client.producer import Producer
from kcli.client.remote import RemoteTransport
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.errors import SequenceError
from kcli.storage import records
from kcli.storage.producer_snapshot import snapshot_name
from kcli.storage.records import encode_batch

from .harness import Piped, replica_batches, session_lines, wait_for
from .test_broker_failover import DEADLINE

TOPIC = "idem"


def _meta(brokers, partition: int = 0):
    return Metadata(DataDir(str(brokers.data_dir))).load().partition(TOPIC, partition)


def _cluster(brokers, partitions: int, *options: str) -> dict:
    brokers.init(3)
    running = {b: brokers.spawn(b, *options) for b in range(3)}
    for broker in running.values():
        broker.wait_ready()
    brokers.kcli("topic", "create", TOPIC, "-p", partitions, "-r", "3", "-c", "min.insync.replicas=2")
    return running


def _in_sync(brokers, partitions: int) -> bool:
    metas = [_meta(brokers, p) for p in range(partitions)]
    return all(m.leader >= 0 and sorted(m.isr) == [0, 1, 2] for m in metas)


def _read(runner, partition: int) -> list[tuple[int, str]]:
    out = runner("consume", TOPIC, "-p", partition, "-b", "-e", "-f", "%o %s\\n").stdout
    return [(int(o), v) for o, _, v in (line.partition(" ") for line in out.splitlines())]


def _check_once_in_order(stored: dict[int, list[tuple[int, str]]], lines: list[str]) -> None:
    """Every line exactly once, and each partition's lines in input order."""
    index = {line: i for i, line in enumerate(lines)}
    seen: dict[str, int] = {}
    problems = []
    for partition, pairs in stored.items():
        last = -1
        for offset, value in pairs:
            seen[value] = seen.get(value, 0) + 1
            if index[value] <= last:
                problems.append(f"partition {partition} offset {offset}: {value} after line {last}")
            last = max(last, index[value])
    duplicated = sorted((v for v, n in seen.items() if n > 1), key=index.get)
    missing = [line for line in lines if line not in seen]
    assert not (duplicated or missing or problems), (
        f"{len(duplicated)} duplicated (e.g. {duplicated[:3]}), {len(missing)} missing "
        f"(e.g. {missing[:3]}), {len(problems)} out of order (e.g. {problems[:3]})"
    )


def _producer_fields(directory: str) -> list[tuple[int, int, int, int]]:
    """(producer id, epoch, base sequence, records) of each batch stored in one replica."""
    _start, batches = replica_batches(directory)
    out = []
    for _offset, data in batches:
        h = records.parse_header(data)
        out.append((h.producer_id, h.producer_epoch, h.base_sequence, h.records_count))
    return out


# ---------------------------------------------------------------- through brokers, under kill -9


@pytest.mark.faults
@pytest.mark.slow
def test_produce_while_leaders_are_killed_stores_each_line_once_in_order(brokers):
    """`kcli produce --acks all` of unique lines to an RF 3 topic while partition leaders are killed (-9)
    and restarted.  Before each kill one follower is stopped (SIGSTOP) for a moment, so the batch in
    flight waits at the leader after the other follower copied it: that follower, with the longest log,
    becomes the leader the client retries at -- and must answer the retry with the stored batch (the
    stopped one may be the controller: it runs again once the leader is dead)."""
    partitions = 2
    running = _cluster(brokers, partitions)
    lines = session_lines(0, 30_000)
    producer = Piped(
        [*KCLI, "produce", TOPIC, "--acks", "all", "--print-offsets", "--batch-size", "300", "--linger-ms", "1"],
        brokers.env,
        lines,
        random.Random(16),
        pace=0.02,  # about 15 s of input: time for the kills
    )
    rng = random.Random(6)
    kills = 0
    try:
        while producer.proc.poll() is None and kills < 6:
            wait_for("a full ISR", lambda: _in_sync(brokers, partitions))
            time.sleep(rng.uniform(0.1, 0.5))
            meta = _meta(brokers, kills % partitions)
            stopped = rng.choice([b for b in meta.replicas if b != meta.leader])
            running[stopped].proc.send_signal(signal.SIGSTOP)
            try:
                time.sleep(0.3)  # the batch in flight now waits for the stopped follower
                running[meta.leader].stop(signal.SIGKILL)
                kills += 1
                time.sleep(0.3)
            finally:
                running[stopped].proc.send_signal(signal.SIGCONT)  # it may be the controller
            wait_for("new leaders", lambda old=meta.leader: all(
                _meta(brokers, p).leader not in (old, -1) for p in range(partitions)))
            running[meta.leader] = brokers.start(meta.leader)
        code = producer.wait(timeout=240)
    finally:
        if producer.proc.poll() is None:
            producer.kill()
    assert code == 0, f"produce failed after {kills} kills: {producer.stderr}"
    assert kills >= 4, "the producer finished before the faults could hit it"
    assert len(producer.acks) == len(lines)
    stored = {p: _read(brokers.kcli, p) for p in range(partitions)}
    by_offset = {(p, o) for p, pairs in stored.items() for o, _v in pairs}
    assert all((p, o) in by_offset for _t, p, o in producer.acks), "an acknowledged offset is not there"
    _check_once_in_order(stored, lines)


@pytest.mark.faults
def test_acks_all_timeouts_retried_are_stored_once(brokers):
    """A follower in the ISR stops (SIGSTOP): the leader stores each attempt of an acks=all batch, which
    times out, and the client retries it until the ISR shrinks -- every retry is the same batch."""
    running = _cluster(brokers, 1, "--replica-lag-time-max-ms", "4000")
    meta = wait_for("a full ISR", lambda: _in_sync(brokers, 1) and _meta(brokers))
    follower = next(b for b in meta.replicas if b != meta.leader)
    transport = RemoteTransport(DataDir(str(brokers.data_dir)), timeout=2.0)  # acks=all waits 1 s
    offsets = []
    producer = Producer(transport, on_delivery=lambda _t, _p, o: offsets.append(o))
    running[follower].proc.send_signal(signal.SIGSTOP)
    try:
        producer.send(TOPIC, b"once", partition=0)
        producer.flush()
    finally:
        running[follower].proc.send_signal(signal.SIGCONT)
        producer.close()
    assert [v for _o, v in _read(brokers.kcli, 0)] == ["once"] and offsets == [0]


@pytest.mark.faults
def test_broker_killed_and_restarted_still_knows_the_producers_sequences(brokers):
    """Producer state is rebuilt from the log when a broker restarts after kill -9: a batch sent again
    with its sequence gets its first offset back; the next sequence is stored; a gap is refused."""
    broker = brokers.start(0)
    brokers.kcli("topic", "create", TOPIC)
    datadir = DataDir(str(brokers.data_dir))
    transport = RemoteTransport(datadir)
    pid, epoch = transport.init_producer_id()

    def batch(seq: int, n: int = 3) -> bytes:
        values = [(None, f"s{seq + i}".encode(), [], 1) for i in range(n)]
        return encode_batch(values, producer_id=pid, producer_epoch=epoch, base_sequence=seq)

    assert transport.produce(TOPIC, 0, batch(0)) == 0
    assert transport.produce(TOPIC, 0, batch(3)) == 3
    transport.close()
    broker.stop(signal.SIGKILL)
    brokers.start(0)
    transport = RemoteTransport(datadir)
    try:
        assert transport.produce(TOPIC, 0, batch(3)) == 3  # the retry: not stored again
        assert transport.produce(TOPIC, 0, batch(0)) == 0
        with pytest.raises(SequenceError, match="OUT_OF_ORDER_SEQUENCE_NUMBER"):
            transport.produce(TOPIC, 0, batch(9))
        assert transport.produce(TOPIC, 0, batch(6)) == 6
    finally:
        transport.close()
    assert [v for _o, v in _read(brokers.kcli, 0)] == [f"s{i}" for i in range(9)]


# ---------------------------------------------------------------- embedded


def _idempotent_batch(pid: int, seq: int, *values: bytes) -> bytes:
    return encode_batch([(None, v, [], 1) for v in values], producer_id=pid, producer_epoch=0, base_sequence=seq)


def test_embedded_retry_of_a_batch_is_answered_with_its_first_offset(kcli):
    """The embedded writer checks sequences too, within a session and in the next one (from the snapshot
    the last session left, or rebuilt from the log's tail without one), and a batch out of sequence is a
    clear error."""
    kcli("topic", "create", TOPIC)
    datadir = DataDir(str(kcli.data_dir))
    transport = EmbeddedTransport(datadir)
    pid, epoch = transport.init_producer_id()
    assert epoch == 0
    first, second = _idempotent_batch(pid, 0, b"a", b"b"), _idempotent_batch(pid, 2, b"c")
    assert transport.produce(TOPIC, 0, first) == 0
    assert transport.produce(TOPIC, 0, first) == 0
    transport.release()
    snapshot = Path(datadir.partition_dir(0, TOPIC, 0)) / snapshot_name(2)
    assert snapshot.exists()
    assert transport.produce(TOPIC, 0, first) == 0  # a new write session still knows it
    transport.release()
    snapshot.unlink()
    assert transport.produce(TOPIC, 0, first) == 0  # ... without the snapshot, from the log's tail
    assert transport.produce(TOPIC, 0, second) == 2
    with pytest.raises(SequenceError, match="expected sequence 3, got 5"):
        transport.produce(TOPIC, 0, _idempotent_batch(pid, 5, b"x"))
    transport.close()
    assert [v for _o, v in _read(kcli, 0)] == ["a", "b", "c"]
    assert transport.init_producer_id()[0] != pid  # ids come from the data dir's allocator


def test_a_session_killed_after_its_snapshot_is_continued_from_the_log(kcli):
    """The newest snapshot below the log end (a writer killed before saving its own leaves one) is
    taken with the batches after it replayed: both producers are known to the next session."""
    kcli("topic", "create", TOPIC)
    datadir = DataDir(str(kcli.data_dir))
    part = Path(datadir.partition_dir(0, TOPIC, 0))
    transport = EmbeddedTransport(datadir)
    one, two = transport.init_producer_id()[0], transport.init_producer_id()[0]
    assert transport.produce(TOPIC, 0, _idempotent_batch(one, 0, b"a")) == 0
    transport.release()
    first = (part / snapshot_name(1)).read_bytes()
    assert transport.produce(TOPIC, 0, _idempotent_batch(two, 0, b"b")) == 1
    transport.release()
    # what that session leaves when killed instead: its first snapshot, no state of its own
    (part / snapshot_name(2)).unlink()
    (part / snapshot_name(1)).write_bytes(first)
    (part / "kcli-writer-state").unlink()
    assert transport.produce(TOPIC, 0, _idempotent_batch(two, 0, b"b")) == 1
    assert transport.produce(TOPIC, 0, _idempotent_batch(one, 0, b"a")) == 0
    transport.close()
    assert [v for _o, v in _read(kcli, 0)] == ["a", "b"]


def test_produce_numbers_batches_and_no_idempotence_does_not(kcli):
    kcli("topic", "create", TOPIC, "-p", "2")
    lines = "".join(f"line {i}\n" for i in range(3000))
    kcli("produce", TOPIC, "--batch-size", "2000", input=lines)
    kcli("produce", TOPIC, "--batch-size", "2000", "-z", "zstd", input=lines)  # framed after compressing
    datadir = DataDir(str(kcli.data_dir))
    ids = set()
    for partition in range(2):
        fields = _producer_fields(datadir.partition_dir(0, TOPIC, partition))
        assert len(fields) > 2
        per_producer: dict[int, list] = {}
        for pid, epoch, seq, count in fields:
            assert pid >= 0 and epoch == 0
            per_producer.setdefault(pid, []).append((seq, count))
        for batches in per_producer.values():  # each producer's sequences run on without a gap
            expected = 0
            for seq, count in batches:
                assert seq == expected
                expected += count
        ids |= per_producer.keys()
    assert len(ids) == 2  # two runs, two producer ids

    kcli("topic", "create", "plain")
    kcli("produce", "plain", "--no-idempotence", input=lines)
    kcli("perf", "produce", "plain", "--num-records", "500", "--record-size", "10", "--no-idempotence")
    (kcli.data_dir / "kcli.toml").write_text("[produce]\nidempotence = false\n")
    kcli("produce", "plain", input=lines)
    fields = _producer_fields(datadir.partition_dir(0, "plain", 0))
    assert len(fields) >= 3 and all((pid, epoch, seq) == (-1, -1, -1) for pid, epoch, seq, _n in fields)


class _Flaky:
    """A transport whose second produce fails after storing nothing we could know of."""

    def __init__(self) -> None:
        self.ids = 0
        self.calls = 0
        self.sent: list[tuple[int, int]] = []

    def partition_count(self, topic: str, create: bool = False) -> int:
        return 1

    def init_producer_id(self) -> tuple[int, int]:
        self.ids += 1
        return 100 + self.ids, 0

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        self.calls += 1
        if self.calls == 2:
            from kcli.errors import BrokerError

            raise BrokerError("lost connection")
        header = records.parse_header(batch)
        self.sent.append((header.producer_id, header.base_sequence))
        return 0

    def release(self, durable: bool = False) -> None:
        pass


def test_a_batch_of_unknown_fate_ends_the_producer_session():
    """After the transport gave up on a batch (stored or not, nobody knows) the next batch must not reuse
    its sequence -- a leader holding the lost batch would take the new one for its retry and drop it --
    nor follow it (a gap if it was not stored): a new producer id starts again at 0."""
    transport = _Flaky()
    producer = Producer(transport, batch_size=1)
    producer.send(TOPIC, b"a")
    with pytest.raises(Exception, match="lost connection"):
        producer.send(TOPIC, b"b")
    producer.send(TOPIC, b"c")
    producer.send(TOPIC, b"d")
    assert transport.sent == [(101, 0), (102, 0), (102, 1)]


@pytest.mark.parametrize(
    "code,outcome",
    [(46, 7), (45, "OUT_OF_ORDER_SEQUENCE_NUMBER"), (59, "UNKNOWN_PRODUCER_ID"), (47, "INVALID_PRODUCER_EPOCH")],
)
def test_remote_answers_to_sequence_problems(monkeypatch, code, outcome):
    """DUPLICATE_SEQUENCE_NUMBER: an earlier attempt stored the batch, a success; the others cannot be
    recovered from without risking a duplicate or a gap, so they are a clear SequenceError."""
    from kcli.protocol import Struct

    transport = RemoteTransport(bootstrap="127.0.0.1:9")
    answer = Struct(index=0, error_code=code, error_message=None, base_offset=7 if code == 46 else -1)
    response = Struct(responses=[Struct(partition_responses=[answer])])
    transport.cluster.leaders[(TOPIC, 0)] = 1
    monkeypatch.setattr(transport.cluster, "node", lambda node: object())
    monkeypatch.setattr(transport.cluster, "send", lambda conn, api, body, **kw: response)
    batch = _idempotent_batch(5, 0, b"x")
    if isinstance(outcome, int):
        assert transport.produce(TOPIC, 0, batch) == outcome
    else:
        with pytest.raises(SequenceError, match=outcome) as err:
            transport.produce(TOPIC, 0, batch)
        assert err.value.fenced == (code == 47) and err.value.exit_code == 1


def test_idempotence_needs_acks_all(kcli):
    res = kcli("produce", TOPIC, "--idempotence", "--acks", "1", input="x\n", ok=False)
    assert res.returncode == 2 and "--idempotence needs --acks all" in res.stderr


# ---------------------------------------------------------------- other clients read what it wrote


@pytest.mark.interop
def test_kafka_python_reads_idempotent_batches(brokers):
    kafka = pytest.importorskip("kafka")
    broker = brokers.start(0)
    brokers.kcli("topic", "create", TOPIC, "-p", "2")
    lines = [f"value {i}" for i in range(2000)]
    brokers.kcli("produce", TOPIC, "--batch-size", "1000", input="".join(v + "\n" for v in lines))
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    tps = [kafka.TopicPartition(TOPIC, p) for p in range(2)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < len(lines) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(batch)
    consumer.close()
    assert sorted(r.value.decode() for r in got) == sorted(lines)


@pytest.mark.interop
def test_tansu_gives_producer_ids_through_the_flexible_versions(tmp_path):
    """tansu 0.6 answers InitProducerId v0-1 with UNKNOWN_SERVER_ERROR but serves v2+, which kcli now
    negotiates: produce there is idempotent by default, with no warning."""
    from support.runner import KcliRunner
    from support.tansu import start_tansu

    broker = start_tansu(tmp_path)
    try:
        runner = KcliRunner(tmp_path / "untouched")
        runner.env["KCLI_BOOTSTRAP_SERVER"] = broker.bootstrap
        runner("topic", "create", TOPIC, "-p", "1")
        assert runner("produce", TOPIC, input="a\nb\n").stderr == ""
        assert runner("produce", TOPIC, "--idempotence", input="c\n").stderr == ""
        assert [v for _o, v in _read(runner, 0)] == ["a", "b", "c"]
    finally:
        broker.stop()
