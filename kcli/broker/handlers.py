"""Data-path API handlers: ApiVersions, Metadata, DescribeTopicPartitions, InitProducerId, Produce,
Fetch, ListOffsets, OffsetForLeaderEpoch.

Each handler takes the broker context, the request header and the decoded body, and returns the
response body as a mapping (or None when Kafka sends no response: Produce with acks=0).  Per-partition
problems become per-partition error codes, as in Kafka; only a malformed request closes the connection
(see :mod:`kcli.broker.dispatch`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kcli.broker.authorize import authorize, authorize_any, authorized_operations, denied, require
from kcli.broker.context import BrokerContext
from kcli.broker.partitions import (
    EARLIEST,
    EARLIEST_LOCAL,
    LATEST,
    MAX_TIMESTAMP,
    LedPartition,
    OffsetOutOfRange,
)
from kcli.broker.session import current
from kcli.broker.txn_service import TransactionalProduceCheck
from kcli.cluster.metadata import ClusterState, PartitionMeta
from kcli.errors import CorruptRecordError, InvalidTopicError, KcliError
from kcli.protocol import ErrorCode, RequestHeader, Struct, api_versions_entries
from kcli.protocol.apis.metadata import DESCRIBE_TOPIC_PARTITIONS_LIMIT
from kcli.protocol.error_codes import DEFAULT, ApiError, code_for, message_for
from kcli.security.acl import Operation, ResourceType
from kcli.storage import records
from kcli.storage.partition_metadata import ZERO_UUID, topic_uuid

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]
# one partition's or topic's part of a response, filled in as the handler goes
Entry = dict[str, object]
# the longest a Fetch may park a connection thread, whatever max_wait_ms says
MAX_FETCH_WAIT = 30.0
# the most one Fetch response carries, whatever the client asks (Kafka's broker fetch.max.bytes)
FETCH_MAX_BYTES = 55 * 1024 * 1024
# the longest an acks=all produce waits for the in-sync replicas, whatever timeout_ms says
MAX_ACK_WAIT = 120.0
READ_COMMITTED = 1  # Fetch's and ListOffsets' isolation_level (0: read_uncommitted)
_damage_logged: set[tuple[str, int | None]] = set()  # stored damage already logged at ERROR (clients retry)


@contextmanager
def answering(entry: Entry, what: str, topic: str, partition: int) -> Iterator[None]:
    """Turn what goes wrong with one partition into that partition's error code (:func:`code_for`) and
    message and log start offset, where the response has them, as Kafka answers per partition.  Only an
    unexpected failure is logged, and stored damage once (a client retrying it would flood the log)."""
    try:
        yield
    except (ApiError, KcliError, OSError) as exc:
        code = code_for(exc)
        damage = (exc.path, exc.position) if isinstance(exc, CorruptRecordError) and exc.path else None
        unexpected = code == DEFAULT or (isinstance(exc, OSError) and not isinstance(exc, KcliError))
        if unexpected or damage is not None:
            first = damage is None or damage not in _damage_logged
            log.log(logging.ERROR if first else logging.DEBUG, "%s %s-%d failed: %s", what, topic, partition, exc)
            if damage is not None:
                _damage_logged.add(damage)
        entry["error_code"] = code
        if "error_message" in entry:
            entry["error_message"] = message_for(exc)
        if "log_start_offset" in entry and isinstance(exc, OffsetOutOfRange):
            entry["log_start_offset"] = exc.log_start


# KIP-511: what a client may call its software and version (Kafka's ApiVersionsRequest.isValid)
_SOFTWARE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


def api_versions(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Advertise exactly the APIs this broker has handlers for, so clients negotiate down to them.  From
    v3 the client names its software (KIP-511); a name or version Kafka would refuse gets INVALID_REQUEST
    and no APIs, as Kafka answers."""
    if header.api_version >= 3 and not (
        _SOFTWARE.fullmatch(req.client_software_name) and _SOFTWARE.fullmatch(req.client_software_version)
    ):
        return {"error_code": ErrorCode.INVALID_REQUEST, "api_keys": [], "throttle_time_ms": 0}
    return {
        "error_code": ErrorCode.NONE,
        "api_keys": api_versions_entries(ctx.advertised),
        "throttle_time_ms": 0,
    }


# ---------------------------------------------------------------- Metadata



def _topic_entry(name: str, topic_id: str, parts: list[Entry]) -> Entry:
    """A served topic's entry in Metadata and DescribeTopicPartitions answers."""
    return {
        "error_code": ErrorCode.NONE,
        "name": name,
        "topic_id": topic_uuid(topic_id),
        "is_internal": False,
        "partitions": parts,
    }

def metadata(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Brokers and topics.  From v12 a topic may be asked for by id alone (a null name): an unknown id
    gets UNKNOWN_TOPIC_ID, and auto-creation needs a name.  Asked for every topic, the answer holds the
    topics the caller may DESCRIBE; a topic asked for by name or id that it may not describe gets
    TOPIC_AUTHORIZATION_FAILED (whether it exists or not), and auto-creation needs CREATE on the cluster
    or the topic, as in Kafka."""
    state = ctx.partitions.refresh()
    asked: list[tuple[str | None, bytes]]  # (name, id) per topic asked for
    if req.topics is None or (header.api_version == 0 and not req.topics):
        asked = [(name, ZERO_UUID) for name in sorted(state.topics)
                 if authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, name)]
    else:
        by_id = topic_names(ctx, [t.topic_id for t in req.topics if t.name is None])
        asked = [(t.name if t.name is not None else by_id.get(t.topic_id), t.topic_id) for t in req.topics]
    live = ctx.live_ids()
    topics: list[Entry] = []
    for name, topic_id in asked:
        if name is None:
            topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_ID, "name": None, "topic_id": topic_id})
            continue
        if not authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, name):
            by_name = topic_id == ZERO_UUID  # a topic asked for by id keeps its name to itself
            topics.append({"error_code": ErrorCode.TOPIC_AUTHORIZATION_FAILED, "name": name if by_name else None,
                           "topic_id": topic_id, "partitions": []})
            continue
        if name not in state.topics and ctx.auto_create and req.allow_auto_topic_creation:
            if not may_create(ctx, name):
                topics.append({"error_code": ErrorCode.TOPIC_AUTHORIZATION_FAILED, "name": name, "partitions": []})
                continue
            code = _auto_create(ctx, name)
            state = ctx.partitions.refresh()
            if code != ErrorCode.NONE:
                topics.append({"error_code": code, "name": name, "partitions": []})
                continue
        topic = state.topics.get(name)
        if topic is None:
            topics.append(
                {"error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "name": name, "partitions": []}
            )
            continue
        parts = partition_entries(ctx, topic.partitions, live)
        topics.append(_topic_entry(name, topic.topic_id, parts))
        if header.api_version >= 8 and req.include_topic_authorized_operations:
            topics[-1]["topic_authorized_operations"] = authorized_operations(ctx, ResourceType.TOPIC, name)
    return {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": b, "host": host, "port": port, "rack": None} for b, host, port in endpoints(ctx)],
        "cluster_id": state.cluster_id or None,
        # any live broker can run admin requests against the shared metadata; answering with itself
        # sends a client's CreateTopics to a broker it already talks to
        "controller_id": ctx.broker_id,
        "topics": topics,
        "error_code": ErrorCode.NONE,
    }


def partition_entries(
    ctx: BrokerContext, partitions: list[PartitionMeta], live: Collection[int], first: int = 0
) -> list[Entry]:
    """The partitions' part of a Metadata or DescribeTopicPartitions answer, from ``first`` on."""
    out: list[Entry] = []
    for p, meta in enumerate(partitions[first:], first):
        alive = meta.leader in live
        out.append(
            {
                "error_code": ErrorCode.NONE if alive else ErrorCode.LEADER_NOT_AVAILABLE,
                "partition_index": p,
                "leader_id": meta.leader if alive else -1,
                "leader_epoch": meta.leader_epoch,
                "replica_nodes": meta.replicas,
                "isr_nodes": meta.isr,
                "offline_replicas": [r for r in meta.replicas if r not in live],
            }
        )
    return out


def describe_topic_partitions(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """DescribeTopicPartitions (KIP-966): the topics asked for (all when none are), sorted by name as
    Kafka pages them, at most ``response_partition_limit`` partitions per answer (capped at Kafka's
    2000); ``next_cursor`` says where the next request resumes.  No topic is created."""
    state = ctx.partitions.refresh()
    names = sorted({t.name for t in req.topics} if req.topics else (
        n for n in state.topics if authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, n)))
    limit = min(req.response_partition_limit, DESCRIBE_TOPIC_PARTITIONS_LIMIT)
    limit = limit if limit > 0 else DESCRIBE_TOPIC_PARTITIONS_LIMIT
    cursor = req.cursor
    if cursor is not None:
        names = [n for n in names if n >= cursor.topic_name]
    live = ctx.live_ids()
    topics: list[Entry] = []
    left = limit
    next_cursor = None
    for name in names:
        topic = state.topics.get(name)
        if not authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, name):
            topics.append({"error_code": ErrorCode.TOPIC_AUTHORIZATION_FAILED, "name": name, "partitions": []})
            continue
        if topic is None:
            topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "name": name, "partitions": []})
            continue
        first = max(cursor.partition_index, 0) if cursor is not None and name == cursor.topic_name else 0
        if left <= 0:
            next_cursor = {"topic_name": name, "partition_index": first}
            break
        parts = partition_entries(ctx, topic.partitions[: first + left], live, first)
        left -= len(parts)
        topics.append(_topic_entry(name, topic.topic_id, parts))
        if first + len(parts) < len(topic.partitions):
            next_cursor = {"topic_name": name, "partition_index": first + len(parts)}
            break
    return {"throttle_time_ms": 0, "topics": topics, "next_cursor": next_cursor}


def client_listener(ctx: BrokerContext) -> str | None:
    """The listener the current client came in by, if it is one of this broker's TCP listeners (None:
    the Unix socket, whose clients are told of the first TCP listener)."""
    name = current().listener
    info = ctx.info
    return name if info is not None and info.endpoint(name) is not None else None


def endpoint_of(ctx: BrokerContext, broker_id: int, listener: str | None) -> tuple[str, int]:
    """(host, port) of ``broker_id`` on ``listener``, as Kafka answers: the endpoint of the listener the
    client came in by.  A broker without that listener (or without any TCP listener) is reachable only
    in ways this client cannot use: advertised with port -1 so clients fail loudly instead of misrouting."""
    info = ctx.broker_info(broker_id)
    endpoint = info.endpoint(listener) if info is not None else None
    return (endpoint.host, endpoint.port) if endpoint is not None else ("", -1)


def endpoints(ctx: BrokerContext) -> list[tuple[int, str, int]]:
    """(id, host, port) of every live broker on the current client's listener, as Metadata and
    DescribeCluster report them."""
    listener = client_listener(ctx)
    return [(b, *endpoint_of(ctx, b, listener)) for b in sorted(ctx.live_ids())]


def may_create(ctx: BrokerContext, name: str) -> bool:
    """CREATE on the cluster, or on the topic (Kafka's rule for CreateTopics and auto-creation)."""
    return authorize(ctx, Operation.CREATE, ResourceType.CLUSTER) or authorize(
        ctx, Operation.CREATE, ResourceType.TOPIC, name)


def _auto_create(ctx: BrokerContext, name: str) -> ErrorCode:
    """auto.create.topics.enable: a Metadata request for a missing topic creates it with the defaults."""
    from kcli.cluster.topics import TopicAdmin

    try:
        TopicAdmin(ctx.datadir).create_topic(name, if_not_exists=True)  # num.partitions, default.replication.factor
    except InvalidTopicError:
        return ErrorCode.INVALID_TOPIC_EXCEPTION
    except (KcliError, OSError) as exc:
        log.warning("auto-creating topic %r failed: %s", name, exc)
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    log.info("auto-created topic %r", name)
    return ErrorCode.NONE


# ---------------------------------------------------------------- InitProducerId

# The allocator only writes a file: a disk that refuses it is KAFKA_STORAGE_ERROR (the table's), which the
# client reports at once instead of waiting for a coordinator that will not come.  Any other kcli error is
# a retriable COORDINATOR_NOT_AVAILABLE rather than Kafka's default: a client takes UNKNOWN_SERVER_ERROR
# here for a cluster without producer ids, and gives up idempotence.
_INIT_PRODUCER_ID_CODES: Mapping[type[BaseException], ErrorCode] = {KcliError: ErrorCode.COORDINATOR_NOT_AVAILABLE}


def init_producer_id(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """A producer id for an idempotent producer (epoch 0); a transactional producer's comes from the
    transaction coordinator (:func:`kcli.broker.txn_handlers.init_producer_id`).  Needs IDEMPOTENT_WRITE
    on the cluster or WRITE on some topic (Kafka's rule since KIP-679)."""
    if not (authorize(ctx, Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER)
            or authorize_any(ctx, Operation.WRITE, ResourceType.TOPIC)):
        return {"throttle_time_ms": 0, "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "producer_id": -1,
                "producer_epoch": -1}
    try:
        pid = ctx.producer_ids.next()
    except (KcliError, OSError) as exc:
        log.error("allocating a producer id failed: %s", exc)
        return {
            "throttle_time_ms": 0,
            "error_code": code_for(exc, _INIT_PRODUCER_ID_CODES),
            "producer_id": -1,
            "producer_epoch": -1,
        }
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "producer_id": pid, "producer_epoch": 0}


# ---------------------------------------------------------------- Produce


def produce(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body | None:
    """Append to each partition's leader log; with acks=all, answer once every in-sync replica has the
    records (the high watermark passed them) or the request's timeout ends (REQUEST_TIMED_OUT)."""
    acks = req.acks
    responses = []
    waiting: list[tuple[Entry, LedPartition, int]] = []
    appended = False
    if req.transactional_id is not None:
        require(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, req.transactional_id)
    check_transactional = TransactionalProduceCheck(ctx, req.transactional_id)
    for topic in req.topic_data:
        parts = []
        may_write = authorize(ctx, Operation.WRITE, ResourceType.TOPIC, topic.name)
        for data in topic.partition_data:
            entry = {
                "index": data.index,
                "error_code": ErrorCode.NONE,
                "base_offset": -1,
                "log_append_time_ms": -1,
                "log_start_offset": -1,
                "record_errors": [],
                "error_message": None,
            }
            with answering(entry, "append to", topic.name, data.index):
                if not may_write:
                    raise denied(ResourceType.TOPIC, Operation.WRITE, topic.name)
                if acks not in (-1, 0, 1):
                    raise ApiError(ErrorCode.INVALID_REQUIRED_ACKS, f"acks={acks}")
                led = ctx.partitions.get(topic.name, data.index)
                batches = validate_batches(data.records, led.config.max_message_bytes, req.transactional_id)
                first = records.parse_header(batches[0])
                if first.is_transactional:  # then validate_batches saw a transactional id
                    check_transactional(first, topic.name, data.index)
                if acks == -1:
                    led.check_min_isr()
                base, last, append_time, start = led.append(batches)
                appended = True
                entry.update(base_offset=base, log_append_time_ms=append_time, log_start_offset=start)
                if acks == -1:
                    waiting.append((entry, led, last))
            parts.append(entry)
        responses.append({"name": topic.name, "partition_responses": parts})
    if appended:
        ctx.partitions.appended()
    if acks == 0:
        return None
    deadline = time.monotonic() + min(max(req.timeout_ms, 0) / 1000, MAX_ACK_WAIT)
    for entry, led, last in waiting:
        code = led.wait_committed(last, deadline)
        if code != ErrorCode.NONE:
            entry.update(error_code=code, error_message=_NOT_COMMITTED.get(code))
    return {"responses": responses, "throttle_time_ms": 0}


_NOT_COMMITTED = {
    ErrorCode.REQUEST_TIMED_OUT: "appended to the leader, but not every in-sync replica had it in time",
    ErrorCode.NOT_LEADER_OR_FOLLOWER: "leadership moved before every in-sync replica had the records",
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: "the ISR shrank below min.insync.replicas after the append",
}


def validate_batches(
    data: records.BytesLike | None, max_message_bytes: int, transactional_id: str | None = None
) -> list[memoryview]:
    """Split a Produce payload into record batches after checking what a broker must before storing
    bytes as received: magic 2, sizes that add up, the CRC, a record count that matches the offset
    deltas, max.message.bytes, no control batch (markers are the coordinator's), and transactional
    batches only from a request with a ``transactional_id``, all of one producer and epoch (Kafka's
    rules).  Nothing is stored unless every batch passes."""
    if data is None or len(data) == 0:
        raise ApiError(ErrorCode.INVALID_RECORD, "no record batch")
    view = memoryview(data)
    out: list[memoryview] = []
    identity: tuple[int, int, bool] | None = None
    pos = 0
    while pos < len(view):
        if len(view) - pos >= 17 and view[pos + 16] != records.MAGIC:
            raise ApiError(
                ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
                f"record batch magic {view[pos + 16]}; only magic 2 is supported",
            )
        header = records.parse_header(view, pos)  # a CorruptRecordError answers CORRUPT_MESSAGE
        end = pos + header.size
        if end > len(view):
            raise ApiError(ErrorCode.CORRUPT_MESSAGE, "record batch runs past the end of the request")
        if header.size > max_message_bytes:
            raise ApiError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"record batch of {header.size} bytes exceeds max.message.bytes={max_message_bytes}",
            )
        if not records.crc_valid(view, pos, header):
            raise ApiError(ErrorCode.CORRUPT_MESSAGE, "record batch CRC mismatch")
        if header.records_count < 1 or header.last_offset_delta != header.records_count - 1:
            raise ApiError(
                ErrorCode.INVALID_RECORD,
                f"batch says {header.records_count} records but last offset delta {header.last_offset_delta}",
            )
        if header.is_control:
            raise ApiError(ErrorCode.INVALID_RECORD, "control batches are written by coordinators only")
        if header.is_transactional:
            if transactional_id is None:
                raise ApiError(
                    ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "a transactional batch without a transactional id",
                )
            if header.producer_id < 0:
                raise ApiError(ErrorCode.INVALID_RECORD, "a transactional batch without a producer id")
        if out and (header.producer_id, header.producer_epoch, header.is_transactional) != identity:
            raise ApiError(ErrorCode.INVALID_RECORD, "one partition's batches come from several producers")
        identity = (header.producer_id, header.producer_epoch, header.is_transactional)
        out.append(view[pos:end])
        pos = end
    return out


# ---------------------------------------------------------------- Fetch


def fetch(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Long polling: answer once ``min_bytes`` are there, a partition has an error, or ``max_wait_ms``
    passed.  Stored bytes are returned as they are, whole batches only."""
    if req.session_id != 0 or req.session_epoch > 0:
        # incremental fetch sessions (KIP-227) are not kept; session id 0 below tells clients so
        return {
            "throttle_time_ms": 0,
            "error_code": ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
            "session_id": 0,
            "responses": [],
        }
    deadline = time.monotonic() + min(max(req.max_wait_ms, 0) / 1000, MAX_FETCH_WAIT)
    # v15 moved the follower's id into the tagged replica_state; v13 names topics by id
    replica = req.replica_state.replica_id if header.api_version >= 15 else req.replica_id
    names = topic_names(ctx, [t.topic_id for t in req.topics]) if header.api_version >= 13 else None
    unreadable = _unreadable(ctx, req, replica, names)
    while True:
        seen = ctx.partitions.appends
        responses, total, errors = _fetch_once(ctx, req, replica if replica >= 0 else None, names, unreadable)
        remaining = deadline - time.monotonic()
        if errors or total >= req.min_bytes or remaining <= 0 or ctx.partitions.stopping:
            return {
                "throttle_time_ms": 0,
                "error_code": ErrorCode.NONE,
                "session_id": 0,
                "responses": responses,
            }
        ctx.partitions.wait_for_append(seen, remaining)


def _unreadable(ctx: BrokerContext, req: Struct, replica: int, names: dict[bytes, str] | None) -> set[str]:
    """The topics of a Fetch the caller may not read: all of them for a follower (``replica`` >= 0)
    without CLUSTER_ACTION, else those without READ (checked once per request, not per long-poll turn)."""
    asked = {t.topic if names is None else names.get(t.topic_id, "") for t in req.topics}
    if replica >= 0:
        return set() if authorize(ctx, Operation.CLUSTER_ACTION, ResourceType.CLUSTER) else asked
    return {name for name in asked if not authorize(ctx, Operation.READ, ResourceType.TOPIC, name)}


def topic_names(ctx: BrokerContext, ids: list[bytes]) -> dict[bytes, str]:
    """The names of the topics with these ids (Fetch v13+, Metadata v12+); unknown ids are left out."""
    by_id = _names_by_id(ctx.partitions.state)
    if any(i not in by_id for i in ids):  # perhaps created since our last look
        by_id = _names_by_id(ctx.partitions.refresh())
    return {i: by_id[i] for i in ids if i in by_id}


# (state, its offset, topic names by 16-byte id): built once per metadata view, not once per Fetch
_by_id_memo: tuple[ClusterState | None, int, dict[bytes, str]] = (None, -1, {})


def _names_by_id(state: ClusterState) -> dict[bytes, str]:
    global _by_id_memo
    seen, offset, by_id = _by_id_memo
    if seen is not state or offset != state.offset:
        by_id = {topic_uuid(t.topic_id): t.name for t in state.topics.values()}
        _by_id_memo = (state, state.offset, by_id)
    return by_id


def _fetch_once(
    ctx: BrokerContext, req: Struct, follower: int | None, names: dict[bytes, str] | None, unreadable: set[str]
) -> tuple[list[Entry], int, bool]:
    budget = min(req.max_bytes, FETCH_MAX_BYTES) if req.max_bytes > 0 else FETCH_MAX_BYTES
    committed = req.isolation_level == READ_COMMITTED
    total = 0
    errors = False
    responses = []
    joined: list[tuple[LedPartition, int]] = []
    for topic in req.topics:
        name = topic.topic if names is None else names.get(topic.topic_id)
        parts = []
        for p in topic.partitions:
            entry = {
                "partition_index": p.partition,
                "error_code": ErrorCode.NONE,
                "high_watermark": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": [],
                "preferred_read_replica": -1,
                "records": b"",
            }
            with answering(entry, "fetch from", name or topic.topic_id.hex(), p.partition):
                if name is None:
                    raise ApiError(ErrorCode.UNKNOWN_TOPIC_ID)
                if name in unreadable:
                    raise denied(ResourceType.TOPIC, Operation.READ, name)
                led = ctx.partitions.get(name, p.partition)
                _check_epoch(led, p.current_leader_epoch)
                limit = min(p.partition_max_bytes, budget - total)
                diverging = _diverging_epoch(led, p.last_fetched_epoch, p.fetch_offset)
                if diverging is not None:  # the follower's log went past ours: no records, where to cut
                    entry["diverging_epoch"] = diverging
                else:
                    if follower is None:
                        read = led.read(p.fetch_offset, limit, committed)
                        hw, lso, start, data = read.high_watermark, read.last_stable_offset, read.log_start, read.data
                        entry["aborted_transactions"] = [
                            {"producer_id": a.producer_id, "first_offset": a.first_offset} for a in read.aborted or ()
                        ]
                    else:
                        hw, start, data, joins = led.replica_read(follower, p.fetch_offset, limit, p.log_start_offset)
                        lso = hw
                        if joins:
                            joined.append((led, follower))
                    if len(data) > limit and total > 0:
                        data = b""  # only the response's first batch may exceed the limits (KIP-74)
                        entry["aborted_transactions"] = []
                    entry.update(high_watermark=hw, last_stable_offset=lso, log_start_offset=start, records=data)
                    total += len(data)
            errors = errors or entry["error_code"] != ErrorCode.NONE or "diverging_epoch" in entry
            parts.append(entry)
        responses.append({"topic": name or "", "topic_id": topic.topic_id, "partitions": parts})
    for led, broker in joined:
        led.expand_isr(broker)
    return responses, total, errors


def _diverging_epoch(led: LedPartition, last_fetched_epoch: int, fetch_offset: int) -> Entry | None:
    """Fetch v12+ from a replica that says which epoch its last record has (KIP-595): when our log has
    that epoch ending before ``fetch_offset``, or not at all, the replica diverged, and the answer is
    our largest epoch up to it and where that ends (Kafka's ``divergingEpoch``).  Consumers send -1."""
    if last_fetched_epoch < 0:
        return None
    epoch, end = led.epoch_end(last_fetched_epoch)
    if epoch < last_fetched_epoch or end < fetch_offset:
        return {"epoch": epoch, "end_offset": end}
    return None


def _check_epoch(led: LedPartition, current: int) -> None:
    """A client that knows a newer or older leader epoch than ours is talking to a stale view."""
    if current < 0 or current == led.leader_epoch:
        return
    if current < led.leader_epoch:
        raise ApiError(ErrorCode.FENCED_LEADER_EPOCH)
    raise ApiError(ErrorCode.UNKNOWN_LEADER_EPOCH)


# ---------------------------------------------------------------- OffsetForLeaderEpoch


def offset_for_leader_epoch(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Where a leader epoch ends in the leader's log (KIP-101): what a follower (or a consumer that
    saw the leader change, KIP-320) needs to find where its copy diverged.  From a follower
    (``replica_id`` >= 0, v3) it also takes back the follower's replica folder from the leader."""
    follower = req.replica_id if header.api_version >= 3 else -1
    cluster_action = follower >= 0 and authorize(ctx, Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
    topics = []
    for topic in req.topics:
        parts = []
        # a follower needs CLUSTER_ACTION, a consumer DESCRIBE on the topic (Kafka's rule)
        allowed = cluster_action if follower >= 0 else authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, topic.topic)
        for p in topic.partitions:
            entry = {
                "error_code": ErrorCode.NONE,
                "partition": p.partition,
                "leader_epoch": -1,
                "end_offset": -1,
            }
            with answering(entry, "leader epoch lookup in", topic.topic, p.partition):
                if not allowed:
                    raise denied(ResourceType.TOPIC, Operation.DESCRIBE, topic.topic)
                led = ctx.partitions.get(topic.topic, p.partition)
                _check_epoch(led, p.current_leader_epoch)
                epoch, end = led.epoch_end(p.leader_epoch, follower)
                entry.update(leader_epoch=epoch, end_offset=end)
            parts.append(entry)
        topics.append({"topic": topic.topic, "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}


# ---------------------------------------------------------------- ListOffsets


# the first ListOffsets version that knows each special timestamp (Kafka's timestampMinSupportedVersion)
SPECIAL_TIMESTAMP_SINCE = {EARLIEST: 1, LATEST: 1, MAX_TIMESTAMP: 7, EARLIEST_LOCAL: 8}


def list_offsets(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """A special timestamp newer than the request's version (or unknown) gets UNSUPPORTED_VERSION for its
    partition, as Kafka answers."""
    topics = []
    for topic in req.topics:
        parts = []
        may_describe = authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            entry = {
                "partition_index": p.partition_index,
                "error_code": ErrorCode.NONE,
                "timestamp": -1,
                "offset": -1,
                "leader_epoch": -1,
            }
            with answering(entry, "list offsets of", topic.name, p.partition_index):
                if not may_describe:
                    raise denied(ResourceType.TOPIC, Operation.DESCRIBE, topic.name)
                if p.timestamp < 0 and header.api_version < SPECIAL_TIMESTAMP_SINCE.get(p.timestamp, 1 << 15):
                    raise ApiError(ErrorCode.UNSUPPORTED_VERSION, f"timestamp {p.timestamp} in v{header.api_version}")
                led = ctx.partitions.get(topic.name, p.partition_index)
                _check_epoch(led, p.current_leader_epoch)
                ts, offset = led.list_offset(p.timestamp, req.isolation_level == READ_COMMITTED)
                entry.update(timestamp=ts, offset=offset, leader_epoch=led.leader_epoch)
            parts.append(entry)
        topics.append({"name": topic.name, "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
