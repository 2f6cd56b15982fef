"""The seam between the client's producer, consumer and group members and where records live: the data
directory itself (:class:`~kcli.client.embedded.EmbeddedTransport`) or the partitions' leaders over
Kafka's protocol (:class:`~kcli.client.remote.RemoteTransport`).  Code above this seam holds a
:class:`Transport` and never asks which one it is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from kcli.client.defaults import READ_UNCOMMITTED, TRANSACTION_TIMEOUT_MS

if TYPE_CHECKING:
    from kcli.groups.offsets import CommittedOffset


class Transport(Protocol):
    """Produce, fetch and list offsets of one cluster's partitions."""

    long_polls: bool  # True: fetch(..., wait=S) waits at the broker until data arrives

    @property
    def warnings(self) -> list[str]:
        """Problems met and worked around (a damaged checkpoint, a broker without producer ids)."""
        ...

    def refresh(self) -> object:
        """Forget cached metadata, so the next partition_count sees topics grown meanwhile."""
        ...

    def partition_count(self, topic: str, create: bool = False) -> int:
        """The topic's partition count; ``create`` makes a missing topic (auto.create.topics)."""
        ...

    def init_producer_id(self, transactional_id: str | None = None, timeout_ms: int = TRANSACTION_TIMEOUT_MS) -> tuple[int, int]:
        """A new (producer id, epoch) for an idempotent producer; with ``transactional_id`` the id's
        next epoch from its transaction coordinator (fencing older instances, aborting what they left
        open), its transactions aborted after ``timeout_ms``."""
        ...

    def add_partitions_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                              partitions: Iterable[tuple[str, int]]) -> None:
        """Make ``partitions`` part of the open transaction (before its first batch to each)."""
        ...

    def add_offsets_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, group: str) -> None:
        """Make ``group``'s offsets part of the open transaction."""
        ...

    def txn_offset_commit(self, transactional_id: str, group: str, producer_id: int, producer_epoch: int,
                          offsets: Mapping[tuple[str, int], CommittedOffset]) -> None:
        """Offsets for ``group`` that are committed with the transaction (and dropped if it aborts)."""
        ...

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> None:
        """Commit or abort the open transaction: markers to every partition in it, offsets applied."""
        ...

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        """Store one encoded record batch; returns its base offset (-1 when acks=0 leaves it unknown)."""
        ...

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20,
              wait: float = 0.0, isolation: str = READ_UNCOMMITTED) -> tuple[bytes, int]:
        """Batches from ``offset`` on (the first may start before it; empty when there is nothing new) and
        the offset after the last batch read, kept or not: read_committed drops control batches and
        aborted transactions, and a reader must move past a run of them (``offset`` when not known)."""
        ...

    def locate(self, topic: str, partition: int, data_position: int) -> tuple[str | None, int | None]:
        """The file and position of byte ``data_position`` of the last fetch's data, for naming damaged
        bytes; (None, None) where it is not known (a broker's answer does not say)."""
        ...

    def list_offset(self, topic: str, partition: int, spec: str | int, isolation: str = READ_UNCOMMITTED) -> int:
        """'earliest', 'latest' (the last stable offset under read_committed), or the first offset at or
        after a timestamp in ms."""
        ...

    def release(self, durable: bool = False) -> None:
        """Let go of what writes hold (locks, sessions) while input is idle."""
        ...

    def close(self, durable: bool = True) -> None:
        """End every session; ``durable`` makes what was written survive a power cut first."""
        ...
