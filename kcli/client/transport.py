"""The seam between the client's producer, consumer and group members and where records live: the data
directory itself (:class:`~kcli.client.embedded.EmbeddedTransport`) or the partitions' leaders over
Kafka's protocol (:class:`~kcli.client.remote.RemoteTransport`).  Code above this seam holds a
:class:`Transport` and never asks which one it is."""

from __future__ import annotations

from typing import Protocol


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

    def init_producer_id(self) -> tuple[int, int]:
        """A new (producer id, epoch) for an idempotent producer."""
        ...

    def produce(self, topic: str, partition: int, batch: bytes) -> int:
        """Store one encoded record batch; returns its base offset (-1 when acks=0 leaves it unknown)."""
        ...

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20,
              wait: float = 0.0) -> bytes:
        """Batches from ``offset`` on (the first may start before it); empty when there is nothing new."""
        ...

    def locate(self, topic: str, partition: int, data_position: int) -> tuple[str | None, int | None]:
        """The file and position of byte ``data_position`` of the last fetch's data, for naming damaged
        bytes; (None, None) where it is not known (a broker's answer does not say)."""
        ...

    def list_offset(self, topic: str, partition: int, spec: str | int) -> int:
        """'earliest', 'latest', or the first offset at or after a timestamp in ms."""
        ...

    def release(self, durable: bool = False) -> None:
        """Let go of what writes hold (locks, sessions) while input is idle."""
        ...

    def close(self, durable: bool = True) -> None:
        """End every session; ``durable`` makes what was written survive a power cut first."""
        ...
