"""One write session on a partition: the leader's replica and the followers it writes itself.

Replication invariant (docs/design.md): an embedded write appends the same batch, with the same offsets
and leader epoch, to every in-sync replica while holding the partition lock, after first bringing any
lagging in-sync follower level with the leader (cut by leader epoch where it diverged, then copied; a
writer killed between replicas leaves one behind).  So in embedded mode the high watermark is the
leader's log end offset, and every in-sync replica agrees.

A replica whose broker is running is written by that broker alone (it follows its leader by fetching),
never by an embedded writer: an embedded writer drops such a follower from the ISR instead, and it rejoins
once it has caught up from a running leader.  The broker that leads a partition uses the same
:class:`PartitionWriter`, writing only its own replica and the in-sync replicas of stopped brokers.  Every
replica folder is written under its replica lock, so two writers never share one (kcli.cluster.datadir).
"""

from __future__ import annotations

from collections.abc import Iterable

from kcli.cluster.datadir import DataDir, FileLock
from kcli.cluster.metadata import Metadata, PartitionMeta
from kcli.errors import KcliError, OffsetOutOfRangeError, StorageError
from kcli.replica.checkpoints import (
    advance_log_start,
    follower_config,
    level_replica,
    recovery_point,
    write_checkpoints,
)
from kcli.storage import partition_metadata, records
from kcli.storage.config import LogConfig
from kcli.storage.divergence import divergence
from kcli.storage.log import PartitionLog


class PartitionWriter:
    """One write session on a partition: the leader's log and the open logs of the followers the session
    writes itself, each under its replica lock (:meth:`DataDir.replica_lock`).

    ``followers`` names them; None means an embedded session, which first takes the partition lock
    (embedded writers queue there), waits for replica locks, and applies the embedded rule: every in-sync
    follower whose broker is not running (a running one is dropped from the ISR, see the module
    docstring).  A broker's session (``followers`` given) never waits for a lock: a replica lock held by
    someone else -- an embedded writer, or a deposed leader that hangs -- raises LockTimeoutError at once,
    so the broker retries later instead of holding its locks while it waits.  ``lock_timeout`` overrides
    an embedded session's wait for the partition lock (0: do not wait)."""

    def __init__(self, datadir: DataDir, topic: str, partition: int, meta: PartitionMeta, config: LogConfig,
                 followers: Iterable[int] | None = None, lock_timeout: float | None = None) -> None:
        self.datadir = datadir
        self.topic = topic
        self.partition = partition
        self.epoch = meta.leader_epoch
        self.config = config
        self.lock: FileLock | None = None
        self._wait = datadir.lock_timeout if followers is None else 0.0
        self._replica_locks: dict[int, FileLock] = {}
        self.problems: list[str] = []
        self.logs: list[tuple[int, PartitionLog]] = []
        self.broken: StorageError | None = None  # a failed write that could not be undone
        self._id: str | None = None
        try:
            if followers is None:
                self.lock = datadir.partition_lock(topic, partition).acquire(lock_timeout)
                followers = self._embedded_followers(meta)
            self.leader = self._open(meta.leader, config)
            self.logs.append((meta.leader, self.leader))
            self.leader.record_epoch(self.epoch, self.leader.log_end_offset)
            for broker in followers:
                if broker != meta.leader:
                    self.attach(broker)
        except BaseException:
            for _broker, log in self.logs:
                log.close()
            self._let_go()
            raise

    def _embedded_followers(self, meta: PartitionMeta) -> list[int]:
        followers = [b for b in meta.isr if b != meta.leader]
        running = [b for b in followers if self.datadir.broker_lock(b).is_locked()]
        if running:
            from kcli.cluster.controller import alter_isr

            metadata = Metadata(self.datadir)
            current: PartitionMeta | None = meta
            while current is not None and any(b in current.isr for b in running):
                # refused while the partition changed since our view: then again from the view it returns
                isr = [b for b in current.isr if b not in running]
                answer = alter_isr(metadata, self.topic, self.partition, current, isr)
                current = None if answer is None or answer.version == current.version else answer
        return [b for b in followers if b not in running]

    def _open(self, broker: int, config: LogConfig) -> PartitionLog:
        """Take ``broker``'s replica lock, then open its log for appending."""
        lock = self.datadir.replica_lock(broker, self.topic, self.partition).acquire(self._wait)
        self._replica_locks[broker] = lock
        try:
            directory = self.datadir.partition_dir(broker, self.topic, self.partition)
            log = PartitionLog(directory, config)
            damage = log.open_for_append(recovery_point(self.datadir, broker, self.topic, self.partition))
            partition_metadata.ensure(directory, self._topic_id())
            self.problems += [str(d) for d in damage]  # told to the user as warnings
        except BaseException:
            self._unlock(broker)
            raise
        return log

    def _topic_id(self) -> str:
        """The topic's id from the cluster metadata (looked up once per session), "" if it is gone."""
        if self._id is None:
            topic = Metadata(self.datadir).load().topics.get(self.topic)
            self._id = topic.topic_id if topic is not None else ""
        return self._id

    def _let_go(self) -> None:
        """Release every replica lock, then the partition lock (the reverse of taking them)."""
        for broker in list(self._replica_locks):
            self._unlock(broker)
        if self.lock is not None:
            self.lock.release()

    def _unlock(self, broker: int) -> None:
        lock = self._replica_locks.pop(broker, None)
        if lock is not None:
            lock.release()

    @property
    def followers(self) -> list[int]:
        """The followers this session writes."""
        return [broker for broker, _log in self.logs[1:]]

    def attach(self, broker: int) -> int:
        """Start writing ``broker``'s replica: recover it, cut what diverged from the leader (by leader
        epoch), copy what it lacks.  Returns the records copied.  LockTimeoutError: someone else writes it."""
        log = self._open(broker, follower_config(self.config))
        try:
            cut = divergence(self.leader.epochs(), self.leader.log_end_offset, log.epochs(), log.log_end_offset)
            if cut < log.log_end_offset:
                log.truncate_to(cut)
            copied = level_replica(self.datadir, broker, self.topic, self.partition, self.leader, log)
        except BaseException:
            log.close()
            self._unlock(broker)
            raise
        self.logs.append((broker, log))
        return copied

    def detach(self, broker: int) -> None:
        """Stop writing ``broker``'s replica, leaving it as a clean writer would (its broker takes over)."""
        for i, (b, log) in enumerate(self.logs[1:], 1):
            if b == broker:
                del self.logs[i]
                log.flush()
                try:
                    write_checkpoints(self.datadir, broker, self.topic, self.partition, log, log.log_end_offset)
                    log.release()
                finally:
                    self._unlock(broker)
                return

    def append(self, batch: records.BytesLike) -> int:
        """Append to the leader, then the same bytes to each follower written here; returns the base offset.

        All or nothing across the replicas: when one of them fails (a full disk), the batch is cut from
        those that took it and StorageError is raised, so in-sync replicas never disagree silently.  If
        even that cut fails, the session refuses every further write (``broken``): reopening recovers.
        A batch an idempotent producer already stored (its retry) is not stored again: its original base
        offset is returned; one out of sequence raises SequenceError (see ProducerStates.check for the
        rest of Kafka's checks)."""
        if self.broken is not None:
            raise self.broken
        header = records.parse_header(batch)
        if self.config.compact and not header.is_control:  # only compacted topics pay for reading records
            from kcli.storage.cleaner import require_keys

            require_keys(batch, header, self.topic, self.partition)
        stored = self.leader.producers.check(header)
        if stored is not None:
            return stored
        return self._append(batch)

    def write_marker(self, producer_id: int, producer_epoch: int, commit: bool,
                     coordinator_epoch: int = 0) -> int | None:
        """End ``producer_id``'s transaction in this partition with a COMMIT or ABORT marker on every
        replica written here; returns its offset, or None when the producer has no transaction open here
        (its marker is written already, or it never wrote here), so writing markers again is harmless.
        ProducerFencedError for an epoch older than the open transaction's producer."""
        if self.broken is not None:
            raise self.broken
        if not self.leader.producers.check_marker(producer_id, producer_epoch):
            return None
        from kcli.storage.control import control_batch

        return self._append(control_batch(producer_id, producer_epoch, commit, coordinator_epoch))

    def _append(self, batch: records.BytesLike) -> int:
        info = self.leader.append(batch, self.epoch)
        if len(self.logs) > 1:
            if self.config.log_append_time:  # the leader stamped its own time: copy what it stored
                batch = self.leader.read(info.base_offset, 1)
            written = [self.leader]
            try:
                for _broker, follower in self.logs[1:]:
                    follower.append(batch, self.epoch, validate=False)
                    written.append(follower)
            except StorageError as exc:
                self._cut(written, info.base_offset, exc)
                raise
        return info.base_offset

    def delete_records(self, offset: int, hw: int | None = None) -> int:
        """DeleteRecords: move the log start of every replica written here to ``offset`` (-1: the high
        watermark ``hw``, by default the leader's log end as in embedded mode), checkpointed before the
        segments below it go.  Returns the leader's log start after it (an offset below it changes
        nothing, as in Kafka).  OffsetOutOfRangeError for an offset past the high watermark or negative."""
        hw = self.leader.log_end_offset if hw is None else hw
        target = hw if offset == -1 else offset
        if not 0 <= target <= hw:
            raise OffsetOutOfRangeError(
                f"{self.topic}-{self.partition}: cannot delete records before offset {offset}: "
                f"the high watermark is {hw}"
            )
        for broker, log in self.logs:
            advance_log_start(self.datadir, broker, self.topic, self.partition, log, target, hw)
        return self.leader.log_start_offset

    def files(self) -> list[str]:
        """The segment files this session appends to (earlier ones were fsynced when they rolled)."""
        return [log.active.log_path for _broker, log in self.logs]

    def _cut(self, logs: list[PartitionLog], offset: int, error: StorageError) -> None:
        """Undo a write that reached only ``logs``: cut each back to ``offset``."""
        try:
            for log in logs:
                log.truncate_to(offset)
        except (KcliError, OSError):
            self.broken = error

    def close(self, durable: bool, hw: int | None = None) -> None:
        """End the session.  ``durable``: fsync, then advance the checkpoints (recovery point, log start,
        high watermark) so that recovery after an OS crash starts from here."""
        try:
            if durable:
                self.checkpoint(hw)
            else:
                for _broker, log in self.logs:
                    log.delete_old_segments()
        finally:
            try:  # also after a failed checkpoint (a full disk): the logs are whole, say so
                for _broker, log in self.logs:
                    if self.broken is None:
                        log.release()
                    else:
                        log.close()  # no state file: the next writer recovers what the failure left
            finally:
                self._let_go()

    def checkpoint(self, hw: int | None = None) -> None:
        """Apply retention, fsync every replica, then advance the checkpoints (recovery point, log start,
        high watermark: ``hw``, by default the leader's log end as in embedded mode); the session and
        its lock stay open."""
        for _broker, log in self.logs:
            log.delete_old_segments()
            log.flush()
        hw = self.leader.log_end_offset if hw is None else hw
        for broker, log in self.logs:
            write_checkpoints(self.datadir, broker, self.topic, self.partition, log, hw)
