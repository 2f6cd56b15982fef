"""Compacting a topic straight on the data directory (``kcli topic compact``), with no broker running.

Each partition is cleaned in one embedded write session (:class:`PartitionWriter`: the partition lock,
then the replica locks), so no producer writes meanwhile.  The leader's replica gets one cleaner pass below
min(high watermark, last stable offset); each in-sync follower written in the session is then made equal
to the cleaned leader by emptying it down to the leader's log start and copying the leader's batches
(offsets and leader epochs kept), so replicas agree byte for byte.  A crash during that copy leaves an
in-sync follower short, which the next writer's session brings level as after any interrupted write.

While brokers run, the brokers compact their own replicas (``log.cleaner.enable``); there is no Kafka API
to ask for a pass, and commands never write behind a live broker's back, so this refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from kcli.cluster.datadir import DataDir
from kcli.errors import UnavailableError, UsageError
from kcli.storage.cleaner import CleanResult
from kcli.storage.cleaner_status import LastPass, pass_ended, pass_started
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog

if TYPE_CHECKING:
    from kcli.replica.writer import PartitionWriter


@dataclass(frozen=True)
class Compacted:
    """What compacting one partition did."""

    topic: str
    partition: int
    leader: Pass
    followers: list[int]  # the followers brought to the leader's bytes


def check_compactable(datadir: DataDir, topic: str) -> int:
    """The partition count of ``topic``, once it is known to be compacted and no broker runs; UsageError
    otherwise (exit 2), NotFoundError for an unknown topic."""
    from kcli.cluster.configs import log_config
    from kcli.cluster.metadata import Metadata

    running = datadir.live_brokers()
    if running:
        raise UsageError(
            f"broker(s) {', '.join(map(str, running))} running: they compact {topic!r} on their own schedule "
            f"and no Kafka API asks for a pass; to make them clean sooner: kcli config alter --topic {topic} "
            f"--set min.cleanable.dirty.ratio=0.01 (or max.compaction.lag.ms=0)"
        )
    state = Metadata(datadir).ensure()
    meta = state.topic(topic)
    if not log_config(state, meta).compact:
        raise UsageError(f"topic {topic!r} is not compacted: its cleanup.policy does not hold compact",
                         hint=f"kcli config alter --topic {topic} --set cleanup.policy=compact")
    return len(meta.partitions)


def leader_bytes(datadir: DataDir, topic: str, partition: int) -> int:
    """The bytes of the partition's leader replica (what a progress bar counts against)."""
    from kcli.cluster.metadata import Metadata
    from kcli.storage.log import PartitionLog

    meta = Metadata(datadir).load().partition(topic, partition)
    if meta.leader < 0:
        return 0
    log = PartitionLog(datadir.partition_dir(meta.leader, topic, partition))
    try:
        return log.size_bytes()
    finally:
        log.close()


@dataclass(frozen=True)
class Pass:
    """One cleaner pass over one replica, with its size around it."""

    result: CleanResult
    bytes_before: int
    bytes_after: int
    dirty_ratio: float  # after the pass


def clean_pass(log: PartitionLog, config: LogConfig, *, upper: int, now_ms: int, max_map_bytes: int,
               checkpoint_lock: AbstractContextManager[object],
               progress: Callable[[int], None] | None = None) -> Pass:
    """One cleaner pass over ``log`` (open for append, its replica lock held) below ``upper``."""
    from kcli.storage.cleaner import clean, cleanable

    before = log.size_bytes()
    result = clean(log, config, upper=upper, now_ms=now_ms, max_map_bytes=max_map_bytes, progress=progress,
                   checkpoint_lock=checkpoint_lock)
    ratio = cleanable(log, config, upper=upper, now_ms=now_ms).dirty_ratio
    return Pass(result, before, log.size_bytes(), ratio)


_P = TypeVar("_P", bound="Pass | None")


def recorded_pass(datadir: DataDir, broker: int, topic: str, partition: int,
                  run: Callable[[], _P]) -> _P:
    """``run`` one pass over broker ``broker``'s replica, marked running in that broker folder's
    ``cleaner-status.json`` meanwhile and recorded there as its last pass after (what ``kcli log-dirs``
    shows); a pass that fails or does nothing (None) only clears the mark."""
    from kcli.storage.log import now_ms

    home = datadir.broker_dir(broker)
    started = now_ms()
    pass_started(home, topic, partition, started, datadir.checkpoint_lock(broker))
    try:
        done = run()
    except BaseException:
        pass_ended(home, topic, partition, None, datadir.checkpoint_lock(broker))
        raise
    last = None if done is None else LastPass(
        started, now_ms(), done.result.records_kept, done.result.records_removed, done.bytes_before,
        done.bytes_after, done.result.first_dirty, done.result.latest_delete_horizon)
    pass_ended(home, topic, partition, last, datadir.checkpoint_lock(broker))
    return done


def level_followers(writer: PartitionWriter) -> None:
    """Bring every follower ``writer`` writes to its cleaned leader's bytes: emptied down to the leader's
    log start, then the leader's batches copied (a cleaned log differs below the cleaned point, so no
    prefix of the follower can be trusted to match without reading it whole).  Cleaning each follower
    with the leader's pass parameters instead would cost a whole pass per follower (its map, then a
    rewrite of its clean part), where this copy of the result costs a few percent of one; and followers'
    segment boundaries, on which a pass's groups and the empty batches it keeps depend, need not match
    the leader's, so their batches could differ."""
    from kcli.replica.checkpoints import level_replica

    leader = writer.leader
    for broker, follower in writer.logs[1:]:
        follower.truncate_fully(leader.log_start_offset)
        level_replica(writer.datadir, broker, writer.topic, writer.partition, leader, follower)


def compact_partition(datadir: DataDir, topic: str, partition: int, now_ms: int,
                      progress: Callable[[int], None] | None = None) -> Compacted:
    """One cleaner pass over the partition's leader replica, then its in-sync followers made equal to it."""
    from kcli.cluster.configs import broker_value, log_config
    from kcli.cluster.metadata import Metadata
    from kcli.replica.writer import PartitionWriter

    state = Metadata(datadir).ensure()
    meta = state.partition(topic, partition)
    if meta.leader < 0:
        raise UnavailableError(f"{topic}-{partition} has no leader", hint="run `kcli leader-election`")
    config = log_config(state, state.topic(topic))
    map_bytes = int(broker_value(state, "log.cleaner.dedupe.buffer.size", meta.leader))  # type: ignore[call-overload]
    writer = PartitionWriter(datadir, topic, partition, meta, config)
    try:
        leader = writer.leader
        done = recorded_pass(datadir, meta.leader, topic, partition, lambda: clean_pass(
            leader, config, upper=min(leader.log_end_offset, leader.last_stable_offset()), now_ms=now_ms,
            max_map_bytes=map_bytes, checkpoint_lock=datadir.checkpoint_lock(meta.leader), progress=progress))
        level_followers(writer)
        followers = writer.followers
    finally:
        writer.close(durable=True)
    return Compacted(topic, partition, done, followers)
