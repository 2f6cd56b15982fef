"""Exactly-once through brokers under faults, in the style of Kafka's ``transactions_test.py``.

Three brokers, topics ``input`` and ``output`` with 3 partitions each, replication factor 3 and
min.insync.replicas=2.  One transactional copier per partition (``txn_copier.py``, confluent-kafka)
copies input to output, committing the group's input offsets in each transaction and aborting every
fifth transaction on purpose.  Meanwhile leaders -- of output and input partitions, and the broker
coordinating a copier's transactional id -- are killed with ``kill -9`` and restarted, one copier is
killed and restarted (its successor fences it and takes over from the committed offset), and a
read_committed consumer reads the output throughout.

Afterwards the output is the input exactly: per partition the same values in the same order, none lost,
none twice; and every record the concurrent consumer saw is a committed one (a record of an aborted
transaction carries its own instance and transaction tag, so it cannot pass for its committed copy).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.brokers import Brokers

from kcli.broker.coordinator_choice import choose_coordinator
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata

from .harness import kill9

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

pytestmark = pytest.mark.slow

PARTITIONS = 3
PER_PARTITION = 600
OPTIONS = ("--session-timeout-ms", "2000", "--replica-lag-time-max-ms", "3000")
COPIER = str(Path(__file__).with_name("txn_copier.py"))
DEADLINE = 120.0  # a bound on a hang, not a goal
STALL = 15.0  # a copier without progress for this long is restarted (see Copiers.supervise)


class Cluster:
    """The three brokers: ``bounce`` kills one with -9 and starts it again."""

    def __init__(self, brokers: Brokers) -> None:
        self.brokers = brokers
        brokers.init(3)
        self.procs = {b: brokers.spawn(b, *OPTIONS) for b in range(3)}
        for proc in self.procs.values():
            proc.wait_ready()
        self.bounces = 0

    def bootstrap(self) -> str:
        return ",".join(p.bootstrap for p in self.procs.values() if p.info)

    def leader(self, topic: str, partition: int) -> int:
        return Metadata(DataDir(str(self.brokers.data_dir))).load().partition(topic, partition).leader

    def bounce(self, broker: int, down: float = 1.5) -> None:
        """kill -9, then start again on the same address, as a Kafka broker restarts (clients that knew
        only the old addresses would otherwise lose the cluster once every broker was bounced)."""
        port = self.procs[broker].port
        assert kill9(self.procs[broker].proc), f"broker {broker} was not running"
        time.sleep(down)
        self.procs[broker] = self.brokers.spawn(broker, *OPTIONS, listener=f"127.0.0.1:{port}")
        self.procs[broker].wait_ready()
        self.bounces += 1


class Copiers:
    """One copier process per partition; ``supervise`` starts a new instance of any that failed."""

    def __init__(self, bootstrap: str, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.instances = 0
        self.procs: dict[int, subprocess.Popen] = {}
        self.progress: dict[int, Path] = {}
        self.failures = 0
        self.stalled = 0
        for p in range(PARTITIONS):
            self.start(p)

    def start(self, partition: int) -> None:
        self.instances += 1
        name = self.workdir / f"copier-{partition}-{self.instances}"
        with open(f"{name}.progress", "wb") as progress, open(f"{name}.log", "wb") as log:
            self.procs[partition] = subprocess.Popen(
                [
                    sys.executable,
                    COPIER,
                    self.bootstrap,
                    str(partition),
                    f"i{self.instances}",
                    "--total",
                    str(PER_PARTITION),
                    "--per-txn",
                    "10",
                    "--pause",
                    "0.25",
                ],
                stdout=progress,
                stderr=log,
            )
        self.progress[partition] = Path(f"{name}.progress")

    def supervise(self) -> bool:
        """Restart copiers that failed, and those whose progress stalled: librdkafka's
        send_offsets_to_transaction may hang past its timeout once the group coordinator it knew is
        gone from the metadata (confluentinc/librdkafka#5511, #5456), and an operator restarts such a
        process -- a kill in the middle of a transaction, which exactly-once must survive too.
        Whether all have finished."""
        now = time.time()
        for p, proc in self.procs.items():
            if proc.poll() is None and now - self.progress[p].stat().st_mtime > STALL:
                kill9(proc)
                self.stalled += 1
                self.start(p)
            elif proc.poll() not in (None, 0):
                self.failures += 1
                self.start(p)
        return all(proc.poll() == 0 for proc in self.procs.values())

    def dump_stacks(self) -> None:
        """Where the copiers that still run are (into their logs), for the report of a hang."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            kill9(proc)


class Reader(threading.Thread):
    """A read_committed consumer of the output, running all along: every (partition, offset, value)."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.seen: list[tuple[int, int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "reader", "isolation.level": "read_committed"}
        )
        consumer.assign([TopicPartition("output", p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        while not self.stop.is_set():
            for m in consumer.consume(500, 0.2):
                if m.error() is None:
                    self.seen.append((m.partition(), m.offset(), m.value().decode()))
        consumer.close()


def read_output(bootstrap: str, isolation: str) -> dict[int, list[tuple[int, str]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "checker",
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition("output", p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: dict[int, list[tuple[int, str]]] = {p: [] for p in range(PARTITIONS)}
    eof: set[int] = set()
    deadline = time.monotonic() + 60
    while len(eof) < PARTITIONS and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.5):
            if m.error() is None:
                out[m.partition()].append((m.offset(), m.value().decode()))
            elif m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
    consumer.close()
    assert len(eof) == PARTITIONS, "the output was not read to its end"
    return out


def test_transactional_copiers_survive_leader_bounces_and_a_killed_copier(brokers, tmp_path):
    cluster = Cluster(brokers)
    for topic in ("input", "output"):
        brokers.kcli("topic", "create", topic, "-p", PARTITIONS, "-r", 3, "-c", "min.insync.replicas=2")
    bootstrap = cluster.bootstrap()
    source = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    inputs = {p: [f"p{p}-{i:05d}" for i in range(PER_PARTITION)] for p in range(PARTITIONS)}
    for p, values in inputs.items():
        for value in values:
            source.produce("input", value=value, partition=p)
    assert source.flush(60) == 0

    reader = Reader(bootstrap)
    reader.start()
    copiers = Copiers(bootstrap, tmp_path)
    copier_kills = 0
    try:
        # the faults, a few seconds apart while the copiers work: leaders of output and input partitions,
        # the coordinator of a copier's transactional id (mid-commit, likely), and one copier
        faults = [
            lambda: cluster.bounce(cluster.leader("output", 0)),
            lambda: cluster.bounce(choose_coordinator("copier-1", range(3))),
            lambda: cluster.bounce(cluster.leader("input", 2)),
            lambda: cluster.bounce(cluster.leader("output", 1)),
        ]
        for i, fault in enumerate(faults):
            time.sleep(1.5)
            fault()
            if i == 1:
                copier_kills += kill9(copiers.procs[0])  # its successor fences it and goes on
        deadline = time.monotonic() + DEADLINE
        while not copiers.supervise():
            if time.monotonic() > deadline:
                copiers.dump_stacks()
                raise AssertionError("the copiers did not finish")
            time.sleep(0.2)
    finally:
        copiers.kill_all()
    time.sleep(1.0)  # let the reader catch up with the last commits
    reader.stop.set()
    reader.join(30)

    committed = read_output(bootstrap, "read_committed")
    everything = read_output(bootstrap, "read_uncommitted")
    aborted = sum(len(everything[p]) for p in everything) - sum(len(committed[p]) for p in committed)
    final = {(p, offset, value) for p, records in committed.items() for offset, value in records}
    seen_aborted = [s for s in reader.seen if s not in final]
    print(
        f"\ninput {sum(map(len, inputs.values()))}, output committed {len(final)}, aborted records "
        f"{aborted}, seen by the read_committed reader {len(reader.seen)} (aborted among them "
        f"{len(seen_aborted)}), broker bounces {cluster.bounces}, copier kills {copier_kills}, "
        f"copiers that failed and were restarted {copiers.failures}, stalled ones restarted {copiers.stalled}"
    )
    for p in range(PARTITIONS):
        copied = [value.rsplit("|", 1)[0] for _offset, value in committed[p]]
        assert copied == inputs[p], f"partition {p}: the output is not the input exactly"
    assert aborted > 0, "no transaction was aborted: the isolation check would prove nothing"
    assert reader.seen, "the concurrent reader saw nothing"
    assert not seen_aborted, (
        f"the read_committed reader saw records of aborted transactions: {seen_aborted[:5]}"
    )
    assert cluster.bounces == len(faults) and copier_kills == 1
