"""Leader elections and replica reassignment, with or without brokers running.

Without brokers, each partition is changed under its partition lock, so no embedded writer is mid-append
when its leader or replica set moves, and a reassignment copies the leader's log to new replicas itself.

While brokers run, the replicas belong to the brokers, and a change goes to a broker as a request:
ElectLeaders (the broker records the election, the old leader lets go and the new one takes over) or
AlterPartitionReassignments, which the acting controller carries out in Kafka's adding/removing replicas
steps (:mod:`kcli.replica.reassignment`): the command waits, with progress, until it is done.  A broker
deletes its own replica once it is no longer assigned one; a leader deletes those of stopped brokers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kcli.cluster.controller import Election, elect, replica_leo
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata, PartitionMeta
from kcli.errors import BrokerError, UnavailableError
from kcli.replica.reassignment import check_replicas, pending, reassign_offline

__all__ = ["reassign", "replica_leo", "run_election"]

POLL = 0.2


def _running(datadir: DataDir) -> set[int]:
    return set(datadir.live_brokers())


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
    from kcli.client.broker_pool import BrokerPool
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
    pool = BrokerPool(datadir, None, REQUEST_TIMEOUT)
    try:
        resp = pool.send(pool.any(), ApiKey.ELECT_LEADERS, body)
    finally:
        pool.close()
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
    state = metadata.ensure()
    state.partition(topic, partition)
    check_replicas(state, replicas)
    running = _running(datadir)
    if running:
        return _reassign_live(datadir, metadata, topic, partition, replicas, running, progress)
    return reassign_offline(datadir, metadata, topic, partition, replicas, progress)


def _reassign_live(
    datadir: DataDir,
    metadata: Metadata,
    topic: str,
    partition: int,
    replicas: list[int],
    running: set[int],
    progress: Callable[[int], None] | None,
) -> str:
    """Brokers run: AlterPartitionReassignments to a broker (the controller then adds the new replicas,
    waits for them to join the ISR and drops the old ones), and wait until it is done."""
    meta = metadata.load().partition(topic, partition)
    if meta.leader not in running:
        raise UnavailableError(
            f"{topic}-{partition} has no running leader to copy from",
            hint="start its leader's broker, or stop every broker to reassign without them",
        )
    added = [b for b in replicas if b not in meta.replicas]
    missing = [b for b in added if b not in running]
    if missing:
        raise BrokerError(
            f"broker(s) {', '.join(map(str, missing))} must run to receive a copy while brokers run",
            hint="start them with `kcli broker serve`, or stop every broker first",
        )
    original = list(meta.replicas)
    catching_up = [b for b in replicas if b not in meta.isr]
    alter_reassignments(datadir, {(topic, partition): replicas})
    final = _await_done(datadir, metadata, topic, partition, replicas, catching_up, progress)
    return f"{topic}-{partition}: replicas {original} -> {replicas}, leader {final.leader}"


def alter_reassignments(datadir: DataDir, targets: dict[tuple[str, int], list[int] | None]) -> None:
    """AlterPartitionReassignments to a running broker (None cancels a partition's)."""
    from kcli.client.broker_pool import BrokerPool
    from kcli.client.kafka_errors import raise_for
    from kcli.net.connection import REQUEST_TIMEOUT
    from kcli.protocol import ApiKey

    topics: dict[str, list[dict[str, object]]] = {}
    for (topic, p), replicas in targets.items():
        topics.setdefault(topic, []).append({"partition_index": p, "replicas": replicas})
    body = {"timeout_ms": int(REQUEST_TIMEOUT * 1000),
            "topics": [{"name": t, "partitions": parts} for t, parts in topics.items()]}
    pool = BrokerPool(datadir, None, REQUEST_TIMEOUT)
    try:
        resp = pool.send(pool.any(), ApiKey.ALTER_PARTITION_REASSIGNMENTS, body)
    finally:
        pool.close()
    raise_for(resp.error_code, resp.error_message, "reassignment")
    for t in resp.responses:
        for part in t.partitions:
            raise_for(part.error_code, part.error_message, f"reassigning {t.name}-{part.partition_index}")


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
