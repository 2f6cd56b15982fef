"""Idempotent producers: producer ids, and the per-partition sequence checks that drop retried batches.

Modern clients (Kafka's Java producer since 3.0, kafka-python 3, kcli's own) are idempotent by default:
they ask for a producer id (InitProducerId; embedded, :class:`ProducerIds` directly) and number their
batches per partition.  Every write session on a partition -- a broker leading it, or an embedded writer
(:class:`~kcli.replica.writer.PartitionWriter` for both) -- then answers a batch it already stored (a
retry after a lost answer) with the original offset instead of storing it twice, and refuses a gap in
the numbering.

Producer ids come in blocks from ``cluster/producer-ids`` (a counter advanced under a file lock), so
ids are unique across brokers, embedded writers and restarts.  Sequence state lives in memory while a
session writes the partition.  A session that ends leaves it in a snapshot file next to the segments,
which the next session takes while the log still ends where it did (same end offset, same latest leader
epoch); otherwise -- a writer killed, another leader since -- the state is rebuilt from the batches in
the last ``STATE_FROM_BYTES`` of the log (their headers carry producer id, epoch and sequences;
followers copy them as they are).  So a retry that reaches a new leader after a failover or a restart,
or the embedded writer after the brokers stopped, is still recognised, and opening a session does not
read megabytes of headers each time (a log of small batches holds 100,000 in that tail; `tail -f |
kcli produce` opens a session per burst).  A producer silent for longer than that tail is accepted at
whatever sequence it is at, as one first seen.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable
from itertools import chain
from typing import TYPE_CHECKING

from kcli.cluster.datadir import DataDir, FileLock
from kcli.errors import KcliError, ProducerFencedError, SequenceError
from kcli.storage.checkpoint import atomic_write
from kcli.storage.fileio import read_file, write_file
from kcli.storage.records import BatchHeader

if TYPE_CHECKING:
    from kcli.storage.log import PartitionLog

BLOCK = 1000  # ids a broker reserves at a time; an embedded producer takes one
RECENT = 5  # batches remembered per producer, as Kafka does (max.in.flight.requests <= 5)
MAX_PRODUCERS = 10_000  # per partition; the longest-unseen producer is forgotten first
STATE_FROM_BYTES = 8 << 20  # how much of a log's tail a write session reads to rebuild producer state
_SEQ_MASK = 0x7FFFFFFF
SNAPSHOT = "kcli-producer-state"  # in the partition dir: the state the last write session left


class ProducerIds:
    """Hands out producer ids from blocks reserved in the data dir."""

    def __init__(self, datadir: DataDir, block: int = BLOCK) -> None:
        self.block = block
        self.path = os.path.join(datadir.cluster_dir, "producer-ids")
        self.lock = FileLock(self.path + ".lock", datadir.lock_timeout, "producer ids")
        self._mutex = threading.Lock()
        self._next = 0
        self._end = 0

    def next(self) -> int:
        with self._mutex:
            if self._next >= self._end:
                with self.lock:
                    try:
                        with open(self.path, encoding="ascii") as fh:
                            start = int(fh.read().strip() or 0)
                    except FileNotFoundError:
                        start = 0
                    atomic_write(self.path, f"{start + self.block}\n".encode())
                self._next, self._end = start, start + self.block
            pid = self._next
            self._next += 1
            return pid


class _Producer:
    """One producer's epoch, last sequence, and its RECENT last batches as (first seq, last seq, base
    offset).  A plain class: a dataclass costs a millisecond of every produce's start-up."""

    __slots__ = ("epoch", "last_seq", "recent")

    def __init__(self, epoch: int, last_seq: int, recent: Iterable[tuple[int, int, int]] = ()) -> None:
        self.epoch = epoch
        self.last_seq = last_seq
        self.recent: deque[tuple[int, int, int]] = deque(recent, maxlen=RECENT)


def _mark(log: PartitionLog) -> str:
    """What a snapshot is valid for: the log's end offset and its latest leader epoch (a log truncated and
    written again since has a newer one)."""
    epochs = log.epochs()
    epoch, start = epochs[-1] if epochs else (-1, -1)
    return f"v1 {log.log_end_offset} {epoch} {start}"


class ProducerStates:
    """The sequence state of every idempotent producer writing to one partition (caller serialises)."""

    def __init__(self) -> None:
        self._producers: dict[int, _Producer] = {}

    @classmethod
    def of_log(cls, log: PartitionLog) -> tuple[ProducerStates, str | None]:
        """The state of the producers writing ``log`` (a leader's, opened for append): its snapshot if the
        log still ends where the snapshot says, else what the batches in its tail leave -- and what
        stopped that rebuild early, if anything (then sequences restart from what follows, as for
        producers first seen)."""
        states = cls._load(log)
        if states is not None:
            return states, None
        states = cls()
        try:
            states.rebuild(log.tail_headers(STATE_FROM_BYTES))
        except KcliError as exc:
            return states, f"producer state not rebuilt from {log.directory}: {exc}"
        return states, None

    @classmethod
    def _load(cls, log: PartitionLog) -> ProducerStates | None:
        try:
            mark, *lines = read_file(os.path.join(log.directory, SNAPSHOT)).decode("ascii").splitlines()
            if mark != _mark(log):
                return None
            states = cls()
            for line in lines:
                pid, epoch, last_seq, *recent = map(int, line.split())
                entries = zip(recent[0::3], recent[1::3], recent[2::3], strict=True)
                states._producers[pid] = _Producer(epoch, last_seq, entries)
        except (OSError, ValueError):  # none, or unreadable: read the tail instead
            return None
        return states

    def save(self, log: PartitionLog) -> None:
        """Leave the state for the next write session of ``log``; call as the session ends.  Best effort:
        without it the next session reads the log's tail."""
        lines = [_mark(log)]
        for pid, state in self._producers.items():  # least recently seen first, as they are kept
            lines.append(" ".join(map(str, (pid, state.epoch, state.last_seq, *chain(*state.recent)))))
        path = os.path.join(log.directory, SNAPSHOT)
        try:
            write_file(path + ".tmp", ("\n".join(lines) + "\n").encode("ascii"))
            os.replace(path + ".tmp", path)
        except OSError:
            pass

    def rebuild(self, headers: Iterable[BatchHeader]) -> None:
        """Replay stored batches (oldest first), as if each had just been appended."""
        for header in headers:
            self.appended(header, header.base_offset)

    def check(self, header: BatchHeader) -> int | None:
        """Before appending: the original base offset if this batch is a duplicate, else None to append.
        Raises SequenceError for a fenced epoch or a gap in the sequence."""
        if header.producer_id < 0 or header.base_sequence < 0:
            return None
        state = self._producers.get(header.producer_id)
        if state is None:
            return None
        if header.producer_epoch < state.epoch:
            raise ProducerFencedError(
                f"producer {header.producer_id}: epoch {header.producer_epoch} is older than {state.epoch}"
            )
        if header.producer_epoch > state.epoch:
            if header.base_sequence != 0:
                raise SequenceError(
                    f"producer {header.producer_id}: a new epoch must start at sequence 0, "
                    f"not {header.base_sequence}"
                )
            return None
        for first, last, offset in state.recent:
            if first == header.base_sequence and last == header.last_sequence:
                return offset
        expected = (state.last_seq + 1) & _SEQ_MASK
        if header.base_sequence != expected:
            raise SequenceError(
                f"producer {header.producer_id}: expected sequence {expected}, got {header.base_sequence}"
            )
        return None

    def appended(self, header: BatchHeader, base_offset: int) -> None:
        """After appending: remember the batch (a retry of it is then answered with ``base_offset``)."""
        if header.producer_id < 0 or header.base_sequence < 0:
            return
        state = self._producers.pop(header.producer_id, None)  # re-inserted last: most recently seen
        if state is None or header.producer_epoch != state.epoch:
            state = _Producer(header.producer_epoch, -1)
        self._producers[header.producer_id] = state
        if len(self._producers) > MAX_PRODUCERS:
            del self._producers[next(iter(self._producers))]
        state.last_seq = header.last_sequence
        state.recent.append((header.base_sequence, header.last_sequence, base_offset))
