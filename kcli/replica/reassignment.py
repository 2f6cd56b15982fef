"""Moving a partition's replicas: Kafka's reassignment, for ``kcli reassign`` and the
AlterPartitionReassignments / ListPartitionReassignments APIs alike.

While brokers run, a reassignment is a record of its target in ``cluster/reassignments.json`` (written
atomically under the metadata lock) that the acting controller drives on every tick
(:func:`advance`), in Kafka's steps: the partition's replicas become the target plus the original
replicas (the adding replicas' brokers start fetching); once every target replica is in the ISR, the
replicas become the target, the leadership moves to a target replica if it must, and the removing
replicas are dropped (their brokers delete their folders).  Each step is one metadata change decided
against the state as it is then, so a controller that dies between steps, or two acting at once, leave
nothing half done: the record stays until the last step is recorded.  A new target replaces a pending
one (the original replicas stay what they were); cancelling goes back to the original replicas.

With no broker running, :func:`reassign_offline` copies the leader's log to the new replicas itself,
under the partition lock, and switches the metadata at once.

What differs from Kafka: the pending targets live in a file next to the metadata log instead of in
its records (adding/removing replicas are derived from them), and a target replica on a stopped broker
waits for that broker to start (Kafka's too, but kcli's CLI refuses it up front).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kcli.cluster.configs import log_config
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata, MetaRecord, PartitionMeta
from kcli.errors import CorruptRecordError, NotFoundError, UsageError
from kcli.replica.checkpoints import level_replica
from kcli.storage.checkpoint import atomic_write
from kcli.storage.fileio import read_file
from kcli.storage.log import PartitionLog

STORE = "reassignments.json"
Key = tuple[str, int]


@dataclass(frozen=True)
class Pending:
    """One reassignment in flight: where it goes, and the replicas it started from."""

    target: list[int]
    original: list[int]

    @property
    def adding(self) -> list[int]:
        return [b for b in self.target if b not in self.original]

    @property
    def removing(self) -> list[int]:
        return [b for b in self.original if b not in self.target]

    @property
    def union(self) -> list[int]:
        """The replicas while it is in flight: the target first (its first is the preferred leader)."""
        return self.target + self.removing


class NoReassignmentError(NotFoundError):
    """Cancelling a partition that has no reassignment in flight (Kafka's NO_REASSIGNMENT_IN_PROGRESS)."""


def check_replicas(state: ClusterState, replicas: list[int]) -> None:
    """A target must be distinct brokers of the cluster, at least one (Kafka's INVALID_REPLICA_ASSIGNMENT)."""
    unknown = [b for b in replicas if b not in state.brokers]
    if unknown or len(set(replicas)) != len(replicas) or not replicas:
        raise UsageError(f"replicas {replicas} must be distinct existing brokers ({state.brokers})")


# ---------------------------------------------------------------- the store of pending targets


def _path(datadir: DataDir) -> str:
    return os.path.join(datadir.cluster_dir, STORE)


def pending(datadir: DataDir) -> dict[Key, Pending]:
    """The reassignments in flight (none when the file is missing)."""
    try:
        doc = json.loads(read_file(_path(datadir)))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise CorruptRecordError(f"malformed {_path(datadir)}: {exc}") from None
    return {(e["topic"], e["partition"]): Pending(e["target"], e["original"]) for e in doc["reassignments"]}


def _update(datadir: DataDir, fn: Callable[[dict[Key, Pending]], None]) -> dict[Key, Pending]:
    """Change the store under the metadata lock (never held while a metadata change runs)."""
    with datadir.metadata_lock():
        found = pending(datadir)
        before = dict(found)
        fn(found)
        if found != before:
            doc = {"version": 1, "reassignments": [
                {"topic": t, "partition": p, "target": e.target, "original": e.original}
                for (t, p), e in sorted(found.items())
            ]}
            atomic_write(_path(datadir), json.dumps(doc).encode())
        return found


# ---------------------------------------------------------------- brokers run: the controller's steps


def start(metadata: Metadata, topic: str, partition: int, target: list[int], running: set[int]) -> None:
    """Record ``target`` as the partition's pending reassignment (replacing one in flight) and take the
    first step.  NotFoundError for an unknown partition, UsageError for a bad target."""
    state = metadata.ensure()
    meta = state.partition(topic, partition)
    check_replicas(state, target)

    def record(found: dict[Key, Pending]) -> None:
        original = found[(topic, partition)].original if (topic, partition) in found else list(meta.replicas)
        found[(topic, partition)] = Pending(list(target), original)

    _update(metadata.datadir, record)
    advance(metadata, running)


def cancel(metadata: Metadata, topic: str, partition: int) -> Pending:
    """Go back to the original replicas of the partition's pending reassignment (the adding replicas are
    dropped; the leadership moves to an original in-sync replica if an adding one held it), returning
    it.  NoReassignmentError when none is in flight."""
    key = (topic, partition)
    found = pending(metadata.datadir).get(key)
    if found is None:
        metadata.ensure().partition(topic, partition)
        raise NoReassignmentError(f"{topic}-{partition} has no reassignment in progress")

    def revert(state: ClusterState) -> list[MetaRecord]:
        return [_with_replicas(topic, partition, state.partition(topic, partition), found.original)]

    def forget(found: dict[Key, Pending]) -> None:
        found.pop(key, None)

    # forgotten first: the controller's next step must not add the target replicas back
    _update(metadata.datadir, forget)
    metadata.change(revert)
    return found


def advance(metadata: Metadata, running: set[int]) -> list[str]:
    """The controller's tick: take every pending reassignment as far as it can go now; returns a line
    for each step taken."""
    if not pending(metadata.datadir):
        return []
    todo: dict[Key, Pending] = {}
    done: list[Key] = []
    lines: list[str] = []

    def step(state: ClusterState) -> list[MetaRecord]:
        # read again under the metadata lock the store is written under: a cancel may have just gone
        todo.update(pending(metadata.datadir))
        recs: list[MetaRecord] = []
        for (topic, partition), job in todo.items():
            t = state.topics.get(topic)
            if t is None or partition >= len(t.partitions):
                done.append((topic, partition))  # the topic went
                continue
            meta = t.partitions[partition]
            if meta.replicas == job.target and meta.leader in job.target:
                done.append((topic, partition))  # finished already (by another acting controller)
            elif meta.replicas != job.union and meta.replicas != job.target:
                # first step: add the target replicas (a replaced target's extra ones go)
                recs.append(_with_replicas(topic, partition, meta, job.union))
                lines.append(f"{topic}-{partition}: adding replicas {job.adding or '-'}")
            elif all(b in meta.isr for b in job.target):
                leader = meta.leader if meta.leader in job.target else next(
                    (b for b in job.target if b in meta.isr and b in running), -1)
                if leader < 0:
                    continue  # no target replica runs to lead: wait
                epoch = meta.leader_epoch + (leader != meta.leader)
                recs.append({"type": "partition", "topic": topic, "partition": partition, "replicas": job.target,
                             "leader": leader, "isr": [b for b in meta.isr if b in job.target],
                             "leader_epoch": epoch})
                done.append((topic, partition))
                lines.append(f"{topic}-{partition}: replicas {job.original} -> {job.target}, leader {leader}")
        return recs

    metadata.change(step)

    def forget(found: dict[Key, Pending]) -> None:
        for key in done:
            if found.get(key) == todo[key]:  # not replaced by a new target meanwhile
                del found[key]

    if done:
        _update(metadata.datadir, forget)
    return lines


def _with_replicas(topic: str, partition: int, meta: PartitionMeta, replicas: list[int]) -> MetaRecord:
    """The partition with ``replicas``: the ISR keeps only those, and the leadership moves (epoch
    bumped) to the first of them in sync if its leader is not among them."""
    isr = [b for b in meta.isr if b in replicas]
    leader, epoch = meta.leader, meta.leader_epoch
    if leader not in replicas:
        leader, epoch = (isr[0] if isr else -1), epoch + 1
    return {"type": "partition", "topic": topic, "partition": partition, "replicas": replicas,
            "leader": leader, "isr": isr, "leader_epoch": epoch}


def ongoing(datadir: DataDir, wanted: Iterable[Key] | None = None) -> list[tuple[str, int, Pending]]:
    """The reassignments in flight (of ``wanted`` only, when given), in order."""
    found = pending(datadir)
    keys = sorted(found) if wanted is None else [k for k in wanted if k in found]
    return [(t, p, found[(t, p)]) for t, p in keys]


# ---------------------------------------------------------------- no broker runs


def reassign_offline(datadir: DataDir, metadata: Metadata, topic: str, partition: int, replicas: list[int],
                     progress: Callable[[int], None] | None = None) -> str:
    """No broker runs: copy the leader's log to each new replica, switch the metadata (ISR = the new set,
    all level), then delete replicas no longer assigned."""
    state = metadata.load()
    config = log_config(state, state.topic(topic))
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
            level_replica(datadir, broker, topic, partition, leader, target, progress)
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
