"""ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments: the same decisions as
``kcli leader-election`` and ``kcli reassign`` (:func:`kcli.cluster.controller.elect`,
:mod:`kcli.replica.reassignment`), recorded in the metadata, which every broker follows.  Any broker
answers them, as any broker forwards them to Kafka's controller."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kcli.broker.answers import answer_for
from kcli.broker.authorize import require
from kcli.broker.context import BrokerContext
from kcli.cluster.controller import NO_ELIGIBLE, NOT_NEEDED, PREFERRED_UNAVAILABLE, elect, replica_leo
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.errors import KcliError, UsageError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.apis.leadership import PREFERRED, UNCLEAN
from kcli.replica.reassignment import NoReassignmentError, cancel, ongoing, start
from kcli.security.acl import Operation, ResourceType

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]
Key = tuple[str, int]
Outcome = tuple[int, str | None]  # (error code, message)

_SKIPPED = {
    NOT_NEEDED: ErrorCode.ELECTION_NOT_NEEDED,
    PREFERRED_UNAVAILABLE: ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
    NO_ELIGIBLE: ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
}


def _known(state: ClusterState, topic: str, partition: int) -> bool:
    meta = state.topics.get(topic)
    return meta is not None and 0 <= partition < len(meta.partitions)


def _grouped(outcomes: dict[Key, Outcome]) -> dict[str, list[tuple[int, Outcome]]]:
    out: dict[str, list[tuple[int, Outcome]]] = {}
    for (topic, partition), outcome in outcomes.items():
        out.setdefault(topic, []).append((partition, outcome))
    return out


# ---------------------------------------------------------------- ElectLeaders


def elect_leaders(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Kafka's answers: ELECTION_NOT_NEEDED where the preferred replica (or, unclean, a live leader)
    leads already, PREFERRED_LEADER_NOT_AVAILABLE where it is not live and in sync,
    ELIGIBLE_LEADERS_NOT_AVAILABLE where no replica is live; with no partitions named (null), every
    partition, answering only those an election was for or failed for.  Needs ALTER on the cluster."""
    require(ctx, Operation.ALTER, ResourceType.CLUSTER)
    election_type = req.election_type if header.api_version >= 1 else PREFERRED
    if election_type not in (PREFERRED, UNCLEAN):
        return {"throttle_time_ms": 0, "error_code": ErrorCode.INVALID_REQUEST, "replica_election_results": []}
    mode = "preferred" if election_type == PREFERRED else "unclean"
    state = ctx.partitions.refresh()
    everything = req.topic_partitions is None
    outcomes: dict[Key, Outcome] = {}
    if everything:
        targets = [(t.name, p) for t in state.topics.values() for p in range(len(t.partitions))]
    else:
        targets = []
        for t in req.topic_partitions:
            for p in t.partitions:
                if (t.topic, p) in outcomes or (t.topic, p) in targets:
                    continue
                if _known(state, t.topic, p):
                    targets.append((t.topic, p))
                else:
                    outcomes[(t.topic, p)] = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{t.topic}-{p} does not exist")
    skipped: dict[Key, str] = {}
    try:
        elections = elect(Metadata(ctx.datadir), targets, mode, set(ctx.datadir.live_brokers()),
                          lambda t, q, b: replica_leo(ctx.datadir, t, q, b), skipped)
    except (KcliError, OSError) as exc:
        code = answer_for(exc, f"{mode} leader election")
        for key in targets:
            outcomes[key] = (code, str(exc))
        elections = []
    for election in elections:
        log.info("%s leader election: %s", mode, election.describe())
        outcomes[(election.topic, election.partition)] = (ErrorCode.NONE, None)
    for key, why in skipped.items():
        if not (everything and why == NOT_NEEDED):
            outcomes[key] = (_SKIPPED[why], f"{key[0]}-{key[1]}: {why}")
    ctx.partitions.refresh()
    results = [
        {
            "topic": topic,
            "partition_result": [
                {"partition_id": p, "error_code": code, "error_message": message} for p, (code, message) in parts
            ],
        }
        for topic, parts in _grouped(outcomes).items()
    ]
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "replica_election_results": results}


# ---------------------------------------------------------------- partition reassignments

_REASSIGN_CODES: dict[type[BaseException], ErrorCode] = {
    UsageError: ErrorCode.INVALID_REPLICA_ASSIGNMENT,
    NoReassignmentError: ErrorCode.NO_REASSIGNMENT_IN_PROGRESS,
}


def alter_partition_reassignments(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Record each partition's target (null: cancel) and answer at once, as Kafka does: the acting
    controller carries the reassignment out on its ticks.  INVALID_REPLICA_ASSIGNMENT for an empty,
    repeated or unknown broker list, NO_REASSIGNMENT_IN_PROGRESS for cancelling none.  Needs ALTER on the
    cluster."""
    require(ctx, Operation.ALTER, ResourceType.CLUSTER)
    metadata = Metadata(ctx.datadir)
    running = set(ctx.datadir.live_brokers())
    responses = []
    for topic in req.topics:
        parts = []
        for p in topic.partitions:
            code, message = ErrorCode.NONE, None
            try:
                if p.replicas is None:
                    cancel(metadata, topic.name, p.partition_index)
                    log.info("reassignment of %s-%d cancelled", topic.name, p.partition_index)
                else:
                    start(metadata, topic.name, p.partition_index, list(p.replicas), running)
                    log.info("reassignment of %s-%d to %s started", topic.name, p.partition_index, list(p.replicas))
            except (KcliError, OSError) as exc:
                code = answer_for(exc, f"reassigning {topic.name}-{p.partition_index}", _REASSIGN_CODES)
                message = str(exc)
            parts.append({"partition_index": p.partition_index, "error_code": code, "error_message": message})
        responses.append({"name": topic.name, "partitions": parts})
    ctx.partitions.refresh()
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None, "responses": responses}


def list_partition_reassignments(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """The reassignments in flight (of the partitions asked for; all when null): the replicas now (target
    and original together), and which are being added and removed.  Needs DESCRIBE on the cluster."""
    require(ctx, Operation.DESCRIBE, ResourceType.CLUSTER)
    wanted = None if req.topics is None else [(t.name, p) for t in req.topics for p in t.partition_indexes]
    state = ctx.partitions.refresh()
    topics: dict[str, list[dict[str, Any]]] = {}
    for topic, partition, job in ongoing(ctx.datadir, wanted):
        if not _known(state, topic, partition):
            continue
        topics.setdefault(topic, []).append({
            "partition_index": partition,
            "replicas": state.partition(topic, partition).replicas,
            "adding_replicas": job.adding,
            "removing_replicas": job.removing,
        })
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "topics": [{"name": t, "partitions": parts} for t, parts in topics.items()],
    }
