"""Consumer-group members the KIP-848 tests drive: one speaking raw ConsumerGroupHeartbeat on its own
connection, and a confluent-kafka consumer polling in its own thread."""

from __future__ import annotations

import threading
import time

import pytest

from kcli.protocol import ApiKey, ErrorCode
from support.brokers import call, connect

WAIT = 60.0  # for a member's thread to end


class HeartbeatMember:
    """A consumer-protocol member speaking raw ConsumerGroupHeartbeat (``version``) to the broker's Unix
    socket, subscribed to ``topic``; it revokes what an answer leaves out and reports what it owns on
    every later heartbeat (:meth:`report`)."""

    def __init__(self, broker, topic: str, group: str = "g", version: int = 1, **join) -> None:
        self.sock = connect(broker.socket_path)
        self.group, self.version = group, version
        self.member_id, self.epoch = "", 0
        self.owned: set[int] = set()
        self.topic_id = b""
        self.last = self.beat(
            rebalance_timeout_ms=30_000, subscribed_topic_names=[topic], topic_partitions=[], **join
        )

    def beat(self, epoch: int | None = None, **fields):
        body = {"group_id": self.group, "member_id": self.member_id,
                "member_epoch": self.epoch if epoch is None else epoch, **fields}
        resp = call(self.sock, ApiKey.CONSUMER_GROUP_HEARTBEAT, self.version, body)
        if resp.error_code == ErrorCode.NONE:
            self.member_id, self.epoch = resp.member_id or self.member_id, resp.member_epoch
            if resp.assignment is not None:
                self.owned = {p for t in resp.assignment.topic_partitions for p in t.partitions}
                self.topic_id = next((t.topic_id for t in resp.assignment.topic_partitions), self.topic_id)
        self.last = resp
        return resp

    def report(self):
        """A heartbeat that reports what it owns (after revoking what its last answer left out)."""
        owned = [{"topic_id": self.topic_id, "partitions": sorted(self.owned)}] if self.owned else []
        return self.beat(topic_partitions=owned)

    def leave(self) -> None:
        assert self.beat(epoch=-1).error_code == ErrorCode.NONE


class PollingConsumer:
    """A confluent-kafka consumer of ``topic`` polling in its own thread, committing each record
    synchronously before the next (so a record read before a rebalance is never read again by another
    member); what it read, what it owns now and the errors it met.  ``retry_commit``: the commit
    errors a real application retries (see :meth:`_commit`); otherwise any commit error ends the thread."""

    def __init__(self, bootstrap: str, topic: str, group: str = "g", protocol: str = "consumer",
                 retry_commit: bool = False, **conf) -> None:
        confluent_kafka = pytest.importorskip("confluent_kafka")
        config = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": protocol,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False}
        if protocol == "classic":
            config.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        config.update(conf)
        self.retry_commit = retry_commit
        self.consumer = confluent_kafka.Consumer(config)
        self.consumer.subscribe([topic])
        self.owned: frozenset[int] = frozenset()
        self.read: list[tuple[int, int]] = []  # (partition, offset)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msg = self.consumer.poll(0.1)
                if msg is not None and msg.error() is None:
                    self.read.append((msg.partition(), msg.offset()))
                    if self.retry_commit:
                        self._commit(msg)
                    else:
                        self.consumer.commit(message=msg, asynchronous=False)
                elif msg is not None and not msg.error().retriable():
                    self.errors.append(str(msg.error()))
                self.owned = frozenset(tp.partition for tp in self.consumer.assignment())
        finally:
            self.consumer.close()

    def _commit(self, msg) -> None:
        """Commit ``msg`` synchronously, retrying what a real application retries: a commit sent with the
        epoch the member had just before its heartbeat moved it on (STALE_MEMBER_EPOCH, as Kafka answers
        it; ILLEGAL_GENERATION for a classic member of a consumer group, whose generation its own rejoin
        moved on while the commit was in flight: Kafka's ConsumerGroup.validateMemberEpoch) or during a
        classic rebalance (REBALANCE_IN_PROGRESS) succeeds once librdkafka caught up."""
        confluent_kafka = pytest.importorskip("confluent_kafka")
        retriable = {confluent_kafka.KafkaError.STALE_MEMBER_EPOCH, confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS,
                     confluent_kafka.KafkaError.ILLEGAL_GENERATION}
        for _ in range(50):
            try:
                self.consumer.commit(message=msg, asynchronous=False)
                return
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() not in retriable:
                    self.errors.append(f"commit of {msg.partition()}@{msg.offset()}: {exc}")
                    return
                time.sleep(0.1)
        self.errors.append(f"commit of {msg.partition()}@{msg.offset()}: still refused after 50 tries")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


def stop_all(members) -> None:
    """Stop every member's thread, then wait for each (a fixture's teardown)."""
    for m in members:
        m._stop.set()
    for m in members:
        m._thread.join(WAIT)
