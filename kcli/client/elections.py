"""Leader elections and replica reassignment on the data directory (no broker running).

Each partition is changed under its partition lock, so no embedded writer is mid-append when its leader
or replica set moves.  While brokers run, their controller owns these decisions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from kcli.cluster.controller import Election, elect
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.config import LogConfig
from kcli.errors import BrokerError, UsageError
from kcli.storage.log import PartitionLog
from kcli.storage.replica_sync import sync_replica


def _refuse_with_live_brokers(datadir: DataDir, what: str) -> None:
    live = datadir.live_brokers()
    if live:
        raise BrokerError(f"brokers {', '.join(map(str, live))} are running; {what} on a live cluster is the "
                          "controller's job", hint="stop the brokers first")


def replica_leo(datadir: DataDir, topic: str, partition: int, broker: int) -> int:
    log = PartitionLog(datadir.partition_dir(broker, topic, partition))
    try:
        return log.log_end_offset
    finally:
        log.close()


def run_election(datadir: DataDir, mode: str, targets: list[tuple[str, int]]) -> list[Election]:
    """Preferred or unclean election for ``targets`` with every broker's disk available."""
    _refuse_with_live_brokers(datadir, "leader election")
    metadata = Metadata(datadir)
    live = set(metadata.ensure().brokers)
    out = []
    for topic, p in targets:
        with datadir.partition_lock(topic, p):
            out += elect(metadata, [(topic, p)], mode, live, lambda t, q, b: replica_leo(datadir, t, q, b))
    return out


def reassign(datadir: DataDir, topic: str, partition: int, replicas: list[int],
             progress: Callable[[int], None] | None = None) -> str:
    """Move a partition's replicas to ``replicas``: copy the leader's log to each new replica, switch the
    metadata (ISR = the new set, all level), then delete replicas no longer assigned."""
    _refuse_with_live_brokers(datadir, "reassignment")
    metadata = Metadata(datadir)
    state = metadata.ensure()
    meta = state.partition(topic, partition)
    unknown = [b for b in replicas if b not in state.brokers]
    if unknown or len(set(replicas)) != len(replicas) or not replicas:
        raise UsageError(f"replicas {replicas} must be distinct existing brokers ({state.brokers})")
    config = LogConfig.from_topic(state.topic(topic).configs)
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
        metadata.update_partition(topic, partition, replicas=replicas, isr=list(replicas), leader=new_leader,
                                  leader_epoch=epoch)
        for broker in meta.replicas:
            if broker not in replicas:
                shutil.rmtree(datadir.partition_dir(broker, topic, partition), ignore_errors=True)
    return f"{topic}-{partition}: replicas {meta.replicas} -> {replicas}, leader {new_leader}"
