"""The load behind ``kcli perf consume``: read N records through the client library's Consumer and
report them in kafka-consumer-perf-test's columns."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcli.client.consumer import Consumer

if TYPE_CHECKING:
    from kcli.client.transport import Transport

_MB = 1024 * 1024
HEADER = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
    "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
)
DETAIL_HEADER = (
    "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
    "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
)


def kafka_time(epoch_seconds: float) -> str:
    """Kafka's ``yyyy-MM-dd HH:mm:ss:SSS`` in local time."""
    ms = int(epoch_seconds * 1000) % 1000
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_seconds)) + f":{ms:03d}"


@dataclass
class ConsumeResult:
    """What a run read; ``setup`` (assignment and start offsets) stands in for Kafka's rebalance time."""

    start: float
    end: float
    setup: float
    messages: int
    bytes: int
    timed_out: bool = False

    def line(self) -> str:
        elapsed = max(self.end - self.start, 1e-9)
        fetch = max(elapsed - self.setup, 1e-9)
        mb = self.bytes / _MB
        return (
            f"{kafka_time(self.start)}, {kafka_time(self.end)}, {mb:.4f}, {mb / elapsed:.4f}, "
            f"{self.messages}, {self.messages / elapsed:.4f}, {int(self.setup * 1000)}, "
            f"{int(fetch * 1000)}, {mb / fetch:.4f}, {self.messages / fetch:.4f}"
        )


def run_consume(
    transport: Transport,
    topic: str,
    messages: int,
    *,
    timeout_ms: int = 10_000,
    from_latest: bool = False,
    poll_interval: float = 0.05,
    detail: Callable[[str], None] | None = None,
    detail_interval: float = 5.0,
    on_progress: Callable[[int], None] | None = None,
) -> ConsumeResult:
    """Read up to ``messages`` records from every partition of ``topic`` (earliest, or latest with
    ``from_latest``), counting key and value bytes as Kafka does.  Stops early once nothing new has
    arrived for ``timeout_ms``; then ``end`` is the time of the last record, not of the give-up."""
    start = time.time()
    consumer = Consumer(transport, poll_interval=poll_interval)
    spec = "latest" if from_latest else "earliest"
    partitions = range(transport.partition_count(topic))
    consumer.assign({(topic, p): transport.list_offset(topic, p, spec) for p in partitions})
    setup = time.time() - start
    count = size = 0
    last = time.time()
    window = (last, 0, 0)
    timed_out = False
    while count < messages:
        got = 0
        for p in partitions:
            records = consumer.fetch_partition(topic, p)
            if not records:
                continue
            records = records[: messages - count]
            got += len(records)
            count += len(records)
            size += sum([len(r.value or b"") + len(r.key or b"") for r in records])
            if count >= messages:
                break
        now = time.time()
        if got:
            last = now
            if on_progress is not None:
                on_progress(got)
            if detail is not None and now - window[0] >= detail_interval:
                detail(_detail_line(now, window, count, size, setup))
                window = (now, count, size)
        elif now - last >= timeout_ms / 1000:
            timed_out = True
            break
        else:
            time.sleep(poll_interval)
    end = last if timed_out else time.time()
    return ConsumeResult(start, end, setup, count, size, timed_out)


def _detail_line(now: float, window: tuple[float, int, int], count: int, size: int, setup: float) -> str:
    since, count0, size0 = window
    elapsed = max(now - since, 1e-9)
    mb = size / _MB
    rate_mb = (size - size0) / _MB / elapsed
    rate_n = (count - count0) / elapsed
    return (
        f"{kafka_time(now)}, 0, {mb:.4f}, {rate_mb:.4f}, {count}, {rate_n:.4f}, {int(setup * 1000)}, "
        f"{int(elapsed * 1000)}, {rate_mb:.4f}, {rate_n:.4f}"
    )
