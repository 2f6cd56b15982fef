"""The embedded transport: produce and fetch straight on the data directory, coordinated by file locks.

Each write goes through a :class:`~kcli.replica.writer.PartitionWriter` session (the replication
invariant is told there); reads open the leader's log directly.

Transactions run through an in-process :class:`~kcli.transactions.coordinator.TransactionCoordinator`
whose markers go through this transport's own write sessions.  Its producer holds the transactional
id's owner lock for its life, so that another process can tell a transaction abandoned by a crash from
a live one: a write session that opens on a partition with an abandoned transaction, or a read_committed
reader held back by one, aborts it through the coordinator (one that outlived its timeout too), while
no broker runs (a broker aborts the transactions begun through it when they time out).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kcli.client.backoff import Backoff
from kcli.client.defaults import READ_COMMITTED, READ_UNCOMMITTED, TRANSACTION_TIMEOUT_MS
from kcli.cluster.configs import log_config, new_topic_shape
from kcli.cluster.datadir import DataDir, FileLock
from kcli.cluster.metadata import ClusterState, Metadata, PartitionMeta
from kcli.cluster.producers import ProducerIds
from kcli.errors import (
    ConcurrentTransactionsError,
    LockTimeoutError,
    NotFoundError,
    UnavailableError,
)
from kcli.replica.writer import PartitionWriter
from kcli.storage.config import LogConfig
from kcli.storage.fileio import sync_files
from kcli.storage.log import PartitionLog

if TYPE_CHECKING:
    from kcli.groups.offsets import CommittedOffset
    from kcli.transactions.coordinator import TransactionCoordinator

STUCK_CHECK_INTERVAL = 1.0  # how often a read_committed reader held back by an open transaction looks at it


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
        self._coordinator: TransactionCoordinator | None = None
        self._owner: FileLock | None = None  # the owner lock of our transactional id, once we hold it
        self._owner_of: str | None = None
        self._producer_id = -1  # our transactional producer's id: its own open transaction is not abandoned
        self._stuck_checked: dict[tuple[str, int], float] = {}
        self.transactional = False  # a transactional producer was initialised here

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
            self.metadata.create_topic(topic, *new_topic_shape(self.state, None, None), if_not_exists=True)
            self.refresh()
        return len(self.state.topic(topic).partitions)

    def log_config(self, topic: str) -> LogConfig:
        return log_config(self.state, self.state.topic(topic))

    def _led(self, topic: str, partition: int) -> PartitionMeta:
        meta = self.state.partition(topic, partition)
        if meta.leader < 0:
            raise UnavailableError(f"partition {topic}-{partition} has no leader: no in-sync replica is available",
                                   hint="bring a replica's broker back, or `kcli leader-election --unclean` "
                                        "accepting data loss")
        return meta

    # ------------------------------------------------------------ produce
    def init_producer_id(self, transactional_id: str | None = None, timeout_ms: int = TRANSACTION_TIMEOUT_MS) -> tuple[int, int]:
        """(producer id, epoch) for an idempotent producer, from the allocator brokers use too; with
        ``transactional_id``, from the coordinator (fencing an older producer of the id, aborting what it
        left open), retried while that producer's last transaction cannot be completed yet."""
        if transactional_id is None:
            return ProducerIds(self.datadir, block=1).next(), 0
        coordinator = self.coordinator()
        self._own(transactional_id)
        deadline = time.monotonic() + self.datadir.lock_timeout
        backoff = Backoff(0.01, 0.5)
        while True:
            try:
                producer_id, epoch = coordinator.init_producer_id(transactional_id, timeout_ms)
                break
            except ConcurrentTransactionsError:
                if time.monotonic() >= deadline:
                    raise
                backoff.sleep()
        self.transactional = True
        self._producer_id = producer_id
        return producer_id, epoch

    def _own(self, transactional_id: str) -> None:
        """Hold the id's owner lock.  While an older producer of the id (about to be fenced) still holds
        it, it is tried again at each transactional call."""
        owner = self._owner
        if owner is None or self._owner_of != transactional_id:
            if owner is not None:
                owner.release()
            owner = self._owner = self.coordinator().store.owner(transactional_id)
            self._owner_of = transactional_id
        if not owner.held:
            owner.try_acquire()

    def coordinator(self) -> TransactionCoordinator:
        """The transaction coordinator of the data dir, writing markers through this transport."""
        if self._coordinator is None:
            from kcli.transactions.coordinator import TransactionCoordinator

            self._coordinator = TransactionCoordinator(self.datadir, ProducerIds(self.datadir, block=1),
                                                       self._write_markers)
        return self._coordinator

    def add_partitions_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                              partitions: Iterable[tuple[str, int]]) -> None:
        self._own(transactional_id)
        self.coordinator().add_partitions(transactional_id, producer_id, producer_epoch, partitions)

    def add_offsets_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, group: str) -> None:
        self._own(transactional_id)
        self.coordinator().add_offsets(transactional_id, producer_id, producer_epoch, group)

    def txn_offset_commit(self, transactional_id: str, group: str, producer_id: int, producer_epoch: int,
                          offsets: Mapping[tuple[str, int], CommittedOffset]) -> None:
        self.coordinator().txn_offset_commit(transactional_id, group, producer_id, producer_epoch, offsets)

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> None:
        self.coordinator().end_txn(transactional_id, producer_id, producer_epoch, commit)

    def _write_markers(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                       partitions: list[tuple[str, int]]) -> None:
        """The coordinator's MarkerWriter: each marker through our session on its partition (opened when
        we hold none, by the lock-ordering rule of _open_writer)."""
        for topic, partition in partitions:
            try:
                writer = self._writer(topic, partition, check=False)
            except NotFoundError:
                continue  # the topic was deleted: no reader can meet the transaction there
            writer.write_marker(producer_id, producer_epoch, commit, coordinator_epoch)

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        return self._writer(topic, partition).append(batch)

    def _writer(self, topic: str, partition: int, check: bool = True) -> PartitionWriter:
        """Our write session on the partition, opened when we hold none.  ``check``: first abort the
        transactions there that their producers abandoned (not while writing markers: the coordinator
        is busy with one already)."""
        key = (topic, partition)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._open_writer(topic, partition)
            self.warnings += [f"recovered {problem}" for problem in writer.problems]
            self._writers[key] = writer
            ongoing = writer.leader.ongoing_transactions() if check else None
            if ongoing:
                self._abort_abandoned(ongoing)
                if self._writers.get(key) is not writer:  # sessions were ended to open others: again
                    return self._writer(topic, partition, check=False)
        return writer

    def _abort_abandoned(self, ongoing: Iterable[int]) -> bool:
        """Abort (through the coordinator) the transactions of these producer ids that nobody will end: their
        owner died or their timeout passed.  Whether any was completed; one whose markers cannot be written
        now stays decided and is told in ``warnings``.  Not while a broker runs: a transaction begun
        through it has no owner lock to tell that its client lives, and the broker aborts it when it
        times out."""
        if self.datadir.live_brokers():
            return False
        done = False
        coordinator = self.coordinator()
        for producer_id in ongoing:
            if producer_id == self._producer_id:
                continue
            try:
                done = coordinator.complete_abandoned(producer_id) is not None or done
            except ConcurrentTransactionsError as exc:
                self.warnings.append(exc.message)
        return done

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
              wait: float = 0.0, isolation: str = READ_UNCOMMITTED) -> tuple[bytes, int]:
        """Batches from ``offset`` on (the first may start before it); empty when there is nothing new.
        Never waits (``long_polls`` is False): the consumer sleeps between rounds instead.
        read_committed reads below the last stable offset and drops the markers and aborted batches.
        An offset below the log start reads nothing and resumes at the start: the batch holding the start
        may hold deleted records (DeleteRecords moved the start inside it)."""
        start = self._reader(topic, partition).log_start_offset
        if offset < start:
            return b"", start
        if isolation != READ_COMMITTED:
            data = self._reader(topic, partition).read(offset, max_bytes)
            if not data:
                # a writer may have rolled a new segment since we listed them
                data = self._reader(topic, partition, fresh=True).read(offset, max_bytes)
            return data, offset
        for fresh in (False, True):  # again after listing the segments anew, as above
            log = self._reader(topic, partition, fresh=fresh)
            stable = self._stable(topic, partition, log, offset)
            data = log.read(offset, max_bytes, upper=stable) if offset < stable else b""
            if data:
                break
        else:
            return b"", offset
        from kcli.storage.isolation import committed

        return committed(data, log.aborted_transactions(offset, stable))

    def _stable(self, topic: str, partition: int, log: PartitionLog, offset: int) -> int:
        """The last stable offset; a reader at it, held back by an open transaction, checks (at most
        every STUCK_CHECK_INTERVAL) whether that transaction was abandoned, and aborts it if so."""
        stable = log.last_stable_offset()
        if offset < stable or stable >= log.log_end_offset:
            return stable
        key = (topic, partition)
        now = time.monotonic()
        if now - self._stuck_checked.get(key, 0.0) < STUCK_CHECK_INTERVAL:
            return stable
        self._stuck_checked[key] = now
        if self._abort_abandoned(log.ongoing_transactions()):
            stable = log.last_stable_offset()
        return stable

    def locate(self, topic: str, partition: int, data_position: int) -> tuple[str | None, int | None]:
        """The segment file and file position of byte ``data_position`` of the last fetch's data."""
        log = self._readers.get((topic, partition))
        if log is None or log.last_read is None:
            return None, None
        path, start = log.last_read
        return path, start + data_position

    def list_offset(self, topic: str, partition: int, spec: str | int, isolation: str = READ_UNCOMMITTED) -> int:
        """'earliest', 'latest' (the last stable offset under read_committed, after aborting an abandoned
        transaction that holds it back), or a timestamp in ms (first offset at or after it, else latest)."""
        log = self._reader(topic, partition, fresh=True)
        if spec == "earliest":
            return log.log_start_offset
        if spec == "latest":
            if isolation == READ_COMMITTED:
                self._stuck_checked.pop((topic, partition), None)
                return self._stable(topic, partition, log, log.log_end_offset)  # checks when held back
            return log.log_end_offset
        found = log.offset_for_timestamp(int(spec))
        return log.log_end_offset if found is None else found

    def close(self, durable: bool = True) -> None:
        try:
            self.release(durable)
        finally:
            if self._owner is not None:
                self._owner.release()
        for log in self._readers.values():
            log.close()
        self._readers.clear()
