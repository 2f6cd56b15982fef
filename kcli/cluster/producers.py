"""Idempotent and transactional producers: producer ids.

Modern clients (Kafka's Java producer since 3.0, kafka-python 3, kcli's own) are idempotent by default:
they ask for a producer id (InitProducerId; embedded, :class:`ProducerIds` directly) and number their
batches per partition.  Producer ids come in blocks from ``cluster/producer-ids`` (a counter advanced
under a file lock), so ids are unique across brokers, embedded writers and restarts.  What each partition
knows of its producers (sequences, open transactions) is the log's: :mod:`kcli.storage.producer_state`.
"""

from __future__ import annotations

import os
import threading

from kcli.cluster.datadir import DataDir, FileLock
from kcli.storage.checkpoint import atomic_write

BLOCK = 1000  # ids a broker reserves at a time; an embedded producer takes one


class ProducerIds:
    """Hands out producer ids from blocks reserved in the data dir."""

    def __init__(self, datadir: DataDir, block: int = BLOCK) -> None:
        self.block = block
        self.path = os.path.join(datadir.cluster_dir, "producer-ids")
        self.lock = FileLock(self.path + ".lock", datadir.lock_timeout, "producer ids")
        self._mutex = threading.Lock()
        self._next = 0
        self._end = 0

    def next(self) -> int:
        with self._mutex:
            if self._next >= self._end:
                with self.lock:
                    try:
                        with open(self.path, encoding="ascii") as fh:
                            start = int(fh.read().strip() or 0)
                    except FileNotFoundError:
                        start = 0
                    atomic_write(self.path, f"{start + self.block}\n".encode())
                self._next, self._end = start, start + self.block
            pid = self._next
            self._next += 1
            return pid
