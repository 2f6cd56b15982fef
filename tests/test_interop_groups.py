"""Kafka's group protocol against a real ``kcli broker serve``: kafka-python and confluent-kafka
consumers with a ``group_id`` join, split partitions, rebalance when a member leaves or dies, and commit
offsets that ``kcli group describe`` and ``kcli lag`` show (one view of groups).

Every kafka-python member polls in its own thread (or process): a JoinGroup is answered only once the
whole group has rejoined, so two members polled by one thread would wait for each other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from support.brokers import KAFKA_REBALANCE_DELAY
from support.group_members import stop_all
from support.negotiated import LOG_REQUESTS, assert_negotiated
from support.waits import wait_for

pytest.importorskip("kafka")
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor  # noqa: E402
from kafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: E402
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor  # noqa: E402

TOPIC = "orders"
PARTITIONS = 3
PER_PARTITION = 10
ALL = frozenset((TOPIC, p) for p in range(PARTITIONS))
# fast failure detection; the broker's minimum session timeout is Kafka's 6000 ms
GROUP_CONFIG = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 20000,
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
}
WAIT = 30.0

MEMBER_SCRIPT = """
import json, sys
from kafka import KafkaConsumer
bootstrap, topic, group = sys.argv[1:4]
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **json.loads(sys.argv[4]))
last = None
while True:
    consumer.poll(timeout_ms=100)
    now = sorted([tp.topic, tp.partition] for tp in consumer.assignment())
    if now != last:
        print(json.dumps(now), flush=True)
        last = now
"""


@pytest.fixture
def broker(brokers):
    """The broker with Kafka's default initial rebalance delay (support.brokers.KAFKA_REBALANCE_DELAY
    says why), and TOPIC with records."""
    broker = brokers.start(0, *KAFKA_REBALANCE_DELAY, *LOG_REQUESTS)
    broker.kcli = brokers.kcli
    broker.runner = brokers.runner
    broker.runner.in_process("topic", "create", TOPIC, "--partitions", PARTITIONS)
    produce(broker.bootstrap, PER_PARTITION)
    return broker


def produce(bootstrap: str, per_partition: int, partitions=range(PARTITIONS), topic: str = TOPIC) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for p in partitions:
        for i in range(per_partition):
            producer.send(topic, value=f"{p}-{i}".encode(), partition=p)
    producer.flush(30)
    producer.close(5)


def describe(broker, group: str) -> dict:
    return json.loads(broker.kcli("group", "describe", group, "--json").stdout)[0]


def assigned(consumer) -> frozenset:
    return frozenset((tp.topic, tp.partition) for tp in consumer.assignment())


class Member:
    """A kafka-python group member polling in its own thread; ``assignment`` is its latest view."""

    def __init__(self, bootstrap: str, group: str, topics=(TOPIC,), **config) -> None:
        self.consumer = KafkaConsumer(
            *topics, bootstrap_servers=bootstrap, group_id=group, **{**GROUP_CONFIG, **config}
        )
        self.assignment: frozenset = frozenset()
        self.member_id = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.consumer.poll(timeout_ms=100)
                self.assignment = assigned(self.consumer)
                self.member_id = self.consumer.group_metadata().member_id
        finally:
            self.consumer.close()  # in this thread: a KafkaConsumer is not thread-safe

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


@pytest.fixture
def members():
    started: list[Member] = []
    yield started
    stop_all(started)


def split_between(*group: Member, every: frozenset = ALL) -> bool:
    """Every member has partitions, none twice, together all of ``every``."""
    parts = [m.assignment for m in group]
    return all(parts) and sum(len(p) for p in parts) == len(every) and frozenset().union(*parts) == every


# ---------------------------------------------------------------- one member


def test_one_consumer_gets_every_partition_commits_and_describe_shows_it(broker):
    consumer = KafkaConsumer(TOPIC, bootstrap_servers=broker.bootstrap, group_id="solo", **GROUP_CONFIG)
    try:
        got = []
        wait_for(
            "30 records through kafka-python",
            lambda: got.extend(r for rs in consumer.poll(timeout_ms=200).values() for r in rs) or len(got) >= 30,
            WAIT,
        )
        assert assigned(consumer) == ALL and len(got) == PARTITIONS * PER_PARTITION
        consumer.commit()
        member_id = consumer.group_metadata().member_id
        produce(broker.bootstrap, 4, partitions=[1])

        view = describe(broker, "solo")
        assert view["state"] == "Stable" and view["coordinator"] == "broker 0"
        assert [m["consumer_id"] for m in view["members"]] == [member_id]
        assert view["members"][0]["topics"] == [TOPIC] and view["assignor"] == "range"
        rows = {
            r["partition"]: (r["current_offset"], r["log_end_offset"], r["lag"], r["consumer_id"])
            for r in view["partitions"]
        }
        assert rows == {0: (10, 10, 0, member_id), 1: (10, 14, 4, member_id), 2: (10, 10, 0, member_id)}
        assert "solo" in broker.kcli("group", "list").stdout.split()

        # live members keep admin changes out
        refused = broker.kcli(
            "group", "reset-offsets", "solo", "--topic", TOPIC, "--to-earliest", "--execute", ok=False
        )
        assert refused.returncode != 0 and "live member" in refused.stderr
        assert broker.kcli("group", "delete", "solo", ok=False).returncode != 0
        embedded = broker.kcli("consume", TOPIC, "--group", "solo", "-e", ok=False)  # kcli's own members
        assert embedded.returncode == 2 and "connected to broker 0" in embedded.stderr
    finally:
        consumer.close()

    lag = json.loads(broker.kcli("lag", "--group", "solo", "--json").stdout)
    assert lag["total_lag"] == 4 and {r["partition"]: r["lag"] for r in lag["partitions"]} == {
        0: 0,
        1: 4,
        2: 0,
    }
    assert describe(broker, "solo")["state"] == "Empty"
    broker.kcli("group", "reset-offsets", "solo", "--topic", f"{TOPIC}:1", "--to-offset", "12", "--execute")
    again = KafkaConsumer(TOPIC, bootstrap_servers=broker.bootstrap, group_id="solo", **GROUP_CONFIG)
    try:
        rest = []
        wait_for(
            "the 2 records after the commit",
            lambda: rest.extend(r for rs in again.poll(timeout_ms=200).values() for r in rs) or len(rest) >= 2,
            WAIT,
        )
        assert [(r.partition, r.offset) for r in rest] == [(1, 12), (1, 13)]  # from the committed offsets
    finally:
        again.close()
    broker.kcli("group", "delete", "solo")
    # the flexible versions (KIP-482), each kafka-python's newest (JoinGroup: its v7)
    assert_negotiated(
        broker,
        {"FindCoordinator": 5, "JoinGroup": 7, "SyncGroup": 5, "OffsetCommit": 8, "OffsetFetch": 8, "LeaveGroup": 5},
        client="kafka-python",
    )


# ---------------------------------------------------------------- several members


def test_two_consumers_split_the_partitions_and_the_survivor_takes_all_on_close(broker, members):
    first = Member(broker.bootstrap, "pair")
    members.append(first)
    wait_for("the first member to own everything", lambda: first.assignment == ALL, WAIT)
    second = Member(broker.bootstrap, "pair")
    members.append(second)
    wait_for("a split between two members", lambda: split_between(first, second), WAIT)
    view = describe(broker, "pair")
    shown = {
        m["consumer_id"]: {(a["topic"], a["partition"]) for a in m["assignment"]} for m in view["members"]
    }
    assert shown == {first.member_id: set(first.assignment), second.member_id: set(second.assignment)}

    second.close()
    wait_for(
        "the takeover", lambda: first.assignment == ALL and len(describe(broker, "pair")["members"]) == 1, WAIT
    )


def test_a_killed_consumer_loses_its_partitions_after_the_session_timeout(broker, members, tmp_path):
    script = tmp_path / "member.py"
    script.write_text(MEMBER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), broker.bootstrap, TOPIC, "doomed", json.dumps(GROUP_CONFIG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen: list[frozenset] = []
    reader = threading.Thread(
        target=lambda: [seen.append(frozenset(map(tuple, json.loads(line)))) for line in proc.stdout],
        daemon=True,
    )
    reader.start()
    try:
        survivor = Member(broker.bootstrap, "doomed")
        members.append(survivor)
        wait_for(  # the rebalance that lets the second member in may come after a first one without it
            "a split with the subprocess",
            lambda: seen and survivor.assignment and seen[-1] and survivor.assignment | seen[-1] == ALL
            and not survivor.assignment & seen[-1],
            WAIT,
        )
        assert len(describe(broker, "doomed")["members"]) == 2
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(10)
        wait_for("the survivor to take everything", lambda: survivor.assignment == ALL, WAIT)
        assert time.monotonic() - killed_at >= 4  # it took the session timeout, not a LeaveGroup
        wait_for(
            "describe to drop the dead member", lambda: len(describe(broker, "doomed")["members"]) == 1, WAIT
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_range_roundrobin_and_cooperative_sticky_assignors(broker, members):
    """Groups side by side on two topics of three partitions: range gives one member partitions 0-1 of
    each topic and the other partition 2 of each (4 + 2); roundrobin deals them out (3 + 3), and so
    does cooperative-sticky, whose incremental rebalancing is the clients' business."""
    broker.runner.in_process("topic", "create", "payments", "--partitions", PARTITIONS)
    topics = (TOPIC, "payments")
    every = frozenset((t, p) for t in topics for p in range(PARTITIONS))
    groups = {
        RangePartitionAssignor: [2, 4],
        RoundRobinPartitionAssignor: [3, 3],
        CooperativeStickyAssignor: [3, 3],
    }
    pairs = {}
    for assignor in groups:
        config = {"partition_assignment_strategy": [assignor]}
        pairs[assignor] = [
            Member(broker.bootstrap, f"by-{assignor.name}", topics, **config) for _ in range(2)
        ]
        members.extend(pairs[assignor])
    for assignor, sizes in groups.items():
        a, b = pairs[assignor]
        wait_for(f"a {assignor.name} split", lambda a=a, b=b: split_between(a, b, every=every), WAIT)
        assert sorted([len(a.assignment), len(b.assignment)]) == sizes
        view = describe(broker, f"by-{assignor.name}")
        assert view["assignor"] == assignor.name and view["state"] == "Stable"


# ---------------------------------------------------------------- librdkafka


def test_confluent_kafka_consumer_consumes_and_commits(broker):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "rdkafka",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([TOPIC])
        got = []

        def poll() -> bool:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append((msg.partition(), msg.offset()))
            return len(got) >= PARTITIONS * PER_PARTITION

        wait_for("every record through librdkafka", poll, WAIT)
        assert {p for p, _ in got} == set(range(PARTITIONS))
        consumer.commit(asynchronous=False)
        committed = consumer.committed(
            [confluent_kafka.TopicPartition(TOPIC, p) for p in range(PARTITIONS)], 10
        )
        assert [c.offset for c in committed] == [PER_PARTITION] * PARTITIONS
        view = describe(broker, "rdkafka")
        assert view["state"] == "Stable" and len(view["members"]) == 1
        assert {r["partition"]: r["lag"] for r in view["partitions"]} == {0: 0, 1: 0, 2: 0}
    finally:
        consumer.close()
    wait_for("librdkafka to leave", lambda: describe(broker, "rdkafka")["state"] == "Empty", WAIT)
    # librdkafka's newest classic versions: flexible offsets (v8 asks for groups[], require_stable set; v9 names the member)
    assert_negotiated(broker, {"OffsetCommit": 9, "OffsetFetch": 9, "JoinGroup": 5}, client="rdkafka")
