"""Log compaction: Kafka's LogCleaner over one partition log.

A pass maps each key of the dirty part of the log (from the ``cleaner-offset-checkpoint`` up to the first
uncleanable offset) to its newest offset, then rewrites the closed segments from the log start up to where
the map got, keeping per key only its newest record.  Offsets are kept (gaps appear); so are headers,
timestamps, codecs, producer ids and sequences.  Tombstones (null values) and transaction markers get a
delete horizon (KIP-534: now + delete.retention.ms, in the batch's base timestamp) the first time they are
cleaned and go at the first pass after it; a pass reports the latest horizon still ahead, so that a broker
runs that pass even when nothing new makes the log due.  Aborted transactional records go; a marker stays
until its transaction has no data left.  The last batch of each producer is kept (empty if need be), so that
the producer's sequence and epoch survive, and so is the last batch of each rewritten group of segments, so
that the new segment covers the offsets of the ones it replaces (see PartitionLog.replace_segments).

No record is decoded whole: a key walk (records.walk_keys) finds each record's key and offset, a kept
record is copied out of its batch (a new timestamp delta only where the batch's base timestamp moves),
and a batch that keeps every record is copied as it is.  A group of one segment that would come out byte
for byte the same, with the same transaction index, is left in place.

The caller holds the replica's write lock and an open write session (``open_for_append``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import BinaryIO

from kcli.errors import InvalidRecordError
from kcli.storage import checkpoint, control, records
from kcli.storage.config import LogConfig
from kcli.storage.fileio import open_fd, read_file, write_file
from kcli.storage.log import CLEANED, PartitionLog, parse_partition_dir
from kcli.storage.segment import LOG_SUFFIX, TXN_SUFFIX, LogSegment, segment_name
from kcli.storage.txnindex import AbortedTxn, encode_entry

DEFAULT_MAP_BYTES = 128 << 20  # Kafka's log.cleaner.dedupe.buffer.size
# What one key of the offset map costs here, besides the key's own bytes (measured: a bytes object, an int
# and a dict slot; Kafka's SkimpyOffsetMap needs 24 bytes in all, a hash and an offset, but keeps hashes
# whose collisions could drop a key's newest record).  log.cleaner.dedupe.buffer.size bounds the memory
# for real: a pass maps fewer keys than Kafka's would with the same setting, never more memory.
MAP_BYTES_PER_KEY = 120
_LOAD_FACTOR = 0.9  # Kafka's log.cleaner.io.buffer.load.factor


@dataclass(frozen=True)
class Cleanable:
    """How much of a log a pass could clean now (Kafka's LogToClean)."""

    first_dirty: int  # where the dirty part starts (the checkpoint, or the log start)
    first_uncleanable: int  # where it ends: upper, the active segment, or min.compaction.lag.ms
    cleanable_bytes: int  # bytes of the segments in [first_dirty, first_uncleanable)
    total_bytes: int  # bytes below first_uncleanable: the clean part and the cleanable one
    dirty_ratio: float
    due: bool  # dirty_ratio >= min.cleanable.dirty.ratio, or max.compaction.lag.ms passed


@dataclass(frozen=True)
class CleanResult:
    """What one pass did."""

    bytes_read: int
    bytes_written: int
    records_kept: int
    records_removed: int
    first_dirty: int  # the new checkpoint: where the next pass's dirty part starts
    # the latest delete horizon still ahead on the batches the pass wrote or left (-1: none): when it
    # passes, a pass has tombstones or markers to drop even if nothing is dirty (the latestDeleteHorizon
    # KIP-534 proposes).  A horizon already passed on a batch the pass kept is left out: nothing of it
    # can go (its tombstones went, or it stays as the last batch of its producer or group), and counting
    # it would ask for a pass every log.cleaner.backoff.ms.
    latest_delete_horizon: int


def require_keys(batch: records.BytesLike, header: records.BatchHeader, topic: str, partition: int) -> None:
    """Refuse a data batch holding a record without a key, as Kafka's leader does for compacted topics."""
    if None in records.walk_keys(batch, 0, header).keys:
        raise InvalidRecordError(f"Compacted topic cannot accept message without key in topic partition "
                                 f"{topic}-{partition}.", hint="give every record a key (produce -K)")


def checkpoint_path(log: PartitionLog) -> str:
    """The broker folder's ``cleaner-offset-checkpoint``."""
    return os.path.join(os.path.dirname(log.directory), checkpoint.CLEANER_OFFSET)


def first_dirty_offset(log: PartitionLog) -> int:
    """The checkpointed start of the dirty part, never below the log start nor past the log end."""
    key = parse_partition_dir(os.path.basename(log.directory))
    saved = (checkpoint.read_offset(checkpoint_path(log), key) if key else None) or 0
    return min(max(saved, log.log_start_offset), log.log_end_offset)


def _save_first_dirty(log: PartitionLog, offset: int, lock: AbstractContextManager[object]) -> None:
    key = parse_partition_dir(os.path.basename(log.directory))
    if key is None:
        return
    with lock:  # the file holds every partition of the broker folder: one writer at a time
        checkpoint.set_offset(checkpoint_path(log), key, offset)


def cleanable(log: PartitionLog, config: LogConfig, *, upper: int, now_ms: int) -> Cleanable:
    """The dirty part of ``log`` a pass may clean below ``upper`` (min(high watermark, last stable offset),
    or the log end of a lone replica): never the active segment, nor a segment holding records younger
    than min.compaction.lag.ms."""
    bases = log.segment_bases
    first_dirty = first_dirty_offset(log)
    end = min(upper, bases[-1] if bases else 0)
    segments = [log.segment(base) for base in bases[:-1]]
    if config.min_compaction_lag_ms > 0:
        for seg, next_base in zip(segments, bases[1:], strict=False):
            if next_base > first_dirty and seg.largest_timestamp() > now_ms - config.min_compaction_lag_ms:
                end = min(end, seg.base_offset)
                break
    end = max(end, first_dirty)
    clean_bytes = dirty_bytes = 0
    lag_due = False
    for seg, next_base in zip(segments, bases[1:], strict=False):
        if next_base <= first_dirty:
            clean_bytes += seg.size
        elif first_dirty < end and seg.base_offset < end:  # the segment overlaps [first_dirty, end)
            dirty_bytes += seg.size
            first_ts = seg.first_timestamp()
            lag_due = lag_due or (first_ts is not None and 0 <= first_ts < now_ms - config.max_compaction_lag_ms)
    total = clean_bytes + dirty_bytes
    ratio = dirty_bytes / total if total else 0.0
    due = dirty_bytes > 0 and (ratio >= config.min_cleanable_dirty_ratio or lag_due)
    return Cleanable(first_dirty, end, dirty_bytes, total, ratio, due)


def _batches(seg: LogSegment, start: int = 0) -> Iterator[tuple[bytes, records.BatchHeader]]:
    """The segment's batches from the one holding ``start`` on (found by its offset index, not a scan)."""
    position = seg.find_position(start) if start > seg.base_offset else 0
    if position is None:
        return
    for pos, header in seg.headers(position):
        yield seg.pread(pos, header.size), header


def _aborted(log: PartitionLog, end: int) -> list[AbortedTxn]:
    return sorted(log.aborted_transactions(0, end), key=lambda txn: txn.first_offset)


class _Transactions:
    """Kafka's CleanedTransactionMetadata: which transactional batches were aborted, and which markers
    still have data of their transaction below them in the part being cleaned."""

    def __init__(self, aborted: list[AbortedTxn]) -> None:
        self._pending = list(reversed(aborted))  # by first offset, the next one last
        self.ongoing_aborted: dict[int, list[object]] = {}  # pid -> [AbortedTxn, a batch of it was seen]
        self.ongoing_committed: set[int] = set()
        self.kept_aborted: list[AbortedTxn] = []  # for the new segment's transaction index

    def _up_to(self, offset: int) -> None:
        while self._pending and self._pending[-1].first_offset <= offset:
            txn = self._pending.pop()
            self.ongoing_aborted.setdefault(txn.producer_id, [txn, False])

    def data(self, header: records.BatchHeader) -> bool:
        """A data batch read: True when it belongs to an aborted transaction (it may go)."""
        self._up_to(header.last_offset)
        if not header.is_transactional:
            return False
        meta = self.ongoing_aborted.get(header.producer_id)
        if meta is not None:
            meta[1] = True
            return True
        self.ongoing_committed.add(header.producer_id)
        return False

    def marker(self, batch: bytes, header: records.BatchHeader) -> bool:
        """A control batch read: True when no data of its transaction is left (it may go after its horizon)."""
        self._up_to(header.last_offset)
        if header.records_count == 0:
            return True
        kind = control.control_type(batch, 0, header)
        if kind == control.ABORT:
            meta = self.ongoing_aborted.pop(header.producer_id, None)
            if meta is not None and meta[1]:
                self.kept_aborted.append(meta[0])  # type: ignore[arg-type]
                return False
            return True
        if kind == control.COMMIT:
            if header.producer_id in self.ongoing_committed:
                self.ongoing_committed.discard(header.producer_id)
                return False
            return True
        return False


def _build_map(log: PartitionLog, start: int, end: int, budget: int, aborted: list[AbortedTxn],
               progress: Callable[[int], None] | None) -> tuple[dict[bytes, int], int, int]:
    """(key -> newest offset, the offset after the last batch mapped, bytes read) over [start, end): whole
    batches, until the map would take more than ``budget`` bytes (at least one batch), counting
    MAP_BYTES_PER_KEY and the keys' mean length per key.  Only the aborted
    transactions reaching ``start`` count (Kafka's collectAbortedTransactions from it): one wholly below,
    whose marker this scan never meets, would pass for open and hide its producer's later records."""
    offsets: dict[bytes, int] = {}
    txns = _Transactions([txn for txn in aborted if txn.last_offset >= start])
    mapped_to, read = start, 0
    key_bytes = key_count = 0  # of the records mapped: their keys' mean length prices a map entry
    for base in log.segment_bases:
        seg = log.segment(base)
        if base >= end:
            break
        for batch, header in _batches(seg, start):
            if header.next_offset > end:  # a batch straddling upper waits for the next pass
                return offsets, mapped_to, read
            per_key = MAP_BYTES_PER_KEY + (key_bytes // key_count if key_count else 0)
            if offsets and (len(offsets) + header.records_count) * per_key > budget:
                return offsets, mapped_to, read
            read += header.size
            if header.is_control:
                txns.marker(batch, header)
            elif not txns.data(header):
                walk = records.walk_keys(batch, 0, header)
                found = zip(walk.keys, map(header.base_offset.__add__, walk.offset_deltas), strict=True)
                keyless = None in walk.keys  # rare: not mapped (the rewrite drops them)
                offsets.update(((k, o) for k, o in found if k is not None) if keyless else found)  # type: ignore[arg-type]
                key_bytes += sum(len(k) for k in walk.keys if k is not None) if keyless else sum(map(len, walk.keys))  # type: ignore[arg-type]
                key_count += len(walk.keys)
            mapped_to = header.next_offset
            if progress is not None:
                progress(header.size)
    return offsets, mapped_to, read


def _groups(log: PartitionLog, end: int, max_bytes: int) -> list[list[int]]:
    """The closed segments below ``end`` in groups of at most segment.bytes (Kafka's groupSegmentsBySize):
    each group becomes one cleaned segment."""
    groups: list[list[int]] = []
    size = 0
    for base in log.segment_bases[:-1]:
        if base >= end:
            break
        seg_size = log.segment(base).size
        if groups and size + seg_size <= max_bytes and base - groups[-1][0] < 2**31 - 1:
            groups[-1].append(base)
            size += seg_size
        else:
            groups.append([base])
            size = seg_size
    return groups


class _Pass:
    """One pass's state: the map, the time, the transactions and the counts."""

    def __init__(self, log: PartitionLog, config: LogConfig, offsets: dict[bytes, int], mapped_to: int,
                 now_ms: int, aborted: list[AbortedTxn]) -> None:
        self.log, self.config, self.offsets, self.mapped_to, self.now = log, config, offsets, mapped_to, now_ms
        self.txns = _Transactions(aborted)
        self.last_of_producer = log.producers.last_batches()
        self.read = self.written = self.kept = self.removed = 0
        self.latest_horizon = -1

    def clean_group(self, group: list[int]) -> None:
        """Rewrite ``group`` as one segment through ``.cleaned`` and ``.swap`` -- unless it is one segment
        that would come out byte for byte as it is, with the same transaction index: then it stays."""
        stem = os.path.join(self.log.directory, segment_name(group[0]))
        out = _Output(stem + LOG_SUFFIX + CLEANED, self.log.segment(group[0]) if len(group) == 1 else None)
        try:
            held: tuple[bytes, records.BatchHeader] | None = None  # one batch behind: the group's last is known
            for base in group:
                for batch, header in _batches(self.log.segment(base)):
                    if held is not None:
                        self._copy(out, *held, last_of_group=False)
                    held = batch, header
            if held is not None:
                self._copy(out, *held, last_of_group=True)
            txn_index = b"".join(map(encode_entry, self.txns.kept_aborted))
            self.txns.kept_aborted = []
            if out.unchanged and txn_index == _read_or_empty(stem + TXN_SUFFIX):
                return
            out.finish()
        except BaseException:
            out.discard()
            raise
        self.written += out.size
        if txn_index:
            write_file(stem + TXN_SUFFIX + CLEANED, txn_index)
        self.log.replace_segments(group)

    def _copy(self, out: _Output, batch: bytes, header: records.BatchHeader, *, last_of_group: bool) -> None:
        self.read += header.size
        kept = self._filter(batch, header, last_of_group)
        if kept is batch:
            out.same(batch)
            self._horizon(header)
        elif kept is not None:
            out.write(kept)
            self._horizon(records.parse_header(kept))
        else:
            out.changed()

    def _horizon(self, header: records.BatchHeader) -> None:
        """Count the delete horizon of a batch the cleaned segment holds, if it has one still ahead."""
        if header.attributes & records.ATTR_DELETE_HORIZON and header.base_timestamp > self.now:
            self.latest_horizon = max(self.latest_horizon, header.base_timestamp)

    def _filter(self, batch: bytes, header: records.BatchHeader, last_of_group: bool) -> bytes | None:
        """The batch as the cleaned segment keeps it (None: dropped)."""
        horizon = header.base_timestamp if header.attributes & records.ATTR_DELETE_HORIZON else None
        if header.base_offset >= self.mapped_to:  # past what the map saw: kept as it is
            if header.is_control:
                self.txns.marker(batch, header)
            else:
                self.txns.data(header)
                self.kept += header.records_count
            return batch
        if header.is_control:
            empty_txn = self.txns.marker(batch, header)
            discard = empty_txn and horizon is not None and horizon <= self.now
        else:
            empty_txn = False
            discard = self.txns.data(header)
        retain_empty = last_of_group or self._last_of_producer(header)
        if header.is_control:
            if discard:  # kept whole when it must stay: readers and replay parse every marker's record
                return batch if retain_empty else None
            if empty_txn and horizon is None:  # its transaction is gone: it goes after delete.retention.ms
                return self._marker_with_horizon(batch, header)
            return batch
        walk = None if discard else records.walk_keys(batch, 0, header)
        kept = [] if walk is None else self._kept(header, walk, horizon)
        self.kept += len(kept)
        self.removed += header.records_count - len(kept)
        if walk is None or not kept:
            return _empty(header) if retain_empty else None
        tombstones = horizon is None and not set(walk.nulls).isdisjoint(kept)
        if len(kept) == header.records_count and not tombstones:
            return batch
        return self._splice(header, walk, kept, horizon if horizon is not None or not tombstones
                            else self.now + self.config.delete_retention_ms)

    def _last_of_producer(self, header: records.BatchHeader) -> bool:
        """Kafka's isBatchLastRecordOfProducer: the batch with a live producer's last sequence, or the
        marker with its epoch when it has no data batch left."""
        last = self.last_of_producer.get(header.producer_id) if header.producer_id >= 0 else None
        if last is None:
            return False
        if last[0] >= 0:
            return header.last_offset == last[0]
        return header.is_control and header.producer_epoch == last[1]

    def _kept(self, header: records.BatchHeader, walk: records.KeyWalk, horizon: int | None) -> list[int]:
        """Kafka's shouldRetainRecord: the indices of the batch's records to keep -- those past what the map
        saw, and below it those with a key the map holds no newer offset for, but no tombstone whose
        delete horizon passed."""
        base = header.base_offset
        past_map = self.mapped_to - base  # offset deltas from here on
        get = self.offsets.get
        kept = [i for i, (key, delta) in enumerate(zip(walk.keys, walk.offset_deltas, strict=True))
                if delta >= past_map or (key is not None and get(key, -1) <= base + delta)]
        if horizon is not None and horizon <= self.now and walk.nulls:
            gone = {i for i in walk.nulls if walk.offset_deltas[i] < past_map}
            kept = [i for i in kept if i not in gone]
        return kept

    def _splice(self, header: records.BatchHeader, walk: records.KeyWalk, kept: list[int],
                horizon: int | None) -> bytes:
        """The records ``kept`` as a batch with the source batch's base offset, codec, producer fields and
        sequence, their bytes copied; its base timestamp is the delete horizon when it has one (KIP-534),
        else the first kept record's (their timestamp deltas follow it)."""
        if header.log_append_time:
            stamps = [header.max_timestamp] * len(kept)
        else:
            base, deltas = header.base_timestamp, walk.timestamp_deltas
            stamps = [base + deltas[i] for i in kept]
        base_ts = horizon if horizon is not None else stamps[0]
        body = records.splice_records(walk, kept, [ts - base_ts for ts in stamps])
        max_ts = header.max_timestamp if header.log_append_time else max(stamps)
        return self._framed(header, records.Section(body, len(kept), base_ts, max_ts),
                            walk.offset_deltas[kept[-1]], horizon)

    def _marker_with_horizon(self, batch: bytes, header: records.BatchHeader) -> bytes:
        """The marker batch with its first delete horizon (now + delete.retention.ms) as base timestamp."""
        key, value = control.first_record(batch, 0, header)
        horizon, ts = self.now + self.config.delete_retention_ms, header.max_timestamp
        section = records.Section(records.encode_records([(key, value, (), ts)], horizon, [0]), 1, horizon, ts)
        return self._framed(header, section, 0, horizon)

    @staticmethod
    def _framed(header: records.BatchHeader, section: records.Section, last_offset_delta: int,
                horizon: int | None) -> bytes:
        """``section`` as a batch with the source batch's base offset, codec, producer fields and sequence,
        flagged as holding a delete horizon (its base timestamp) when ``horizon`` is not None."""
        return records.frame(
            section, header.codec, base_offset=header.base_offset, log_append_time=header.log_append_time,
            partition_leader_epoch=header.partition_leader_epoch, producer_id=header.producer_id,
            producer_epoch=header.producer_epoch, base_sequence=header.base_sequence,
            transactional=header.is_transactional, control=header.is_control, last_offset_delta=last_offset_delta,
            delete_horizon=horizon is not None)


class _Output:
    """A group's cleaned log, written as its batches come (a group is up to segment.bytes: never held
    whole in memory).  For a group of one segment nothing is written while its batches come out as they
    are: if all do, ``unchanged`` says the segment would be rewritten byte for byte; at the first batch
    that does not, the bytes so far are copied from the segment."""

    def __init__(self, path: str, segment: LogSegment | None) -> None:
        self.path, self._segment = path, segment
        self._file: BinaryIO | None = None
        self._pending = 0  # bytes from the segment's start that came out as they are, not written yet
        self.size = 0  # bytes written
        if segment is None:
            self._open()

    @property
    def unchanged(self) -> bool:
        """Every batch came out as it was, and they were the whole file (no bytes past the last batch)."""
        return self._file is None and self._pending == self._segment.size  # type: ignore[union-attr]

    def same(self, batch: bytes) -> None:
        """``batch`` comes out as it was."""
        if self._file is None:
            self._pending += len(batch)
        else:
            self._put(batch)

    def changed(self) -> None:
        """A batch went."""
        if self._file is None:
            self._open()

    def write(self, batch: bytes) -> None:
        if self._file is None:
            self._open()
        self._put(batch)

    def finish(self) -> None:
        """Write out what is pending and close the file."""
        if self._file is None:
            self._open()
        try:
            self._file.close()  # type: ignore[union-attr]
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.path) from None

    def discard(self) -> None:
        """A pass failed: the partial file goes (recovery would drop it anyway)."""
        if self._file is not None:
            with suppress(OSError):
                self._file.close()
            with suppress(FileNotFoundError):
                os.unlink(self.path)

    def _open(self) -> None:
        self._file = os.fdopen(open_fd(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb", buffering=1 << 20)
        pending, self._pending = self._pending, 0
        for pos in range(0, pending, 1 << 20):
            self._put(self._segment.pread(pos, min(1 << 20, pending - pos)))  # type: ignore[union-attr]

    def _put(self, data: bytes) -> None:
        try:
            self._file.write(data)  # type: ignore[union-attr]
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.path) from None
        self.size += len(data)


def _read_or_empty(path: str) -> bytes:
    try:
        return read_file(path)
    except FileNotFoundError:
        return b""


def _empty(header: records.BatchHeader) -> bytes:
    """Kafka's empty batch (RetainEmpty): the header alone, keeping the offsets, producer and sequence."""
    ts = header.max_timestamp
    section = records.Section(b"", 0, ts, ts)
    return records.frame(section, base_offset=header.base_offset, partition_leader_epoch=header.partition_leader_epoch,
                         producer_id=header.producer_id, producer_epoch=header.producer_epoch,
                         base_sequence=header.base_sequence, transactional=header.is_transactional,
                         control=header.is_control, last_offset_delta=header.last_offset_delta)


def clean(log: PartitionLog, config: LogConfig, *, upper: int, now_ms: int, max_map_bytes: int = DEFAULT_MAP_BYTES,
          progress: Callable[[int], None] | None = None,
          checkpoint_lock: AbstractContextManager[object] | None = None) -> CleanResult:
    """One pass over the dirty part below ``upper`` (see :func:`cleanable`), whether due or not; with no
    dirty part it still rewrites the cleaned one, dropping the tombstones and markers whose delete horizon
    passed.  ``progress`` is told the bytes of each batch read (mapping, then rewriting).
    ``checkpoint_lock`` guards the broker folder's checkpoint against other processes cleaning other
    partitions of it (DataDir.checkpoint_lock)."""
    todo = cleanable(log, config, upper=upper, now_ms=now_ms)
    budget = int(max_map_bytes * _LOAD_FACTOR)
    aborted = _aborted(log, todo.first_uncleanable)
    offsets, mapped_to, map_read = _build_map(log, todo.first_dirty, todo.first_uncleanable, budget, aborted,
                                              progress)
    work = _Pass(log, config, offsets, mapped_to, now_ms, aborted)
    groups = _groups(log, mapped_to, config.segment_bytes)
    for group in groups:
        done = work.read
        work.clean_group(group)
        if progress is not None:
            progress(work.read - done)
    _save_first_dirty(log, mapped_to, checkpoint_lock or nullcontext())
    return CleanResult(map_read + work.read, work.written, work.kept, work.removed, mapped_to, work.latest_horizon)
