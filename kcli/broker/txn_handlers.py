"""Transaction API handlers: InitProducerId with a transactional id, AddPartitionsToTxn,
AddOffsetsToTxn, EndTxn, TxnOffsetCommit, WriteTxnMarkers (from another broker's coordinator), and the
operators' DescribeProducers, DescribeTransactions and ListTransactions.

Only the wire lives here: the rules are the coordinator's (:mod:`kcli.transactions`), reached through the
broker's transaction service (:mod:`kcli.broker.txn_service`), and markers are written by
:mod:`kcli.broker.txn_markers`.  Requests for a transactional id this broker does not coordinate get
NOT_COORDINATOR (TxnOffsetCommit goes to the group's coordinator, as in Kafka), and clients ask
FindCoordinator again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kcli.broker import handlers
from kcli.broker.answers import answer_for
from kcli.broker.authorize import authorize, denied, require
from kcli.broker.context import BrokerContext
from kcli.broker.group_handlers import checked_offsets, offset_results
from kcli.broker.group_service import service
from kcli.broker.txn_markers import write_here
from kcli.broker.txn_service import transactions
from kcli.errors import KcliError, LockTimeoutError, NotFoundError, ProducerFencedError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.security.acl import Operation, ResourceType
from kcli.transactions.state import TransactionInfo, TxnState, running_longer

Body = Mapping[str, Any]
log = logging.getLogger("kcli.broker")

# The codes the transaction APIs answer where the table's differ: an unknown transactional id is Kafka's
# INVALID_PRODUCER_ID_MAPPING; an id another request holds locked is busy (retriable), not a timeout.
_CODES: Mapping[type[BaseException], ErrorCode] = {
    NotFoundError: ErrorCode.INVALID_PRODUCER_ID_MAPPING,
    LockTimeoutError: ErrorCode.CONCURRENT_TRANSACTIONS,
}
# newer versions may say PRODUCER_FENCED (KIP-588) where older ones say INVALID_PRODUCER_EPOCH: v2 of
# AddPartitionsToTxn, AddOffsetsToTxn and EndTxn, v4 of InitProducerId
_FENCED: Mapping[type[BaseException], ErrorCode] = {
    **_CODES,
    ProducerFencedError: ErrorCode.PRODUCER_FENCED,
}


def _answer(
    ctx: BrokerContext,
    header: RequestHeader,
    transactional_id: str,
    what: str,
    call: Callable[[], object],
    fenced_from: int = 2,
) -> ErrorCode:
    """Run ``call`` for ``transactional_id`` when this broker coordinates it; the code to answer with
    (PRODUCER_FENCED for a fenced producer from version ``fenced_from`` of the API on).  The caller needs
    WRITE on the transactional id."""
    if not authorize(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    if not transactions(ctx).owns(transactional_id):
        return ErrorCode.NOT_COORDINATOR
    return _code(transactional_id, what, call, _FENCED if header.api_version >= fenced_from else _CODES)


def _code(
    transactional_id: str,
    what: str,
    call: Callable[[], object],
    overrides: Mapping[type[BaseException], ErrorCode],
) -> ErrorCode:
    """Run ``call``; the code to answer with (NONE, or what went wrong as :func:`answer_for` maps it)."""
    try:
        call()
    except (KcliError, OSError) as exc:
        code = answer_for(exc, f"transactional id {transactional_id!r}: {what}", overrides)
        log.debug("transactional id %r: %s: %s (%s)", transactional_id, what, code.name, exc)
        return code
    return ErrorCode.NONE


# ---------------------------------------------------------------- InitProducerId


def init_producer_id(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """A transactional producer's id and epoch from the coordinator (fencing older instances); an
    idempotent producer's (no transactional id) from the allocator.  v3+ names the producer's current id
    and epoch (KIP-360): that producer gets its epoch bumped, a producer whose epoch another one replaced
    is fenced."""
    if req.transactional_id is None:
        return handlers.init_producer_id(ctx, header, req)
    found: list[tuple[int, int]] = []
    code = _answer(
        ctx,
        header,
        req.transactional_id,
        "initialising a producer",
        lambda: found.append(
            transactions(ctx).coordinator.init_producer_id(
                req.transactional_id, req.transaction_timeout_ms, req.producer_id, req.producer_epoch
            )
        ),
        fenced_from=4,
    )
    producer_id, epoch = found[0] if found else (-1, -1)
    return {"throttle_time_ms": 0, "error_code": code, "producer_id": producer_id, "producer_epoch": epoch}


# ---------------------------------------------------------------- AddPartitionsToTxn, AddOffsetsToTxn, EndTxn


def add_partitions_to_txn(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """A client's request (v0-3) for one transaction; a broker's (v4+) for several, each of which may
    only verify that its partitions are in the transaction (KIP-890 part 1)."""
    if header.api_version < 4:
        topics = _add_partitions(
            ctx, header, req.transactional_id, req.producer_id, req.producer_epoch, req.topics
        )
        return {"throttle_time_ms": 0, "results_by_topic": topics}
    require(ctx, Operation.CLUSTER_ACTION, ResourceType.CLUSTER)  # v4+: a broker verifying for its producers
    results = [
        {
            "transactional_id": t.transactional_id,
            "topic_results": _add_partitions(
                ctx, header, t.transactional_id, t.producer_id, t.producer_epoch, t.topics, t.verify_only
            ),
        }
        for t in req.transactions
    ]
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "results_by_transaction": results}


def _add_partitions(
    ctx: BrokerContext,
    header: RequestHeader,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    topics_asked: list[Struct],
    verify_only: bool = False,
) -> list[dict[str, Any]]:
    """One transaction's per-topic results.  Adding is all or nothing, as Kafka: a partition that does
    not exist gets UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED; otherwise every
    partition gets the coordinator's answer.  Verifying answers INVALID_TXN_STATE for each partition the
    open transaction does not hold."""
    topics = ctx.partitions.refresh().topics
    asked = [(t.name, p) for t in topics_asked for p in t.partitions]
    unknown = {
        (name, p) for name, p in asked if name not in topics or not 0 <= p < len(topics[name].partitions)
    }
    unwritable = {name for name, _p in asked if not authorize(ctx, Operation.WRITE, ResourceType.TOPIC, name)}
    if verify_only:
        held: list[frozenset[tuple[str, int]]] = []
        code = _answer(
            ctx,
            header,
            transactional_id,
            "verifying partitions",
            lambda: held.append(
                transactions(ctx).coordinator.txn_partitions(transactional_id, producer_id, producer_epoch)
            ),
        )
        codes = {
            tp: ErrorCode.INVALID_TXN_STATE if code == ErrorCode.NONE and tp not in held[0] else code
            for tp in asked
        }
    elif unwritable and authorize(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        codes = {
            tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED if tp[0] in unwritable else ErrorCode.OPERATION_NOT_ATTEMPTED
            for tp in asked
        }
    elif unknown:
        codes = {
            tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else ErrorCode.OPERATION_NOT_ATTEMPTED
            for tp in asked
        }
    else:
        code = _answer(
            ctx,
            header,
            transactional_id,
            "adding partitions",
            lambda: transactions(ctx).coordinator.add_partitions(
                transactional_id, producer_id, producer_epoch, asked
            ),
        )
        codes = dict.fromkeys(asked, code)
    return [
        {
            "name": t.name,
            "results_by_partition": [
                {"partition_index": p, "partition_error_code": codes[(t.name, p)]} for p in t.partitions
            ],
        }
        for t in topics_asked
    ]


def add_offsets_to_txn(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Needs WRITE on the transactional id and READ on the group."""
    if authorize(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, req.transactional_id) and not authorize(
            ctx, Operation.READ, ResourceType.GROUP, req.group_id):
        return {"throttle_time_ms": 0, "error_code": ErrorCode.GROUP_AUTHORIZATION_FAILED}
    code = _answer(
        ctx,
        header,
        req.transactional_id,
        f"adding group {req.group_id!r}",
        lambda: transactions(ctx).coordinator.add_offsets(
            req.transactional_id, req.producer_id, req.producer_epoch, req.group_id
        ),
    )
    return {"throttle_time_ms": 0, "error_code": code}


def end_txn(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Commit or abort; answered once the markers are written (CONCURRENT_TRANSACTIONS, retriable, while
    a partition cannot take its marker: the outcome is decided and the retry or the upkeep completes it)."""
    code = _answer(
        ctx,
        header,
        req.transactional_id,
        "committing" if req.committed else "aborting",
        lambda: transactions(ctx).coordinator.end_txn(
            req.transactional_id, req.producer_id, req.producer_epoch, req.committed
        ),
    )
    return {"throttle_time_ms": 0, "error_code": code}


# ---------------------------------------------------------------- TxnOffsetCommit


def txn_offset_commit(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Offsets kept in the transaction, reaching the group only if it commits.  Sent to the group's
    coordinator (NOT_COORDINATOR otherwise); checked per partition like OffsetCommit.  v3+ names the
    consumer's member id and generation, which the group checks when given (KIP-447).  Needs WRITE on the
    transactional id, READ on the group and on each topic."""
    require(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, req.transactional_id)
    require(ctx, Operation.READ, ResourceType.GROUP, req.group_id)
    svc = service(ctx)
    error = svc.check(req.group_id)
    if error == ErrorCode.NONE:
        error = svc.coordinator.check_txn_commit(req.group_id, req.generation_id, req.member_id)
    if error != ErrorCode.NONE:
        log.debug(
            "transactional id %r: offsets for group %r: %s", req.transactional_id, req.group_id, error.name
        )
    offsets, results = checked_offsets(ctx, req.topics, error)
    if offsets:
        error = _code(
            req.transactional_id,
            "committing offsets",
            lambda: transactions(ctx).coordinator.txn_offset_commit(
                req.transactional_id, req.group_id, req.producer_id, req.producer_epoch, offsets
            ),
            _CODES,
        )
    return {"throttle_time_ms": 0, "topics": offset_results(results, error)}


# ---------------------------------------------------------------- WriteTxnMarkers


def write_txn_markers(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Another broker's coordinator asks us, the leader, to write markers: answered per partition once
    each marker is safe (NONE) or failed.  Only brokers may (CLUSTER_ACTION)."""
    require(ctx, Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
    out = []
    for marker in req.markers:
        asked = [(t.name, p) for t in marker.topics for p in t.partition_indexes]
        codes = write_here(
            ctx,
            marker.producer_id,
            marker.producer_epoch,
            marker.transaction_result,
            marker.coordinator_epoch,
            asked,
        )
        out.append(
            {
                "producer_id": marker.producer_id,
                "topics": [
                    {
                        "name": t.name,
                        "partitions": [
                            {"partition_index": p, "error_code": codes[(t.name, p)]}
                            for p in t.partition_indexes
                        ],
                    }
                    for t in marker.topics
                ],
            }
        )
    return {"markers": out}


# ---------------------------------------------------------------- DescribeTransactions, ListTransactions
# As Kafka, each broker answers for the transactional ids it coordinates: an admin client describes an id
# at its coordinator (FindCoordinator) and lists by asking every broker.  A Dead id (being expired) is
# neither described nor listed.


def describe_producers(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Each asked partition's active producers from the leader's producer state (KIP-664); a partition
    led elsewhere is NOT_LEADER_OR_FOLLOWER, an unknown one UNKNOWN_TOPIC_OR_PARTITION.  The last
    timestamp is when the leader appended the producer's newest batch."""
    topics = []
    for topic in req.topics:
        parts = []
        readable = authorize(ctx, Operation.READ, ResourceType.TOPIC, topic.name)
        for index in topic.partition_indexes:
            entry: dict[str, Any] = {
                "partition_index": index,
                "error_code": ErrorCode.NONE,
                "error_message": None,
                "active_producers": [],
            }
            with handlers.answering(entry, "describe producers of", topic.name, index):
                if not readable:
                    raise denied(ResourceType.TOPIC, Operation.READ, topic.name)
                entry["active_producers"] = [
                    {
                        "producer_id": e.producer_id,
                        "producer_epoch": e.producer_epoch,
                        "last_sequence": e.last_sequence,
                        "last_timestamp": e.timestamp,
                        "coordinator_epoch": e.coordinator_epoch,
                        "current_txn_start_offset": e.current_txn_first_offset,
                    }
                    for e in ctx.partitions.get(topic.name, index).producers()
                ]
            parts.append(entry)
        topics.append({"name": topic.name, "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}


def describe_transactions(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Each id's state, producer, timeout, start time and partitions; TRANSACTIONAL_ID_NOT_FOUND for an
    id without state, NOT_COORDINATOR for one another broker coordinates, INVALID_REQUEST for ""."""
    return {"throttle_time_ms": 0, "transaction_states": [_described(ctx, t) for t in req.transactional_ids]}


def _described(ctx: BrokerContext, transactional_id: str) -> Body:
    txns = transactions(ctx)
    if not transactional_id:
        return {"transactional_id": transactional_id, "error_code": ErrorCode.INVALID_REQUEST}
    if not authorize(ctx, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return {"transactional_id": transactional_id, "error_code": ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    if not txns.owns(transactional_id):
        return {"transactional_id": transactional_id, "error_code": ErrorCode.NOT_COORDINATOR}
    try:
        info = txns.coordinator.describe(transactional_id)
    except (KcliError, OSError) as exc:
        code = answer_for(exc, f"transactional id {transactional_id!r}: describing", _CODES)
        return {"transactional_id": transactional_id, "error_code": code}
    if info is None or info.state == TxnState.DEAD:
        return {"transactional_id": transactional_id, "error_code": ErrorCode.TRANSACTIONAL_ID_NOT_FOUND}
    topics: dict[str, list[int]] = {}
    for topic, partition in info.partitions:
        topics.setdefault(topic, []).append(partition)
    return {
        "error_code": ErrorCode.NONE,
        "transactional_id": transactional_id,
        "transaction_state": info.state,
        "transaction_timeout_ms": info.timeout_ms,
        "transaction_start_time_ms": info.start_ms,
        "producer_id": info.producer_id,
        "producer_epoch": info.producer_epoch,
        "topics": [{"topic": topic, "partitions": parts} for topic, parts in topics.items()],
    }


def list_transactions(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """The ids this broker coordinates, filtered as Kafka filters: by state (names Kafka does not know
    come back in ``unknown_state_filters`` and filter nothing), by producer id, and (v1) by running longer
    than ``duration_filter`` ms (a negative one filters nothing)."""
    known = {state.value for state in TxnState}
    states = [name for name in req.state_filters if name in known]
    unknown = [name for name in req.state_filters if name not in known]
    txns = transactions(ctx)
    try:
        found = txns.coordinator.list(states, req.producer_id_filters)
    except (KcliError, OSError) as exc:
        code = answer_for(exc, "listing transactions", _CODES)
        return {"throttle_time_ms": 0, "error_code": code, "unknown_state_filters": unknown}
    now = txns.coordinator.clock()
    longer_than: int = req.duration_filter

    def wanted(info: TransactionInfo) -> bool:
        if info.state == TxnState.DEAD or not txns.owns(info.transactional_id):
            return False
        if not authorize(ctx, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, info.transactional_id):
            return False
        return running_longer(info, now, longer_than)

    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "unknown_state_filters": unknown,
        "transaction_states": [
            {
                "transactional_id": info.transactional_id,
                "producer_id": info.producer_id,
                "transaction_state": info.state,
            }
            for info in found
            if wanted(info)
        ],
    }
