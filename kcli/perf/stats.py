"""Latency and throughput bookkeeping for ``kcli perf produce``, reported the way Kafka's
kafka-producer-perf-test reports them, so numbers can be compared side by side."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence

_MB = 1024 * 1024


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Kafka's nearest-rank pick: the value at index ``int(fraction * count)`` of the sorted sample."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


class ProduceStats:
    """Completed sends: totals, every latency (ms) for the percentiles, and a reporting window.

    ``emit`` receives a line every ``interval`` seconds while records complete (Kafka's 5 s progress
    lines) and is not called at all with ``interval`` None.
    """

    def __init__(
        self,
        emit: Callable[[str], None] | None = None,
        interval: float | None = 5.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock
        self.emit = emit
        self.interval = interval
        self.start = clock()
        self.count = 0
        self.bytes = 0
        self.latencies = array("d")
        self.max_latency = 0.0
        self.total_latency = 0.0
        self._window_start = self.start
        self._window_count = 0
        self._window_bytes = 0
        self._window_total = 0.0
        self._window_max = 0.0

    def record(self, latency_ms: float, size: int, now: float) -> None:
        """One completed record; ``now`` is the clock reading the caller already took."""
        self.count += 1
        self.bytes += size
        self.latencies.append(latency_ms)
        self.total_latency += latency_ms
        if latency_ms > self.max_latency:
            self.max_latency = latency_ms
        self._window_count += 1
        self._window_bytes += size
        self._window_total += latency_ms
        if latency_ms > self._window_max:
            self._window_max = latency_ms
        if self.interval is not None and now - self._window_start >= self.interval:
            self._flush_window(now)

    def _flush_window(self, now: float) -> None:
        elapsed = max(now - self._window_start, 1e-9)
        if self.emit is not None and self._window_count:
            self.emit(
                f"{self._window_count} records sent, {self._window_count / elapsed:.1f} records/sec "
                f"({self._window_bytes / elapsed / _MB:.2f} MB/sec), "
                f"{self._window_total / self._window_count:.1f} ms avg latency, "
                f"{self._window_max:.1f} ms max latency."
            )
        self._window_start = now
        self._window_count = self._window_bytes = 0
        self._window_total = self._window_max = 0.0

    def summary(self, end: float | None = None) -> str:
        """kafka-producer-perf-test's final line (percentiles in whole ms, as Kafka prints them)."""
        end = self.clock() if end is None else end
        elapsed = max(end - self.start, 1e-9)
        ordered = sorted(self.latencies)
        avg = self.total_latency / self.count if self.count else 0.0
        p50, p95, p99, p999 = (int(percentile(ordered, f)) for f in (0.5, 0.95, 0.99, 0.999))
        return (
            f"{self.count} records sent, {self.count / elapsed:.1f} records/sec "
            f"({self.bytes / elapsed / _MB:.2f} MB/sec), {avg:.2f} ms avg latency, "
            f"{self.max_latency:.2f} ms max latency, {p50} ms 50th, {p95} ms 95th, {p99} ms 99th, "
            f"{p999} ms 99.9th."
        )
