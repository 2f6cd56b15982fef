"""The partitions this broker leads, kept open for as long as it leads them.

For each partition whose metadata leader is this broker, the broker holds one write session
(:class:`~kcli.replica.writer.PartitionWriter`, the same code embedded writes use) on its own replica
and on the in-sync replicas of *stopped* brokers, each under that replica folder's lock, so embedded
writers in other processes wait or time out instead of writing behind the broker's back.  Running
followers fetch (:mod:`kcli.broker.replication`) and the leader tracks how far each got
(:mod:`kcli.broker.isr`): it shrinks and expands the ISR in the metadata, fenced by its leader epoch, and
advances the high watermark, below which consumers read and above which acks=all waits.  Reads go through
the same open leader log, under the same per-partition mutex as appends, because a ``PartitionLog`` is
not safe to share between threads otherwise.

Leadership is fenced by leader epoch, not by a lock: a broker holds no lock its successor needs (the new
leader writes its own replica folder), and right before each append, and again before acknowledging it,
the leader checks that the metadata on disk still names it leader in its epoch (a stat of the metadata
files; a reload only when they changed).  A leader that hung while the controller moved its leadership
away therefore refuses its clients when it wakes, and then follows the new leader, truncating by epoch.

The set follows the metadata: topics created, deleted or re-assigned after start, and leaderships moved
by the controller, are picked up when ``cluster/metadata.log`` (or its snapshot) changes, checked on
every lookup miss and by the broker's maintenance tick.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from kcli.broker.isr import ReplicaTracker
from kcli.cluster.configs import hosted_configs
from kcli.cluster.controller import alter_isr, hand_over, led_by
from kcli.cluster.datadir import DataDir
from kcli.cluster.liveness import BrokerStates, still_stopped
from kcli.cluster.metadata import LOG_NAME, SNAPSHOT_NAME, ClusterState, Metadata, PartitionMeta
from kcli.errors import KcliError, LockTimeoutError, StorageError
from kcli.protocol import ErrorCode
from kcli.protocol.error_codes import ApiError
from kcli.replica.checkpoints import checkpointed_high_watermark
from kcli.replica.compaction import Pass, clean_pass, level_followers
from kcli.replica.writer import PartitionWriter
from kcli.storage import records
from kcli.storage.cleaner import Cleanable, cleanable
from kcli.storage.config import LogConfig
from kcli.storage.divergence import end_offset_for_epoch
from kcli.storage.log import now_ms
from kcli.storage.producer_snapshot import SnapshotEntry
from kcli.storage.txnindex import AbortedTxn

if TYPE_CHECKING:
    from kcli.broker.replication import Followers

log = logging.getLogger("kcli.broker")

# ListOffsets' special timestamps (Kafka's ListOffsetsRequest constants)
EARLIEST, LATEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -2, -1, -3, -4
DEFAULT_REPLICA_LAG_TIME_MS = 30000  # Kafka's replica.lag.time.max.ms
# how long a full disk may keep refusing a led partition's writes before its leadership moves away
# (a failing disk, EIO, moves it at once): space often comes back within seconds
STORAGE_FAILURE_GRACE = 5.0

# (inode, size, mtime) of each metadata file, None where it is absent: changes when the metadata does
MetadataStamp = tuple[tuple[int, int, int] | None, ...]
# (leader, leader epoch, sorted configs) of a led partition: a change reopens its write session
Signature = tuple[int, int, tuple[tuple[str, object], ...]]
# the partitions this broker should lead: (topic, partition) -> (its metadata, its topic's configs)
Wanted = dict[tuple[str, int], tuple[PartitionMeta, dict[str, object]]]


class OffsetOutOfRange(ApiError):
    """A read outside the log: the answer carries the log start, where a client may start over."""

    def __init__(self, offset: int, log_start: int, log_end: int) -> None:
        super().__init__(ErrorCode.OFFSET_OUT_OF_RANGE, f"offset {offset} is outside {log_start}..{log_end}")
        self.log_start = log_start


class Read(NamedTuple):
    """A consumer's read of a led partition (:meth:`LedPartition.read`)."""

    high_watermark: int
    last_stable_offset: int
    log_start: int
    data: bytes
    aborted: list[AbortedTxn] | None  # read_committed's: the aborted transactions ``data`` overlaps


class LedPartition:
    """One led partition: its write session, its followers' progress, and the mutex every access takes.

    ``metadata`` is where ISR changes are recorded; ``wake`` tells long-polling fetches that something
    became readable (an append for followers, a high watermark move for consumers)."""

    def __init__(
        self,
        topic: str,
        partition: int,
        meta: PartitionMeta,
        config: LogConfig,
        writer: PartitionWriter,
        metadata: Metadata | None = None,
        hw: int | None = None,
        lag_time: float = DEFAULT_REPLICA_LAG_TIME_MS / 1000,
        wake: Callable[[], None] | None = None,
        still_leader: Callable[[], bool] | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.meta = meta
        self.config = config
        self.writer = writer
        self.metadata = metadata
        self.mutex = threading.Lock()
        self.committed = threading.Condition(self.mutex)  # notified when the high watermark moves
        self.closed = False
        self.deposed = False  # the metadata moved the leadership on; we learnt it before the refresh did
        self.draining = False
        self.dirty = False
        leo = writer.leader.log_end_offset
        self.tracker = ReplicaTracker(
            meta.leader, meta.isr, min(hw if hw is not None else leo, leo), lag_time, time.monotonic()
        )
        self.epoch_start = leo  # where this leadership's epoch starts in the log
        self._wake = wake or (lambda: None)
        self._still_leader = still_leader or (lambda: True)
        self._isr_pending = False
        self.storage_error: StorageError | None = None  # the last failed write of a failing streak
        self._failing_since = 0.0
        self._unwritable: set[int] = set()  # stopped brokers whose replica someone else holds
        self._follower_starts: dict[int, int] = {}  # the log start each running follower last reported
        with self.mutex:
            self._advance()

    @property
    def leader_epoch(self) -> int:
        return self.meta.leader_epoch

    @property
    def high_watermark(self) -> int:
        return self.tracker.hw

    def _check_open(self) -> None:
        # closed while the caller waited for the mutex (leadership moved or topic went), or found deposed
        if self.closed or self.deposed:
            raise ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)

    def _fence(self) -> None:
        """Refuse to go on unless the metadata still names us leader in our epoch (mutex held).  Asked
        right before an append and again right before acknowledging it: a leader that hung while the
        controller moved its leadership finds out here, even before its metadata refresh does, and its
        clients get NOT_LEADER_OR_FOLLOWER (their next Metadata request names the new leader)."""
        if self.deposed or not self._still_leader():
            self.deposed = True  # every later request is refused too; the next refresh closes the session
            self.committed.notify_all()
            raise ApiError(
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
                f"leader epoch {self.meta.leader_epoch} of broker {self.meta.leader} is over",
            )

    def _advance(self) -> None:
        """Recompute the high watermark (mutex held); wake whoever waits for it when it moved."""
        before = self.tracker.hw
        if (
            self.tracker.high_watermark(self.writer.leader.log_end_offset, set(self.writer.followers))
            > before
        ):
            self.committed.notify_all()
            self._wake()

    # ------------------------------------------------------------ produce

    def append(self, batches: list[memoryview]) -> tuple[int, int, int, int]:
        """Append already-validated batches; returns (base offset, last offset, log append time or -1,
        log start)."""
        with self.mutex:
            self._check_open()
            if self.draining:
                raise ApiError(
                    ErrorCode.NOT_LEADER_OR_FOLLOWER, "leadership is moving (broker shutdown)"
                )
            self._fence()
            base = last = -1
            for batch in batches:
                header = records.parse_header(batch)
                try:
                    # a retried idempotent batch returns its first offset; a SequenceError goes back to the
                    # client as its code (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH)
                    offset = self.writer.append(batch)
                except StorageError as exc:  # nothing of it was kept: say so at once
                    self._storage_failed(exc)
                    raise
                self.dirty = True
                self.storage_error = None
                if base < 0:
                    base = offset
                last = offset + header.last_offset_delta
            append_time = -1
            if self.config.log_append_time:
                stored = self.writer.leader.read(base, 1)
                append_time = records.parse_header(stored).max_timestamp if stored else now_ms()
            self._fence()  # we may have hung between the first check and the write: no answer then
            self._advance()
            return base, last, append_time, self.writer.leader.log_start_offset

    def write_marker(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int) -> int:
        """Append a transaction's COMMIT or ABORT marker (skipped when the producer has no open transaction
        here: a marker written again after a coordinator crash is a no-op).  Returns the offset the high
        watermark must pass before the marker is safe -- the last offset in the log, marker or not, as a
        skipped one may still await replication -- for :meth:`wait_committed`.  Like Kafka, markers need
        min.insync.replicas, as an acks=all produce does."""
        with self.mutex:
            self._check_open()
            if self.draining:
                raise ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER, "leadership is moving (broker shutdown)")
            self.check_min_isr()
            self._fence()
            try:
                offset = self.writer.write_marker(producer_id, producer_epoch, commit, coordinator_epoch)
            except StorageError as exc:
                self._storage_failed(exc)
                raise
            if offset is not None:
                self.dirty = True
                self.storage_error = None
            self._fence()
            self._advance()
            return self.writer.leader.log_end_offset - 1

    def check_min_isr(self) -> None:
        """NOT_ENOUGH_REPLICAS unless min.insync.replicas are in sync (what acks=all writes need)."""
        if len(self.meta.isr) < self.config.min_insync_replicas:
            raise ApiError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"{len(self.meta.isr)} in-sync replicas, min.insync.replicas={self.config.min_insync_replicas}",
            )

    def _storage_failed(self, exc: StorageError) -> None:
        if self.storage_error is None:
            self._failing_since = time.monotonic()
            log.error("partition %s-%d: write failed: %s", self.topic, self.partition, exc)
        self.storage_error = exc

    def failing_storage(self, now: float) -> StorageError | None:
        """The error, when writes keep failing: a disk error (EIO), a failed write that could not be
        undone, or a full disk that stayed full for STORAGE_FAILURE_GRACE seconds."""
        with self.mutex:
            if self.writer.broken is not None:
                return self.writer.broken
            exc = self.storage_error
            if exc is None or (exc.out_of_space and now - self._failing_since < STORAGE_FAILURE_GRACE):
                return None
            return exc

    def wait_committed(self, offset: int, deadline: float) -> ErrorCode:
        """acks=all: wait until the high watermark passes ``offset`` (every in-sync replica has it)."""
        with self.committed:
            while True:
                if self.closed or self.deposed:
                    return ErrorCode.NOT_LEADER_OR_FOLLOWER
                if self.tracker.hw > offset:
                    if len(self.meta.isr) < self.config.min_insync_replicas:
                        return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
                    return ErrorCode.NONE
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ErrorCode.REQUEST_TIMED_OUT
                self.committed.wait(remaining)

    # ------------------------------------------------------------ fetch

    def read(self, offset: int, max_bytes: int, committed: bool = False) -> Read:
        """A consumer's read: whole batches from ``offset`` below the high watermark, or with
        ``committed`` (read_committed) below the last stable offset, with the aborted transactions those
        batches overlap (the client drops their batches).  An offset between that bound and the log end
        reads nothing yet."""
        with self.mutex:
            self._check_open()
            leader = self.writer.leader
            hw, lso = self.tracker.hw, self._last_stable()
            start, end = leader.log_start_offset, leader.log_end_offset
            if offset < start or offset > end:
                raise OffsetOutOfRange(offset, start, end)
            upper = lso if committed else hw
            data = leader.read(offset, max_bytes, upper=upper) if offset < upper and max_bytes > 0 else b""
            aborted = None
            if committed:
                aborted = leader.aborted_transactions(offset, _end_of(data, offset)) if data else []
            return Read(hw, lso, start, data, aborted)

    def _last_stable(self) -> int:
        """Kafka's last stable offset (mutex held): the first offset of the oldest open transaction, never
        past the high watermark.  read_committed consumers read below it; with no open transaction it is
        the high watermark."""
        first = self.writer.leader.first_unstable_offset()
        return self.tracker.hw if first is None else min(first, self.tracker.hw)

    def replica_read(self, follower: int, offset: int, max_bytes: int, log_start: int = -1
                     ) -> tuple[int, int, bytes, bool]:
        """A follower's Fetch: note its log end offset (= ``offset``) and its log start (for the low
        watermark DeleteRecords waits for), move the high watermark, and return (high watermark, log
        start, batches up to our log end, whether it may rejoin the ISR)."""
        with self.mutex:
            self._check_open()
            if follower == self.meta.leader or follower not in self.meta.replicas:
                raise ApiError(
                    ErrorCode.NOT_LEADER_OR_FOLLOWER, f"broker {follower} is not a follower"
                )
            leader = self.writer.leader
            start, end = leader.log_start_offset, leader.log_end_offset
            if offset < start or offset > end:
                raise OffsetOutOfRange(offset, start, end)
            if follower in self.writer.followers:  # it fetches, so it runs: its folder is its own now
                self.writer.detach(follower)
            self.tracker.on_fetch(follower, offset, end, time.monotonic())
            if log_start >= 0 and self._follower_starts.get(follower) != log_start:
                self._follower_starts[follower] = log_start
                self.committed.notify_all()
            self._advance()
            data = leader.read(offset, max_bytes) if offset < end and max_bytes > 0 else b""
            joins = not self._isr_pending and self.tracker.may_join(follower, self.epoch_start)
            return self.tracker.hw, start, data, joins

    def epoch_end(self, epoch: int, follower: int = -1) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (epoch, end offset) of ``epoch`` in our log.  From a follower it is also
        the handshake that hands its replica folder back to it: we stop writing it before answering."""
        with self.mutex:
            self._check_open()
            if follower >= 0:
                if follower == self.meta.leader or follower not in self.meta.replicas:
                    raise ApiError(
                        ErrorCode.NOT_LEADER_OR_FOLLOWER, f"broker {follower} is not a follower"
                    )
                if follower in self.writer.followers:
                    self.writer.detach(follower)
                    log.info(
                        "partition %s-%d: broker %d runs again and takes over its replica",
                        self.topic,
                        self.partition,
                        follower,
                    )
                self.tracker.restart(follower, time.monotonic())
            leader = self.writer.leader
            return end_offset_for_epoch(leader.epochs(), leader.log_end_offset, epoch)

    def list_offset(self, timestamp: int, committed: bool = False) -> tuple[int, int]:
        """Kafka's ListOffsets for one partition: (timestamp, offset); (-1, -1) when no record is that new.
        Consumers see the log up to the high watermark (read_committed ones: the last stable offset), so
        that is where "latest" is, and a record found past it is not an answer yet (as Kafka's
        ReplicaManager: (-1, -1), also for MAX_TIMESTAMP).  Without tiered storage the local log is the
        whole log, so EARLIEST_LOCAL is EARLIEST."""
        with self.mutex:
            self._check_open()
            leader = self.writer.leader
            visible = self._last_stable() if committed else self.tracker.hw
            if timestamp in (EARLIEST, EARLIEST_LOCAL):
                return -1, leader.log_start_offset
            if timestamp == LATEST:
                return -1, visible
            if timestamp == MAX_TIMESTAMP:
                newest = leader.max_timestamp_offset()
                return newest if newest is not None and newest[1] < visible else (-1, -1)
            if timestamp < 0:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"unsupported special timestamp {timestamp}")
            found = leader.offset_for_timestamp(timestamp)
            if found is None or found >= visible:
                return -1, -1
            return _record_timestamp(leader.read(found, 1), found, timestamp), found

    def producers(self) -> list[SnapshotEntry]:
        """The leader's active producers, one entry each (its newest batch's), for DescribeProducers."""
        with self.mutex:
            self._check_open()
            newest = {e.producer_id: e for e in self.writer.leader.producers.entries()}
        return list(newest.values())

    # ------------------------------------------------------------ DeleteRecords

    def delete_records(self, offset: int, deadline: float) -> int:
        """Move the log start to ``offset`` (-1: the high watermark) on our replica and those we write,
        then wait until every in-sync replica has it: the low watermark, which is returned.  As in Kafka:
        OFFSET_OUT_OF_RANGE past the high watermark, REQUEST_TIMED_OUT when a follower does not follow
        in time (the leader's start has moved all the same)."""
        with self.committed:
            self._check_open()
            self._fence()
            try:
                target = self.writer.delete_records(offset, self.tracker.hw)
            except StorageError as exc:
                self._storage_failed(exc)
                raise
            self._wake()  # followers waiting in a fetch learn the new start from its answer
            while True:
                if self.closed or self.deposed:
                    raise ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
                low = self._low_watermark()
                if low >= target:
                    return low
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ApiError(
                        ErrorCode.REQUEST_TIMED_OUT,
                        f"the in-sync replicas' log start is {low}, not yet {target}",
                    )
                self.committed.wait(remaining)

    def _low_watermark(self) -> int:
        """The smallest log start of the in-sync replicas (mutex held): ours and those we write, and what
        each running follower reported in its last fetch (-1 until it did)."""
        low = self.writer.leader.log_start_offset
        for broker in self.meta.isr:
            if broker == self.meta.leader:
                continue
            if broker in self.writer.followers:
                low = min(low, dict(self.writer.logs)[broker].log_start_offset)
            else:
                low = min(low, self._follower_starts.get(broker, -1))
        return low

    # ------------------------------------------------------------ the ISR

    def update_meta(self, meta: PartitionMeta) -> None:
        """The metadata changed the ISR (ours or the controller's doing) or the replica set (a
        reassignment): follow it."""
        with self.mutex:
            if self.closed or meta.version < self.meta.version:
                return  # an older view than ours: a refresh and an ISR change crossed
            self.meta = meta
            self.tracker.isr = list(meta.isr)
            for broker in self.writer.followers:
                if broker not in meta.isr:
                    self.writer.detach(broker)
            for broker in list(self.tracker.progress):
                if broker not in meta.replicas:
                    self.tracker.forget(broker)
            self._advance()
            self.committed.notify_all()

    def maintain(self, states: BrokerStates) -> None:
        """fsync what flush.ms says is due, write the replicas of stopped in-sync brokers ourselves, and
        drop from the ISR followers that have lagged longer than replica.lag.time.max.ms."""
        with self.mutex:
            if self.closed or self.deposed:
                return
            for _broker, replica in self.writer.logs:
                try:
                    replica.flush_if_due()
                except OSError as exc:
                    self._storage_failed(StorageError.of(exc, replica.active.log_path))
            for broker in self.meta.isr:
                if (
                    broker != self.meta.leader
                    and broker not in self.writer.followers
                    and still_stopped(self.writer.datadir, broker, states)
                ):
                    try:
                        copied = self.writer.attach(broker)
                    except LockTimeoutError as exc:  # a deposed leader (hung) or an embedded writer has it
                        if broker not in self._unwritable:
                            self._unwritable.add(broker)
                            log.warning("partition %s-%d: %s", self.topic, self.partition, exc)
                        continue
                    except (KcliError, OSError) as exc:
                        log.warning(
                            "partition %s-%d: cannot write stopped broker %d's replica: %s",
                            self.topic,
                            self.partition,
                            broker,
                            exc,
                        )
                        continue
                    self._unwritable.discard(broker)
                    self.tracker.forget(broker)
                    self.dirty = True
                    log.info(
                        "partition %s-%d: broker %d is stopped; writing its replica here (%d records copied)",
                        self.topic,
                        self.partition,
                        broker,
                        copied,
                    )
            self._advance()
            lagging = self.tracker.lagging(time.monotonic(), set(self.writer.followers))
            if not lagging or self._isr_pending:
                return
            isr = [b for b in self.meta.isr if b not in lagging]
        self._change_isr(
            isr,
            f"shrunk: {', '.join(map(str, lagging))} lagged more than {self.tracker.lag_time * 1000:.0f} ms",
        )

    def expand_isr(self, follower: int) -> None:
        """``follower`` caught up: add it to the ISR (called outside the mutex: this writes the metadata)."""
        with self.mutex:
            if self.closed or self._isr_pending or follower in self.meta.isr:
                return
            isr = self.meta.isr + [follower]
        self._change_isr(isr, f"expanded: broker {follower} caught up")

    def _change_isr(self, isr: list[int], why: str) -> None:
        if self.metadata is None:
            return
        with self.mutex:
            if self.closed or self._isr_pending:
                return
            self._isr_pending = True
            view = self.meta
        recorded = None
        try:
            recorded = alter_isr(self.metadata, self.topic, self.partition, view, isr)
        except (KcliError, OSError) as exc:
            log.error("partition %s-%d: recording ISR %s failed: %s", self.topic, self.partition, isr, exc)
        finally:
            with self.mutex:
                self._isr_pending = False
        if recorded is None:
            return
        if sorted(recorded.isr) == sorted(isr):
            log.info(
                "partition %s-%d: ISR %s -> %s",
                self.topic,
                self.partition,
                ",".join(map(str, recorded.isr)),
                why,
            )
        else:  # the controller changed the partition since our view: follow it, decide again later
            log.info(
                "partition %s-%d: ISR stays %s (the partition changed meanwhile)",
                self.topic,
                self.partition,
                ",".join(map(str, recorded.isr)),
            )
        self.update_meta(recorded)

    # ------------------------------------------------------------ controlled shutdown

    def drain(self) -> None:
        """Refuse new produce requests: leadership is about to move."""
        with self.mutex:
            self.draining = True

    def followers_caught_up(self, running: set[int]) -> bool:
        """Whether every running in-sync follower has fetched everything we have."""
        with self.mutex:
            end = self.writer.leader.log_end_offset
            for b in self.meta.isr:
                if b == self.meta.leader or b in self.writer.followers or b not in running:
                    continue
                if (self.tracker.leo(b) or -1) < end:
                    return False
            return True

    def replica_leo(self, broker: int) -> int:
        """A replica's log end offset as we know it (ours, a replica we write, a follower's last fetch)."""
        with self.mutex:
            if broker == self.meta.leader or broker in self.writer.followers:
                return self.writer.leader.log_end_offset
            leo = self.tracker.leo(broker)
            return -1 if leo is None else leo

    # ------------------------------------------------------------ upkeep

    def checkpoint(self) -> None:
        with self.mutex:
            if self.closed or not self.dirty:
                return
            self.writer.checkpoint(self.tracker.hw)
            self.dirty = False

    def enforce_retention(self) -> None:
        """Delete segments past retention even when nothing is written (a one-shot writer does this at
        close; a broker may hold an idle partition for days)."""
        with self.mutex:
            if self.closed:
                return
            for _broker, replica in self.writer.logs:
                if replica.delete_old_segments():
                    self.dirty = True  # the log start moved: the next checkpoint records it

    # ------------------------------------------------------------ compaction

    def _cleaning(self) -> bool:
        """Whether the cleaner may work on this partition now (mutex held)."""
        return self.config.compact and not (self.closed or self.deposed or self.writer.broken is not None)

    def cleanable(self, now: int) -> Cleanable | None:
        """What a cleaner pass could do now below min(high watermark, last stable offset); None when the
        topic is not compacted or the partition is no longer ours."""
        with self.mutex:
            if not self._cleaning():
                return None
            return cleanable(self.writer.leader, self.config, upper=self._last_stable(), now_ms=now)

    def clean(self, now: int, max_map_bytes: int) -> Pass | None:
        """One cleaner pass under the mutex appends take (produce waits for the pass, not longer), then
        the stopped followers written here brought to the cleaned leader's bytes."""
        with self.mutex:
            if not self._cleaning():
                return None
            done = clean_pass(self.writer.leader, self.config, upper=self._last_stable(), now_ms=now,
                              max_map_bytes=max_map_bytes,
                              checkpoint_lock=self.writer.datadir.checkpoint_lock(self.meta.leader))
            level_followers(self.writer)
            self.dirty = True
            return done

    def close(self) -> None:
        with self.mutex:
            if self.closed:
                return
            self.closed = True
            self.committed.notify_all()
            self.writer.close(durable=True, hw=self.tracker.hw)


def _end_of(data: bytes, offset: int) -> int:
    """The offset after the last batch of ``data`` (``offset`` when empty), stepping over batch lengths
    and reading only the last batch's header."""
    pos = last = 0
    while (peeked := records.peek_size(data, pos)) is not None and pos + peeked[1] <= len(data):
        last, pos = pos, pos + peeked[1]
    if pos == 0:
        return offset
    header = records.parse_header(data, last)
    return header.base_offset + header.last_offset_delta + 1


def _record_timestamp(data: bytes, offset: int, fallback: int) -> int:
    """The timestamp of the record at ``offset`` in the batch that ``data`` starts with."""
    try:
        for rec in records.decode_records(data, 0, verify_crc=False):
            if rec.offset >= offset:
                return rec.timestamp
    except KcliError:
        pass
    return fallback


def _signature(meta: PartitionMeta, configs: dict[str, object]) -> Signature:
    """What, when changed in the metadata, requires reopening the write session (an ISR or replica-set
    change does not: the led partition follows it in place)."""
    return (meta.leader, meta.leader_epoch, tuple(sorted(configs.items())))


class LedPartitions:
    """Every partition this broker leads, following the metadata; and, through ``followers``, every
    partition it follows.

    ``states`` gives a recent look at which brokers run (the broker's maintenance refreshes it);
    ``lag_time`` is replica.lag.time.max.ms in seconds."""

    def __init__(
        self,
        datadir: DataDir,
        broker_id: int,
        lag_time: float = DEFAULT_REPLICA_LAG_TIME_MS / 1000,
        followers: Followers | None = None,
        states: Callable[[], BrokerStates] | None = None,
    ) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self.lag_time = lag_time
        self.followers = followers
        self.states = states or (lambda: BrokerStates(frozenset(), frozenset(), frozenset()))
        self.metadata = Metadata(datadir)
        self.state = ClusterState()
        self._stamp: MetadataStamp | None = None
        self._led: dict[tuple[str, int], LedPartition] = {}
        self._signatures: dict[tuple[str, int], Signature] = {}
        self._waiting: dict[tuple[str, int], str] = {}
        self._fenced: set[str] = set()
        self._on_disk: tuple[MetadataStamp, ClusterState] | None = None
        self._reload = threading.RLock()
        self._appended = threading.Condition()
        self._appends = 0
        self.stopping = False

    # ------------------------------------------------------------ following the metadata

    def _metadata_stamp(self) -> MetadataStamp:
        out: list[tuple[int, int, int] | None] = []
        for name in (LOG_NAME, SNAPSHOT_NAME):
            try:
                st = os.stat(os.path.join(self.datadir.cluster_dir, name))
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _current(self, force: bool = False) -> tuple[MetadataStamp, ClusterState]:
        """(stamp, state) of the metadata as it is on disk now: a stat of its two files, and a reload only
        when they changed.  Stat first, then load: the state is never older than its stamp."""
        seen = self._on_disk
        stamp = self._metadata_stamp()
        if force or seen is None or seen[0] != stamp:
            seen = self._on_disk = (stamp, self.metadata.load())
        return seen

    def leads(self, topic: str, partition: int, epoch: int) -> bool:
        """Whether the metadata on disk still names this broker leader of ``topic-partition`` in ``epoch``
        (the fence a leader passes right before each append; safe from any thread)."""
        return led_by(self._current()[1], topic, partition, self.broker_id, epoch) is not None

    def refresh(self, force: bool = False, retry_waiting: bool = False) -> ClusterState:
        """Reload the metadata if its files changed, then open and close write sessions to match."""
        with self._reload:
            stamp, state = self._current(force)
            if force or stamp != self._stamp:
                self.state = state
                self._stamp = stamp
                self._sync()
            elif retry_waiting and self._waiting:
                self._sync()
            return self.state

    def _wanted(self) -> Wanted:
        if self.stopping:
            return {}
        return hosted_configs(
            self.state, self.broker_id, lambda key, meta: meta.leader == self.broker_id and key[0] not in self._fenced
        )

    def _sync(self) -> None:
        wanted = self._wanted()
        for key in list(self._led):
            entry = wanted.get(key)
            if entry is None or _signature(*entry) != self._signatures.get(key):
                self._close(key)
            else:
                self._led[key].update_meta(entry[0])
        for key in list(self._waiting):
            if key not in wanted:
                del self._waiting[key]
        if self.followers is not None:
            # before opening: a partition we now lead must no longer be open as a follower here
            self.followers.sync(self.state, wanted, self._fenced)
        for key, (meta, configs) in wanted.items():
            if key not in self._led:
                self._open(key, meta, configs)
        self._delete_unassigned(wanted)

    def _open(self, key: tuple[str, int], meta: PartitionMeta, configs: dict[str, object]) -> None:
        topic, p = key
        config = LogConfig.from_topic(configs)
        states = self.states()
        followers = [b for b in meta.isr if b != self.broker_id and still_stopped(self.datadir, b, states)]
        try:
            writer = PartitionWriter(self.datadir, topic, p, meta, config, followers)
        except LockTimeoutError as exc:  # our replica is being written by an embedded writer
            if self._waiting.get(key) != str(exc):
                log.warning("partition %s-%d: %s; serving it once that process lets go", topic, p, exc)
            self._waiting[key] = str(exc)
            return
        except (KcliError, OSError) as exc:
            if self._waiting.get(key) != str(exc):  # once per cause: the open is retried often
                log.warning("cannot open partition %s-%d yet: %s", topic, p, exc)
            self._waiting[key] = str(exc)
            return
        for problem in writer.problems:
            log.warning("recovered partition %s-%d: %s", topic, p, problem)
        self._waiting.pop(key, None)
        hw = self.followers.last_hw(key) if self.followers is not None else None
        if hw is None:
            hw = checkpointed_high_watermark(self.datadir, self.broker_id, topic, p)
        try:
            led = LedPartition(
                topic,
                p,
                meta,
                config,
                writer,
                self.metadata,
                hw or 0,
                self.lag_time,
                self.appended,
                lambda: self.leads(topic, p, meta.leader_epoch),
            )
        except BaseException:
            writer.close(durable=False)
            raise
        self._led[key] = led
        self._signatures[key] = _signature(meta, configs)
        log.info(
            "leading partition %s-%d (epoch %d, isr %s%s)",
            topic,
            p,
            meta.leader_epoch,
            meta.isr,
            f"; writing stopped brokers' replicas {followers} here" if followers else "",
        )

    def _close(self, key: tuple[str, int]) -> None:
        led = self._led.pop(key, None)
        self._signatures.pop(key, None)
        if led is None:
            return
        try:
            led.close()
        except (KcliError, OSError) as exc:
            log.error("closing partition %s-%d: %s", key[0], key[1], exc)
        log.info("stopped serving partition %s-%d", key[0], key[1])

    def _delete_unassigned(self, wanted: Wanted) -> None:
        """After a reassignment, delete the replicas of stopped brokers that no longer hold one of a
        partition we lead, under their replica locks (a running broker deletes its own)."""
        stopped = self.states().stopped
        for key in wanted:
            if key not in self._led:
                continue
            meta = self._led[key].meta
            for broker in stopped:
                path = self.datadir.partition_dir(broker, *key)
                if broker in meta.replicas or not os.path.isdir(path):
                    continue
                lock = self.datadir.replica_lock(broker, *key)
                if not lock.try_acquire():
                    continue  # someone still writes it: next time
                try:
                    shutil.rmtree(path, ignore_errors=True)
                finally:
                    lock.release()
                log.info("deleted broker %d's replica of %s-%d: no longer assigned", broker, *key)

    @contextmanager
    def fenced(self, topic: str) -> Iterator[None]:
        """Stop serving ``topic`` (releasing its locks) for the duration, e.g. while it is deleted."""
        with self._reload:
            self._fenced.add(topic)
            self._sync()
        try:
            yield
        finally:
            with self._reload:
                self._fenced.discard(topic)
            self.refresh(force=True)

    def close_all(self) -> None:
        """End every write session durably (fsync, checkpoints, clean-shutdown state) and free the locks;
        stop following."""
        with self._reload:
            self.stopping = True
            for key in list(self._led):
                self._close(key)
            if self.followers is not None:
                self.followers.close_all()
        self.wake()

    # ------------------------------------------------------------ lookups

    def get(self, topic: str, partition: int) -> LedPartition:
        """The led partition, or ApiError with the error code a client should see."""
        led = self._led.get((topic, partition))
        if led is not None:
            return led
        if self.stopping:
            raise ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER, "broker is shutting down")
        state = self.refresh(retry_waiting=True)
        led = self._led.get((topic, partition))
        if led is not None:
            return led
        meta = state.topics.get(topic)
        if meta is None or topic in self._fenced or not 0 <= partition < len(meta.partitions):
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if meta.partitions[partition].leader != self.broker_id:
            raise ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        holder = self._waiting.get((topic, partition), "")
        raise ApiError(ErrorCode.LEADER_NOT_AVAILABLE, holder or None)

    def led(self) -> list[LedPartition]:
        return list(self._led.values())

    @property
    def waiting(self) -> dict[tuple[str, int], str]:
        return dict(self._waiting)

    # ------------------------------------------------------------ upkeep

    def checkpoint(self) -> None:
        """fsync, retention and checkpoints for partitions written since the last call."""
        for led in self.led():
            try:
                led.checkpoint()
            except (KcliError, OSError) as exc:
                log.error("checkpoint of partition %s-%d failed: %s", led.topic, led.partition, exc)
        if self.followers is not None:
            self.followers.checkpoint()

    def maintain(self) -> None:
        """The leader's periodic ISR work for every led partition (see :meth:`LedPartition.maintain`),
        flush.ms for followed ones, and Kafka's answer to a log dir that keeps failing: the partitions on
        it go offline here and their leadership moves."""
        states = self.states()
        now = time.monotonic()
        for led in self.led():
            try:
                led.maintain(states)
            except (KcliError, OSError) as exc:
                log.error("replica upkeep of partition %s-%d failed: %s", led.topic, led.partition, exc)
            failure = led.failing_storage(now)
            if failure is not None:
                self._give_up(led, failure, set(states.running) - {self.broker_id})
        if self.followers is not None:
            self.followers.flush_if_due()

    def _give_up(self, led: LedPartition, failure: StorageError, live: set[int]) -> None:
        """Writes to ``led`` keep failing: move its leadership to a live in-sync follower, leaving the
        ISR (our replica rejoins once it has caught up, as a follower).  With none to take it, keep
        leading -- every write fails at once with KAFKA_STORAGE_ERROR until the disk takes writes again
        -- but reopen a session whose failed write could not be undone (recovery cuts what it left)."""
        key = (led.topic, led.partition)
        if not any(b in live for b in led.meta.isr if b != self.broker_id) and led.writer.broken is None:
            return  # nobody to hand it to
        try:
            moved = hand_over(self.metadata, self.broker_id, live, self.replica_leo, only={key}, failed=True)
        except (KcliError, OSError) as exc:
            log.error("partition %s-%d: moving its leadership away failed: %s", *key, exc)
            moved = []
        for election in moved:
            log.error("partition %s-%d: writes keep failing (%s): %s", *key, failure, election.describe())
        if moved:
            if self.followers is not None:
                self.followers.suspend(key)
            self.refresh(force=True)
        elif led.writer.broken is not None:
            with self._reload:
                self._close(key)
                self._waiting[key] = f"reopening after a failed write: {failure}"

    def drain(self, running: Callable[[], set[int]], timeout: float) -> set[int]:
        """Controlled shutdown, first half: refuse produce requests and give running in-sync followers up
        to ``timeout`` seconds to fetch everything, so the leadership moves without losing a record.
        ``running`` is asked again while we wait (a follower shutting down too is not waited for);
        returns its last answer."""
        led = self.led()
        for partition in led:
            partition.drain()
        deadline = time.monotonic() + timeout
        while True:
            live = running()
            if time.monotonic() >= deadline or all(p.followers_caught_up(live) for p in led):
                return live
            time.sleep(0.05)

    def replica_leo(self, topic: str, partition: int, broker: int) -> int:
        """A replica's log end offset as the leader of ``topic-partition`` here knows it (-1: unknown)."""
        led = self._led.get((topic, partition))
        return -1 if led is None else led.replica_leo(broker)

    def enforce_retention(self) -> None:
        for led in self.led():
            try:
                led.enforce_retention()
            except (KcliError, OSError) as exc:
                log.error("retention of partition %s-%d failed: %s", led.topic, led.partition, exc)

    # ------------------------------------------------------------ long polling

    @property
    def appends(self) -> int:
        """A counter that moves on every append: fetches read it before looking, then wait for it to move."""
        return self._appends

    def appended(self) -> None:
        with self._appended:
            self._appends += 1
            self._appended.notify_all()

    def wake(self) -> None:
        with self._appended:
            self._appended.notify_all()

    def wait_for_append(self, seen: int, timeout: float) -> None:
        with self._appended:
            if self._appends == seen and not self.stopping and timeout > 0:
                self._appended.wait(timeout)
