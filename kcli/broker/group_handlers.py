"""Consumer-group API handlers: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch, OffsetDelete, ListGroups, DescribeGroups and DeleteGroups.

Only the wire lives here: each handler turns a request into calls on the broker's group service
(:mod:`kcli.broker.group_service`: the coordinator state machine, its mirror into the data directory,
the offsets store) and its result into the response.  Which broker coordinates a group is
:mod:`kcli.broker.coordinator_choice`; how coordinated members show in the data directory is
:mod:`kcli.broker.group_mirror`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kcli.broker import consumer_group_handlers as consumer_groups
from kcli.broker.answers import answer_for
from kcli.broker.authorize import authorize, authorized_operations, require
from kcli.broker.context import BrokerContext
from kcli.broker.coordinator import DEAD, EMPTY, GroupSummary, JoinResult, MemberSummary, SyncResult
from kcli.broker.coordinator_choice import coordinator_of
from kcli.broker.group_mirror import CONSUMER
from kcli.broker.group_service import GROUP_ID_CODES, Answer, GroupService, service
from kcli.broker.handlers import client_listener, endpoint_of
from kcli.broker.txn_service import transactions
from kcli.errors import KcliError, NotFoundError, UsageError
from kcli.groups.layout import GroupPaths, check_group_id
from kcli.groups.membership import live_members, require_no_live_members
from kcli.groups.offsets import CommittedOffset
from kcli.groups.view import group_state, member_assignment
from kcli.protocol import ErrorCode, RequestHeader, Struct, assignment_bytes, encode_subscription
from kcli.protocol.apis.groups import GROUP_KEY, TRANSACTION_KEY
from kcli.protocol.error_codes import code_for
from kcli.security.acl import Operation, ResourceType

Body = Mapping[str, Any]
log = logging.getLogger("kcli.broker")
SYNC_WAIT_LIMIT = 1800.0  # a safety bound; the coordinator answers by the rebalance deadline
OFFSET_METADATA_MAX_BYTES = 4096  # Kafka's offset.metadata.max.bytes
# The handlers are not given the client's address; the member's HOST is left empty rather than guessed.
CLIENT_HOST = ""


# ---------------------------------------------------------------- FindCoordinator


def find_coordinator(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """The broker coordinating a group (key type 0) or a transactional id (1), both chosen by
    :func:`coordinator_of`; v4+ asks for several keys at once (KIP-699), each answered on its own."""
    ctx.peers.invalidate()  # a fresh look at who runs: a coordinator that just died is not named
    if header.api_version >= 4:
        return {
            "throttle_time_ms": 0,
            "coordinators": [
                {"key": key, **_coordinator(ctx, key, req.key_type)} for key in req.coordinator_keys
            ],
        }
    return {"throttle_time_ms": 0, **_coordinator(ctx, req.key, req.key_type)}


def _coordinator(ctx: BrokerContext, key: str, key_type: int) -> dict[str, Any]:
    """One key's coordinator (or error), in the fields FindCoordinator answers it with in every version."""

    def answer(
        code: ErrorCode, message: str | None = None, node: int = -1, host: str = "", port: int = -1
    ) -> dict[str, Any]:
        return {"error_code": code, "error_message": message, "node_id": node, "host": host, "port": port}

    if key_type == TRANSACTION_KEY:
        if not key:
            return answer(ErrorCode.INVALID_REQUEST, "the transactional id is empty")
        if not authorize(ctx, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key):
            return answer(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    elif key_type != GROUP_KEY:
        return answer(ErrorCode.INVALID_REQUEST, f"unknown coordinator key type {key_type}")
    else:
        try:
            check_group_id(key)
        except UsageError as exc:
            return answer(code_for(exc, GROUP_ID_CODES), "the group id is empty")
        if not authorize(ctx, Operation.DESCRIBE, ResourceType.GROUP, key):
            return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    chosen = coordinator_of(ctx, key)
    host, port = endpoint_of(ctx, chosen, client_listener(ctx)) if chosen is not None else ("", -1)
    if chosen is None or port < 0:
        return answer(ErrorCode.COORDINATOR_NOT_AVAILABLE, "no live broker with a TCP listener")
    return answer(ErrorCode.NONE, None, chosen, host, port)


# ---------------------------------------------------------------- JoinGroup, SyncGroup, Heartbeat, LeaveGroup


def join_group(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """v7+ answers the group's protocol type (null, like the protocol name, on an error); v8+ carries
    the member's reason for joining, which is logged (KIP-800)."""
    require(ctx, Operation.READ, ResourceType.GROUP, req.group_id)
    svc = service(ctx)
    if req.reason:
        log.info("group %r: member %r joins: %s", req.group_id, req.member_id or "(new)", req.reason)
    result = JoinResult(svc.check(req.group_id), member_id=req.member_id)
    protocols = [(p.name, bytes(p.metadata)) for p in req.protocols]
    modern = None
    if result.error == ErrorCode.NONE:  # a consumer group answers its classic members itself
        modern = consumer_groups.consumer_service(ctx).classic_join(
            req.group_id,
            req.member_id,
            header.client_id or "",
            req.session_timeout_ms,
            req.rebalance_timeout_ms,
            req.protocol_type,
            protocols,
            header.api_version >= 4,
        )
    if modern is not None:
        result = modern
    elif result.error == ErrorCode.NONE:
        answer = Answer()
        svc.coordinator.join(
            req.group_id,
            req.member_id,
            header.client_id or "",
            CLIENT_HOST,
            req.session_timeout_ms,
            req.rebalance_timeout_ms,
            req.protocol_type,
            protocols,
            header.api_version >= 4,
            answer,
        )
        limit = max(req.session_timeout_ms, req.rebalance_timeout_ms) / 1000 + 30
        result = answer.wait(svc, limit) or JoinResult(ErrorCode.NOT_COORDINATOR, member_id=req.member_id)
    failed = result.error != ErrorCode.NONE and header.api_version >= 7
    return {
        "throttle_time_ms": 0,
        "error_code": result.error,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        "protocol_name": None if failed else result.protocol_name,
        "leader": result.leader,
        "member_id": result.member_id,
        "members": [{"member_id": m, "metadata": data} for m, data in result.members],
    }


def sync_group(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    require(ctx, Operation.READ, ResourceType.GROUP, req.group_id)
    svc = service(ctx)
    result = SyncResult(svc.check(req.group_id))
    modern = None
    if result.error == ErrorCode.NONE:
        modern = consumer_groups.consumer_service(ctx).classic_sync(
            req.group_id, req.member_id, req.generation_id, req.protocol_type, req.protocol_name
        )
    if modern is not None:
        result = modern
    elif result.error == ErrorCode.NONE:
        answer = Answer()
        assignments = {a.member_id: bytes(a.assignment) for a in req.assignments}
        svc.coordinator.sync(
            req.group_id,
            req.generation_id,
            req.member_id,
            assignments,
            answer,
            req.protocol_type,
            req.protocol_name,
        )
        result = answer.wait(svc, SYNC_WAIT_LIMIT) or SyncResult(ErrorCode.NOT_COORDINATOR)
    return {
        "throttle_time_ms": 0,
        "error_code": result.error,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "assignment": result.assignment,
    }


def heartbeat(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    require(ctx, Operation.READ, ResourceType.GROUP, req.group_id)
    svc = service(ctx)
    error = svc.check(req.group_id)
    if error == ErrorCode.NONE:
        cgs = consumer_groups.consumer_service(ctx)
        modern = cgs.classic_heartbeat(req.group_id, req.member_id, req.generation_id)
        error = modern if modern is not None else svc.coordinator.heartbeat(req.group_id, req.generation_id, req.member_id)
    return {"throttle_time_ms": 0, "error_code": error}


def leave_group(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """v0-2 name one member; v3+ a batch, each with its own error (and v5+ its reason, logged)."""
    require(ctx, Operation.READ, ResourceType.GROUP, req.group_id)
    svc = service(ctx)
    batch = header.api_version >= 3
    leaving = [m.member_id for m in req.members] if batch else [req.member_id]
    for m in req.members:
        if m.reason:
            log.info("group %r: member %r leaves: %s", req.group_id, m.member_id, m.reason)
    error = svc.check(req.group_id)
    if error != ErrorCode.NONE:
        return {"throttle_time_ms": 0, "error_code": error, "members": []}
    results = consumer_groups.consumer_service(ctx).classic_leave(req.group_id, leaving)
    if results is None:
        results = svc.coordinator.leave(req.group_id, leaving)
    if not batch:
        return {"throttle_time_ms": 0, "error_code": results[0][1]}
    instances = {m.member_id: m.group_instance_id for m in req.members}
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "members": [
            {"member_id": m, "group_instance_id": instances.get(m), "error_code": code} for m, code in results
        ],
    }


# ---------------------------------------------------------------- OffsetCommit, OffsetFetch


def offset_commit(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Offsets go to the same store embedded consumers use; partitions that fail validation get their
    own error and the rest are committed together (all or none).  Needs READ on the group, and READ on
    each topic (TOPIC_AUTHORIZATION_FAILED for the partitions of the others)."""
    require(ctx, Operation.READ, ResourceType.GROUP, req.group_id)
    svc = service(ctx)
    error = svc.check(req.group_id)
    offsets, results = checked_offsets(ctx, req.topics, error)
    committed = error
    if offsets:
        cgs = consumer_groups.consumer_service(ctx)
        modern = cgs.commit(req.group_id, req.member_id, req.generation_id, header.api_version, offsets)
        # None: a classic group
        committed = modern if modern is not None else svc.commit(req.group_id, req.generation_id, req.member_id, offsets)
    return {"throttle_time_ms": 0, "topics": offset_results(results, committed)}


# per topic, (partition, its code); None: decided by the commit that follows
OffsetResults = list[tuple[str, list[tuple[int, ErrorCode | None]]]]


def checked_offsets(
    ctx: BrokerContext, topics_asked: list[Struct], error: ErrorCode
) -> tuple[dict[tuple[str, int], CommittedOffset], OffsetResults]:
    """The offsets of an OffsetCommit or TxnOffsetCommit request that pass Kafka's checks (a known
    partition, metadata within offset.metadata.max.bytes, an offset >= 0), and each partition's code:
    ``error`` for all when the request as a whole fails, None where the commit decides."""
    topics = ctx.partitions.refresh().topics if error == ErrorCode.NONE else {}
    now = int(time.time() * 1000)
    offsets: dict[tuple[str, int], CommittedOffset] = {}
    results: OffsetResults = []
    for topic in topics_asked:
        meta = topics.get(topic.name)
        readable = authorize(ctx, Operation.READ, ResourceType.TOPIC, topic.name)
        parts: list[tuple[int, ErrorCode | None]] = []
        for p in topic.partitions:
            code: ErrorCode | None = error
            metadata = p.committed_metadata or ""
            if code != ErrorCode.NONE:
                pass
            elif not readable:
                code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif meta is None or not 0 <= p.partition_index < len(meta.partitions):
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif len(metadata.encode()) > OFFSET_METADATA_MAX_BYTES:
                code = ErrorCode.OFFSET_METADATA_TOO_LARGE
            elif p.committed_offset < 0:
                code = ErrorCode.INVALID_COMMIT_OFFSET_SIZE
            else:
                stamp = p.get("commit_timestamp", -1)  # OffsetCommit v1 only
                offsets[(topic.name, p.partition_index)] = CommittedOffset(
                    p.committed_offset, metadata, stamp if stamp >= 0 else now, p.committed_leader_epoch
                )
                code = None
            parts.append((p.partition_index, code))
        results.append((topic.name, parts))
    return offsets, results


def offset_results(results: OffsetResults, committed: ErrorCode) -> list[dict[str, Any]]:
    """The ``topics`` of an OffsetCommit or TxnOffsetCommit response: ``committed`` where the commit
    decided."""
    return [
        {
            "name": name,
            "partitions": [
                {"partition_index": i, "error_code": committed if c is None else c} for i, c in parts
            ],
        }
        for name, parts in results
    ]


def offset_fetch(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Committed offsets (-1 where none); ``topics`` null (v2+) asks for everything committed.  v8+ asks
    for several groups, each answered with its own topics and error code; v9 names the member (id and
    epoch) of a consumer group asking."""
    if header.api_version >= 8:
        groups = []
        for group in req.groups:
            error, topics = _fetch_offsets(
                ctx, group.group_id, group.topics, req.require_stable, group.member_id, group.member_epoch
            )
            groups.append({"group_id": group.group_id, "topics": topics, "error_code": error})
        return {"throttle_time_ms": 0, "groups": groups}
    error, topics = _fetch_offsets(ctx, req.group_id, req.topics, req.require_stable)
    if error != ErrorCode.NONE and header.api_version < 2:  # no group-level code yet: on each partition
        topics = [
            {
                "name": t.name,
                "partitions": [_fetched(p, CommittedOffset(-1), error) for p in t.partition_indexes],
            }
            for t in req.topics
        ]
    return {"throttle_time_ms": 0, "topics": topics, "error_code": error}


def _fetch_offsets(
    ctx: BrokerContext,
    group_id: str,
    asked: list[Struct] | None,
    require_stable: bool,
    member_id: str | None = None,
    member_epoch: int = -1,
) -> tuple[ErrorCode, list[dict[str, Any]]]:
    """One group's error and committed offsets, per topic, for the partitions ``asked`` (None: every
    partition the group committed).  ``require_stable`` (v7+, KIP-447): a partition with transactional
    offsets still pending gets UNSTABLE_OFFSET_COMMIT (retriable) rather than the older offset.  A
    consumer group's member asking (v9) must be one with a current epoch.  Needs DESCRIBE on the group;
    partitions of topics the caller may not DESCRIBE get TOPIC_AUTHORIZATION_FAILED, or are left out when
    every committed partition was asked for."""
    if not authorize(ctx, Operation.DESCRIBE, ResourceType.GROUP, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, []
    svc = service(ctx)
    error = svc.check(group_id)
    if error == ErrorCode.NONE:
        error = consumer_groups.check_fetch(ctx, group_id, member_id, member_epoch)
    committed: dict[tuple[str, int], CommittedOffset] = {}
    pending: frozenset[tuple[str, int]] = frozenset()
    if error == ErrorCode.NONE:
        try:
            committed = svc.store.fetch_committed(group_id)
            if require_stable:
                pending = transactions(ctx).coordinator.pending_offsets(group_id)
        except (KcliError, OSError) as exc:
            error = answer_for(exc, f"group {group_id!r}: reading offsets")
    if error != ErrorCode.NONE:
        return error, []
    if asked is None:
        wanted: dict[str, list[int]] = {}
        for topic, partition in sorted(committed):
            if authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, topic):
                wanted.setdefault(topic, []).append(partition)
    else:
        wanted = {t.name: list(t.partition_indexes) for t in asked}
    none = CommittedOffset(-1)
    topics = []
    for name, partitions in wanted.items():
        parts = []
        may_describe = authorize(ctx, Operation.DESCRIBE, ResourceType.TOPIC, name)
        for partition in partitions:
            if not may_describe:
                parts.append(_fetched(partition, none, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            elif (name, partition) in pending:
                parts.append(_fetched(partition, none, ErrorCode.UNSTABLE_OFFSET_COMMIT))
            else:
                parts.append(_fetched(partition, committed.get((name, partition), none), ErrorCode.NONE))
        topics.append({"name": name, "partitions": parts})
    return ErrorCode.NONE, topics


def _fetched(partition: int, c: CommittedOffset, error: ErrorCode) -> dict[str, Any]:
    return {
        "partition_index": partition,
        "committed_offset": c.offset,
        "committed_leader_epoch": c.leader_epoch,
        "metadata": c.metadata,
        "error_code": error,
    }


def offset_delete(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """A group error answers with no topics, as Kafka's does.  Needs DELETE on the group, and READ on
    the topics (TOPIC_AUTHORIZATION_FAILED for the partitions of the others)."""
    require(ctx, Operation.DELETE, ResourceType.GROUP, req.group_id)
    svc = service(ctx)
    error = svc.check(req.group_id)
    wanted = [(t.name, p.partition_index) for t in req.topics for p in t.partitions]
    codes: dict[tuple[str, int], ErrorCode] = {}
    unreadable = {t.name for t in req.topics if not authorize(ctx, Operation.READ, ResourceType.TOPIC, t.name)}
    if error == ErrorCode.NONE:
        error, codes = svc.delete_offsets(req.group_id, [tp for tp in wanted if tp[0] not in unreadable])
        codes.update({tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED for tp in wanted if tp[0] in unreadable})
    if error != ErrorCode.NONE:
        return {"error_code": error, "throttle_time_ms": 0, "topics": []}
    return {
        "error_code": ErrorCode.NONE,
        "throttle_time_ms": 0,
        "topics": [
            {
                "name": t.name,
                "partitions": [
                    {"partition_index": p.partition_index, "error_code": codes[(t.name, p.partition_index)]}
                    for p in t.partitions
                ],
            }
            for t in req.topics
        ],
    }


# ---------------------------------------------------------------- ListGroups, DescribeGroups, DeleteGroups


CLASSIC = "classic"  # ListGroups v5's type of a group that is no KIP-848 consumer group


def list_groups(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """The data directory's groups (as ``kcli group list`` sees them: members of any kind, or offsets)
    that this broker coordinates, so the union over all brokers lists each group once.  v4+ filters by
    state and v5+ by type, each case-insensitively (states also trimmed) as Kafka matches them; an
    unknown name matches no group.  Only the groups the caller may DESCRIBE are listed (all of them with
    DESCRIBE on the cluster), as in Kafka."""
    svc = service(ctx)
    everything = authorize(ctx, Operation.DESCRIBE, ResourceType.CLUSTER)
    kept = svc.coordinator.listing()
    states = {s.strip().lower() for s in req.states_filter}
    types = {t.lower() for t in req.types_filter}
    groups = []
    try:
        for group_id in svc.store.list_groups():
            if not svc.owns(group_id) or not (
                    everything or authorize(ctx, Operation.DESCRIBE, ResourceType.GROUP, group_id)):
                continue
            state = _summary(ctx, svc, group_id).state if header.api_version >= 4 else ""
            protocol_type, group_type = kept.get(group_id) or CONSUMER, CLASSIC
            modern = consumer_groups.consumer_group(ctx, group_id)
            if modern is not None:
                protocol_type, group_type, state = CONSUMER, consumer_groups.CONSUMER_TYPE, modern.state
            if (states and state.lower() not in states) or (types and group_type not in types):
                continue
            groups.append(
                {
                    "group_id": group_id,
                    "protocol_type": protocol_type,
                    "group_state": state,
                    "group_type": group_type,
                }
            )
    except (KcliError, OSError) as exc:
        return {"throttle_time_ms": 0, "error_code": answer_for(exc, "listing groups"), "groups": []}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "groups": groups}


def describe_groups(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    svc = service(ctx)
    out = []
    for group_id in req.groups:
        error = svc.check(group_id)
        if not authorize(ctx, Operation.DESCRIBE, ResourceType.GROUP, group_id):
            error = ErrorCode.GROUP_AUTHORIZATION_FAILED
        summary = GroupSummary(DEAD, "", "", [])
        if error == ErrorCode.NONE and consumer_groups.consumer_group(ctx, group_id) is not None:
            pass  # Kafka describes a consumer group as Dead here (ConsumerGroupDescribe is its API)
        elif error == ErrorCode.NONE:
            try:
                summary = _summary(ctx, svc, group_id)
            except (KcliError, OSError) as exc:
                error = answer_for(exc, f"group {group_id!r}: describing")
        described = {
            "error_code": error,
            "group_id": group_id,
            "group_state": summary.state,
            "protocol_type": summary.protocol_type,
            "protocol_data": summary.protocol,
            "members": [
                {
                    "member_id": m.member_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "member_metadata": m.metadata,
                    "member_assignment": m.assignment,
                }
                for m in summary.members
            ],
        }
        if req.include_authorized_operations and error == ErrorCode.NONE:
            described["authorized_operations"] = authorized_operations(ctx, ResourceType.GROUP, group_id)
        out.append(described)
    return {"throttle_time_ms": 0, "groups": out}


def _summary(ctx: BrokerContext, svc: GroupService, group_id: str) -> GroupSummary:
    """The coordinator's view of a group it keeps members of, else the files' (embedded members, or
    offsets only)."""
    kept = svc.coordinator.describe(group_id)
    if kept is not None and kept.members:
        return kept
    return _summary_from_files(ctx, group_id)


def _summary_from_files(ctx: BrokerContext, group_id: str) -> GroupSummary:
    """A group this coordinator does not keep members of -- embedded members, or offsets only -- as the
    file-based view sees it (kcli.groups.view), so Kafka tools and ``kcli group describe`` agree."""
    paths = GroupPaths(ctx.datadir, group_id)
    if not paths.exists():
        return GroupSummary(DEAD, "", "", [])
    members = live_members(ctx.datadir, group_id)
    if not members:
        return GroupSummary(EMPTY, CONSUMER, "", [])
    topics = ctx.partitions.refresh().topics

    def partition_count(topic: str) -> int:
        if topic not in topics:
            raise NotFoundError(f"topic {topic!r} does not exist")
        return len(topics[topic].partitions)

    assignment = member_assignment(members, partition_count)
    summaries = []
    for m in members:
        summaries.append(
            MemberSummary(
                m.member_id,
                m.client_id,
                m.host,
                encode_subscription({"topics": list(m.topics)}, version=0),
                assignment_bytes(assignment.get(m.member_id, [])),
            )
        )
    return GroupSummary(group_state(paths, members, assignment), CONSUMER, members[0].assignor, summaries)


def delete_groups(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    svc = service(ctx)
    results = []
    for group_id in req.groups_names:
        error = svc.check(group_id)
        if not authorize(ctx, Operation.DELETE, ResourceType.GROUP, group_id):
            error = ErrorCode.GROUP_AUTHORIZATION_FAILED
        if error == ErrorCode.NONE:
            error = _delete_one(svc, group_id)
        results.append({"group_id": group_id, "error_code": error})
    return {"throttle_time_ms": 0, "results": results}


# DeleteGroups has a code of its own: the store's NotFoundError is about the group here, not a topic.
_DELETE_CODES: Mapping[type[BaseException], ErrorCode] = {NotFoundError: ErrorCode.GROUP_ID_NOT_FOUND}


def _delete_one(svc: GroupService, group_id: str) -> ErrorCode:
    check = require_no_live_members(svc.ctx.datadir, group_id, "delete")
    try:
        return svc.coordinator.delete(group_id, lambda: svc.store.delete_group(group_id, precondition=check))
    except (KcliError, OSError) as exc:
        return answer_for(exc, f"deleting group {group_id!r}", _DELETE_CODES)
