"""The embedded transport: produce and fetch straight on the data directory, coordinated by file locks.

Replication invariant (docs/design.md): an embedded write appends the same batch, with the same offsets
and leader epoch, to every in-sync replica while holding the partition lock, after first bringing any
lagging in-sync follower up to the leader (a writer killed between replicas leaves one behind).  So in
embedded mode the high watermark is the leader's log end offset, and every in-sync replica agrees.
"""

from __future__ import annotations

import os

from kcli.cluster.datadir import DataDir, FileLock
from kcli.cluster.metadata import ClusterState, Metadata, PartitionMeta
from kcli.config import LogConfig
from kcli.errors import NotFoundError, UnavailableError
from kcli.storage import checkpoint
from kcli.storage.log import PartitionLog
from kcli.storage.replica_sync import sync_replica


class PartitionWriter:
    """One write session on a partition: its lock, and the open logs of its in-sync replicas."""

    def __init__(self, datadir: DataDir, topic: str, partition: int, meta: PartitionMeta, config: LogConfig) -> None:
        self.datadir = datadir
        self.topic = topic
        self.partition = partition
        self.epoch = meta.leader_epoch
        self.lock: FileLock = datadir.partition_lock(topic, partition)
        self.lock.acquire()
        self.problems: list[str] = []
        try:
            order = [meta.leader] + [b for b in meta.isr if b != meta.leader]
            self.logs: list[tuple[int, PartitionLog]] = []
            for broker in order:
                log = PartitionLog(datadir.partition_dir(broker, topic, partition), config)
                self.problems += log.open_for_append(self._recovery_point(broker))
                self.logs.append((broker, log))
            self.leader = self.logs[0][1]
            for _broker, follower in self.logs[1:]:
                sync_replica(self.leader, follower)
            self.leader.record_epoch(self.epoch, self.leader.log_end_offset)
        except BaseException:
            self.lock.release()
            raise

    def _recovery_point(self, broker: int) -> int | None:
        path = os.path.join(self.datadir.broker_dir(broker), checkpoint.RECOVERY_POINT)
        try:
            return checkpoint.read_offsets(path).get((self.topic, self.partition))
        except Exception:  # a damaged checkpoint only costs a longer recovery
            return None

    def append(self, batch: bytes) -> int:
        """Append to the leader, then the same bytes to each in-sync follower; returns the base offset."""
        info = self.leader.append(batch, self.epoch)
        for _broker, follower in self.logs[1:]:
            follower.append(batch, self.epoch, validate=False)
        return info.base_offset

    def close(self, durable: bool) -> None:
        """End the session.  ``durable``: fsync, then advance the checkpoints (recovery point, log start,
        high watermark) so that recovery after an OS crash starts from here."""
        try:
            if durable:
                self.checkpoint()
            else:
                for _broker, log in self.logs:
                    log.delete_old_segments()
            for _broker, log in self.logs:
                log.release()
        finally:
            self.lock.release()

    def checkpoint(self) -> None:
        """Apply retention, fsync every replica, then advance the checkpoints (recovery point, log start,
        high watermark); the session and its lock stay open."""
        for _broker, log in self.logs:
            log.delete_old_segments()
            log.flush()
        hw = self.leader.log_end_offset
        for broker, log in self.logs:
            self._write_checkpoints(broker, log, hw)

    def _write_checkpoints(self, broker: int, log: PartitionLog, hw: int) -> None:
        root = self.datadir.broker_dir(broker)
        key = (self.topic, self.partition)
        values = {checkpoint.RECOVERY_POINT: log.log_end_offset, checkpoint.LOG_START: log.log_start_offset,
                  checkpoint.HIGH_WATERMARK: hw}
        with self.datadir.checkpoint_lock(broker):
            for name, value in values.items():
                path = os.path.join(root, name)
                try:
                    offsets = checkpoint.read_offsets(path)
                except Exception:
                    offsets = {}
                offsets[key] = value
                checkpoint.write_offsets(path, offsets)


class EmbeddedTransport:
    """Produce, fetch and list offsets directly on a data directory."""

    def __init__(self, datadir: DataDir, auto_create: bool = True) -> None:
        self.datadir = datadir
        self.metadata = Metadata(datadir)
        self.auto_create = auto_create
        self._state: ClusterState | None = None
        self._writers: dict[tuple[str, int], PartitionWriter] = {}
        self._readers: dict[tuple[str, int], PartitionLog] = {}
        self.warnings: list[str] = []

    @property
    def state(self) -> ClusterState:
        if self._state is None:
            self._state = self.metadata.ensure()
        return self._state

    def refresh(self) -> ClusterState:
        self._state = None
        return self.state

    def partition_count(self, topic: str, create: bool = False) -> int:
        """Number of partitions; ``create`` makes a missing topic with the defaults (auto.create.topics)."""
        if topic not in self.state.topics:
            self.refresh()
        if topic not in self.state.topics:
            if not (create and self.auto_create):
                raise NotFoundError(f"topic {topic!r} does not exist", hint="create it with `kcli topic create`")
            self.metadata.create_topic(topic, 1, 1, if_not_exists=True)
            self.refresh()
        return len(self.state.topic(topic).partitions)

    def log_config(self, topic: str) -> LogConfig:
        return LogConfig.from_topic(self.state.topic(topic).configs)

    def _led(self, topic: str, partition: int) -> PartitionMeta:
        meta = self.state.partition(topic, partition)
        if meta.leader < 0:
            raise UnavailableError(f"partition {topic}-{partition} has no leader: no in-sync replica is available",
                                   hint="bring a replica's broker back, or `kcli leader-election --unclean` "
                                        "accepting data loss")
        return meta

    # ------------------------------------------------------------ produce
    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        key = (topic, partition)
        writer = self._writers.get(key)
        if writer is None:
            meta = self._led(topic, partition)
            writer = PartitionWriter(self.datadir, topic, partition, meta, self.log_config(topic))
            self.warnings += writer.problems
            self._writers[key] = writer
        return writer.append(batch)

    def release(self, durable: bool = False) -> None:
        """Let other writers in: end every open write session."""
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close(durable)

    # ------------------------------------------------------------ fetch
    def _reader(self, topic: str, partition: int, fresh: bool = False) -> PartitionLog:
        key = (topic, partition)
        log = self._readers.get(key)
        if log is None or fresh:
            if log is not None:
                log.close()
            meta = self._led(topic, partition)
            log = PartitionLog(self.datadir.partition_dir(meta.leader, topic, partition), self.log_config(topic))
            self._readers[key] = log
        return log

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20) -> bytes:
        """Batches from ``offset`` on (the first may start before it); empty when there is nothing new."""
        data = self._reader(topic, partition).read(offset, max_bytes)
        if not data:
            # a writer may have rolled a new segment since we listed them
            data = self._reader(topic, partition, fresh=True).read(offset, max_bytes)
        return data

    def locate(self, topic: str, partition: int, data_position: int) -> tuple[str | None, int | None]:
        """The segment file and file position of byte ``data_position`` of the last fetch's data."""
        log = self._readers.get((topic, partition))
        if log is None or log.last_read is None:
            return None, None
        path, start = log.last_read
        return path, start + data_position

    def list_offset(self, topic: str, partition: int, spec: str | int) -> int:
        """'earliest', 'latest', or a timestamp in ms (first offset at or after it, else latest)."""
        log = self._reader(topic, partition, fresh=True)
        if spec == "earliest":
            return log.log_start_offset
        if spec == "latest":
            return log.log_end_offset
        found = log.offset_for_timestamp(int(spec))
        return log.log_end_offset if found is None else found

    def close(self, durable: bool = True) -> None:
        self.release(durable)
        for log in self._readers.values():
            log.close()
        self._readers.clear()
