"""The remote transport: produce, fetch and list offsets through live brokers, over Kafka's protocol.

Same interface as :class:`~kcli.client.embedded.EmbeddedTransport`, so the producer, consumer and CLI
do not care which one they hold.  Leaders come from a Metadata request; each broker is reached over its
Unix socket when we share its data dir (node id -> ``broker-N/broker.sock``), or over TCP at the address
its Metadata advertises when we were given ``host:port``.

With a data dir, a partition whose leader is not alive (Metadata leader -1) is read and written
embedded: no live broker serves it, so nobody's back is behind -- the broker that leads it will wait for
its replica lock when it starts.  Not so when a broker is about to lead it: the data dir names a
running leader (the broker that answered had an older view), or one that crashed while other brokers
run (the controller is about to move its leadership); then we wait for that leader instead.

Writes through a broker use acks=all unless told otherwise, so a returned offset is on every in-sync
replica; with acks=0 the broker does not answer and the offset is unknown (-1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from kcli.client.backoff import Backoff
from kcli.client.broker_pool import ATTEMPTS, BrokerPool
from kcli.client.defaults import READ_COMMITTED, READ_UNCOMMITTED, TRANSACTION_TIMEOUT_MS
from kcli.client.kafka_errors import raise_for
from kcli.cluster.datadir import DataDir
from kcli.errors import (
    BrokerError,
    NoProducerIdError,
    NotFoundError,
    UsageError,
)
from kcli.net.connection import REQUEST_TIMEOUT, BrokerConnection, UnreachableError
from kcli.protocol import ApiKey, ErrorCode, Struct, error_name

if TYPE_CHECKING:
    from kcli.client.embedded import EmbeddedTransport
    from kcli.client.remote_txn import TransactionCalls
    from kcli.groups.offsets import CommittedOffset

FAILOVER_WAIT = 20.0  # how long leadership errors are retried: the controller moving a leadership
PRODUCE_TIMEOUT = 30.0  # how long a broker may wait for the in-sync replicas before answering acks=all
# no leader to talk to right now: it is moving (or the broker we asked has not heard yet)
_LEADERSHIP = {
    None,
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    ErrorCode.LEADER_NOT_AVAILABLE,
    ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.UNKNOWN_LEADER_EPOCH,
}
_RETRY = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    ErrorCode.LEADER_NOT_AVAILABLE,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode.REQUEST_TIMED_OUT,
    ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.UNKNOWN_LEADER_EPOCH,
    ErrorCode.NOT_ENOUGH_REPLICAS,
}
# InitProducerId answers worth another try: the broker cannot allocate right now
_RETRY_INIT = {
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.NOT_COORDINATOR,
    ErrorCode.REQUEST_TIMED_OUT,
}

_T = TypeVar("_T")
# One try of a request at a partition's leader (None: no live leader, go embedded) -> (error code, message,
# result); the error code is None when the leader could not be reached.
_LeaderCall = Callable[[BrokerConnection | None], tuple[int, str | None, _T]]


class RemoteTransport:
    """Produce, fetch and list offsets through the partitions' leaders."""

    long_polls = True  # fetch(..., wait=S) waits at the broker for data (the Consumer's idle rounds use it)

    def __init__(
        self,
        datadir: DataDir | None = None,
        bootstrap: str | None = None,
        auto_create: bool = True,
        timeout: float = REQUEST_TIMEOUT,
        acks: int = -1,
    ) -> None:
        self.datadir = datadir
        self.auto_create = auto_create
        self.acks = acks
        self.cluster = BrokerPool(datadir, bootstrap, timeout)
        self._embedded: EmbeddedTransport | None = None
        self._txn_calls: TransactionCalls | None = None
        self.transactional_id: str | None = None  # sent with every Produce once a transactional producer began

    @property
    def warnings(self) -> list[str]:
        return self._embedded.warnings if self._embedded is not None else []

    def _fallback(self) -> EmbeddedTransport:
        """The embedded transport, for partitions that no live broker leads."""
        if self._embedded is None:
            from kcli.client.embedded import EmbeddedTransport

            # only a data dir's partitions go embedded (no live leader, or every broker stopped)
            assert self.datadir is not None
            self._embedded = EmbeddedTransport(self.datadir, auto_create=self.auto_create)
        return self._embedded

    def refresh(self) -> None:
        """Nothing is cached: every partition_count asks a broker's Metadata."""

    def partition_count(self, topic: str, create: bool = False) -> int:
        backoff = Backoff()
        for _attempt in range(ATTEMPTS):
            resp = self.cluster.metadata([topic], create=create and self.auto_create)
            code = resp.topics[0].error_code if resp.topics else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if code != ErrorCode.LEADER_NOT_AVAILABLE:
                break
            backoff.sleep()  # a topic Kafka has just auto-created has no leader for a moment
        if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise NotFoundError(f"topic {topic!r} does not exist", hint="create it with `kcli topic create`")
        raise_for(code, None, f"topic {topic!r}")
        return self.cluster.counts[topic]

    def _with_leader(self, topic: str, partition: int, call: _LeaderCall[_T]) -> _T:
        """Run ``call(conn)`` -> (error code, message, result) against the leader, refreshing metadata and
        retrying while leadership is in flux (a failover takes the controller a moment, so leadership
        errors are retried for up to FAILOVER_WAIT seconds); ``call(None)`` means: no live leader, go
        embedded."""
        backoff = Backoff()
        deadline = time.monotonic() + FAILOVER_WAIT
        attempt = 0
        while True:
            last = attempt >= ATTEMPTS - 1
            if attempt or (topic, partition) not in self.cluster.leaders:
                try:
                    self.cluster.metadata([topic])
                except UnreachableError:
                    if self.cluster.all_down():
                        return call(None)[2]
                    if last and time.monotonic() >= deadline:
                        raise
                    attempt += 1
                    backoff.sleep()
                    continue
                count = self.cluster.counts.get(topic)
                if count is None:
                    raise NotFoundError(f"topic {topic!r} does not exist", hint="see `kcli topic list`")
                if not 0 <= partition < count:
                    raise NotFoundError(
                        f"topic {topic!r} has no partition {partition}",
                        hint=f"it has partitions 0..{count - 1}",
                    )
            leader = self.cluster.leaders[(topic, partition)]
            if leader < 0 and self.datadir is not None and not self._leader_coming(topic, partition):
                return call(None)[2]
            code: int | None
            message: str | None
            try:
                if leader < 0:
                    raise UnreachableError(f"partition {topic}-{partition} has no live leader")
                code, message, result = call(self.cluster.node(leader))
                if code == ErrorCode.NONE:
                    return result
            except UnreachableError as exc:
                code, message = None, str(exc)
            if last and (code not in _LEADERSHIP or time.monotonic() >= deadline) or (
                code is not None and code not in _RETRY
            ):
                if code is None:
                    raise BrokerError(message or "broker unreachable")
                raise_for(code, message, f"partition {topic}-{partition}")
            self.cluster.leaders.pop((topic, partition), None)
            attempt += 1
            backoff.sleep()

    def _leader_coming(self, topic: str, partition: int) -> bool:
        """With a data dir, a partition without a live leader is written embedded -- but not while a
        broker is about to lead it: the metadata on disk names a leader that runs (the broker that
        answered our Metadata had an older view, or the leader is opening the partition), or one that
        crashed while others run (the controller is about to move the leadership).  Writing it
        embedded then would take the partition lock from under the broker elected to lead it."""
        from kcli.cluster.liveness import is_lost
        from kcli.cluster.metadata import Metadata

        datadir = self.datadir
        assert datadir is not None
        try:
            meta = Metadata(datadir).load().partition(topic, partition)
        except (NotFoundError, OSError):
            return False
        if meta.leader < 0:
            return False
        if datadir.broker_lock(meta.leader).is_locked():
            return True
        return is_lost(datadir, meta.leader) and not self.cluster.all_down()

    # ------------------------------------------------------------ produce

    def init_producer_id(self, transactional_id: str | None = None, timeout_ms: int = TRANSACTION_TIMEOUT_MS) -> tuple[int, int]:
        """(producer id, epoch) for an idempotent producer: InitProducerId to a live broker, retried for up
        to FAILOVER_WAIT while none can answer; with a data dir whose brokers all stopped, the allocator
        they use.  NoProducerIdError: the cluster hands out none (it lacks InitProducerId or answers it
        with an error; tansu 0.6 hands them out through the flexible versions kcli negotiates).  With
        ``transactional_id``: from the id's coordinator, a cluster without transactions being a BrokerError
        that says so."""
        if transactional_id is not None:
            if self.cluster.all_down():
                return self._fallback().init_producer_id(transactional_id, timeout_ms)
            self.transactional_id = transactional_id
            return self._transactions().init_producer_id(transactional_id, timeout_ms)
        backoff = Backoff()
        deadline = time.monotonic() + FAILOVER_WAIT
        while True:
            try:
                conn = self.cluster.any()
                if ApiKey.INIT_PRODUCER_ID not in conn.versions:
                    raise NoProducerIdError(f"broker at {conn.label} does not support InitProducerId")
                body = {"transactional_id": None, "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS}
                resp = self.cluster.send(conn, ApiKey.INIT_PRODUCER_ID, body)
                code, message = resp.error_code, f"InitProducerId: {error_name(resp.error_code)}"
            except UnreachableError as exc:
                if self.cluster.all_down():
                    return self._fallback().init_producer_id()
                code, message = None, str(exc)
            if code == ErrorCode.NONE:
                return resp.producer_id, resp.producer_epoch
            if code == ErrorCode.KAFKA_STORAGE_ERROR:
                raise_for(code, None, "InitProducerId")
            if code is not None and code not in _RETRY_INIT:
                raise NoProducerIdError(f"broker at {conn.label} gave no producer id: {error_name(code)}")
            if time.monotonic() >= deadline:
                raise BrokerError(message)
            backoff.sleep()

    def _transactions(self) -> TransactionCalls:
        if self._txn_calls is None:
            from kcli.client.remote_txn import TransactionCalls

            self._txn_calls = TransactionCalls(self.cluster)
        return self._txn_calls

    def _txn_embedded(self) -> bool:
        """A transaction begun while every broker of the data dir was stopped goes on embedded."""
        return self._embedded is not None and self._embedded.transactional

    def add_partitions_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                              partitions: Iterable[tuple[str, int]]) -> None:
        if self._txn_embedded():
            return self._fallback().add_partitions_to_txn(transactional_id, producer_id, producer_epoch, partitions)
        self._transactions().add_partitions(transactional_id, producer_id, producer_epoch, partitions)

    def add_offsets_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, group: str) -> None:
        if self._txn_embedded():
            return self._fallback().add_offsets_to_txn(transactional_id, producer_id, producer_epoch, group)
        self._transactions().add_offsets(transactional_id, producer_id, producer_epoch, group)

    def txn_offset_commit(self, transactional_id: str, group: str, producer_id: int, producer_epoch: int,
                          offsets: Mapping[tuple[str, int], CommittedOffset]) -> None:
        if self._txn_embedded():
            return self._fallback().txn_offset_commit(transactional_id, group, producer_id, producer_epoch, offsets)
        self._transactions().txn_offset_commit(transactional_id, group, producer_id, producer_epoch, offsets)

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> None:
        if self._txn_embedded():
            return self._fallback().end_txn(transactional_id, producer_id, producer_epoch, commit)
        self._transactions().end_txn(transactional_id, producer_id, producer_epoch, commit)

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        """Send one batch to the partition's leader; every retry (a leader change, a lost connection, an
        acks=all timeout) sends the same bytes, so an idempotent batch keeps its sequence numbers and a
        leader that stored it already answers with its offset (or DUPLICATE_SEQUENCE_NUMBER)."""

        def call(conn: BrokerConnection | None) -> tuple[int, str | None, int]:
            if conn is None:
                return ErrorCode.NONE, None, self._fallback().produce(topic, partition, batch)
            body = {
                "transactional_id": self.transactional_id,
                "acks": self.acks,
                "timeout_ms": int(min(PRODUCE_TIMEOUT, self.cluster.timeout / 2) * 1000),
                "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}],
            }
            if self.acks == 0:  # Kafka's broker sends no response at all
                self.cluster.send(conn, ApiKey.PRODUCE, body, expect_response=False)
                return ErrorCode.NONE, None, -1
            resp = self.cluster.send(conn, ApiKey.PRODUCE, body)
            part = resp.responses[0].partition_responses[0]
            if part.error_code == ErrorCode.DUPLICATE_SEQUENCE_NUMBER:  # stored by an earlier attempt
                return ErrorCode.NONE, None, part.base_offset
            return part.error_code, part.error_message, part.base_offset

        return self._with_leader(topic, partition, call)

    def release(self, durable: bool = False) -> None:
        """Writes through a broker are already on its logs; only embedded sessions need ending."""
        if self._embedded is not None:
            self._embedded.release(durable)

    # ------------------------------------------------------------ fetch

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20, wait: float = 0.0,
              isolation: str = READ_UNCOMMITTED) -> tuple[bytes, int]:
        """Batches from ``offset`` on; empty when there is nothing new.  With ``wait`` (seconds) the
        leader holds the request until something arrives or the time is up (Kafka's long poll: a
        follower of the log learns of a new record at once, without polling).  Like the embedded read,
        an offset before the log start reads nothing and resumes at the start.  read_committed asks for
        the batches below the last stable offset and drops the aborted ones the answer lists, and the
        markers."""
        answer = self._fetch_once(topic, partition, offset, max_bytes, wait, isolation)
        if answer is None:
            return b"", max(offset, self.list_offset(topic, partition, "earliest"))
        if not isinstance(answer, Struct):
            return answer
        data = bytes(answer.records or b"")
        if isolation != READ_COMMITTED or not data:
            return data, offset
        from kcli.storage.isolation import committed
        from kcli.storage.txnindex import AbortedTxn

        aborted = [AbortedTxn(a.producer_id, a.first_offset, -1, -1) for a in answer.aborted_transactions or ()]
        return committed(data, aborted)

    def _fetch_once(
        self, topic: str, partition: int, offset: int, max_bytes: int, wait: float = 0.0,
        isolation: str = READ_UNCOMMITTED,
    ) -> Struct | tuple[bytes, int] | None:
        """One Fetch of one partition at its leader: the partition's answer (``records``,
        ``high_watermark``, ``last_stable_offset``, ``aborted_transactions``); None when ``offset`` is
        out of range; what the embedded read gives when no broker leads the partition."""

        def call(conn: BrokerConnection | None) -> tuple[int, str | None, Struct | tuple[bytes, int] | None]:
            if conn is None:
                return ErrorCode.NONE, None, self._fallback().fetch(topic, partition, offset, max_bytes, 0.0, isolation)
            body = {
                "replica_id": -1,
                # never 0: some brokers (tansu) answer max_wait_ms=0 with no partitions
                "max_wait_ms": max(1, int(wait * 1000)),
                "min_bytes": 1 if wait > 0 else 0,
                "max_bytes": max_bytes,
                "isolation_level": int(isolation == READ_COMMITTED),
                "session_id": 0,
                "session_epoch": -1,
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [
                            {"partition": partition, "fetch_offset": offset, "partition_max_bytes": max_bytes}
                        ],
                    }
                ],
            }
            resp = self.cluster.send(conn, ApiKey.FETCH, body)
            raise_for(resp.error_code, None, "fetch")
            if not resp.responses or not resp.responses[0].partitions:
                # nothing for us this time (a broker may leave the partition out)
                return ErrorCode.NONE, None, Struct(records=b"", high_watermark=-1)
            part = resp.responses[0].partitions[0]
            if part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                return ErrorCode.NONE, None, None
            return part.error_code, None, part

        return self._with_leader(topic, partition, call)

    def locate(self, topic: str, partition: int, data_position: int) -> tuple[str | None, int | None]:
        """Unknown: a broker's answer does not say where its bytes lie (its own log names the file)."""
        return None, None

    def list_offset(self, topic: str, partition: int, spec: str | int, isolation: str = READ_UNCOMMITTED) -> int:
        """'earliest', 'latest' (the last stable offset under read_committed), or a timestamp in ms (first
        offset at or after it, else latest)."""
        timestamp = {"earliest": -2, "latest": -1}.get(spec) if isinstance(spec, str) else int(spec)
        if timestamp is None:
            raise UsageError(f"bad offset spec {spec!r}")

        def call(conn: BrokerConnection | None) -> tuple[int, str | None, int]:
            if conn is None:
                return ErrorCode.NONE, None, self._fallback().list_offset(topic, partition, spec, isolation)
            body = {
                "replica_id": -1,
                "isolation_level": int(isolation == READ_COMMITTED),
                "topics": [
                    {"name": topic, "partitions": [{"partition_index": partition, "timestamp": timestamp}]}
                ],
            }
            resp = self.cluster.send(conn, ApiKey.LIST_OFFSETS, body)
            part = resp.topics[0].partitions[0]
            return part.error_code, None, part.offset

        offset = self._with_leader(topic, partition, call)
        if offset < 0:  # no record at or after the timestamp: the end, as the embedded path answers
            return self.list_offset(topic, partition, "latest", isolation)
        if timestamp == -1 and self.datadir is None:
            offset = max(offset, self._high_watermark(topic, partition, offset, isolation))
        return offset

    def _high_watermark(self, topic: str, partition: int, offset: int, isolation: str = READ_UNCOMMITTED) -> int:
        """The high watermark (read_committed: the last stable offset) a Fetch at ``offset`` reports.  In
        Kafka it is what ListOffsets(latest)
        answers, but some Kafka-compatible brokers (tansu 0.6) answer ListOffsets with the last batch's base
        offset + 1, which would cut the last batch short for ``consume -e``, ``mirror`` and ``lag``.  A
        Fetch at their answer is cheap (empty where it is right) and carries the true end.  Asked only of
        foreign clusters (--bootstrap-server): kcli's own brokers answer ListOffsets exactly."""
        answer = self._fetch_once(topic, partition, offset, 1, 0.0, isolation)
        if not isinstance(answer, Struct):
            return -1
        if isolation == READ_COMMITTED and answer.last_stable_offset >= 0:
            return int(answer.last_stable_offset)  # read_committed's end: the last stable offset
        return int(answer.high_watermark)

    def close(self, durable: bool = True) -> None:
        self.cluster.close()
        if self._embedded is not None:
            self._embedded.close(durable)
