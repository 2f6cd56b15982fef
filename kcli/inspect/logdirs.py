"""log-dirs: what each broker folder holds, per partition replica (Kafka's ``kafka-log-dirs --describe``
plus the offsets an operator asks for next).

Reading never takes a lock: a concurrent append only makes the numbers a moment old.  The high
watermark comes from the broker's ``replication-offset-checkpoint`` when it lists the partition (what
a broker last made durable); otherwise it is the leader replica's log end offset, capped at this
replica's own end (a follower never has a high watermark past its own log).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from kcli.cluster.configs import log_config
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.errors import CorruptRecordError, NotFoundError
from kcli.inspect import layout, scan
from kcli.storage import checkpoint
from kcli.storage.cleaner_status import CleanerStatus, read_status, replica_cleanable
from kcli.storage.log import PartitionLog, now_ms, partition_dirs
from kcli.storage.segment import LOG_SUFFIX


@dataclass
class CleanerInfo:
    """A compacted replica's cleaning: where its dirty part starts (the ``cleaner-offset-checkpoint``),
    what a pass could take now, and the passes its broker's status file records."""

    first_dirty_offset: int | None  # None (with the two below) when the files changed under the read
    dirty_ratio: float | None
    cleanable_bytes: int | None
    status: CleanerStatus

    def to_json(self) -> dict[str, object]:
        last = self.status.last
        return {
            "firstDirtyOffset": self.first_dirty_offset,
            "dirtyRatio": None if self.dirty_ratio is None else round(self.dirty_ratio, 4),
            "cleanableBytes": self.cleanable_bytes,
            "runningSinceMs": self.status.running_since,
            "lastPass": None if last is None else {
                "startedMs": last.started_ms,
                "endedMs": last.ended_ms,
                "durationMs": last.ended_ms - last.started_ms,
                "recordsKept": last.records_kept,
                "recordsRemoved": last.records_removed,
                "bytesBefore": last.bytes_before,
                "bytesAfter": last.bytes_after,
                "firstDirtyOffset": last.first_dirty,
            },
        }


@dataclass
class ReplicaInfo:
    broker: int
    topic: str
    partition: int
    path: str
    size: int
    segments: int
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    high_watermark_source: str  # "checkpoint", "leader" or "own" (topic unknown to the metadata)
    role: str  # "leader", "follower" or "unassigned" (not in the topic's replica list)
    in_sync: bool | None
    cleaner: CleanerInfo | None = None  # compacted topics only

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "topic": self.topic,
            "partition": self.partition,
            "path": self.path,
            "size": self.size,
            "segments": self.segments,
            "logStartOffset": self.log_start_offset,
            "logEndOffset": self.log_end_offset,
            "highWatermark": self.high_watermark,
            "highWatermarkSource": self.high_watermark_source,
            "role": self.role,
            "inSync": self.in_sync,
        }
        if self.cleaner is not None:
            out["cleaner"] = self.cleaner.to_json()
        return out


def replica_dirs(datadir: DataDir, topic: str | None = None) -> list[tuple[int, str, int, str]]:
    """(broker, topic, partition, path) of every partition dir on disk, sorted."""
    out = [
        (broker, t, p, path)
        for broker in datadir.broker_ids_on_disk()
        for t, p, path in partition_dirs(datadir.broker_dir(broker))
        if topic is None or t == topic
    ]
    return sorted(out, key=lambda r: (r[1], r[2], r[0]))


def read_checkpoint(path: str, warn: Callable[[str], None] | None = None) -> dict[tuple[str, int], int]:
    """A log-dir checkpoint, or {} (with a warning) if it is missing or malformed."""
    try:
        return checkpoint.read_offsets(path)
    except (CorruptRecordError, ValueError, IndexError) as exc:
        if warn is not None:
            warn(f"ignoring {path}: {exc}")
        return {}


def log_end_offset(path: str) -> int:
    """The offset the next record would get, read without writing anything.

    Uses the storage layer (which trusts a clean writer's state file and the last index entry) and falls
    back to scanning the active segment when that meets a corrupt batch.
    """
    log = PartitionLog(path)
    bases = log.segment_bases
    if not bases:
        return 0
    try:
        return log.log_end_offset
    except CorruptRecordError:
        pass
    finally:
        log.close()
    next_offset = bases[-1]
    for item in scan.scan_log(layout.segment_path(path, bases[-1], LOG_SUFFIX)):
        if isinstance(item, scan.Stop):
            break
        next_offset = item.header.next_offset
    return next_offset


def _partition_role(state: ClusterState, topic: str, partition: int, broker: int) -> tuple[str, bool | None]:
    meta = state.topics.get(topic)
    if meta is None or partition >= len(meta.partitions):
        return "unassigned", None
    p = meta.partitions[partition]
    if broker not in p.replicas:
        return "unassigned", None
    return ("leader" if p.leader == broker else "follower"), broker in p.isr


def describe_log_dirs(
    datadir: DataDir,
    topic: str | None = None,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ReplicaInfo]:
    """One ReplicaInfo per partition dir on disk (optionally of one topic)."""
    if not os.path.isdir(datadir.root):
        raise NotFoundError(
            f"data dir {datadir.root} does not exist", hint="pass --data-dir or set KCLI_DATA_DIR"
        )
    state = Metadata(datadir).load()
    dirs = replica_dirs(datadir, topic)
    if topic is not None and not dirs and topic not in state.topics:
        raise NotFoundError(f"topic {topic!r} does not exist and has no replica on disk")
    hw_files: dict[int, dict[tuple[str, int], int]] = {}
    start_files: dict[int, dict[tuple[str, int], int]] = {}
    ends: dict[tuple[int, str, int], int] = {}
    infos = []
    for broker, t, p, path in dirs:
        if broker not in hw_files:
            bdir = datadir.broker_dir(broker)
            hw_files[broker] = read_checkpoint(os.path.join(bdir, checkpoint.HIGH_WATERMARK), warn)
            start_files[broker] = read_checkpoint(os.path.join(bdir, checkpoint.LOG_START), warn)
        bases = layout.log_bases(path)
        end = ends[(broker, t, p)] = log_end_offset(path)
        start = max(bases[0] if bases else end, start_files[broker].get((t, p), 0))
        size = sum(os.path.getsize(layout.segment_path(path, b, LOG_SUFFIX)) for b in bases)
        role, in_sync = _partition_role(state, t, p, broker)
        infos.append(
            ReplicaInfo(broker, t, p, path, size, len(bases), min(start, end), end, -1, "", role, in_sync)
        )
        if progress is not None:
            progress(1)
    for info in infos:
        key = (info.topic, info.partition)
        if key in hw_files[info.broker]:
            info.high_watermark, info.high_watermark_source = hw_files[info.broker][key], "checkpoint"
            continue
        meta = state.topics.get(info.topic)
        if meta is not None and info.partition < len(meta.partitions):
            leader = meta.partitions[info.partition].leader
            leader_end = ends.get((leader, info.topic, info.partition))
            if leader_end is None:
                leader_dir = datadir.partition_dir(leader, info.topic, info.partition)
                leader_end = log_end_offset(leader_dir) if os.path.isdir(leader_dir) else 0
            info.high_watermark, info.high_watermark_source = min(leader_end, info.log_end_offset), "leader"
        else:
            info.high_watermark, info.high_watermark_source = info.log_end_offset, "own"
    _add_cleaner_info(datadir, state, infos)
    return infos


def _add_cleaner_info(datadir: DataDir, state: ClusterState, infos: list[ReplicaInfo]) -> None:
    """Fill in the cleaning of the replicas of compacted topics, read without a lock.  A pass is bounded
    by the high watermark while the replica's broker runs (as its cleaner is), by the log end otherwise
    (as `kcli topic compact` is)."""
    configs = {name: log_config(state, meta) for name, meta in state.topics.items()}
    compacted = {name: config for name, config in configs.items() if config.compact}
    if not any(info.topic in compacted for info in infos):
        return
    live = set(datadir.live_brokers())
    statuses: dict[int, dict[tuple[str, int], CleanerStatus]] = {}
    now = now_ms()
    for info in infos:
        if info.topic not in compacted:
            continue
        if info.broker not in statuses:
            statuses[info.broker] = read_status(datadir.broker_dir(info.broker))
        config = compacted[info.topic]
        log = PartitionLog(info.path, config)
        try:
            todo = replica_cleanable(log, config, info.high_watermark if info.broker in live else None, now)
        finally:
            log.close()
        status = statuses[info.broker].get((info.topic, info.partition), CleanerStatus(None, None))
        info.cleaner = CleanerInfo(None if todo is None else todo.first_dirty,
                                   None if todo is None else todo.dirty_ratio,
                                   None if todo is None else todo.cleanable_bytes, status)


def log_dirs_json(datadir: DataDir, infos: list[ReplicaInfo]) -> dict[str, object]:
    """Shaped like Kafka's ``kafka-log-dirs --describe`` output: brokers, each with its log dir."""
    brokers = []
    for broker in datadir.broker_ids_on_disk():
        brokers.append(
            {
                "broker": broker,
                "logDir": datadir.broker_dir(broker),
                "partitions": [i.to_json() for i in infos if i.broker == broker],
            }
        )
    return {"version": 1, "brokers": brokers}
