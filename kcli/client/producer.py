"""The producer: accumulates records into per-partition batches and hands them to a transport.

Like Kafka's producer, records are batched up to ``batch_size`` bytes; ``flush()`` sends what is pending.
Delivery reports (topic, partition, offset) go to ``on_delivery`` in send order per partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kcli.client.partitioner import DefaultPartitioner
from kcli.errors import UsageError
from kcli.storage import compression
from kcli.storage.records import encode_batch

DeliveryCallback = Callable[[str, int, int], None]
_RECORD_OVERHEAD = 12  # rough per-record framing, for batch sizing


class Producer:
    """Batching producer over a transport offering ``partition_count``, ``produce`` and ``release``."""

    def __init__(
        self,
        transport,
        *,
        codec: int = compression.NONE,
        batch_size: int = 16384,
        max_batch_records: int = 100_000,
        on_delivery: DeliveryCallback | None = None,
        partitioner: DefaultPartitioner | None = None,
    ) -> None:
        self.transport = transport
        self.codec = codec
        self.batch_size = batch_size
        self.max_batch_records = max_batch_records
        self.on_delivery = on_delivery
        self.partitioner = partitioner or DefaultPartitioner()
        self._pending: dict[tuple[str, int], list[tuple]] = {}
        self._sizes: dict[tuple[str, int], int] = {}
        self._counts: dict[str, int] = {}
        self.sent = 0

    def _partitions(self, topic: str) -> int:
        n = self._counts.get(topic)
        if n is None:
            n = self._counts[topic] = self.transport.partition_count(topic, create=True)
        return n

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Queue one record; a full batch is sent at once."""
        n = self._partitions(topic)
        if partition is None:
            partition = self.partitioner.partition(topic, key, n)
        elif not 0 <= partition < n:
            raise UsageError(f"topic {topic!r} has no partition {partition} (it has {n})")
        tp = (topic, partition)
        batch = self._pending.get(tp)
        if batch is None:
            batch = self._pending[tp] = []
            self._sizes[tp] = 0
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000
        batch.append((key, value, headers, timestamp))
        size = self._sizes[tp] + _RECORD_OVERHEAD + (len(value) if value else 0) + (len(key) if key else 0)
        self._sizes[tp] = size
        if size >= self.batch_size or len(batch) >= self.max_batch_records:
            self._send(tp)

    def _send(self, tp: tuple[str, int]) -> None:
        batch = self._pending.pop(tp, None)
        self._sizes.pop(tp, None)
        if not batch:
            return
        topic, partition = tp
        data = encode_batch(batch, 0, self.codec)
        base = self.transport.produce(topic, partition, data)
        self.sent += len(batch)
        self.partitioner.batch_sent(topic, partition, self._counts[topic])
        if self.on_delivery is not None:
            for i in range(len(batch)):
                self.on_delivery(topic, partition, base + i)

    @property
    def pending(self) -> int:
        return sum(len(b) for b in self._pending.values())

    def flush(self) -> None:
        """Send every pending batch and let other writers in."""
        for tp in list(self._pending):
            self._send(tp)
        self.transport.release()

    def close(self) -> None:
        """Flush, then end durably (fsync and checkpoints)."""
        for tp in list(self._pending):
            self._send(tp)
        self.transport.close(durable=True)
