"""One transactional id's state, as Kafka's TransactionMetadata keeps it, and the transitions it allows.

The state is what the coordinator persists (kcli.transactions.store): who the producer is (id, epoch,
and the previous ones, so a retried InitProducerId is recognised), the transaction timeout, and the open
transaction's partitions, groups and pending offsets.  Pending offsets are TxnOffsetCommit's offsets,
applied to the groups' OffsetStore only when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kcli.errors import KcliError, UsageError
from kcli.groups.offsets import CommittedOffset

TopicPartition = tuple[str, int]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_EPOCH = 32767  # Short.MAX_VALUE: epochs are int16 on the wire
FORMAT_VERSION = 1
MAX_ID_BYTES = 32767  # a Kafka string's length is an int16


def check_transactional_id(transactional_id: str) -> None:
    """Kafka's rules: not empty (INVALID_REQUEST) and short enough to be a Kafka string."""
    if not transactional_id:
        raise UsageError("transactional id is empty")
    size = len(transactional_id.encode("utf-8"))
    if size > MAX_ID_BYTES:
        raise UsageError(f"transactional id is {size} bytes long; Kafka allows at most {MAX_ID_BYTES}")


class TxnState(StrEnum):
    """Kafka's transaction states, with the names Kafka's tools print."""

    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"
    DEAD = "Dead"

    @property
    def prepared(self) -> bool:
        """The outcome is decided and durable, but markers or offsets may still be missing."""
        return self in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)

    @property
    def complete(self) -> bool:
        """No transaction open: a new one may start (with AddPartitions or AddOffsets)."""
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


def states_named(names: Iterable[str]) -> set[TxnState]:
    """The states ``names`` name, in any case, as the operators' filters take them (UsageError for a
    name Kafka does not have)."""
    known = {s.value.lower(): s for s in TxnState}
    wanted: set[TxnState] = set()
    for name in names:
        if name.lower() not in known:
            raise UsageError(f"unknown transaction state {name!r}; one of {', '.join(s.value for s in TxnState)}")
        wanted.add(known[name.lower()])
    return wanted


# Kafka's TransactionState.validPreviousStates: where each state may be reached from.
PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    TxnState.EMPTY: frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}),
    TxnState.ONGOING: frozenset({TxnState.ONGOING, TxnState.EMPTY, TxnState.COMPLETE_COMMIT,
                                 TxnState.COMPLETE_ABORT}),
    TxnState.PREPARE_COMMIT: frozenset({TxnState.ONGOING}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.PREPARE_COMMIT}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.PREPARE_ABORT}),
    TxnState.PREPARE_EPOCH_FENCE: frozenset({TxnState.ONGOING}),
    TxnState.DEAD: frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}),
}


@dataclass(frozen=True)
class TransactionInfo:
    """What DescribeTransactions / ListTransactions tell an operator about one transactional id.
    ``start_ms`` is when the open transaction began (-1 when none is open)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    state: str
    timeout_ms: int
    start_ms: int
    partitions: tuple[TopicPartition, ...]
    groups: tuple[str, ...]


def running_longer(info: TransactionInfo, now_ms: int, duration_ms: int) -> bool:
    """ListTransactions' duration filter, as Kafka applies it: the transaction started more than
    ``duration_ms`` ago (an id with no open transaction has start -1, so it passes); a negative
    ``duration_ms`` filters nothing."""
    return duration_ms < 0 or now_ms - info.start_ms > duration_ms


@dataclass
class TransactionMetadata:
    """The persisted state of one transactional id (mutated by the coordinator under the id's lock)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    last_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    start_ms: int = -1
    update_ms: int = -1
    partitions: set[TopicPartition] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    pending_offsets: dict[str, dict[TopicPartition, CommittedOffset]] = field(default_factory=dict)
    applied_groups: set[str] = field(default_factory=set)  # committed groups whose offsets are applied

    def transit(self, new: TxnState, now_ms: int) -> None:
        """Move to ``new``; a move Kafka would not make is a bug here, never a client's error."""
        if self.state not in PREVIOUS[new]:
            raise KcliError(f"transactional id {self.transactional_id!r}: illegal transition "
                            f"{self.state.value} -> {new.value}")
        if new is TxnState.ONGOING and self.state is not TxnState.ONGOING:
            self.start_ms = now_ms
        if new.complete:
            self.start_ms = -1
            self.partitions = set()
            self.groups = set()
            self.pending_offsets = {}
            self.applied_groups = set()
        self.state = new
        self.update_ms = now_ms

    @property
    def epoch_exhausted(self) -> bool:
        """Kafka's rule: the next InitProducerId takes a new producer id rather than bump to MAX_EPOCH."""
        return self.producer_epoch >= MAX_EPOCH - 1

    def info(self) -> TransactionInfo:
        return TransactionInfo(self.transactional_id, self.producer_id, self.producer_epoch, self.state.value,
                               self.timeout_ms, self.start_ms, tuple(sorted(self.partitions)),
                               tuple(sorted(self.groups)))

    # ------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, object]:
        return {
            "version": FORMAT_VERSION,
            "transactional_id": self.transactional_id,
            "producer_id": self.producer_id,
            "producer_epoch": self.producer_epoch,
            "last_producer_id": self.last_producer_id,
            "last_producer_epoch": self.last_producer_epoch,
            "timeout_ms": self.timeout_ms,
            "state": self.state.value,
            "start_ms": self.start_ms,
            "update_ms": self.update_ms,
            "partitions": [[t, p] for t, p in sorted(self.partitions)],
            "groups": sorted(self.groups),
            "pending_offsets": {g: [c.to_json(t, p) for (t, p), c in sorted(offsets.items())]
                                for g, offsets in sorted(self.pending_offsets.items())},
            "applied_groups": sorted(self.applied_groups),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransactionMetadata:
        """The state a :meth:`to_json` wrote; KeyError, TypeError or ValueError for anything else."""
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        pending = {
            str(group): {(str(e["topic"]), int(e["partition"])): CommittedOffset(
                int(e["offset"]), str(e["metadata"]), int(e["commit_timestamp"]), int(e["leader_epoch"]))
                for e in entries}
            for group, entries in data["pending_offsets"].items()
        }
        return cls(
            transactional_id=str(data["transactional_id"]),
            producer_id=int(data["producer_id"]),
            producer_epoch=int(data["producer_epoch"]),
            timeout_ms=int(data["timeout_ms"]),
            state=TxnState(data["state"]),
            last_producer_id=int(data["last_producer_id"]),
            last_producer_epoch=int(data["last_producer_epoch"]),
            start_ms=int(data["start_ms"]),
            update_ms=int(data["update_ms"]),
            partitions={(str(t), int(p)) for t, p in data["partitions"]},
            groups={str(g) for g in data["groups"]},
            pending_offsets=pending,
            applied_groups={str(g) for g in data["applied_groups"]},
        )
