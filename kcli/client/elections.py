"""Leader elections and replica reassignment, with or without brokers running.

Without brokers, each partition is changed under its partition lock, so no embedded writer is mid-append
when its leader or replica set moves, and a reassignment copies the leader's log to new replicas itself.

While brokers run, the replicas belong to the brokers, and a change goes to a broker as a request:
ElectLeaders (the broker records the election, the old leader lets go and the new one takes over) or
AlterPartitionReassignments, which the acting controller carries out in Kafka's adding/removing replicas
steps (:mod:`kcli.replica.reassignment`): the command waits, with progress, until it is done.  A broker
deletes its own replica once it is no longer assigned one; a leader deletes those of stopped brokers.
Listing and cancelling reassignments in flight likewise go to a broker (ListPartitionReassignments,
AlterPartitionReassignments with a null target) while brokers run, and work on the data dir otherwise.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcli.cluster.controller import Election, elect, replica_leo
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata, PartitionMeta
from kcli.errors import BrokerError, UnavailableError, UsageError
from kcli.replica.reassignment import (
    NoReassignmentError,
    cancel,
    check_replicas,
    ongoing,
    pending,
    reassign_offline,
)

__all__ = ["Listed", "cancel_reassignments", "check_plan", "list_reassignments", "reassign", "replica_leo",
           "run_election"]

Plan = list[tuple[str, int, list[int]]]

POLL = 0.2


if TYPE_CHECKING:
    from kcli.protocol import Struct


def _running(datadir: DataDir) -> set[int]:
    return set(datadir.live_brokers())


def _ask_broker(datadir: DataDir, api: int, body: Mapping[str, object]) -> Struct:
    """Send one admin request to any running broker and return its response."""
    from kcli.client.broker_pool import BrokerPool
    from kcli.net.connection import REQUEST_TIMEOUT

    pool = BrokerPool(datadir, None, REQUEST_TIMEOUT)
    try:
        return pool.send(pool.any(), api, body)
    finally:
        pool.close()


def run_election(datadir: DataDir, mode: str, targets: list[tuple[str, int]]) -> list[Election]:
    """Preferred or unclean election for ``targets``.  With brokers running, only a running broker can be
    elected and the brokers carry the change out; otherwise every broker's disk is available."""
    metadata = Metadata(datadir)
    state = metadata.ensure()
    running = _running(datadir)

    def leo(t: str, q: int, b: int) -> int:
        return replica_leo(datadir, t, q, b)

    if running:
        return _elect_through_broker(datadir, metadata, mode, targets)
    live = set(state.brokers)
    out = []
    for topic, p in targets:
        with datadir.partition_lock(topic, p):
            out += elect(metadata, [(topic, p)], mode, live, leo)
    return out


def _elect_through_broker(datadir: DataDir, metadata: Metadata, mode: str,
                          targets: list[tuple[str, int]]) -> list[Election]:
    """ElectLeaders to a running broker (the one implementation, :func:`elect`, runs there); the changes
    it made are read back from the metadata.  Partitions left alone (not needed, preferred replica not
    available, no live replica) are left out, as the embedded path leaves them."""
    from kcli.client.kafka_errors import raise_for
    from kcli.net.connection import REQUEST_TIMEOUT
    from kcli.protocol import ApiKey, ErrorCode

    topics: dict[str, list[int]] = {}
    for topic, p in targets:
        topics.setdefault(topic, []).append(p)
    body = {
        "election_type": 0 if mode == "preferred" else 1,
        "topic_partitions": [{"topic": t, "partitions": ps} for t, ps in topics.items()],
        "timeout_ms": int(REQUEST_TIMEOUT * 1000),
    }
    before = metadata.load()
    resp = _ask_broker(datadir, ApiKey.ELECT_LEADERS, body)
    raise_for(resp.error_code, None, "leader election")
    left_alone = (ErrorCode.ELECTION_NOT_NEEDED, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                  ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE)
    after = metadata.load()
    out = []
    for result in resp.replica_election_results:
        for part in result.partition_result:
            if part.error_code in left_alone:
                continue
            raise_for(part.error_code, part.error_message, f"{result.topic}-{part.partition_id}")
            old = before.partition(result.topic, part.partition_id)
            new = after.partition(result.topic, part.partition_id)
            out.append(Election(result.topic, part.partition_id, old.leader, new.leader, list(new.isr),
                                new.leader_epoch, unclean=new.leader not in old.isr))
    return out


def reassign(
    datadir: DataDir,
    topic: str,
    partition: int,
    replicas: list[int],
    progress: Callable[[int], None] | None = None,
) -> str:
    """Move a partition's replicas to ``replicas`` (preferred leader first); ``progress`` is told how many
    records the new replicas gained as they catch up."""
    metadata = Metadata(datadir)
    running = _running(datadir)
    check_move(metadata.ensure(), running, topic, partition, replicas)
    if running:
        return _reassign_live(datadir, metadata, topic, partition, replicas, progress)
    return reassign_offline(datadir, metadata, topic, partition, replicas, progress)


def check_move(state: ClusterState, running: set[int], topic: str, partition: int, replicas: list[int]) -> None:
    """What must hold before a partition's replicas move: the partition exists (NotFoundError), the
    target is distinct brokers of the cluster (UsageError), a leader to copy from (running, while
    brokers run), and, while brokers run, every new replica's broker running (BrokerError)."""
    meta = state.partition(topic, partition)
    check_replicas(state, replicas)
    if not running:
        if meta.leader < 0:
            raise UsageError(f"{topic}-{partition} has no leader to copy from", hint="run an election first")
        return
    if meta.leader not in running:
        raise UnavailableError(
            f"{topic}-{partition} has no running leader to copy from",
            hint="start its leader's broker, or stop every broker to reassign without them",
        )
    missing = [b for b in replicas if b not in meta.replicas and b not in running]
    if missing:
        raise BrokerError(
            f"broker(s) {', '.join(map(str, missing))} must run to receive a copy while brokers run",
            hint="start them with `kcli broker serve`, or stop every broker first",
        )


def check_plan(datadir: DataDir, plan: Plan) -> None:
    """Check every move of a plan before any is made: no partition twice, and :func:`check_move` each."""
    keys = [(t, p) for t, p, _r in plan]
    twice = sorted({f"{t}-{p}" for t, p in keys if keys.count((t, p)) > 1})
    if twice:
        raise UsageError(f"the plan names {', '.join(twice)} more than once")
    state, running = Metadata(datadir).ensure(), _running(datadir)
    for topic, partition, replicas in plan:
        check_move(state, running, topic, partition, replicas)


def _reassign_live(
    datadir: DataDir,
    metadata: Metadata,
    topic: str,
    partition: int,
    replicas: list[int],
    progress: Callable[[int], None] | None,
) -> str:
    """Brokers run: AlterPartitionReassignments to a broker (the controller then adds the new replicas,
    waits for them to join the ISR and drops the old ones), and wait until it is done."""
    meta = metadata.load().partition(topic, partition)
    original = list(meta.replicas)
    catching_up = [b for b in replicas if b not in meta.isr]
    alter_reassignments(datadir, {(topic, partition): replicas})
    final = _await_done(datadir, metadata, topic, partition, replicas, catching_up, progress)
    return f"{topic}-{partition}: replicas {original} -> {replicas}, leader {final.leader}"


def alter_reassignments(datadir: DataDir, targets: dict[tuple[str, int], list[int] | None]) -> None:
    """AlterPartitionReassignments to a running broker (None cancels a partition's)."""
    from kcli.client.kafka_errors import raise_for
    from kcli.net.connection import REQUEST_TIMEOUT
    from kcli.protocol import ApiKey, ErrorCode

    topics: dict[str, list[dict[str, object]]] = {}
    for (topic, p), replicas in targets.items():
        topics.setdefault(topic, []).append({"partition_index": p, "replicas": replicas})
    body = {"timeout_ms": int(REQUEST_TIMEOUT * 1000),
            "topics": [{"name": t, "partitions": parts} for t, parts in topics.items()]}
    resp = _ask_broker(datadir, ApiKey.ALTER_PARTITION_REASSIGNMENTS, body)
    raise_for(resp.error_code, resp.error_message, "reassignment")
    for t in resp.responses:
        for part in t.partitions:
            if part.error_code == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS:
                raise NoReassignmentError(
                    part.error_message or f"{t.name}-{part.partition_index} has no reassignment in progress")
            raise_for(part.error_code, part.error_message, f"reassigning {t.name}-{part.partition_index}")


@dataclass(frozen=True)
class Listed:
    """A reassignment in flight, as ListPartitionReassignments gives it."""

    topic: str
    partition: int
    replicas: list[int]  # now: the target and the original replicas together
    adding: list[int]
    removing: list[int]


def list_reassignments(datadir: DataDir) -> list[Listed]:
    """The reassignments in flight: ListPartitionReassignments while brokers run, else the pending
    targets on disk (left by brokers stopped midway)."""
    if _running(datadir):
        return _list_through_broker(datadir)
    state = Metadata(datadir).ensure()
    return [Listed(t, p, list(state.partition(t, p).replicas), job.adding, job.removing)
            for t, p, job in ongoing(datadir)
            if t in state.topics and p < len(state.topics[t].partitions)]


def _list_through_broker(datadir: DataDir) -> list[Listed]:
    from kcli.client.kafka_errors import raise_for
    from kcli.net.connection import REQUEST_TIMEOUT
    from kcli.protocol import ApiKey

    resp = _ask_broker(datadir, ApiKey.LIST_PARTITION_REASSIGNMENTS,
                       {"timeout_ms": int(REQUEST_TIMEOUT * 1000), "topics": None})
    raise_for(resp.error_code, resp.error_message, "listing reassignments")
    return sorted((Listed(t.name, p.partition_index, list(p.replicas), list(p.adding_replicas),
                          list(p.removing_replicas)) for t in resp.topics for p in t.partitions),
                  key=lambda x: (x.topic, x.partition))


def cancel_reassignments(datadir: DataDir, keys: list[tuple[str, int]]) -> None:
    """Cancel the reassignments of ``keys``: back to their original replicas (NoReassignmentError, exit
    3, for one with none in flight).  While brokers run, AlterPartitionReassignments with a null target;
    else here, as the controller would, every key checked first, the adding replicas' folders removed."""
    if _running(datadir):
        alter_reassignments(datadir, dict.fromkeys(keys))
        return
    metadata = Metadata(datadir)
    state, found = metadata.ensure(), pending(datadir)
    for topic, partition in keys:
        state.partition(topic, partition)
        if (topic, partition) not in found:
            raise NoReassignmentError(f"{topic}-{partition} has no reassignment in progress")
    for topic, partition in keys:
        with datadir.partition_lock(topic, partition):
            job = cancel(metadata, topic, partition)
            for broker in job.adding:
                shutil.rmtree(datadir.partition_dir(broker, topic, partition), ignore_errors=True)


def _await_done(
    datadir: DataDir,
    metadata: Metadata,
    topic: str,
    partition: int,
    replicas: list[int],
    catching_up: list[int],
    progress: Callable[[int], None] | None,
) -> PartitionMeta:
    """Wait until the controller has finished the reassignment, reporting the records ``catching_up``
    gain."""
    seen: dict[int, int] = {}
    while True:
        meta = metadata.load().partition(topic, partition)
        if meta.leader < 0:
            raise UnavailableError(
                f"{topic}-{partition} went offline while its new replicas caught up",
                hint="bring its brokers back; the reassignment goes on once they run",
            )
        if meta.replicas == replicas and (topic, partition) not in pending(datadir):
            return meta
        if progress is not None:
            for b in catching_up:
                leo = max(0, replica_leo(datadir, topic, partition, b))
                if leo > seen.setdefault(b, leo):
                    progress(leo - seen[b])
                    seen[b] = leo
        time.sleep(POLL)
