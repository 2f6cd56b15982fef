"""Leader elections and replica reassignment, with or without brokers running.

Without brokers, each partition is changed under its partition lock, so no embedded writer is mid-append
when its leader or replica set moves, and a reassignment copies the leader's log to new replicas itself.

While brokers run, the replicas belong to the brokers, and every change is a metadata record the
brokers react to (the same way they follow the controller): an election is recorded and the old leader
lets go, the new one takes over; a reassignment first adds the new replicas (their brokers start
fetching), waits until the leader has taken them into the ISR, then drops the old ones -- Kafka's
adding/removing replicas steps.  A broker deletes its own replica once it is no longer assigned one; a
leader deletes those of stopped brokers.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

from kcli.cluster.controller import Election, elect, replica_leo
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata, MetaRecord, PartitionMeta
from kcli.errors import BrokerError, UnavailableError, UsageError
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog
from kcli.storage.replica_sync import sync_replica

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


def _check_replicas(state: ClusterState, replicas: list[int]) -> None:
    unknown = [b for b in replicas if b not in state.brokers]
    if unknown or len(set(replicas)) != len(replicas) or not replicas:
        raise UsageError(f"replicas {replicas} must be distinct existing brokers ({state.brokers})")


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
    _check_replicas(state, replicas)
    running = _running(datadir)
    if running:
        return _reassign_live(datadir, metadata, topic, partition, replicas, running, progress)
    return _reassign_offline(datadir, metadata, topic, partition, replicas, progress)


def _reassign_offline(
    datadir: DataDir,
    metadata: Metadata,
    topic: str,
    partition: int,
    replicas: list[int],
    progress: Callable[[int], None] | None,
) -> str:
    """No broker runs: copy the leader's log to each new replica, switch the metadata (ISR = the new set,
    all level), then delete replicas no longer assigned."""
    config = LogConfig.from_topic(metadata.load().topic(topic).configs)
    with datadir.partition_lock(topic, partition):
        meta = metadata.load().partition(topic, partition)
        if meta.leader < 0:
            raise UsageError(f"{topic}-{partition} has no leader to copy from", hint="run an election first")
        leader = PartitionLog(datadir.partition_dir(meta.leader, topic, partition), config)
        for broker in replicas:
            if broker in meta.isr:
                continue
            target = PartitionLog(datadir.partition_dir(broker, topic, partition), config)
            target.open_for_append(None)
            sync_replica(leader, target, progress=progress)
            target.release()
        leader.close()
        new_leader = meta.leader if meta.leader in replicas else replicas[0]
        epoch = meta.leader_epoch + (new_leader != meta.leader)
        metadata.update_partition(
            topic, partition, replicas=replicas, isr=list(replicas), leader=new_leader, leader_epoch=epoch
        )
        for broker in meta.replicas:
            if broker not in replicas:
                shutil.rmtree(datadir.partition_dir(broker, topic, partition), ignore_errors=True)
    return f"{topic}-{partition}: replicas {meta.replicas} -> {replicas}, leader {new_leader}"


def _reassign_live(
    datadir: DataDir,
    metadata: Metadata,
    topic: str,
    partition: int,
    replicas: list[int],
    running: set[int],
    progress: Callable[[int], None] | None,
) -> str:
    """Brokers run: add the new replicas, wait for the leader to take them into the ISR, then drop the
    old ones (moving the leadership first if the leader is one of them)."""
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
    union = replicas + [b for b in meta.replicas if b not in replicas]
    if union != meta.replicas:
        meta = metadata.update_partition(topic, partition, replicas=union)
    _await_in_sync(datadir, metadata, topic, partition, replicas, catching_up, progress)

    def finish(state: ClusterState) -> list[MetaRecord]:
        now = state.partition(topic, partition)
        leader, epoch = now.leader, now.leader_epoch
        if leader not in replicas:
            leader = next((b for b in replicas if b in now.isr and b in _running(datadir)), -1)
            if leader < 0:
                raise UnavailableError(f"no new replica of {topic}-{partition} is in sync and running")
            epoch += 1
        isr = [b for b in now.isr if b in replicas]
        return [
            {
                "type": "partition",
                "topic": topic,
                "partition": partition,
                "replicas": replicas,
                "leader": leader,
                "isr": isr,
                "leader_epoch": epoch,
            }
        ]

    final = metadata.change(finish).partition(topic, partition)
    return f"{topic}-{partition}: replicas {original} -> {replicas}, leader {final.leader}"


def _await_in_sync(
    datadir: DataDir,
    metadata: Metadata,
    topic: str,
    partition: int,
    replicas: list[int],
    catching_up: list[int],
    progress: Callable[[int], None] | None,
) -> PartitionMeta:
    """Wait until every one of ``replicas`` is in the ISR, reporting the records ``catching_up`` gain."""
    seen: dict[int, int] = {}
    while True:
        meta = metadata.load().partition(topic, partition)
        if meta.leader < 0:
            raise UnavailableError(
                f"{topic}-{partition} went offline while its new replicas caught up",
                hint="bring its brokers back, then run the reassignment again",
            )
        if all(b in meta.isr for b in replicas):
            return meta
        if progress is not None:
            for b in catching_up:
                leo = max(0, replica_leo(datadir, topic, partition, b))
                if leo > seen.setdefault(b, leo):
                    progress(leo - seen[b])
                    seen[b] = leo
        time.sleep(POLL)
