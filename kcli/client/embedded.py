"""The embedded transport: produce and fetch straight on the data directory, coordinated by file locks.

Each write goes through a :class:`~kcli.replica.writer.PartitionWriter` session (the replication
invariant is told there); reads open the leader's log directly.
"""

from __future__ import annotations

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata, PartitionMeta
from kcli.cluster.producers import ProducerIds
from kcli.errors import LockTimeoutError, NotFoundError, UnavailableError
from kcli.replica.writer import PartitionWriter
from kcli.storage.config import LogConfig
from kcli.storage.fileio import sync_files
from kcli.storage.log import PartitionLog


class EmbeddedTransport:
    """Produce, fetch and list offsets directly on a data directory (a :class:`Transport`)."""

    long_polls = False

    def __init__(self, datadir: DataDir, auto_create: bool = True) -> None:
        self.datadir = datadir
        self.metadata = Metadata(datadir)
        self.auto_create = auto_create
        self._state: ClusterState | None = None
        self._writers: dict[tuple[str, int], PartitionWriter] = {}
        self._readers: dict[tuple[str, int], PartitionLog] = {}
        self._unsynced: set[str] = set()  # files of write sessions ended without an fsync
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
    def init_producer_id(self) -> tuple[int, int]:
        """(producer id, epoch) for an idempotent producer, from the allocator brokers use too."""
        return ProducerIds(self.datadir, block=1).next(), 0

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        key = (topic, partition)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._open_writer(topic, partition)
            self.warnings += writer.problems
            self._writers[key] = writer
        return writer.append(batch)

    def _open_writer(self, topic: str, partition: int) -> PartitionWriter:
        """Start a write session, never waiting for a partition's lock while holding another's: two
        producers that each held one partition and waited for the other's would wait for ever.  So
        while sessions are open the lock is only tried; when it is busy they are ended (as on an idle
        flush) and then it is waited for, holding nothing."""
        config = self.log_config(topic)
        if self._writers:
            try:
                return PartitionWriter(self.datadir, topic, partition, self._led(topic, partition), config,
                                       lock_timeout=0)
            except LockTimeoutError:
                self.release()
        return PartitionWriter(self.datadir, topic, partition, self._led(topic, partition), config)

    def release(self, durable: bool = False) -> None:
        """Let other writers in: end every open write session.  Without ``durable`` the logs are not
        fsynced now; their files are remembered so that a durable end syncs them all."""
        writers, self._writers = self._writers, {}
        failure: BaseException | None = None
        for writer in writers.values():  # every session ends (and lets go of its lock), even after a failure
            if not durable:
                self._unsynced.update(writer.files())
            try:
                writer.close(durable)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once all are closed
                failure = failure or exc
        if failure is not None:
            raise failure
        if durable:
            sync_files(self._unsynced)
            self._unsynced.clear()

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

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20,
              wait: float = 0.0) -> bytes:
        """Batches from ``offset`` on (the first may start before it); empty when there is nothing new.
        Never waits (``long_polls`` is False): the consumer sleeps between rounds instead."""
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
