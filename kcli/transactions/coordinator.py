"""The transaction coordinator: Kafka's TransactionCoordinator rules over the durable store.

Every request takes the transactional id's lock, reads its state, checks it as Kafka does, and writes the
new state whole before it answers; so a broker or an embedded kcli process can serve any id, and one
killed at any point leaves the old state or the new one.  Writing PrepareCommit/PrepareAbort is the
point of no return: whoever finds an id in one of those states (the EndTxn itself, a later request on the
id, :meth:`TransactionCoordinator.finish_pending` after a crash) rolls it forward -- the markers through
the MarkerWriter (writing one twice is harmless), then, for a commit, the pending TxnOffsetCommit offsets
into the groups' OffsetStore, one commit per group, then CompleteCommit/CompleteAbort.

Kafka answers CONCURRENT_TRANSACTIONS while a Prepare* state is being finished in the background and
lets the client retry; here the request finishes it on the spot and answers
:class:`~kcli.errors.ConcurrentTransactionsError` (retriable) only when the markers cannot be written
yet.  Likewise InitProducerId that finds an Ongoing transaction fences it (epoch bump, abort) within the
same call.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from kcli.cluster.datadir import DataDir
from kcli.cluster.producers import ProducerIds
from kcli.errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    KcliError,
    ProducerFencedError,
    TransactionError,
    UsageError,
)
from kcli.groups.layout import check_group_id
from kcli.groups.offsets import CommittedOffset, OffsetStore
from kcli.transactions.state import (
    MAX_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    TopicPartition,
    TransactionInfo,
    TransactionMetadata,
    TxnState,
    states_named,
)
from kcli.transactions.state import check_transactional_id as check_transactional_id  # re-exported
from kcli.transactions.store import TransactionStore

MarkerWriter = Callable[[int, int, bool, int, list[tuple[str, int]]], None]
"""(producer_id, producer_epoch, commit, coordinator_epoch, partitions): write the transaction's markers;
raise a KcliError when a partition cannot take its marker now (the transaction stays Prepare* and is
retried).  Writing the same markers twice must be harmless."""

DEFAULT_MAX_TIMEOUT_MS = 900_000  # transaction.max.timeout.ms
DEFAULT_ID_EXPIRATION_MS = 604_800_000  # transactional.id.expiration.ms (7 days)
COORDINATOR_EPOCH = 0  # the store has no leader epoch: every coordinator writes markers with 0
_T = TypeVar("_T")


def now_ms() -> int:
    return int(time.time() * 1000)


class TransactionCoordinator:
    """Serves the transactional requests of every transactional id of one data directory."""

    def __init__(self, datadir: DataDir, producer_ids: ProducerIds, write_markers: MarkerWriter, *,
                 max_timeout_ms: int = DEFAULT_MAX_TIMEOUT_MS, id_expiration_ms: int = DEFAULT_ID_EXPIRATION_MS,
                 clock: Callable[[], int] = now_ms) -> None:
        self.store = TransactionStore(datadir)
        self.offsets = OffsetStore(datadir)
        self.producer_ids = producer_ids
        self.write_markers = write_markers
        self.max_timeout_ms = max_timeout_ms
        self.id_expiration_ms = id_expiration_ms
        self.clock = clock

    # ------------------------------------------------------------ requests
    def init_producer_id(self, transactional_id: str, timeout_ms: int,
                         producer_id: int = NO_PRODUCER_ID, producer_epoch: int = NO_PRODUCER_EPOCH) -> tuple[int, int]:
        """The producer id and epoch for a (new or restarted) producer of ``transactional_id``: the epoch
        bumped so that any older producer of the id is fenced.  ``producer_id``/``producer_epoch`` are
        what the producer had (KIP-360: a producer bumping its own epoch after an error)."""
        check_transactional_id(transactional_id)
        if not 0 < timeout_ms <= self.max_timeout_ms:
            raise InvalidTransactionTimeoutError(
                f"transaction timeout {timeout_ms} ms is not within 1..{self.max_timeout_ms} ms "
                "(transaction.max.timeout.ms)")
        expected = producer_id >= 0
        with self.store.lock(transactional_id):
            meta = self.store.load(transactional_id)
            now = self.clock()
            if meta is None:
                meta = TransactionMetadata(transactional_id, self.producer_ids.next(), NO_PRODUCER_EPOCH,
                                           timeout_ms, update_ms=now)
            elif expected and not self._known_producer(meta, producer_id, producer_epoch):
                raise ProducerFencedError(
                    f"transactional id {transactional_id!r}: producer {producer_id} epoch {producer_epoch} "
                    f"was replaced by producer {meta.producer_id} epoch {meta.producer_epoch}")
            if meta.state is TxnState.ONGOING:
                self._fence(meta, now)
                producer_epoch = meta.producer_epoch  # the caller's view, superseded by its own fence
            if meta.state.prepared:
                self._finish(meta)
            if meta.epoch_exhausted and (not expected or producer_epoch == meta.producer_epoch):
                meta.last_producer_id = meta.producer_id
                meta.last_producer_epoch = meta.producer_epoch if expected else NO_PRODUCER_EPOCH
                meta.producer_id = self.producer_ids.next()
                meta.producer_epoch = 0
            elif not expected or meta.producer_epoch in (NO_PRODUCER_EPOCH, producer_epoch):
                meta.last_producer_epoch = meta.producer_epoch if expected else NO_PRODUCER_EPOCH
                meta.producer_epoch += 1
            elif producer_epoch != meta.last_producer_epoch:
                raise ProducerFencedError(
                    f"transactional id {transactional_id!r}: epoch {producer_epoch} of producer {producer_id} "
                    f"is fenced by epoch {meta.producer_epoch}")
            # else: a retry of a bump already made; answer it again
            meta.timeout_ms = timeout_ms
            meta.transit(TxnState.EMPTY, self.clock())
            self.store.save(meta)
            return meta.producer_id, meta.producer_epoch

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[TopicPartition]) -> None:
        """Add partitions to the transaction (starting one if none is open)."""
        new = set(partitions)
        for topic, partition in new:
            if not topic or partition < 0:
                raise UsageError(f"not a partition: {topic!r} {partition}")
        self._add(transactional_id, producer_id, producer_epoch, lambda meta: meta.partitions, new)

    def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str) -> None:
        """Add a group to the transaction (AddOffsetsToTxn), so that TxnOffsetCommit may commit for it."""
        check_group_id(group_id)
        self._add(transactional_id, producer_id, producer_epoch, lambda meta: meta.groups, {group_id})

    def txn_offset_commit(self, transactional_id: str, group_id: str, producer_id: int, producer_epoch: int,
                          offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        """Keep ``offsets`` for ``group_id`` in the transaction: they reach the group's committed offsets
        when (and only if) the transaction commits.  The group must have been added (add_offsets)."""
        for (topic, partition), committed in offsets.items():
            if committed.offset < 0:
                raise UsageError(f"cannot commit negative offset {committed.offset} for {topic}-{partition}")
        with self.store.lock(transactional_id):
            meta = self._checked(transactional_id, producer_id, producer_epoch)
            if meta.state is not TxnState.ONGOING or group_id not in meta.groups:
                raise TransactionError(f"transactional id {transactional_id!r}: group {group_id!r} is not in "
                                       f"its transaction ({meta.state.value})", hint="add it first (AddOffsetsToTxn)")
            now = self.clock()
            pending = meta.pending_offsets.setdefault(group_id, {})
            for tp, committed in offsets.items():
                if committed.commit_timestamp < 0:
                    committed = CommittedOffset(committed.offset, committed.metadata, now, committed.leader_epoch)
                pending[tp] = committed
            meta.update_ms = now
            self.store.save(meta)

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> None:
        """Commit or abort the open transaction.  A retry of an EndTxn that already decided the same way
        answers OK; the other outcome, or no transaction, is a TransactionError.  Returns once the markers
        are written and offsets applied; ConcurrentTransactionsError (retriable) when the outcome is decided
        but the markers could not all be written yet (a retry, or finish_pending, completes it)."""
        prepare, done = ((TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT) if commit
                         else (TxnState.PREPARE_ABORT, TxnState.COMPLETE_ABORT))
        outcome = "commit" if commit else "abort"
        with self.store.lock(transactional_id):
            meta = self._checked(transactional_id, producer_id, producer_epoch)
            if meta.state is TxnState.ONGOING:
                meta.transit(prepare, self.clock())
                self.store.save(meta)
            elif meta.state not in (prepare, done):
                raise TransactionError(f"transactional id {transactional_id!r}: cannot {outcome}: "
                                       + ("no transaction is open" if meta.state is TxnState.EMPTY else
                                          f"its transaction is {meta.state.value}"))
            if meta.state is prepare:
                self._finish(meta)

    def is_partition_in_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                            topic: str, partition: int) -> bool:
        """Whether the producer's open transaction holds the partition (KIP-890's produce check); raises
        like the requests do for an unknown producer id or an older epoch."""
        return (topic, partition) in self.txn_partitions(transactional_id, producer_id, producer_epoch)

    def txn_partitions(self, transactional_id: str, producer_id: int,
                       producer_epoch: int) -> frozenset[TopicPartition]:
        """The partitions of the producer's open transaction (none when no transaction is open); raises
        like the requests do for an unknown producer id or an older epoch.  One read of the id's state,
        so a Produce can check all its partitions against it."""
        meta = self._checked(transactional_id, producer_id, producer_epoch)
        return frozenset(meta.partitions) if meta.state is TxnState.ONGOING else frozenset()

    def pending_offsets(self, group_id: str) -> frozenset[TopicPartition]:
        """The partitions of ``group_id`` with transactional offsets not yet settled: kept by an open or
        decided transaction and not applied to the group (OffsetFetch's require_stable, KIP-447)."""
        def unsettled(meta: TransactionMetadata) -> bool:
            return ((meta.state is TxnState.ONGOING or meta.state.prepared) and group_id in meta.pending_offsets
                    and group_id not in meta.applied_groups)

        return frozenset(tp for meta in self.store.all(unsettled) for tp in meta.pending_offsets[group_id])

    # ------------------------------------------------------------ maintenance
    def abort_timed_out(self, now_ms: int | None = None) -> builtins.list[str]:
        """Abort (fencing the producer's epoch, as Kafka does) every Ongoing transaction older than its
        timeout; the ids whose abort was decided (their markers may still be pending: finish_pending)."""
        now = self.clock() if now_ms is None else now_ms
        aborted = []

        def expired(meta: TransactionMetadata) -> bool:
            return meta.state is TxnState.ONGOING and _timed_out(meta, now)

        for seen in self.store.all(expired):
            try:
                acted = self._settle(seen.transactional_id, expired)
            except ConcurrentTransactionsError:
                acted = True  # aborted; the markers follow with finish_pending
            if acted:
                aborted.append(seen.transactional_id)
        return aborted

    def finish_pending(self) -> builtins.list[str]:
        """Roll forward every PrepareCommit/PrepareAbort on disk (left by a crash or by markers that could
        not be written); the ids completed now.  Ids another process is working on are left to it."""
        done = []
        for seen in self.store.all(lambda meta: meta.state.prepared):
            try:
                if self._settle(seen.transactional_id, lambda meta: meta.state.prepared):
                    done.append(seen.transactional_id)
            except ConcurrentTransactionsError:
                pass  # still decided: the next round retries it
        return done

    def expire_idle(self, now_ms: int | None = None) -> builtins.list[str]:
        """Forget ids with no open transaction that were idle for ``transactional.id.expiration.ms``
        (Kafka's expiry: a producer starting with the id again gets a new producer id)."""
        now = self.clock() if now_ms is None else now_ms
        gone = []
        def idle(meta: TransactionMetadata) -> bool:
            return meta.state.complete and meta.update_ms + self.id_expiration_ms <= now

        def expire(meta: TransactionMetadata) -> None:
            meta.transit(TxnState.DEAD, now)
            self.store.delete(meta.transactional_id)

        for seen in self.store.all(idle):
            if self._if_still(seen.transactional_id, idle, expire):
                gone.append(seen.transactional_id)
        return gone

    # ------------------------------------------------------------ embedded ownership
    def abandoned(self, producer_id: int) -> str | None:
        """The transactional id whose open transaction belongs to ``producer_id`` and that nobody will
        finish: its owner process is gone (the owner lock is free) or its timeout passed; or whose outcome
        is decided but not yet written.  None when there is none (or the producer is alive)."""
        now = self.clock()
        for meta in self.store.all(lambda meta: meta.producer_id == producer_id):
            if self._is_abandoned(meta, now):
                return meta.transactional_id
        return None

    def complete_abandoned(self, producer_id: int) -> str | None:
        """Complete what :meth:`abandoned` finds: abort (fencing) an abandoned Ongoing transaction, or
        finish a decided one; its transactional id, or None when there is nothing to do or another
        process is at it.  Raises ConcurrentTransactionsError when its markers cannot be written now."""
        transactional_id = self.abandoned(producer_id)
        if transactional_id is None:
            return None
        now = self.clock()
        settled = self._settle(transactional_id, lambda meta: meta.producer_id == producer_id
                               and self._is_abandoned(meta, now))
        return transactional_id if settled else None

    # ------------------------------------------------------------ operators
    def describe(self, transactional_id: str) -> TransactionInfo | None:
        meta = self.store.load(transactional_id)
        return None if meta is None else meta.info()

    def list(self, states: Iterable[str] = (), producer_ids: Iterable[int] = ()) -> builtins.list[TransactionInfo]:
        """Every transactional id's state, optionally only those in ``states`` (Kafka's names, any case)
        or of ``producer_ids`` (ListTransactions' filters)."""
        wanted = states_named(states)
        pids = set(producer_ids)
        def chosen(meta: TransactionMetadata) -> bool:
            return (not wanted or meta.state in wanted) and (not pids or meta.producer_id in pids)

        return sorted((meta.info() for meta in self.store.all(chosen)), key=lambda info: info.transactional_id)

    # ------------------------------------------------------------ internals
    @staticmethod
    def _known_producer(meta: TransactionMetadata, producer_id: int, producer_epoch: int) -> bool:
        """Kafka's isValidProducerId for an InitProducerId that names the producer it had."""
        return (meta.producer_epoch == NO_PRODUCER_EPOCH or producer_id == meta.producer_id
                or (producer_id == meta.last_producer_id and producer_epoch >= MAX_EPOCH - 1))

    def _checked(self, transactional_id: str, producer_id: int, producer_epoch: int) -> TransactionMetadata:
        """The id's state, when ``producer_id`` at ``producer_epoch`` is its current producer."""
        meta = self.store.load(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            raise InvalidProducerIdMappingError(
                f"transactional id {transactional_id!r} does not belong to producer {producer_id}"
                + ("" if meta is None else f" (its producer is {meta.producer_id})"),
                hint="initialise the producer again (InitProducerId)")
        if producer_epoch != meta.producer_epoch:
            raise ProducerFencedError(
                f"transactional id {transactional_id!r}: epoch {producer_epoch} of producer {producer_id} is "
                f"not its current epoch {meta.producer_epoch}: a newer producer or a timeout fenced it")
        return meta

    def _open(self, transactional_id: str, producer_id: int, producer_epoch: int) -> TransactionMetadata:
        """The id's state, ready to take partitions or groups (a decided transaction finished first)."""
        meta = self._checked(transactional_id, producer_id, producer_epoch)
        if meta.state.prepared:
            self._finish(meta)
        if not (meta.state.complete or meta.state is TxnState.ONGOING):
            raise TransactionError(f"transactional id {transactional_id!r}: its transaction is {meta.state.value}")
        return meta

    def _add(self, transactional_id: str, producer_id: int, producer_epoch: int,
             members: Callable[[TransactionMetadata], set[_T]], new: set[_T]) -> None:
        """Add ``new`` to the open transaction's partitions or groups (``members`` picks which), opening a
        transaction if none is; nothing is written when it holds them already."""
        with self.store.lock(transactional_id):
            meta = self._open(transactional_id, producer_id, producer_epoch)
            if meta.state is TxnState.ONGOING and new <= members(meta):
                return
            members(meta).update(new)
            meta.transit(TxnState.ONGOING, self.clock())
            self.store.save(meta)

    def _fence(self, meta: TransactionMetadata, now: int) -> None:
        """Kafka's PrepareEpochFence: bump the epoch (so the old producer is fenced everywhere, markers
        included) and decide to abort its Ongoing transaction."""
        meta.transit(TxnState.PREPARE_EPOCH_FENCE, now)
        if meta.producer_epoch < MAX_EPOCH:
            meta.producer_epoch += 1
        meta.last_producer_epoch = NO_PRODUCER_EPOCH  # a retried InitProducerId of the fenced one is fenced
        meta.transit(TxnState.PREPARE_ABORT, now)
        self.store.save(meta)

    def _finish(self, meta: TransactionMetadata) -> None:
        """Roll a decided transaction forward (caller holds the id's lock): markers, offsets, Complete*."""
        commit = meta.state is TxnState.PREPARE_COMMIT
        try:
            if meta.partitions:
                self.write_markers(meta.producer_id, meta.producer_epoch, commit, COORDINATOR_EPOCH,
                                   sorted(meta.partitions))
            if commit:
                todo = [g for g in sorted(meta.pending_offsets) if g not in meta.applied_groups]
                for i, group in enumerate(todo):
                    self._apply(group, meta.pending_offsets[group])
                    if i < len(todo) - 1:  # the last one is recorded by the Complete state itself
                        meta.applied_groups.add(group)
                        self.store.save(meta)
        except KcliError as exc:
            raise ConcurrentTransactionsError(
                f"transactional id {meta.transactional_id!r}: {'commit' if commit else 'abort'} decided but "
                f"not completed yet: {exc.message}", hint="retry; it completes once its markers and offsets "
                "can be written") from exc
        meta.transit(TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT, self.clock())
        self.store.save(meta)

    def _apply(self, group: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        """Commit a transaction's offsets for ``group``, unless the group holds them already (applied before
        a crash that left the transaction Prepare*): then nothing is written, so the offsets reach the
        group once, and a commit made since by someone else is not undone."""
        def unless_applied() -> None:
            current = self.offsets.fetch_committed(group)
            if all(current.get(tp) == committed for tp, committed in offsets.items()):
                raise _AlreadyApplied

        try:
            self.offsets.commit(group, offsets, precondition=unless_applied)
        except _AlreadyApplied:
            pass

    def _settle(self, transactional_id: str, still: Callable[[TransactionMetadata], bool]) -> bool:
        """Under the id's lock (not waited for: its holder is at it), when ``still`` holds of the id's
        state: abort an Ongoing transaction (fencing) and finish a decided one; whether it acted.  Raises
        ConcurrentTransactionsError when the markers cannot be written now (the outcome stays decided)."""
        def complete(meta: TransactionMetadata) -> None:
            if meta.state is TxnState.ONGOING:
                self._fence(meta, self.clock())
            self._finish(meta)

        return self._if_still(transactional_id, still, complete)

    def _if_still(self, transactional_id: str, still: Callable[[TransactionMetadata], bool],
                  act: Callable[[TransactionMetadata], None]) -> bool:
        """``act`` on the id's state under its lock (not waited for: its holder is at it), when ``still``
        holds of it once locked; whether it acted."""
        lock = self.store.lock(transactional_id)
        if not lock.try_acquire():
            return False
        try:
            meta = self.store.load(transactional_id)
            if meta is None or not still(meta):
                return False
            act(meta)
            return True
        finally:
            lock.release()

    def _is_abandoned(self, meta: TransactionMetadata, now: int) -> bool:
        if meta.state.prepared:
            return True
        return meta.state is TxnState.ONGOING and (
            _timed_out(meta, now) or not self.store.owner_alive(meta.transactional_id))


class _AlreadyApplied(Exception):
    """Raised under a group's lock to skip writing offsets it already holds (never leaves this module)."""


def _timed_out(meta: TransactionMetadata, now: int) -> bool:
    return meta.start_ms + meta.timeout_ms < now
