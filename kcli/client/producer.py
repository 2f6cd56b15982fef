"""The producer: accumulates records into per-partition batches and hands them to a transport.

Like Kafka's producer, records are batched up to ``batch_size`` bytes; ``flush()`` sends what is pending.
Delivery reports (topic, partition, offset) go to ``on_delivery`` in send order per partition.

Like Kafka's producer since 3.0 it is idempotent by default: it takes a producer id from the transport
(InitProducerId through brokers, the data dir's allocator embedded) and numbers its batches per
partition, so a batch the transport sends again after a lost answer or a leader change is recognised by
whoever stores it and is neither stored twice nor out of order.  The numbers go in each batch's header
as it is framed (per batch, never per record).  A batch whose fate stays unknown (the transport gave up)
ends the producer session: later batches go under a new producer id, so none is mistaken for a retry.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from itertools import accumulate, repeat
from typing import TYPE_CHECKING

from kcli.client.partitioner import DefaultPartitioner
from kcli.errors import KcliError, NoProducerIdError, RecordTooLargeError, UsageError
from kcli.storage import compression
from kcli.storage.records import RecordTuple, Section, frame, record_section, value_section

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from kcli.client.transport import Transport

DeliveryCallback = Callable[[str, int, int], None]
_time_ns = time.time_ns
_RECORD_OVERHEAD = 12  # rough per-record framing, for batch sizing
_SEQ_MASK = 0x7FFFFFFF  # sequence numbers wrap to 0 after 2**31 - 1, as Kafka's do


class _Batch:
    """What waits to be sent to one partition.  Records are (key, value, headers, timestamp) tuples, but
    while only unkeyed, header-less values arrive (the pipe path) they are kept bare, with their
    timestamps as runs of (count, timestamp): a tuple per record, built and taken apart again by the
    encoder, was a fifth of the cost of producing small lines."""

    __slots__ = ("records", "values", "runs", "size")

    def __init__(self) -> None:
        self.records: list[RecordTuple] | None = None  # None while the batch holds bare values
        self.values: list[bytes] = []
        self.runs: list[tuple[int, int]] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self.values) if self.records is None else len(self.records)

    def add(self, record: RecordTuple) -> None:
        self.tuples().append(record)

    def add_values(self, values: Sequence[bytes], timestamp: int) -> None:
        if self.records is not None:
            self.records.extend(zip(repeat(None), values, repeat(()), repeat(timestamp)))
            return
        self.values += values
        if self.runs and self.runs[-1][1] == timestamp:
            self.runs[-1] = (self.runs[-1][0] + len(values), timestamp)
        else:
            self.runs.append((len(values), timestamp))

    def tuples(self) -> list[RecordTuple]:
        """The records as tuples (from now on this batch keeps them so)."""
        if self.records is None:
            stamps = [ts for count, ts in self.runs for _ in range(count)]
            self.records = list(zip(repeat(None), self.values, repeat(()), stamps))
            self.values, self.runs = [], []
        return self.records

    def section(self) -> Section:
        if self.records is None:
            return value_section(self.values, self.runs)
        return record_section(self.records)

    def encode(
        self,
        codec: int,
        section: Section | None = None,
        compressed: bytes | None = None,
        producer: tuple[int, int, int] = (-1, -1, -1),
        transactional: bool = False,
    ) -> bytes:
        """The framed batch; ``producer`` is (producer id, epoch, base sequence) for its header."""
        producer_id, epoch, sequence = producer
        return frame(
            section or self.section(),
            codec,
            compressed=compressed,
            producer_id=producer_id,
            producer_epoch=epoch,
            base_sequence=sequence,
            transactional=transactional,
        )

    def halves(self) -> tuple[_Batch, _Batch]:
        records = self.tuples()
        first, second = _Batch(), _Batch()
        first.records, second.records = records[: len(records) // 2], records[len(records) // 2 :]
        return first, second


class Producer:
    """Batching producer over a :class:`~kcli.client.transport.Transport`.

    ``idempotence``: True requires it; None (the default) uses it where the cluster can (one that hands
    out no producer ids gets batches without producer id, and a line in ``warnings`` says so); False
    never."""

    transactional = False  # batches flagged as part of a transaction (see kcli.client.transactional)

    def __init__(
        self,
        transport: Transport,
        *,
        codec: int = compression.NONE,
        batch_size: int = 16384,
        max_batch_records: int = 100_000,
        on_delivery: DeliveryCallback | None = None,
        partitioner: DefaultPartitioner | None = None,
        idempotence: bool | None = None,
    ) -> None:
        self.transport = transport
        self.required = bool(idempotence)
        self.idempotence = self.required or idempotence is None
        self.warnings: list[str] = []
        self._identity: tuple[int, int] | None = None  # (producer id, epoch), asked for with the first batch
        self._sequences: dict[tuple[str, int], int] = {}  # the next batch's base sequence per partition
        self.codec = codec
        self.batch_size = batch_size
        self.max_batch_records = max_batch_records
        self.on_delivery = on_delivery
        self.partitioner = partitioner or DefaultPartitioner()
        self._pending: dict[tuple[str, int], _Batch] = {}
        self._counts: dict[str, int] = {}
        self.sent = 0
        self._compressor = None if codec == compression.NONE else _Compressor(codec)

    def _partitions(self, topic: str) -> int:
        n = self._counts.get(topic)
        if n is None:
            n = self._counts[topic] = self.transport.partition_count(topic, create=True)
        return n

    def _batch(self, tp: tuple[str, int]) -> _Batch:
        batch = self._pending.get(tp)
        if batch is None:
            batch = self._pending[tp] = _Batch()
        return batch

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
        n = self._counts.get(topic) or self._partitions(topic)  # no method call per record once known
        if partition is None:
            partition = self.partitioner.partition(topic, key, n)
        elif not 0 <= partition < n:
            raise UsageError(f"topic {topic!r} has no partition {partition} (it has {n})")
        tp = (topic, partition)
        batch = self._batch(tp)
        if timestamp is None:
            timestamp = _time_ns() // 1_000_000
        batch.add((key, value, headers, timestamp))
        batch.size += _RECORD_OVERHEAD + (len(value) if value else 0) + (len(key) if key else 0)
        if batch.size >= self.batch_size or len(batch) >= self.max_batch_records:
            self._send(tp)

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes],
        headers: Sequence[tuple[str, bytes | None]] = (),
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Queue one unkeyed record per value, batched exactly as that many ``send()`` calls would be.

        This is the pipe-to-topic path: whole runs of records are cut into batches with a bisect over
        their cumulative sizes instead of a Python call per record, which dominated producing small lines.
        Every record gets the same timestamp (they arrived together).
        """
        n = self._partitions(topic)
        if partition is not None and not 0 <= partition < n:
            raise UsageError(f"topic {topic!r} has no partition {partition} (it has {n})")
        if not values:
            return
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000
        try:
            ends = list(accumulate(map(len, values)))
        except TypeError:  # a None value: take the general path
            for value in values:
                self.send(topic, value, None, headers, partition, timestamp)
            return
        total = len(values)

        def size_through(i: int) -> int:  # what values[: i + 1] add to a batch's size
            return ends[i] + (i + 1) * _RECORD_OVERHEAD

        start = 0
        done = 0  # size_through(start - 1)
        while start < total:
            p = self.partitioner.partition(topic, None, n) if partition is None else partition
            tp = (topic, p)
            batch = self._batch(tp)
            # the record that brings the batch to batch_size (or to max_batch_records) closes it
            last = bisect_left(range(total), self.batch_size - batch.size + done, start, key=size_through)
            last = min(last, start + self.max_batch_records - len(batch) - 1)
            stop = min(last + 1, total)
            if headers:
                batch.tuples().extend(zip(repeat(None), values[start:stop], repeat(headers), repeat(timestamp)))
            else:
                batch.add_values(values[start:stop], timestamp)
            batch.size += size_through(stop - 1) - done
            done = size_through(stop - 1)
            start = stop
            if batch.size >= self.batch_size or len(batch) >= self.max_batch_records:
                self._send(tp)

    def _send(self, tp: tuple[str, int]) -> None:
        batch = self._pending.pop(tp, None)
        if not batch:
            return
        topic, partition = tp
        if self._compressor is None:
            self._deliver(topic, partition, batch)
        else:
            for done in self._compressor.submit(topic, partition, batch):
                self._deliver(*done)
        self.partitioner.batch_sent(topic, partition, self._counts[topic])

    def _compressed(self) -> None:
        """Send the batches still being compressed."""
        if self._compressor is not None:
            for done in self._compressor.finish():
                self._deliver(*done)

    def _deliver(
        self,
        topic: str,
        partition: int,
        batch: _Batch,
        section: Section | None = None,
        compressed: bytes | None = None,
    ) -> None:
        """Frame one batch (its records ``section`` and ``compressed`` body already made, or made here) with
        the partition's next sequence number, and send it.  A batch the partition refuses as too large
        (over max.message.bytes) is split in halves and sent again, as Kafka's producer does (KIP-126):
        only a single oversized record fails.  The sequence moves on only once the batch is stored."""
        tp = (topic, partition)
        producer = (-1, -1, -1)
        if self.idempotence and self._identity is None:
            self._identity = self._init_producer_id()
        if self._identity is not None:  # None while idempotence is off (or was just turned off)
            producer = (*self._identity, self._sequences.get(tp, 0))
        if self.transactional:
            self._join(tp)
        try:
            encoded = batch.encode(self.codec, section, compressed, producer, self.transactional)
            base = self.transport.produce(topic, partition, encoded)
        except RecordTooLargeError:  # refused before it was stored: its sequence numbers are still free
            if len(batch) == 1:
                raise
            for half in batch.halves():
                self._deliver(topic, partition, half)
            return
        except KcliError:
            # maybe stored, maybe not: a new producer session, so that no later batch passes for a retry
            self._lost()
            raise
        if self.idempotence:
            self._sequences[tp] = (producer[2] + len(batch)) & _SEQ_MASK
        self.sent += len(batch)
        if self.on_delivery is not None:
            for i in range(len(batch)):
                self.on_delivery(topic, partition, base + i if base >= 0 else -1)  # -1: unknown (acks=0)

    def _join(self, tp: tuple[str, int]) -> None:
        """Before a transactional batch: make its partition part of the transaction."""

    def _lost(self) -> None:
        """A batch whose fate is unknown: start a new producer session."""
        self._identity = None
        self._sequences.clear()

    def _init_producer_id(self) -> tuple[int, int] | None:
        """Our producer id and epoch; None (idempotence off from now on) where the cluster hands out none
        and idempotence was not required."""
        try:
            return self.transport.init_producer_id()
        except NoProducerIdError as exc:
            if self.required:
                raise
            self.idempotence = False
            self.warnings.append(f"{exc}: producing without idempotence (a retry may store a batch twice)")
            return None

    @property
    def pending(self) -> int:
        compressing = self._compressor.records if self._compressor is not None else 0
        return sum(map(len, self._pending.values())) + compressing

    def flush(self) -> None:
        """Send every pending batch and let other writers in."""
        self.send_pending()
        self.transport.release()

    def send_pending(self) -> None:
        """Send every pending batch (and every batch still being compressed)."""
        for tp in list(self._pending):
            self._send(tp)
        self._compressed()

    def close(self) -> None:
        """Flush, then end durably (fsync and checkpoints)."""
        try:
            self.send_pending()
        finally:
            if self._compressor is not None:
                self._compressor.close()
        self.transport.close(durable=True)


# (topic, partition, batch, its records section, its compressed body): a batch ready to go out; the last
# two None when _deliver is to make them
_Ready = tuple[str, int, _Batch, Section | None, bytes | None]


class _Compressor:
    """Compresses batches on one worker thread while the producer builds the next ones: the compressors
    (zlib, lz4, zstd, snappy) release the GIL, and on records of random text zstd runs at about the speed
    of building the records, so the two overlap (a sixth off a zstd produce here).  Batches come back in
    the order they went in; everything else -- the transport above all -- stays on the caller's thread."""

    DEPTH = 2  # batches compressing at once, at most

    def __init__(self, codec: int) -> None:
        self.codec = codec
        self._pool: ThreadPoolExecutor | None = None  # started with the second batch: a one-batch produce has nothing to overlap
        self._first = True
        self._queue: deque[tuple[str, int, _Batch, Section, Future[bytes]]] = deque()

    @property
    def records(self) -> int:
        return sum(len(item[2]) for item in self._queue)

    def submit(self, topic: str, partition: int, batch: _Batch) -> list[_Ready]:
        """Start compressing ``batch``; returns the (topic, partition, batch, section, compressed body) of
        earlier batches that must go out now, oldest first."""
        if self._first:
            self._first = False
            return [(topic, partition, batch, None, None)]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="kcli-compress")
        section = batch.section()
        future = self._pool.submit(compression.compress, self.codec, section.body)
        self._queue.append((topic, partition, batch, section, future))
        return [self._done() for _ in range(len(self._queue) - self.DEPTH)]

    def finish(self) -> list[_Ready]:
        """Every batch still compressing, oldest first."""
        return [self._done() for _ in range(len(self._queue))]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _done(self) -> _Ready:
        topic, partition, batch, section, future = self._queue.popleft()
        return topic, partition, batch, section, future.result()
