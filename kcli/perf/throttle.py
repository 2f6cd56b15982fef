"""Holding a load generator to a target rate, like Kafka's ThroughputThrottler (``--throughput``)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttler:
    """Says how long to pause so that ``sent`` items since ``start`` do not exceed ``per_second``.

    A rate <= 0 means unthrottled (Kafka's ``--throughput -1``).
    """

    def __init__(
        self, per_second: float, start: float, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.per_second = per_second
        self.start = start
        self.clock = clock

    @property
    def active(self) -> bool:
        return self.per_second > 0

    def delay(self, sent: int, now: float) -> float:
        """Seconds to wait before sending item number ``sent`` + 1; 0 when on or behind schedule."""
        if self.per_second <= 0:
            return 0.0
        return max(0.0, self.start + sent / self.per_second - now)
