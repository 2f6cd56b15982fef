"""ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments: the same decisions as
``kcli leader-election`` and ``kcli reassign`` (:func:`kcli.cluster.controller.elect`,
:mod:`kcli.replica.reassignment`), recorded in the metadata, which every broker follows.  Any broker
answers them, as any broker forwards them to Kafka's controller."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kcli.broker.answers import answer_for
from kcli.broker.context import BrokerContext
from kcli.cluster.controller import NO_ELIGIBLE, NOT_NEEDED, PREFERRED_UNAVAILABLE, elect, replica_leo
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.errors import KcliError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.apis.leadership import PREFERRED, UNCLEAN

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
    partition, answering only those an election was for or failed for."""
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
