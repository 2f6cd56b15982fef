"""The partitions this broker leads, kept open for as long as it leads them.

For each partition whose metadata leader is this broker, the broker holds the partition lock and one
write session (:class:`~kcli.client.embedded.PartitionWriter`, the same code embedded writes use, so the
replication invariant -- the leader appends every batch to each in-sync replica under the lock -- lives
in one place).  Embedded writers in other processes therefore wait or time out instead of writing
behind the broker's back.  Reads go through the same open leader log, under the same per-partition
mutex as appends, because a ``PartitionLog`` is not safe to share between threads otherwise.

The set follows the metadata: topics created, deleted or re-assigned after start are picked up when
``cluster/metadata.log`` (or its snapshot) changes, checked on every lookup miss and by the broker's
maintenance tick.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kcli.broker.producers import ProducerStates, SequenceError
from kcli.client.embedded import PartitionWriter
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import LOG_NAME, SNAPSHOT_NAME, ClusterState, Metadata, PartitionMeta
from kcli.config import LogConfig
from kcli.errors import KcliError
from kcli.protocol import ErrorCode
from kcli.storage import records
from kcli.storage.log import now_ms

log = logging.getLogger("kcli.broker")

EARLIEST, LATEST = -2, -1
# how long opening a write session may wait for a lock that looked free a moment before
_OPEN_LOCK_TIMEOUT = 5.0


class PartitionResult(Exception):
    """A Kafka error code for one partition, raised from deep inside and answered per partition."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class LedPartition:
    """One led partition: its write session and the mutex every access takes."""

    def __init__(
        self, topic: str, partition: int, meta: PartitionMeta, config: LogConfig, writer: PartitionWriter
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.meta = meta
        self.config = config
        self.writer = writer
        self.mutex = threading.Lock()
        self.closed = False
        self.dirty = False
        self.producers = ProducerStates()

    @property
    def leader_epoch(self) -> int:
        return self.meta.leader_epoch

    def _check_open(self) -> None:
        if self.closed:  # closed while the caller waited for the mutex: leadership moved or topic went
            raise PartitionResult(ErrorCode.NOT_LEADER_OR_FOLLOWER)

    def append(self, batches: list[memoryview]) -> tuple[int, int, int]:
        """Append already-validated batches; returns (base offset, log append time or -1, log start)."""
        with self.mutex:
            self._check_open()
            base = -1
            for batch in batches:
                header = records.parse_header(batch)
                try:
                    offset = self.producers.check(header)
                except SequenceError as exc:
                    raise PartitionResult(exc.code, exc.message) from None
                if offset is None:  # not a retry of a batch we already have
                    offset = self.writer.append(batch)
                    self.producers.appended(header, offset)
                    self.dirty = True
                if base < 0:
                    base = offset
            append_time = -1
            if self.config.log_append_time:
                stored = self.writer.leader.read(base, 1)
                append_time = records.parse_header(stored).max_timestamp if stored else now_ms()
            return base, append_time, self.writer.leader.log_start_offset

    def read(self, offset: int, max_bytes: int) -> tuple[int, int, bytes]:
        """(high watermark, log start, whole batches from ``offset``).  In this model every in-sync
        replica is written under the lock, so the high watermark is the leader's log end offset."""
        with self.mutex:
            self._check_open()
            leader = self.writer.leader
            hw, start = leader.log_end_offset, leader.log_start_offset
            if offset < start or offset > hw:
                raise PartitionResult(
                    ErrorCode.OFFSET_OUT_OF_RANGE, f"offset {offset} is outside {start}..{hw}"
                )
            data = leader.read(offset, max_bytes) if offset < hw and max_bytes > 0 else b""
            return hw, start, data

    def list_offset(self, timestamp: int) -> tuple[int, int]:
        """Kafka's ListOffsets for one partition: (timestamp, offset); (-1, -1) when no record is that new."""
        with self.mutex:
            self._check_open()
            leader = self.writer.leader
            if timestamp == EARLIEST:
                return -1, leader.log_start_offset
            if timestamp == LATEST:
                return -1, leader.log_end_offset
            if timestamp < 0:
                raise PartitionResult(ErrorCode.INVALID_REQUEST, f"unsupported special timestamp {timestamp}")
            found = leader.offset_for_timestamp(timestamp)
            if found is None:
                return -1, -1
            return _record_timestamp(leader.read(found, 1), found, timestamp), found

    def checkpoint(self) -> None:
        with self.mutex:
            if self.closed or not self.dirty:
                return
            self.writer.checkpoint()
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

    def close(self) -> None:
        with self.mutex:
            if self.closed:
                return
            self.closed = True
            self.writer.close(durable=True)


def _record_timestamp(data: bytes, offset: int, fallback: int) -> int:
    """The timestamp of the record at ``offset`` in the batch that ``data`` starts with."""
    try:
        for rec in records.decode_records(data, 0, verify_crc=False):
            if rec.offset >= offset:
                return rec.timestamp
    except KcliError:
        pass
    return fallback


def _signature(meta: PartitionMeta, configs: dict) -> tuple:
    """What, when changed in the metadata, requires reopening the write session."""
    return (
        meta.leader,
        meta.leader_epoch,
        tuple(meta.isr),
        tuple(meta.replicas),
        tuple(sorted(configs.items())),
    )


class LedPartitions:
    """Every partition this broker leads, following the metadata."""

    def __init__(self, datadir: DataDir, broker_id: int) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self.metadata = Metadata(datadir)
        self.state = ClusterState()
        self._stamp: tuple | None = None
        self._led: dict[tuple[str, int], LedPartition] = {}
        self._signatures: dict[tuple[str, int], tuple] = {}
        self._waiting: dict[tuple[str, int], str] = {}
        self._fenced: set[str] = set()
        self._reload = threading.RLock()
        self._appended = threading.Condition()
        self._appends = 0
        self.stopping = False
        # writers wait a bounded time for locks (a lock seen free may be taken a moment later)
        self._writer_datadir = DataDir(datadir.root, min(datadir.lock_timeout, _OPEN_LOCK_TIMEOUT))

    # ------------------------------------------------------------ following the metadata

    def _metadata_stamp(self) -> tuple:
        out = []
        for name in (LOG_NAME, SNAPSHOT_NAME):
            try:
                st = os.stat(os.path.join(self.datadir.cluster_dir, name))
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def refresh(self, force: bool = False, retry_waiting: bool = False) -> ClusterState:
        """Reload the metadata if its files changed, then open and close write sessions to match."""
        with self._reload:
            stamp = self._metadata_stamp()
            if force or stamp != self._stamp:
                self.state = self.metadata.load()
                self._stamp = stamp
                self._sync()
            elif retry_waiting and self._waiting:
                self._sync()
            return self.state

    def _wanted(self) -> dict[tuple[str, int], tuple[PartitionMeta, dict]]:
        out = {}
        if self.stopping:
            return out
        for topic in self.state.topics.values():
            if topic.name in self._fenced:
                continue
            for p, meta in enumerate(topic.partitions):
                if meta.leader == self.broker_id:
                    out[(topic.name, p)] = (meta, topic.configs)
        return out

    def _sync(self) -> None:
        wanted = self._wanted()
        for key in list(self._led):
            entry = wanted.get(key)
            if entry is None or _signature(*entry) != self._signatures.get(key):
                self._close(key)
        for key in list(self._waiting):
            if key not in wanted:
                del self._waiting[key]
        for key, (meta, configs) in wanted.items():
            if key not in self._led:
                self._open(key, meta, configs)

    def _open(self, key: tuple[str, int], meta: PartitionMeta, configs: dict) -> None:
        topic, p = key
        lock = self.datadir.partition_lock(topic, p)
        if lock.is_locked():
            holder = lock.holder()
            if self._waiting.get(key) != holder:
                log.warning(
                    "partition %s-%d is locked by %s; serving it once that process lets go", topic, p, holder
                )
            self._waiting[key] = holder
            return
        config = LogConfig.from_topic(configs)
        try:
            writer = PartitionWriter(self._writer_datadir, topic, p, meta, config)
        except (KcliError, OSError) as exc:
            log.warning("cannot open partition %s-%d yet: %s", topic, p, exc)
            self._waiting[key] = str(exc)
            return
        for problem in writer.problems:
            log.warning("recovered partition %s-%d: %s", topic, p, problem)
        self._waiting.pop(key, None)
        self._led[key] = LedPartition(topic, p, meta, config, writer)
        self._signatures[key] = _signature(meta, configs)
        log.info("leading partition %s-%d (epoch %d, isr %s)", topic, p, meta.leader_epoch, meta.isr)

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
        """End every write session durably (fsync, checkpoints, clean-shutdown state) and free the locks."""
        with self._reload:
            self.stopping = True
            for key in list(self._led):
                self._close(key)
        self.wake()

    # ------------------------------------------------------------ lookups

    def get(self, topic: str, partition: int) -> LedPartition:
        """The led partition, or PartitionResult with the error code a client should see."""
        led = self._led.get((topic, partition))
        if led is not None:
            return led
        if self.stopping:
            raise PartitionResult(ErrorCode.NOT_LEADER_OR_FOLLOWER, "broker is shutting down")
        state = self.refresh(retry_waiting=True)
        led = self._led.get((topic, partition))
        if led is not None:
            return led
        meta = state.topics.get(topic)
        if meta is None or topic in self._fenced or not 0 <= partition < len(meta.partitions):
            raise PartitionResult(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if meta.partitions[partition].leader != self.broker_id:
            raise PartitionResult(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        holder = self._waiting.get((topic, partition), "")
        raise PartitionResult(
            ErrorCode.LEADER_NOT_AVAILABLE, f"partition lock held by {holder}" if holder else None
        )

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
