"""The client's wait between retries: short at first (a coordinator or leader usually moves within
milliseconds), doubling up to a cap so a long outage is not hammered."""

from __future__ import annotations

import time


class Backoff:
    """Sleep ``first`` seconds, then twice as long each time, never more than ``cap``."""

    def __init__(self, first: float = 0.05, cap: float = 1.0) -> None:
        self.delay = first
        self.cap = cap

    def sleep(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)
