"""The consumer: reads assigned partitions from positions, in offset order per partition."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from kcli.client.defaults import READ_UNCOMMITTED
from kcli.errors import CorruptRecordError, UsageError
from kcli.storage.records import ATTR_CONTROL, Record, decode_records, decode_values, iter_batches

if TYPE_CHECKING:
    from kcli.client.transport import Transport  # a Protocol: for annotations only

_Item = TypeVar("_Item", Record, bytes | None)  # what a fetch delivers: records, or only their values


def resolve_start(transport: Transport, topic: str, partition: int, spec: str,
                  isolation: str = READ_UNCOMMITTED) -> int:
    """Turn an --offset spec (N, earliest, latest, -N, s@TIMESTAMP_MS) into an offset; 'latest' is the
    last stable offset for a read_committed reader."""
    if spec in ("earliest", "beginning"):
        return transport.list_offset(topic, partition, "earliest")
    if spec in ("latest", "end"):
        return transport.list_offset(topic, partition, "latest", isolation)
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
        end = transport.list_offset(topic, partition, "latest", isolation)
        return _last_records_start(transport, topic, partition, -value, start, end, isolation)
    return max(start, value)


def _last_records_start(transport: Transport, topic: str, partition: int, n: int, start: int, end: int,
                        isolation: str) -> int:
    """Where the last ``n`` records before ``end`` begin: ``end - n`` in a log without gaps, further back
    in a compacted one, whose offsets skip.  Each step back of k offsets adds at most k records, so the
    start found never precedes the n-th record from the end; each offset is read once."""
    counter = Consumer(transport, isolation=isolation)
    guess, upto, count = max(start, end - n), end, 0
    while True:
        count += counter.count(topic, partition, guess, upto)
        if count >= n or guess <= start:
            return guess
        guess, upto = max(start, guess - (n - count)), guess


RESETS = ("earliest", "latest")  # a group member's choices where nothing is committed (auto.offset.reset)


def committed_or_reset(transport: Transport, topic: str, partition: int, committed: int | None, reset: str,
                       isolation: str = READ_UNCOMMITTED) -> int:
    """Where a group member starts a partition: the committed offset when it is still in the log, else
    the reset policy, 'earliest' or 'latest' (Kafka's auto.offset.reset)."""
    start = transport.list_offset(topic, partition, "earliest")
    end = transport.list_offset(topic, partition, "latest")
    if committed is not None and start <= committed <= end:
        return committed
    return resolve_start(transport, topic, partition, reset, isolation)


class Consumer:
    """Fetches from a transport (``fetch``, ``list_offset``) for an explicit set of partitions.

    ``isolation``: read_uncommitted (every record up to the high watermark) or read_committed (only
    committed transactions' records, up to the last stable offset); control batches (transaction
    markers) are never handed out."""

    LONG_POLL = 0.5  # how long a broker may hold an idle fetch (Kafka's fetch.max.wait.ms)

    def __init__(self, transport: Transport, max_bytes: int = 1 << 20, poll_interval: float = 0.05,
                 isolation: str = READ_UNCOMMITTED) -> None:
        self.transport = transport
        self.isolation = isolation
        self.max_bytes = max_bytes
        self.poll_interval = poll_interval
        self.positions: dict[tuple[str, int], int] = {}
        self._wait = 0.0  # how long the next fetch may wait at the broker (see _pause)

    def assign(self, positions: dict[tuple[str, int], int]) -> None:
        self.positions = dict(positions)

    def count(self, topic: str, partition: int, offset: int, upto: int) -> int:
        """How many records lie in [offset, upto) (gaps hold none): read, values only."""
        tp = (topic, partition)
        self.positions[tp] = offset
        total = 0
        while self.positions[tp] < upto:
            before = self.positions[tp]
            total += len(self.fetch_values(topic, partition, upto))
            if self.positions[tp] == before:
                break
        return total

    def fetch_partition(self, topic: str, partition: int, upto: int | None = None) -> list[Record]:
        """Records from the current position (bounded by ``upto``), advancing the position."""
        return self._fetch(topic, partition, upto, False)

    def fetch_values(self, topic: str, partition: int, upto: int | None = None) -> list[bytes | None]:
        """The values of the records ``fetch_partition`` would return, advancing the position the same
        way; batches lying wholly in range are decoded without Record objects (see decode_values)."""
        return self._fetch(topic, partition, upto, True)

    @overload
    def _fetch(self, topic: str, partition: int, upto: int | None, values_only: Literal[False]) -> list[Record]: ...

    @overload
    def _fetch(
        self, topic: str, partition: int, upto: int | None, values_only: Literal[True]
    ) -> list[bytes | None]: ...

    def _fetch(
        self, topic: str, partition: int, upto: int | None, values_only: bool
    ) -> list[Record] | list[bytes | None]:
        tp = (topic, partition)
        offset = self.positions[tp]
        if upto is not None and offset >= upto:
            return []
        try:
            data, resume = self.transport.fetch(topic, partition, offset, self.max_bytes, self._wait, self.isolation)
        except CorruptRecordError as exc:
            if exc.path is not None:  # read here: the message names the offset, file and position
                raise
            # a broker's CORRUPT_MESSAGE: say where in the partition; the broker's log names the file
            raise CorruptRecordError(f"cannot read offset {offset}: {exc.message} (damaged data on the broker's "
                                     "disk; its log names the file and position)") from None
        out: list[Any] = []  # Records, or values when values_only
        pos = 0
        try:
            for pos, header in iter_batches(data):
                if header.last_offset < offset:
                    continue
                if header.attributes & ATTR_CONTROL:  # a transaction marker: never the application's
                    pass
                elif values_only and header.base_offset >= offset and (upto is None or header.last_offset < upto):
                    out += decode_values(data, pos, header)
                else:
                    for rec in decode_records(data, pos, header):
                        if rec.offset >= offset and (upto is None or rec.offset < upto):
                            out.append(rec.value if values_only else rec)
                offset = max(offset, header.next_offset)
                if upto is not None and offset >= upto:
                    offset = upto  # records past the bound were not delivered
                    break
            else:  # past batches the transport dropped (aborted, markers), never past the bound
                offset = max(offset, resume if upto is None else min(resume, upto))
        except CorruptRecordError as exc:
            if not out:
                raise self._located(exc, topic, partition, pos, offset) from None
            # deliver the good records before the bad batch; the next fetch starts at it and reports it
        self.positions[tp] = offset
        return out

    def deliver_round(
        self,
        partitions: Iterable[tuple[str, int]],
        ends: Mapping[tuple[str, int], int] | None,
        delivered: dict[tuple[str, int], int],
        stopping: Callable[[], bool],
    ) -> Generator[tuple[str, int, Record], None, bool | None]:
        """A group member's round: one fetch per partition (up to ``ends``, when given), yielding the
        records and noting in ``delivered`` the offset after each one handed out -- what a commit may
        cover.  Returns whether any position moved, or None when ``stopping()`` said stop."""
        progressed = False
        for tp in sorted(partitions):
            upto = ends.get(tp) if ends is not None else None
            before = self.positions[tp]
            for rec in self.fetch_partition(tp[0], tp[1], upto):
                if stopping():
                    return None
                delivered[tp] = rec.offset + 1
                yield tp[0], tp[1], rec
            delivered[tp] = self.positions[tp]
            progressed = progressed or self.positions[tp] != before
        return progressed

    def _located(self, exc: CorruptRecordError, topic: str, partition: int, pos: int,
                 offset: int) -> CorruptRecordError:
        """Name the offset of a corrupt batch found in fetched data, and its file and position when the
        transport knows them (a broker's answer does not say)."""
        if exc.path is not None:
            return exc
        path, position = self.transport.locate(topic, partition, pos if exc.position is None else exc.position)
        message = f"cannot read offset {offset} of {topic}-{partition}: {exc.message}"
        return CorruptRecordError(message, path, position)

    def stream(self, end_offsets: dict[tuple[str, int], int] | None = None,
               idle_stop: float | None = None) -> Iterator[tuple[str, int, Record] | None]:
        """Yield records from every assigned partition; with ``end_offsets`` stop once all reach them.

        Yields None each time it is about to wait for new data, so callers can flush output then.
        """
        for item in self._chunks(self.fetch_partition, end_offsets, idle_stop):
            if item is None:
                yield None
            else:
                topic, partition, recs = item
                for rec in recs:
                    yield topic, partition, rec

    def stream_values(self, end_offsets: dict[tuple[str, int], int] | None = None,
                      idle_stop: float | None = None) -> Iterator[tuple[str, int, list[bytes | None]] | None]:
        """Like ``stream``, but yields (topic, partition, values) per fetch: for printing values in bulk,
        with no Python work per record beyond decoding."""
        return self._chunks(self.fetch_values, end_offsets, idle_stop)

    def _chunks(self, fetch: Callable[[str, int, int | None], list[_Item]],
                end_offsets: dict[tuple[str, int], int] | None,
                idle_stop: float | None) -> Iterator[tuple[str, int, list[_Item]] | None]:
        idle_since = time.monotonic()
        self._wait = 0.0
        try:
            while True:
                got = False
                round_started, waited = time.monotonic(), self._wait > 0
                for topic, partition in list(self.positions):
                    upto = None if end_offsets is None else end_offsets.get((topic, partition))
                    items = fetch(topic, partition, upto)
                    if items:
                        got = True
                        yield topic, partition, items
                if end_offsets is not None and all(
                    self.positions[tp] >= end for tp, end in end_offsets.items() if tp in self.positions
                ):
                    return
                if got:
                    idle_since = time.monotonic()
                    self._wait = 0.0
                    continue
                if idle_stop is not None and time.monotonic() - idle_since >= idle_stop:
                    return
                yield None
                self._pause(round_started, waited, idle_stop, idle_since)
        finally:
            self._wait = 0.0  # fetches outside this loop never wait

    def _pause(self, round_started: float, waited: bool, idle_stop: float | None, idle_since: float) -> None:
        """Between rounds that found nothing.  Following one partition through a broker, the next fetch
        waits at the broker instead of here, and is answered the moment a record arrives; with more
        partitions (one held fetch would delay the others) or embedded, sleep the poll interval."""
        if len(self.positions) != 1 or not self.transport.long_polls:
            time.sleep(self.poll_interval)
            return
        if waited:  # a broker that answers a held fetch at once must not make this loop spin
            time.sleep(max(0.0, self.poll_interval - (time.monotonic() - round_started)))
        wait = self.LONG_POLL
        if idle_stop is not None:
            wait = min(wait, max(0.0, idle_stop - (time.monotonic() - idle_since)))
        self._wait = wait
