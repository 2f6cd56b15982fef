"""The load behind ``kcli perf produce``: N fixed-size records sent one by one through the client
library's Producer, each timed from ``send()`` to its delivery report, as kafka-producer-perf-test does."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from kcli.client.producer import Producer
from kcli.perf.stats import ProduceStats
from kcli.perf.throttle import Throttler
from kcli.storage import compression

if TYPE_CHECKING:
    from kcli.client.transport import Transport


def make_payload(size: int, seed: int | None = None) -> bytes:
    """Kafka's default payload: ``size`` random upper-case letters, reused for every record."""
    rnd = random.Random(seed)
    return bytes(rnd.choices(range(ord("A"), ord("Z") + 1), k=size))


def run_produce(
    transport: Transport,
    topic: str,
    num_records: int,
    record_size: int,
    *,
    throughput: float = -1,
    codec: int = compression.NONE,
    batch_size: int = 16384,
    linger_ms: float = 5,
    idempotence: bool | None = None,
    emit: Callable[[str], None] | None = print,
    report_interval: float | None = 5.0,
    on_progress: Callable[[int], None] | None = None,
) -> str:
    """Send the records, flush, and return the summary line; then close the producer durably.

    Latency is measured per record.  Deliveries arrive in send order: the sticky partitioner fills one
    partition's batch at a time and a batch reports its records in order, so a FIFO of send times is
    exact.  A throttled run sends what is pending once the oldest record has waited ``linger_ms``,
    like the Java producer's linger.ms (an unthrottled run fills batches long before that).
    """
    clock = time.perf_counter
    sent_at: deque[float] = deque()
    stats = ProduceStats(emit, report_interval, clock)

    def delivered(_topic: str, _partition: int, _offset: int) -> None:
        now = clock()
        stats.record((now - sent_at.popleft()) * 1000.0, record_size, now)

    producer = Producer(
        transport, codec=codec, batch_size=batch_size, on_delivery=delivered, idempotence=idempotence
    )
    value = make_payload(record_size)
    throttler = Throttler(throughput, stats.start, clock)
    linger = linger_ms / 1000.0
    send = producer.send
    step = max(1, min(10_000, num_records // 100))
    try:
        for i in range(num_records):
            now = clock()
            if throttler.active:
                wait = throttler.delay(i, now)
                if sent_at and now + wait - sent_at[0] >= linger:
                    producer.flush()
                if wait > 0:
                    time.sleep(wait)
                    now = clock()
            sent_at.append(now)
            send(topic, value)
            if on_progress is not None and (i + 1) % step == 0:
                on_progress(step)
        producer.flush()
        return stats.summary(clock())
    finally:
        producer.close()
