"""The state of the producers writing one partition: idempotence and open transactions.

Like Kafka's ProducerStateManager, owned by the partition's log (:class:`~kcli.storage.log.PartitionLog`),
updated by every append, leader and follower alike, and kept in ``.snapshot`` files
(:mod:`kcli.storage.producer_snapshot`) so that a restarted writer resumes it.

Per producer: its epoch, last sequence and its RECENT last batches (so a retry of any of them, a batch
already stored whose answer was lost, is answered with its original offset instead of being stored twice,
and a gap in the numbering is refused), and the first offset of its open transaction, if any.  The
smallest of those is the first unstable offset: read_committed readers stop there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kcli.errors import ProducerFencedError, SequenceError, TransactionError
from kcli.storage.producer_snapshot import SnapshotEntry
from kcli.storage.records import ATTR_CONTROL, ATTR_TRANSACTIONAL, BatchHeader

if TYPE_CHECKING:
    from kcli.storage.txnindex import AbortedTxn

RECENT = 5  # batches remembered per producer, as Kafka does (max.in.flight.requests <= 5)
MAX_PRODUCERS = 10_000  # per partition; the longest-unseen producer without a transaction is forgotten first
_SEQ_MASK = 0x7FFFFFFF


class _Producer:
    """One producer's epoch, last sequence, when the log last took a batch of it (its expiry clock: a
    producer's own timestamps may be old), coordinator epoch, open transaction's first offset (-1: none),
    and its RECENT last batches as (first seq, last seq, base offset, last offset).  A plain class: a
    dataclass costs a millisecond of every produce's start-up."""

    __slots__ = ("epoch", "last_seq", "recent", "timestamp", "coordinator_epoch", "txn_first")

    def __init__(self, epoch: int, last_seq: int = -1, timestamp: int = -1, coordinator_epoch: int = -1,
                 txn_first: int = -1) -> None:
        self.epoch = epoch
        self.last_seq = last_seq
        self.timestamp = timestamp
        self.coordinator_epoch = coordinator_epoch
        self.txn_first = txn_first
        self.recent: deque[tuple[int, int, int, int]] = deque(maxlen=RECENT)


class ProducerStates:
    """The producers writing one partition (the caller serialises)."""

    def __init__(self) -> None:
        self._producers: dict[int, _Producer] = {}  # least recently seen first
        self._ongoing: dict[int, int] = {}  # producer id -> first offset of its open transaction, oldest first

    # ------------------------------------------------------------ before an append

    def check(self, header: BatchHeader) -> int | None:
        """Before appending a data batch: the original base offset if it is a duplicate, else None to
        append.  SequenceError for a gap in the sequence, ProducerFencedError for an older epoch,
        TransactionError for a non-transactional batch of a producer with an open transaction."""
        if header.producer_id < 0:
            return None
        state = self._producers.get(header.producer_id)
        if state is None:
            return None
        if state.txn_first >= 0 and not header.attributes & ATTR_TRANSACTIONAL:
            raise TransactionError(f"producer {header.producer_id} has a transaction open in this partition: "
                                   "a non-transactional batch cannot join it")
        if header.base_sequence < 0:
            return None
        if header.producer_epoch < state.epoch:
            raise ProducerFencedError(
                f"producer {header.producer_id}: epoch {header.producer_epoch} is older than {state.epoch}: "
                "a newer session of the producer fenced it"
            )
        if header.producer_epoch > state.epoch:
            if header.base_sequence != 0:
                raise SequenceError(
                    f"producer {header.producer_id}: a new epoch must start at sequence 0, "
                    f"not {header.base_sequence}"
                )
            return None
        for first, last, offset, _last_offset in state.recent:
            if first == header.base_sequence and last == header.last_sequence:
                return offset
        expected = (state.last_seq + 1) & _SEQ_MASK
        if header.base_sequence != expected:
            raise SequenceError(
                f"producer {header.producer_id}: expected sequence {expected}, got {header.base_sequence}"
            )
        return None

    def check_marker(self, producer_id: int, producer_epoch: int) -> bool:
        """Before appending a transaction marker: whether the producer has a transaction open here (else
        the marker is not needed: written already, or the producer never wrote here).
        ProducerFencedError for a marker of an older epoch than the open transaction's producer."""
        state = self._producers.get(producer_id)
        if state is None or state.txn_first < 0:
            return False
        if producer_epoch < state.epoch:
            raise ProducerFencedError(f"producer {producer_id}: a marker of epoch {producer_epoch} is older "
                                      f"than {state.epoch}: a newer session of the producer fenced it")
        return True

    def aborted_txn(self, producer_id: int, marker_offset: int) -> AbortedTxn | None:
        """The transaction index entry an ABORT marker of ``producer_id`` at ``marker_offset`` ends (None:
        no transaction open); its last stable offset is Kafka's: the first offset of the oldest other
        open transaction, else just past the marker."""
        first = self._ongoing.get(producer_id)
        if first is None:
            return None
        others = (offset for pid, offset in self._ongoing.items() if pid != producer_id)
        from kcli.storage.txnindex import AbortedTxn  # only when a transaction is aborted

        return AbortedTxn(producer_id, first, marker_offset, next(others, marker_offset + 1))

    # ------------------------------------------------------------ after an append

    def appended(self, header: BatchHeader, base_offset: int, now_ms: int, coordinator_epoch: int = -1) -> None:
        """After appending at ``now_ms``: remember the batch (a retry of it is then answered with
        ``base_offset``); a transactional batch opens its producer's transaction, a marker (whose
        ``coordinator_epoch`` the caller read) ends it."""
        pid = header.producer_id
        if pid < 0:
            return
        attributes = header.attributes
        if header.base_sequence < 0 and not attributes & ATTR_CONTROL:
            return  # a producer id without idempotence: nothing to check later
        state = self._producers.pop(pid, None)  # re-inserted last: most recently seen
        if state is None:
            state = _Producer(header.producer_epoch)
        elif header.producer_epoch != state.epoch:
            state.epoch, state.last_seq = header.producer_epoch, -1
            state.recent.clear()
        self._producers[pid] = state
        if len(self._producers) > MAX_PRODUCERS:
            self._forget_one()
        state.timestamp = now_ms
        if attributes & ATTR_CONTROL:
            state.coordinator_epoch = coordinator_epoch
            state.txn_first = -1
            self._ongoing.pop(pid, None)
            return
        state.last_seq = header.last_sequence
        state.recent.append((header.base_sequence, state.last_seq, base_offset, base_offset + header.last_offset_delta))
        if attributes & ATTR_TRANSACTIONAL and state.txn_first < 0:
            state.txn_first = base_offset
            self._ongoing[pid] = base_offset

    def _forget_one(self) -> None:
        """Forget the longest-unseen producer that has no open transaction (forgetting one that has would
        move the last stable offset past it)."""
        for pid, state in self._producers.items():
            if state.txn_first < 0:
                del self._producers[pid]
                return

    # ------------------------------------------------------------ transactions

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction (None: none open)."""
        return next(iter(self._ongoing.values()), None)

    def ongoing(self) -> dict[int, int]:
        """Producer id -> first offset of its open transaction, oldest first."""
        return dict(self._ongoing)

    def last_batches(self) -> dict[int, tuple[int, int]]:
        """Producer id -> (last offset of its newest data batch, -1 when known from a marker only; its
        epoch): the batches the cleaner keeps so that sequences and fencing survive compaction."""
        return {pid: (s.recent[-1][3] if s.recent else -1, s.epoch) for pid, s in self._producers.items()}

    def expire(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget the producers not seen for ``expiration_ms`` (never one with an open transaction), as
        Kafka does with producer.id.expiration.ms; returns their ids."""
        gone = [pid for pid, state in self._producers.items()
                if state.txn_first < 0 and now_ms - state.timestamp >= expiration_ms]
        for pid in gone:
            del self._producers[pid]
        return gone

    # ------------------------------------------------------------ snapshots

    def entries(self) -> list[SnapshotEntry]:
        """The state as snapshot entries: one per remembered batch, oldest first (a producer with none,
        known from a marker only, gets one entry with sequence and offset -1)."""
        out = []
        for pid, s in self._producers.items():
            if not s.recent:
                out.append(SnapshotEntry(pid, s.epoch, -1, -1, 0, s.timestamp, s.coordinator_epoch, s.txn_first))
            for _first, last, base, last_offset in s.recent:
                out.append(SnapshotEntry(pid, s.epoch, last, last_offset, last_offset - base, s.timestamp,
                                         s.coordinator_epoch, s.txn_first))
        return out

    @classmethod
    def from_entries(cls, entries: Iterable[SnapshotEntry]) -> ProducerStates:
        """The state a snapshot holds: what :meth:`entries` wrote, or Kafka's one entry per producer."""
        states = cls()
        producers = states._producers
        for e in entries:
            state = producers.pop(e.producer_id, None)
            if state is None or state.epoch != e.producer_epoch:
                state = _Producer(e.producer_epoch)
            producers[e.producer_id] = state
            state.timestamp, state.coordinator_epoch, state.txn_first = e.timestamp, e.coordinator_epoch, \
                e.current_txn_first_offset
            if e.last_offset >= 0 and e.last_sequence >= 0:
                state.last_seq = e.last_sequence
                first_seq = (e.last_sequence - e.offset_delta) & _SEQ_MASK
                state.recent.append((first_seq, e.last_sequence, e.last_offset - e.offset_delta, e.last_offset))
        open_txns = sorted((s.txn_first, pid) for pid, s in producers.items() if s.txn_first >= 0)
        states._ongoing = {pid: first for first, pid in open_txns}
        return states
