"""The consumer: reads assigned partitions from positions, in offset order per partition."""

from __future__ import annotations

import time
from collections.abc import Iterator

from kcli.errors import UsageError
from kcli.storage.records import Record, decode_records, iter_batches


def resolve_start(transport, topic: str, partition: int, spec: str) -> int:
    """Turn an --offset spec (N, earliest, latest, -N, s@TIMESTAMP_MS) into an offset."""
    if spec in ("earliest", "beginning"):
        return transport.list_offset(topic, partition, "earliest")
    if spec in ("latest", "end"):
        return transport.list_offset(topic, partition, "latest")
    if spec.startswith("s@"):
        try:
            ts = int(spec[2:])
        except ValueError:
            raise UsageError(f"bad timestamp in offset {spec!r}", hint="use s@<milliseconds since epoch>") from None
        return transport.list_offset(topic, partition, ts)
    try:
        value = int(spec)
    except ValueError:
        raise UsageError(f"bad offset {spec!r}", hint="use N, earliest, latest, -N or s@TIMESTAMP") from None
    start = transport.list_offset(topic, partition, "earliest")
    if value < 0:
        end = transport.list_offset(topic, partition, "latest")
        return max(start, end + value)
    return max(start, value)


class Consumer:
    """Fetches from a transport (``fetch``, ``list_offset``) for an explicit set of partitions."""

    def __init__(self, transport, max_bytes: int = 1 << 20, poll_interval: float = 0.05) -> None:
        self.transport = transport
        self.max_bytes = max_bytes
        self.poll_interval = poll_interval
        self.positions: dict[tuple[str, int], int] = {}

    def assign(self, positions: dict[tuple[str, int], int]) -> None:
        self.positions = dict(positions)

    def fetch_partition(self, topic: str, partition: int, upto: int | None = None) -> list[Record]:
        """Records from the current position (bounded by ``upto``), advancing the position."""
        tp = (topic, partition)
        offset = self.positions[tp]
        if upto is not None and offset >= upto:
            return []
        data = self.transport.fetch(topic, partition, offset, self.max_bytes)
        out: list[Record] = []
        for pos, header in iter_batches(data):
            if header.last_offset < offset:
                continue
            for rec in decode_records(data, pos, header):
                if rec.offset >= offset and (upto is None or rec.offset < upto):
                    out.append(rec)
            offset = max(offset, header.next_offset)
            if upto is not None and offset >= upto:
                offset = upto  # records past the bound were not delivered
                break
        self.positions[tp] = offset
        return out

    def stream(self, end_offsets: dict[tuple[str, int], int] | None = None,
               idle_stop: float | None = None) -> Iterator[tuple[str, int, Record] | None]:
        """Yield records from every assigned partition; with ``end_offsets`` stop once all reach them.

        Yields None each time it is about to wait for new data, so callers can flush output then.
        """
        idle_since = time.monotonic()
        while True:
            got = False
            for topic, partition in list(self.positions):
                upto = None if end_offsets is None else end_offsets.get((topic, partition))
                for rec in self.fetch_partition(topic, partition, upto):
                    got = True
                    yield topic, partition, rec
            if end_offsets is not None and all(
                self.positions[tp] >= end for tp, end in end_offsets.items() if tp in self.positions
            ):
                return
            if got:
                idle_since = time.monotonic()
                continue
            if idle_stop is not None and time.monotonic() - idle_since >= idle_stop:
                return
            yield None
            time.sleep(self.poll_interval)
