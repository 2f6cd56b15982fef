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

:class:`RemoteAdmin` sends CreateTopics / DeleteTopics / CreatePartitions to a live broker, which holds
the locks those changes need.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from kcli.cluster.datadir import DataDir
from kcli.errors import (
    AlreadyExistsError,
    BrokerError,
    CorruptRecordError,
    InvalidConfigError,
    InvalidTopicError,
    NoProducerIdError,
    NotFoundError,
    ProtocolError,
    RecordTooLargeError,
    SequenceError,
    StorageError,
    UnavailableError,
    UsageError,
)
from kcli.protocol import (
    SUPPORTED,
    ApiKey,
    ErrorCode,
    RequestHeader,
    Struct,
    api_name,
    decode_frame_size,
    decode_response,
    encode_request,
    error_name,
)

CLIENT_ID = "kcli"
CONNECT_WAIT = 5.0  # a broker that holds its lock may still be binding its socket
REQUEST_TIMEOUT = 60.0
ATTEMPTS = 6
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
# an idempotent producer's batch that the leader cannot place: storing it might duplicate or reorder
_SEQUENCE = {
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER: "the leader lacks this producer's earlier batches",
    ErrorCode.INVALID_PRODUCER_EPOCH: "a newer session of this producer id fenced it",
    ErrorCode.UNKNOWN_PRODUCER_ID: "the leader no longer knows this producer (its records were deleted)",
}
Address = str | tuple[str, int]


class _Unreachable(BrokerError):
    """A connection could not be made or was lost: worth a retry after refreshing metadata.

    ``reason`` is the bare cause ("connection refused"), for a message that names several servers."""

    def __init__(self, message: str, hint: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, hint)
        self.reason = reason or message


def _reason(exc: OSError) -> str:
    """An OSError as a short lower-case cause: "connection refused", "timed out"."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def parse_bootstrap(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad broker address {text!r}", hint="use HOST:PORT, e.g. 127.0.0.1:9092")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_bootstrap_servers(text: str) -> list[tuple[str, int]]:
    """``HOST:PORT[,HOST:PORT...]``, as Kafka's ``bootstrap.servers``: any one of them is enough to find
    the whole cluster, so several are given for when some are down."""
    servers = [parse_bootstrap(part) for part in text.split(",") if part.strip()]
    if not servers:
        raise UsageError("no broker address given", hint="use HOST:PORT[,HOST:PORT], e.g. 127.0.0.1:9092")
    return servers


def address_label(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------- one connection


class BrokerConnection:
    """One socket to one broker: negotiated API versions, then request/response in order."""

    def __init__(
        self,
        address: Address,
        timeout: float = REQUEST_TIMEOUT,
        client_id: str = CLIENT_ID,
        starting: Callable[[], bool] | None = None,
    ) -> None:
        self.address = address
        self.starting = starting
        self.label = f"unix:{address}" if isinstance(address, str) else f"{address[0]}:{address[1]}"
        self.timeout = timeout
        self.client_id = client_id
        self._next_id = 0
        self.sock = self._connect()
        self.versions: dict[int, tuple[int, int]] = {}
        self._negotiate()

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + CONNECT_WAIT
        delay = 0.01
        while True:
            try:
                if isinstance(self.address, str):
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(self.timeout)
                    try:
                        sock.connect(self.address)
                    except BaseException:
                        sock.close()
                        raise
                else:
                    sock = socket.create_connection(self.address, timeout=min(self.timeout, 10.0))
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.settimeout(self.timeout)
                return sock
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                # worth waiting for only while the broker is alive but not yet listening
                if self.starting is None or time.monotonic() >= deadline or not self.starting():
                    raise _Unreachable(
                        f"cannot connect to broker at {self.label}: {exc.strerror or exc}",
                        reason=_reason(exc),
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
            except OSError as exc:
                raise _Unreachable(
                    f"cannot connect to broker at {self.label}: {exc.strerror or exc}", reason=_reason(exc)
                ) from None

    def _negotiate(self) -> None:
        """ApiVersions first, like every Kafka client, so we use versions the broker speaks."""
        try:
            body = self.request(ApiKey.API_VERSIONS, {}, version=2)
        except ProtocolError:
            body = self.request(ApiKey.API_VERSIONS, {}, version=0)
        if body.error_code != ErrorCode.NONE:
            raise BrokerError(f"broker at {self.label} refused ApiVersions: {error_name(body.error_code)}")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}

    def version(self, api_key: int) -> int:
        ours = SUPPORTED[api_key]
        theirs = self.versions.get(api_key)
        if theirs is None or theirs[1] < ours[0] or theirs[0] > ours[1]:
            raise BrokerError(
                f"broker at {self.label} does not support {api_name(api_key)} "
                f"in a version kcli speaks (v{ours[0]}-v{ours[1]})"
            )
        return min(ours[1], theirs[1])

    def request(
        self, api_key: int, body: Mapping[str, Any], version: int | None = None, expect_response: bool = True
    ) -> Struct:
        version = self.version(api_key) if version is None else version
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF
        corr = self._next_id
        frame = encode_request(RequestHeader(api_key, version, corr, self.client_id), body)
        try:
            self.sock.sendall(frame)
            if not expect_response:
                return Struct()
            payload = self._read(decode_frame_size(self._read(4)))
        except OSError as exc:
            self.close()
            raise _Unreachable(f"lost connection to broker at {self.label}: {exc.strerror or exc}") from None
        except ProtocolError:
            self.close()
            raise
        response = decode_response(api_key, version, payload)
        if response.correlation_id != corr:
            self.close()
            raise ProtocolError(
                f"broker at {self.label} answered request {response.correlation_id}, not {corr}"
            )
        return response.body

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionResetError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- routing to leaders


class _Cluster:
    """Connections to the brokers of one cluster, and what the last Metadata said about it."""

    def __init__(self, datadir: DataDir | None, bootstrap: str | None, timeout: float) -> None:
        if datadir is None and bootstrap is None:
            raise UsageError("a remote transport needs a data dir or a broker address")
        self.datadir = datadir
        self.bootstrap = parse_bootstrap_servers(bootstrap) if bootstrap else None
        self.timeout = timeout
        self.conns: dict[int | str, BrokerConnection] = {}
        self.addresses: dict[int, tuple[str, int]] = {}
        self.leaders: dict[tuple[str, int], int] = {}
        self.counts: dict[str, int] = {}

    def _address(self, node: int) -> Address:
        if self.datadir is not None:
            from kcli.broker.info import socket_path

            return socket_path(self.datadir, node)
        address = self.addresses.get(node)
        if address is None or address[1] < 0:
            raise _Unreachable(f"broker {node} has no TCP listener that kcli can reach")
        return address

    def node(self, node: int) -> BrokerConnection:
        conn = self.conns.get(node)
        if conn is None:
            starting = None
            if self.datadir is not None:
                datadir = self.datadir

                def starting() -> bool:
                    return node in datadir.live_brokers()

            conn = self.conns[node] = BrokerConnection(self._address(node), self.timeout, starting=starting)
        return conn

    def all_down(self) -> bool:
        """With a data dir: no broker is alive any more (commands then go embedded, as at start)."""
        return self.datadir is not None and not self.datadir.live_brokers()

    def any(self) -> BrokerConnection:
        """A connection to some live broker (for Metadata and admin requests)."""
        for conn in self.conns.values():
            return conn
        if self.bootstrap is not None:
            conn = self.conns["bootstrap"] = self._bootstrap()
            return conn
        from kcli.broker.liveness import freshest_first

        errors = []
        for node in freshest_first(self.datadir, self.datadir.live_brokers()):  # type: ignore[arg-type]
            try:
                return self.node(node)
            except _Unreachable as exc:
                errors.append(str(exc))
        raise _Unreachable(
            "; ".join(errors) or "no broker is running", hint="start one with `kcli broker serve`"
        )

    def _bootstrap(self) -> BrokerConnection:
        """Like Kafka's clients: each bootstrap server in turn, then any broker the last Metadata named."""
        failures: list[str] = []
        bootstrap = self.bootstrap or []
        known = [a for a in self.addresses.values() if a[1] > 0 and a not in bootstrap]
        for address in bootstrap + known:
            try:
                return BrokerConnection(address, self.timeout)
            except _Unreachable as exc:
                failures.append(f"{address_label(address)} ({exc.reason})")
        raise _Unreachable(f"cannot reach any bootstrap server {', '.join(failures)}")

    def drop(self, conn: BrokerConnection) -> None:
        for key, value in list(self.conns.items()):
            if value is conn:
                del self.conns[key]
        conn.close()

    def send(self, conn: BrokerConnection, api_key: int, body: Mapping[str, Any], **kw: Any) -> Struct:
        try:
            return conn.request(api_key, body, **kw)
        except (_Unreachable, ProtocolError):
            self.drop(conn)
            raise

    def metadata(self, topics: list[str] | None, create: bool = False) -> Struct:
        conn = self.any()
        body = {
            "topics": None if topics is None else [{"name": t} for t in topics],
            "allow_auto_topic_creation": create,
        }
        resp = self.send(conn, ApiKey.METADATA, body)
        for b in resp.brokers:
            self.addresses[b.node_id] = (b.host, b.port)
        for t in resp.topics:
            if t.error_code != ErrorCode.NONE:
                self.counts.pop(t.name, None)
                continue
            self.counts[t.name] = len(t.partitions)
            for p in t.partitions:
                self.leaders[(t.name, p.partition_index)] = p.leader_id
        return resp

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()


def raise_for(code: int, message: str | None, what: str) -> None:
    """Turn a Kafka error code into the kcli error a user would get from the embedded path."""
    if code == ErrorCode.NONE:
        return
    text = f"{what}: {message}" if message else f"{what}: {error_name(code)}"
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFoundError(message or f"{what} does not exist", hint="see `kcli topic list`")
    if code in (
        ErrorCode.CORRUPT_MESSAGE,
        ErrorCode.INVALID_RECORD,
        ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    ):
        raise CorruptRecordError(text)
    if code in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE):
        raise RecordTooLargeError(text, hint="raise the topic's max.message.bytes or send smaller batches")
    if code == ErrorCode.TOPIC_ALREADY_EXISTS:
        raise AlreadyExistsError(message or f"{what} already exists")
    if code == ErrorCode.INVALID_TOPIC_EXCEPTION:
        raise InvalidTopicError(text)
    if code == ErrorCode.INVALID_CONFIG:
        raise InvalidConfigError(text)
    if code in (
        ErrorCode.INVALID_PARTITIONS,
        ErrorCode.INVALID_REPLICATION_FACTOR,
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ErrorCode.INVALID_REQUEST,
    ):
        raise UsageError(text)
    if code in (ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.NOT_ENOUGH_REPLICAS):
        raise UnavailableError(text)
    if code == ErrorCode.KAFKA_STORAGE_ERROR:  # the broker's disk refused the write; nothing of it was kept
        raise StorageError(text, "make room on (or repair) the broker's disk, then retry")
    if code in _SEQUENCE:
        raise SequenceError(
            f"{what}: {message or _SEQUENCE[code]} ({error_name(code)})",
            hint="records after the last acknowledged one may be missing: produce them again; "
            "--no-idempotence turns these checks off",
            fenced=code == ErrorCode.INVALID_PRODUCER_EPOCH,
        )
    raise BrokerError(f"{text} ({error_name(code)})" if message else text)


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
        self.cluster = _Cluster(datadir, bootstrap, timeout)
        self._embedded = None

    @property
    def warnings(self) -> list[str]:
        return self._embedded.warnings if self._embedded is not None else []

    def _fallback(self):
        """The embedded transport, for partitions that no live broker leads."""
        if self._embedded is None:
            from kcli.client.embedded import EmbeddedTransport

            self._embedded = EmbeddedTransport(self.datadir, auto_create=self.auto_create)  # type: ignore[arg-type]
        return self._embedded

    def partition_count(self, topic: str, create: bool = False) -> int:
        delay = 0.05
        for _attempt in range(ATTEMPTS):
            resp = self.cluster.metadata([topic], create=create and self.auto_create)
            code = resp.topics[0].error_code if resp.topics else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if code != ErrorCode.LEADER_NOT_AVAILABLE:
                break
            time.sleep(delay)  # a topic Kafka has just auto-created has no leader for a moment
            delay = min(delay * 2, 1.0)
        if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise NotFoundError(f"topic {topic!r} does not exist", hint="create it with `kcli topic create`")
        raise_for(code, None, f"topic {topic!r}")
        return self.cluster.counts[topic]

    def _with_leader(self, topic: str, partition: int, call):
        """Run ``call(conn)`` -> (error code, message, result) against the leader, refreshing metadata and
        retrying while leadership is in flux (a failover takes the controller a moment, so leadership
        errors are retried for up to FAILOVER_WAIT seconds); ``call(None)`` means: no live leader, go
        embedded."""
        delay = 0.05
        deadline = time.monotonic() + FAILOVER_WAIT
        attempt = 0
        while True:
            last = attempt >= ATTEMPTS - 1
            if attempt or (topic, partition) not in self.cluster.leaders:
                try:
                    self.cluster.metadata([topic])
                except _Unreachable:
                    if self.cluster.all_down():
                        return call(None)[2]
                    if last and time.monotonic() >= deadline:
                        raise
                    attempt += 1
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
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
            try:
                if leader < 0:
                    raise _Unreachable(f"partition {topic}-{partition} has no live leader")
                code, message, result = call(self.cluster.node(leader))
            except _Unreachable as exc:
                code, message, result = None, str(exc), None
            if code == ErrorCode.NONE:
                return result
            if last and (code not in _LEADERSHIP or time.monotonic() >= deadline) or (
                code is not None and code not in _RETRY
            ):
                if code is None:
                    raise BrokerError(message or "broker unreachable")
                raise_for(code, message, f"partition {topic}-{partition}")
            self.cluster.leaders.pop((topic, partition), None)
            attempt += 1
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _leader_coming(self, topic: str, partition: int) -> bool:
        """With a data dir, a partition without a live leader is written embedded -- but not while a
        broker is about to lead it: the metadata on disk names a leader that runs (the broker that
        answered our Metadata had an older view, or the leader is opening the partition), or one that
        crashed while others run (the controller is about to move the leadership).  Writing it
        embedded then would take the partition lock from under the broker elected to lead it."""
        from kcli.broker.liveness import is_lost
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

    def init_producer_id(self) -> tuple[int, int]:
        """(producer id, epoch) for an idempotent producer: InitProducerId to a live broker, retried for up
        to FAILOVER_WAIT while none can answer; with a data dir whose brokers all stopped, the allocator
        they use.  NoProducerIdError: the cluster hands out none (tansu 0.6 answers the classic versions
        kcli speaks with UNKNOWN_SERVER_ERROR)."""
        delay = 0.05
        deadline = time.monotonic() + FAILOVER_WAIT
        while True:
            try:
                conn = self.cluster.any()
                if ApiKey.INIT_PRODUCER_ID not in conn.versions:
                    raise NoProducerIdError(f"broker at {conn.label} does not support InitProducerId")
                body = {"transactional_id": None, "transaction_timeout_ms": 60000}
                resp = self.cluster.send(conn, ApiKey.INIT_PRODUCER_ID, body)
                code, message = resp.error_code, f"InitProducerId: {error_name(resp.error_code)}"
            except _Unreachable as exc:
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
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        """Send one batch to the partition's leader; every retry (a leader change, a lost connection, an
        acks=all timeout) sends the same bytes, so an idempotent batch keeps its sequence numbers and a
        leader that stored it already answers with its offset (or DUPLICATE_SEQUENCE_NUMBER)."""

        def call(conn):
            if conn is None:
                return ErrorCode.NONE, None, self._fallback().produce(topic, partition, batch)
            body = {
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

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20, wait: float = 0.0) -> bytes:
        """Batches from ``offset`` on; empty when there is nothing new.  With ``wait`` (seconds) the
        leader holds the request until something arrives or the time is up (Kafka's long poll: a
        follower of the log learns of a new record at once, without polling).  Like the embedded read,
        an offset before the log start reads from the start."""
        answer = self._fetch_once(topic, partition, offset, max_bytes, wait)
        if answer is None:
            start = self.list_offset(topic, partition, "earliest")
            if offset < start:
                return self.fetch(topic, partition, start, max_bytes)
            return b""
        if isinstance(answer, Struct):
            return bytes(answer.records or b"")
        return answer

    def _fetch_once(
        self, topic: str, partition: int, offset: int, max_bytes: int, wait: float = 0.0
    ) -> Struct | bytes | None:
        """One Fetch of one partition at its leader: the partition's answer (``records``,
        ``high_watermark``); None when ``offset`` is out of range; bytes read embedded when no broker
        leads the partition."""

        def call(conn):
            if conn is None:
                return ErrorCode.NONE, None, self._fallback().fetch(topic, partition, offset, max_bytes)
            body = {
                "replica_id": -1,
                # never 0: some brokers (tansu) answer max_wait_ms=0 with no partitions
                "max_wait_ms": max(1, int(wait * 1000)),
                "min_bytes": 1 if wait > 0 else 0,
                "max_bytes": max_bytes,
                "isolation_level": 0,
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

    def list_offset(self, topic: str, partition: int, spec: str | int) -> int:
        """'earliest', 'latest', or a timestamp in ms (first offset at or after it, else latest)."""
        timestamp = {"earliest": -2, "latest": -1}.get(spec) if isinstance(spec, str) else int(spec)
        if timestamp is None:
            raise UsageError(f"bad offset spec {spec!r}")

        def call(conn):
            if conn is None:
                return ErrorCode.NONE, None, self._fallback().list_offset(topic, partition, spec)
            body = {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [
                    {"name": topic, "partitions": [{"partition_index": partition, "timestamp": timestamp}]}
                ],
            }
            resp = self.cluster.send(conn, ApiKey.LIST_OFFSETS, body)
            part = resp.topics[0].partitions[0]
            return part.error_code, None, part.offset

        offset = self._with_leader(topic, partition, call)
        if offset < 0:  # no record at or after the timestamp: the end, as the embedded path answers
            return self.list_offset(topic, partition, "latest")
        if timestamp == -1 and self.datadir is None:
            offset = max(offset, self._high_watermark(topic, partition, offset))
        return offset

    def _high_watermark(self, topic: str, partition: int, offset: int) -> int:
        """The high watermark a Fetch at ``offset`` reports.  In Kafka it is what ListOffsets(latest)
        answers, but some Kafka-compatible brokers (tansu 0.6) answer ListOffsets with the last batch's base
        offset + 1, which would cut the last batch short for ``consume -e``, ``mirror`` and ``lag``.  A
        Fetch at their answer is cheap (empty where it is right) and carries the true end.  Asked only of
        foreign clusters (--bootstrap-server): kcli's own brokers answer ListOffsets exactly."""
        answer = self._fetch_once(topic, partition, offset, 1)
        return answer.high_watermark if isinstance(answer, Struct) else -1

    def close(self, durable: bool = True) -> None:
        self.cluster.close()
        if self._embedded is not None:
            self._embedded.close(durable)


# ---------------------------------------------------------------- admin


class RemoteAdmin:
    """Topic changes through a live broker (it holds the replica locks they need)."""

    def __init__(
        self,
        datadir: DataDir | None = None,
        bootstrap: str | None = None,
        timeout: float = 2 * REQUEST_TIMEOUT,
    ) -> None:
        self.cluster = _Cluster(datadir, bootstrap, timeout)
        self.timeout_ms = int(timeout * 1000)

    def _send(self, api_key: int, body: Mapping[str, Any]) -> Struct:
        try:
            return self.cluster.send(self.cluster.any(), api_key, body)
        finally:
            self.cluster.close()

    def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: Mapping[str, object] | None = None,
        if_not_exists: bool = False,
    ) -> None:
        entries = [{"name": k, "value": _config_text(v)} for k, v in (configs or {}).items()]
        body = {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": replication_factor,
                    "assignments": [],
                    "configs": entries,
                }
            ],
            "timeout_ms": self.timeout_ms,
            "validate_only": False,
        }
        result = self._send(ApiKey.CREATE_TOPICS, body).topics[0]
        if result.error_code == ErrorCode.TOPIC_ALREADY_EXISTS and if_not_exists:
            return
        raise_for(result.error_code, result.error_message, f"topic {name!r}")

    def delete_topic(self, name: str) -> None:
        body = {"topic_names": [name], "timeout_ms": self.timeout_ms}
        result = self._send(ApiKey.DELETE_TOPICS, body).responses[0]
        if result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise NotFoundError(f"topic {name!r} does not exist", hint="see `kcli topic list`")
        raise_for(result.error_code, None, f"topic {name!r}")

    def add_partitions(self, name: str, total: int) -> None:
        body = {
            "topics": [{"name": name, "count": total, "assignments": None}],
            "timeout_ms": self.timeout_ms,
            "validate_only": False,
        }
        result = self._send(ApiKey.CREATE_PARTITIONS, body).results[0]
        raise_for(result.error_code, result.error_message, f"topic {name!r}")


def _config_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = ["BrokerConnection", "RemoteAdmin", "RemoteTransport", "parse_bootstrap", "raise_for"]
