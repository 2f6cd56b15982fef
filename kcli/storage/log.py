"""A partition's log: ordered segments, offset assignment, rolling, retention, recovery and reads, and
the state of the producers writing it (sequences, open transactions, aborted ones).

Modelled on Kafka's ``UnifiedLog`` and its ProducerStateManager.  One writer at a time (the caller holds
the replica lock); any number of readers in other processes, who never modify files.

Producer state (:mod:`kcli.storage.producer_state`) is kept by every append and saved in
``<offset>.snapshot`` files at each roll and at a clean release; a write session starts from the newest
snapshot at or below the log end and replays the batches after it (after a crash: the last roll's, or the
tail of the log when there is none).  An ABORT marker's ``.txnindex`` entry is appended before the
marker, so a read_committed reader that sees the marker finds the entry.  Readers in other processes get
the last stable offset from the newest snapshot and the batch headers after it.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypedDict

from kcli.errors import CorruptRecordError, KcliError, RecordTooLargeError, StorageError
from kcli.storage import checkpoint, records
from kcli.storage.config import LogConfig
from kcli.storage.damage import Damage
from kcli.storage.fileio import make_dirs, read_file, sync_files, write_file
from kcli.storage.producer_snapshot import (
    SnapshotEntry,
    list_snapshots,
    read_snapshot,
    snapshot_name,
    write_snapshot,
)
from kcli.storage.producer_state import ProducerStates
from kcli.storage.segment import LOG_SUFFIX, TXN_SUFFIX, LogSegment, RecoveryResult, segment_name

_MAX_RELATIVE_OFFSET = 2**31 - 1
WRITER_STATE = "kcli-writer-state"
STATE_FROM_BYTES = 8 << 20  # without a snapshot, how much of the log's tail producer state is rebuilt from
CLEANED, SWAP = ".cleaned", ".swap"  # the cleaner's new segment files, before and after its commit point


if TYPE_CHECKING:  # a class for annotations only: defining it would cost every write's start-up
    from kcli.storage.txnindex import AbortedTxn


    class _WriterState(TypedDict):
        """What a writer that closed cleanly left in WRITER_STATE (see PartitionLog._read_state)."""

        next_offset: int
        bytes_since_index: int
        unflushed: int
        unflushed_since: int | None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """Split ``<topic>-<partition>`` (topics may contain '-'); None for anything else."""
    topic, sep, part = name.rpartition("-")
    if not sep or not topic or not part.isdigit():
        return None
    return topic, int(part)


def partition_dirs(root: str) -> list[tuple[str, int, str]]:
    """(topic, partition, path) of every partition directory in a broker folder ``root``, sorted; [] if
    the folder does not exist."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        parsed = parse_partition_dir(name)
        path = os.path.join(root, name)
        if parsed is not None and os.path.isdir(path):
            out.append((parsed[0], parsed[1], path))
    return sorted(out)


class AppendInfo:
    """Where an appended batch landed."""

    __slots__ = ("base_offset", "last_offset", "position", "log_append_time")

    def __init__(self, base_offset: int, last_offset: int, position: int, log_append_time: int) -> None:
        self.base_offset = base_offset
        self.last_offset = last_offset
        self.position = position
        self.log_append_time = log_append_time


class PartitionLog:
    """The segments of one partition replica in ``directory``."""

    def __init__(self, directory: str, config: LogConfig | None = None) -> None:
        self.directory = directory
        self.config = config or LogConfig()
        self._bases = self._list_bases()
        self._segments: dict[int, LogSegment] = {}
        self._next_offset: int | None = None
        self._unflushed = 0  # records appended since the last fsync (flush.messages)
        self._unflushed_since: int | None = None  # when the oldest of them was appended (flush.ms)
        self.recovery_errors: list[Damage] = []
        self.last_read: tuple[str, int] | None = None  # (segment file, position) the last read() started at
        self._writing = False  # a write session is open: rebuilt indexes may be written to disk
        self._last_epoch: int | None = None  # newest epoch in leader-epoch-checkpoint, once read
        self.producers = ProducerStates()  # a write session's: loaded by open_for_append, kept by append
        self._snapshot_at: int | None = None  # the log end the newest snapshot file was taken at
        self._txn_view: _TxnView | None = None  # a reader's open transactions, see last_stable_offset
        self._start: int | None = None  # the logical log start, once read (see log_start_offset)

    def _list_bases(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        bases = []
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext == LOG_SUFFIX and len(stem) == 20 and stem.isdigit():
                bases.append(int(stem))
        bases.sort()
        return bases

    # ------------------------------------------------------------ structure

    def segment(self, base: int) -> LogSegment:
        seg = self._segments.get(base)
        if seg is None:
            seg = self._segments[base] = LogSegment(
                self.directory, base, self.config.index_interval_bytes, lambda: self._writing
            )
        return seg

    @property
    def segment_bases(self) -> list[int]:
        return list(self._bases)

    @property
    def active(self) -> LogSegment:
        return self.segment(self._bases[-1])

    @property
    def log_start_offset(self) -> int:
        """The first offset a reader may see: Kafka's logical log start.  DeleteRecords moves it inside a
        segment (its broker's ``log-start-offset-checkpoint`` keeps it); retention moves it to the first
        segment's base.  Never below that base, nor past the log end."""
        if not self._bases:
            return 0
        if self._start is None:
            start = _checkpointed_start(self.directory)
            self._start = min(start, self.log_end_offset) if start > self._bases[0] else start
        return max(self._bases[0], self._start)

    @property
    def _first_base(self) -> int:
        """Where the log's bytes start (the logical start may lie past it until retention deletes the
        segments below it): what recovery and producer state replay from."""
        return self._bases[0] if self._bases else 0

    def advance_start(self, offset: int) -> bool:
        """Move the logical log start up to ``offset`` (Kafka's maybeIncrementLogStartOffset; the caller
        checked it against the high watermark), never past the log end.  True when it moved: persist it
        in the checkpoint, then :meth:`delete_old_segments` drops the whole segments below it."""
        offset = min(offset, self.log_end_offset)
        if offset <= self.log_start_offset:
            return False
        self._start = offset
        return True

    @property
    def log_end_offset(self) -> int:
        """Offset the next record will get: the active segment's tail, computed once per writer."""
        if self._next_offset is not None:
            return self._next_offset
        if not self._bases:
            return 0
        state = self._read_state()
        if state is not None:
            return state["next_offset"]
        next_offset, _end = self.active.tail()
        return next_offset

    def size_bytes(self) -> int:
        return sum(self.segment(b).size for b in self._bases)

    def _segment_for(self, offset: int) -> int | None:
        i = bisect_right(self._bases, offset)
        return i - 1 if i else None

    # ------------------------------------------------------------ opening for writes

    def open_for_append(self, recovery_point: int | None) -> list[Damage]:
        """Prepare to write: create the first segment if needed and recover everything past
        ``recovery_point`` (None: unknown, recover the active segment whole).  Returns what was mended."""
        make_dirs(self.directory)
        self._writing = True
        if finish_swaps(self.directory):
            self._bases = self._list_bases()
        if not self._bases:
            # a new (or wiped) replica starts empty at 0; syncing with a leader moves it to the leader's start
            self._bases = [0]
            self.active.open_for_append()
            self._next_offset = self._start = 0
            self.producers = ProducerStates()
            return []
        if self._resume_clean():
            problem = self.active.check_indexes()
            if problem is not None:
                self.active.bytes_since_index = self.active.size - self.active.index.last()[1]
            self.recovery_errors = [] if problem is None else [_rebuilt(problem)]
            self.recovery_errors += self._load_producers()
            return self.recovery_errors
        problems: list[Damage] = []
        start_index = len(self._bases) - 1
        start_position = 0
        if recovery_point is not None:
            idx = self._segment_for(recovery_point)
            if idx is not None and idx <= start_index:
                start_index = idx
                # start at the last index entry at or below the recovery point: a batch boundary that was
                # written before it.  (Scanning for the recovery point's batch instead would skip a torn or
                # garbage tail when the point is at or past the end, and trip over garbage headers.)
                _off, start_position = self.segment(self._bases[idx]).index.lookup(recovery_point)
        for i in range(start_index, len(self._bases)):
            seg = self.segment(self._bases[i])
            result: RecoveryResult = seg.recover(start_position if i == start_index else 0,
                                                 self.config.index_interval_bytes)
            start_position = 0
            if seg.index_problem is not None:
                problems.append(_rebuilt(seg.index_problem))
            if result.error is not None:
                problems.append(Damage(seg.log_path, result.error.reason, result.error.position))
            if result.truncated_bytes:
                problems.append(Damage(seg.log_path, f"truncated {result.truncated_bytes} invalid bytes",
                                       result.valid_bytes))
            if (result.truncated_bytes or result.error is not None) and self._bases[i + 1 : i + 2] != [result.next_offset]:
                # everything after a cut is unreachable, unless the next segment continues where the cut
                # segment's intact batches end (only damaged bytes after its last batch went): drop later
                # segments like Kafka does
                for later in self._bases[i + 1 :]:
                    dropped = self.segment(later)
                    dropped.delete()
                    self._segments.pop(later, None)
                    problems.append(Damage(dropped.log_path, "deleted: the segment is after the truncation point"))
                del self._bases[i + 1 :]
                break
        self._next_offset = None
        self._next_offset = self.log_end_offset
        active = self.active
        active.open_for_append()
        if not problems:
            # continue the index spacing where the last writer left it
            active.bytes_since_index = active.size - active.index.last()[1]
        problems += self._load_producers()
        self.recovery_errors = problems
        return problems

    def _state_path(self) -> str:
        return os.path.join(self.directory, WRITER_STATE)

    def _read_state(self) -> _WriterState | None:
        try:
            # base size next-offset bytes-since-index [unsynced-records oldest-unsynced-ms (-1: none)]
            fields = [int(x) for x in read_file(self._state_path()).split()]
            base, size, next_offset, since_index = fields[:4]
            unflushed, unflushed_since = fields[4:] if len(fields) == 6 else (0, -1)
        except (FileNotFoundError, ValueError):
            return None
        if not self._bases or base != self._bases[-1] or self.active.size != size:
            return None
        return {"next_offset": next_offset, "bytes_since_index": since_index, "unflushed": unflushed,
                "unflushed_since": None if unflushed_since < 0 else unflushed_since}

    def _resume_clean(self) -> bool:
        """Skip recovery when the last writer left cleanly: its state file matches the active segment.

        The file is removed while a writer works, so a writer killed mid-append leaves none and the next
        one recovers from the recovery point.
        """
        state = self._read_state()
        if state is None:
            return False
        os.unlink(self._state_path())
        self._next_offset = state["next_offset"]
        # flush.messages and flush.ms count from the oldest unsynced record, whichever session wrote it
        self._unflushed, self._unflushed_since = state["unflushed"], state["unflushed_since"]
        active = self.active
        active.open_for_append()
        active.bytes_since_index = state["bytes_since_index"]
        return True

    def release(self) -> None:
        """End a write session cleanly: leave the state file and the producer snapshot the next writer
        resumes from."""
        if self._next_offset is None or not self._bases:
            return
        if self._snapshot_at != self._next_offset:
            self._take_snapshot()
        active = self.active
        since = -1 if self._unflushed_since is None else self._unflushed_since
        text = (f"{active.base_offset} {active.size} {self._next_offset} {active.bytes_since_index} "
                f"{self._unflushed} {since}\n")
        tmp = self._state_path() + ".tmp"
        try:
            write_file(tmp, text.encode("ascii"))
            os.replace(tmp, self._state_path())
        except OSError:
            # a full or failing disk: the state file only spares the next writer a recovery, so do without
            # it rather than replace the error that ended this session (it runs in callers' finally blocks)
            pass
        self._next_offset = None
        self._writing = False
        self.close()

    # ------------------------------------------------------------ writing

    def _should_roll(self, size: int, last_offset: int, timestamp: int) -> bool:
        active = self.active
        if active.size == 0:
            return False
        if active.size + size > self.config.segment_bytes:
            return True
        if last_offset - active.base_offset > _MAX_RELATIVE_OFFSET:
            return True
        first_ts = active.first_timestamp()
        # like Kafka: the incoming batch's timestamp against the segment's first batch
        return first_ts is not None and first_ts >= 0 and timestamp - first_ts >= self.config.segment_ms

    def roll(self, base: int | None = None) -> LogSegment:
        """Close the active segment and start one at the log end offset (or at ``base`` past it: the
        first offset of a replica's batch after a gap, as Kafka names the segment)."""
        base = self.log_end_offset if base is None else base
        self.active.on_roll()  # fsyncs it
        self._unflushed, self._unflushed_since = 0, None
        if base != self._bases[-1]:
            self._bases.append(base)
        seg = self.segment(base)
        seg.open_for_append()
        self.producers.expire(now_ms(), self.config.producer_id_expiration_ms)
        self._take_snapshot()
        return seg

    def append(self, batch: records.BytesLike, leader_epoch: int = 0, validate: bool = True,
               keep_offsets: bool = False) -> AppendInfo:
        """Assign offsets to one batch, stamp the leader epoch and append it.

        The batch's records and CRC are kept as they are (the CRC does not cover the fields we rewrite).
        ``keep_offsets``: a replica's append (Kafka's appendAsFollower) keeps the batch's own base offset,
        which may lie past the log end (the offset gaps of a compacted leader), never before it.
        """
        if self._next_offset is None:
            raise RuntimeError("open_for_append() first")
        header = records.parse_header(batch)
        if header.size != len(batch):
            raise CorruptRecordError(f"batch length field says {header.size} bytes but {len(batch)} were given")
        if header.size > self.config.max_message_bytes:
            raise RecordTooLargeError(
                f"record batch of {header.size} bytes exceeds max.message.bytes={self.config.max_message_bytes}",
                hint="raise the topic's max.message.bytes or send smaller batches",
            )
        if validate and not records.crc_valid(batch, 0, header):
            raise CorruptRecordError("record batch CRC mismatch")
        now = now_ms()
        base = self._next_offset
        if keep_offsets:
            if header.base_offset < base:
                raise CorruptRecordError(f"batch at offset {header.base_offset} is below the log end {base}")
            base = header.base_offset
        last = base + header.last_offset_delta
        marker_epoch, aborted = -1, None
        if header.attributes & records.ATTR_CONTROL and header.producer_id >= 0:  # a transaction marker
            marker_epoch, aborted = _marker(batch, header, self.producers, base)
        try:
            if self._should_roll(header.size, last, now if self.config.log_append_time else header.max_timestamp):
                self.roll(base)
            if leader_epoch >= 0 and leader_epoch > self._latest_epoch():
                # like Kafka, leader and follower alike: the first batch of a new epoch starts it (noted
                # before the batch is written, so a failed append leaves an epoch starting at the log end)
                self.record_epoch(leader_epoch, base)
            if aborted is not None:  # before the marker: a reader that sees the marker finds the entry
                self.active.txn_index.append(aborted)
        except OSError as exc:
            raise StorageError.of(exc, exc.filename or self.active.log_path) from None
        buf = bytearray(batch)
        records.stamp(buf, base, leader_epoch)
        max_ts = header.max_timestamp
        if self.config.log_append_time:
            max_ts = now
            _set_log_append_time(buf, now)
        unflushed = self._unflushed + header.records_count
        sync = unflushed >= self.config.flush_messages or (
            self._unflushed_since is not None and now - self._unflushed_since >= self.config.flush_ms
        )
        # all or nothing: a failure raises StorageError with nothing written and the log end unmoved
        try:
            position = self.active.append(buf, last, max_ts, self.config.index_interval_bytes, sync)
        except StorageError:
            if aborted is not None:
                self._cut_txn_index(base)
            raise
        self.producers.appended(header, base, now, marker_epoch)
        self._next_offset = last + 1
        if sync:
            self._unflushed, self._unflushed_since = 0, None
        else:
            self._unflushed = unflushed
            if self._unflushed_since is None:
                self._unflushed_since = now
        return AppendInfo(base, last, position, now if self.config.log_append_time else -1)

    def flush_if_due(self) -> None:
        """fsync once the oldest unsynced record is older than flush.ms (the broker's maintenance asks:
        an append checks this itself, but a log nobody appends to must be synced in time too)."""
        if self._unflushed_since is not None and now_ms() - self._unflushed_since >= self.config.flush_ms:
            self.flush()

    def _tail_start(self, max_bytes: int) -> tuple[int, int]:
        """(segment index, position) about ``max_bytes`` before the log's end: at an index entry, so on a
        batch boundary, at most an index interval before that point."""
        first = len(self._bases) - 1
        budget = max_bytes
        while first > 0 and self.segment(self._bases[first]).size < budget:
            budget -= self.segment(self._bases[first]).size
            first -= 1
        seg = self.segment(self._bases[first])
        return first, seg.index.position_before(seg.size - budget)

    def _start_of(self, offset: int) -> tuple[int, int] | None:
        """(segment index, position) of the batch holding ``offset``; None at or past the end."""
        idx = self._segment_for(max(offset, self._first_base))
        while idx is not None and idx < len(self._bases):
            pos = self.segment(self._bases[idx]).find_position(offset)
            if pos is not None:
                return idx, pos
            idx += 1
        return None

    def _walk(self, idx: int, position: int) -> Iterator[tuple[LogSegment, int, records.BatchHeader]]:
        """(segment, position, header) of every batch from ``position`` of segment ``idx`` to the end."""
        for i in range(idx, len(self._bases)):
            seg = self.segment(self._bases[i])
            for pos, header in seg.headers(position if i == idx else 0):
                yield seg, pos, header

    def flush(self) -> None:
        if self._bases:
            self.active.flush()
        self._unflushed, self._unflushed_since = 0, None

    def close(self) -> None:
        for seg in self._segments.values():
            seg.close()

    # ------------------------------------------------------------ reading

    def read(self, offset: int, max_bytes: int = 1 << 20, upper: int | None = None) -> bytes:
        """Whole batches starting with the one that holds ``offset``; empty at or past the end.

        ``upper`` bounds what may be returned (a high watermark): batches starting at or past it are cut.
        The batches before damage are returned; a read that starts at the damage raises
        CorruptRecordError naming the offset, the segment file and the position.
        """
        if offset < self.log_start_offset:
            offset = self.log_start_offset
        idx = self._segment_for(offset)
        if idx is None:
            return b""
        while idx < len(self._bases):
            seg = self.segment(self._bases[idx])
            try:
                pos = seg.find_position(offset)
                if pos is not None:
                    data = seg.read(pos, max_bytes)
                    self.last_read = (seg.log_path, pos)
                    if upper is not None and data:
                        data = _cut_at(data, upper)
                    return data
                self._check_complete(idx, offset)
            except CorruptRecordError as exc:
                raise CorruptRecordError(f"cannot read offset {offset}: {exc.reason}", exc.path,
                                         exc.position) from None
            idx += 1
        return b""

    def _check_complete(self, idx: int, offset: int) -> None:
        """Raise if segment ``idx`` must hold ``offset`` yet its batches stop short of it before the end of
        the file.  A closed segment, or the active one as a writer left it (state file, or our own
        session), has no batch in flight, so what follows its last whole batch is damage, not a write
        still under way; waiting for it to complete would wait forever."""
        if idx + 1 < len(self._bases):
            end: int | None = self._bases[idx + 1]
        elif self._next_offset is not None:
            end = self._next_offset
        else:
            state = self._read_state()
            end = state["next_offset"] if state is not None else None
        if end is None or offset >= end:
            return
        seg = self.segment(self._bases[idx])
        stop = seg.index.lookup(offset)[1]
        for pos, header in seg.headers(stop):
            stop = pos + header.size
        if stop < seg.size:
            raise CorruptRecordError(seg.damage(stop), seg.log_path, stop)

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """First offset at or past the log start whose record timestamp >= ``timestamp`` (Kafka's
        ListOffsets by time); None if none."""
        from kcli.storage.records import decode_records

        start = self.log_start_offset
        for i, base in enumerate(self._bases):
            seg = self.segment(base)
            if seg.largest_timestamp() < timestamp or self._bases[i + 1 : i + 2] and self._bases[i + 1] <= start:
                continue
            _ts, offset = seg.time_index.lookup(timestamp)
            position = seg.find_position(max(offset, start)) or 0
            for pos, header in seg.headers(position):
                if header.max_timestamp >= timestamp and header.next_offset > start:
                    data = seg.pread(pos, header.size)
                    for record in decode_records(data, 0, header, verify_crc=False):
                        if record.timestamp >= timestamp and record.offset >= start:
                            return record.offset
        return None

    def max_timestamp_offset(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the record with the largest timestamp, the earliest one on ties (Kafka's
        ListOffsets MAX_TIMESTAMP, KIP-734); None when the log holds no timestamped record.  The segments
        keep their largest timestamp, so only the batches around that record are read."""
        largest = max((self.segment(base).largest_timestamp() for base in self._bases), default=-1)
        if largest < 0:
            return None
        offset = self.offset_for_timestamp(largest)
        return None if offset is None else (largest, offset)

    # ------------------------------------------------------------ retention and truncation

    def delete_old_segments(self, now: int | None = None) -> list[int]:
        """Delete whole segments below the log start (DeleteRecords moved it) or, when cleanup.policy holds
        delete, past retention.ms or retention.bytes; never the active one."""
        now = now_ms() if now is None else now
        deleted: list[int] = []
        cfg = self.config
        total = self.size_bytes() if cfg.retention_bytes >= 0 else 0
        start = self.log_start_offset
        while len(self._bases) > 1:
            seg = self.segment(self._bases[0])
            below = self._bases[1] <= start
            # retention by time and size is the delete policy's: a compact-only topic keeps its segments
            expired = cfg.delete and cfg.retention_ms >= 0 and now - seg.largest_timestamp() > cfg.retention_ms
            oversize = cfg.delete and cfg.retention_bytes >= 0 and total - seg.size >= cfg.retention_bytes
            if not (below or expired or oversize):
                break
            total -= seg.size
            seg.delete()
            self._segments.pop(self._bases[0], None)
            deleted.append(self._bases.pop(0))
        if deleted:
            self._delete_snapshots(lambda offset: offset < self._first_base)
        return deleted

    def replace_segments(self, old: list[int]) -> None:
        """Swap the cleaner's ``<old[0]>.log.cleaned`` (and ``.txnindex.cleaned``) in for the closed
        segments at bases ``old`` (Kafka's replaceSegments), so that ``kill -9`` anywhere leaves the old
        segments or the new one once :func:`finish_swaps` ran: the rename of the log to ``.swap`` is the
        commit point, and :func:`_install_swap` can be redone from there."""
        stem = os.path.join(self.directory, segment_name(old[0]))
        cleaned_txn = stem + TXN_SUFFIX + CLEANED
        sync_files([stem + LOG_SUFFIX + CLEANED, cleaned_txn])
        if os.path.exists(cleaned_txn):
            os.replace(cleaned_txn, stem + TXN_SUFFIX + SWAP)
        os.replace(stem + LOG_SUFFIX + CLEANED, stem + LOG_SUFFIX + SWAP)
        sync_files([stem + LOG_SUFFIX + SWAP])
        for base in old:
            self.segment(base).close()
            self._segments.pop(base, None)
        _install_swap(self.directory, old[0])
        self._bases = self._list_bases()

    def truncate_to(self, offset: int) -> None:
        """Remove every record at or after ``offset`` (whole batches, like Kafka's truncateTo).

        An ``offset`` past the log end empties the log and restarts it there (Kafka's truncateFullyAndStartAt):
        how a replica that fell behind the leader's log start, or a new empty one, catches up.
        """
        if offset > self.log_end_offset:
            self.truncate_fully(offset)
            return
        while self._bases and self._bases[-1] >= offset and len(self._bases) > 1:
            self.segment(self._bases[-1]).delete()
            self._segments.pop(self._bases.pop(), None)
        seg = self.active
        pos = seg.find_position(offset)
        if pos is not None:
            seg.truncate(pos)
        self._next_offset = None
        self._next_offset = self.log_end_offset
        if self._start is not None:  # like Kafka: a truncation below the log start brings it down
            self._start = min(self._start, self._next_offset)
        self._truncate_epochs(self._next_offset)
        self.active.open_for_append()
        self._load_producers()

    def truncate_fully(self, offset: int) -> None:
        """Empty the log and restart it at ``offset`` (Kafka's truncateFullyAndStartAt), which may be
        below the old end: a follower whose leader's log start lies inside a batch restarts at that
        batch's base, appends it, then moves its log start up to the leader's."""
        for base in self._bases:
            self.segment(base).delete()
        self._segments.clear()
        self._bases = [offset]
        self._next_offset = self._start = offset
        self._truncate_epochs(-1)
        self.active.open_for_append()
        self._delete_snapshots(lambda _offset: True)
        self.producers, self._snapshot_at = ProducerStates(), None

    # ------------------------------------------------------------ producer state and transactions

    def _load_producers(self) -> list[Damage]:
        """The producer state at the log end, for a write session: the newest snapshot at or below it plus
        the batches after it (or the log's tail without one), replayed as appended.  Snapshots past the
        end (taken before a truncation or a crash cut the log) are deleted, and so are transaction index
        entries past it; an ABORT marker replayed whose entry is missing (lost in a crash) gets it back."""
        end = self.log_end_offset
        self._cut_txn_index(end)
        self._delete_snapshots(lambda offset: offset > end)
        problems: list[Damage] = []
        found = self._newest_snapshot(end, problems)
        try:
            if found is None:
                states, self._snapshot_at = ProducerStates(), None
                start: tuple[int, int] | None = self._tail_start(STATE_FROM_BYTES)
            else:
                offset, entries = found
                states, self._snapshot_at = ProducerStates.from_entries(entries), offset
                start = self._start_of(offset)
            self.producers = states
            if start is not None:
                self._replay(states, *start)
        except KcliError as exc:
            problems.append(Damage(self.directory, f"producer state not rebuilt past {exc}"))
        self.producers.expire(now_ms(), self.config.producer_id_expiration_ms)
        return problems

    def _newest_snapshot(self, end: int, problems: list[Damage] | None = None
                         ) -> tuple[int, list[SnapshotEntry]] | None:
        """(offset, entries) of the newest readable snapshot at or below ``end``; unreadable ones are
        skipped (and, given ``problems``, a writer's, deleted and reported)."""
        for offset in reversed(list_snapshots(self.directory)):
            if offset > end or offset < self._first_base:
                continue
            path = os.path.join(self.directory, snapshot_name(offset))
            try:
                return offset, read_snapshot(path)
            except FileNotFoundError:
                continue
            except (OSError, CorruptRecordError) as exc:
                if problems is not None:
                    problems.append(Damage(path, f"{exc}; deleted, producer state rebuilt from the log"))
                    _unlink(path)
        return None

    def _replay(self, states: ProducerStates, idx: int, position: int) -> None:
        """Apply the batches from ``position`` of segment ``idx`` to ``states``, restoring transaction
        index entries missing for ABORT markers (their entry is written first but is not synced)."""
        known: dict[int, set[int]] = {}  # segment base -> marker offsets its txnindex lists
        now = now_ms()  # a replayed producer's expiry clock restarts (when the log took it is not kept)
        for seg, pos, header in self._walk(idx, position):
            marker_epoch = -1
            if header.attributes & records.ATTR_CONTROL and header.producer_id >= 0:
                marker_epoch, entry = _marker(seg.pread(pos, header.size), header, states, header.base_offset)
                if entry is not None:
                    listed = known.get(seg.base_offset)
                    if listed is None:
                        listed = known[seg.base_offset] = {e.last_offset for e in seg.txn_index.entries()}
                    if entry.last_offset not in listed and self._writing:
                        seg.txn_index.append(entry)
            states.appended(header, header.base_offset, now, marker_epoch)

    def _take_snapshot(self) -> None:
        """Save the producer state as ``<log end>.snapshot``, and delete the snapshots of earlier sessions
        in the active segment (those at segment bases stay: recovery starts there).  Best effort: without
        one the next session replays more of the log."""
        end = self.log_end_offset
        try:
            write_snapshot(os.path.join(self.directory, snapshot_name(end)), self.producers.entries())
        except OSError:
            return
        self._snapshot_at = end
        bases = set(self._bases)
        self._delete_snapshots(lambda offset: offset < end and offset not in bases)

    def _delete_snapshots(self, which: Callable[[int], bool]) -> None:
        for offset in list_snapshots(self.directory):
            if which(offset):
                _unlink(os.path.join(self.directory, snapshot_name(offset)))

    def _cut_txn_index(self, offset: int) -> None:
        """Drop the active segment's transaction index entries at or past ``offset`` (markers not in the log)."""
        if not os.path.exists(self.active.txn_index_path):
            return
        try:
            self.active.txn_index.truncate(offset)
        except OSError as exc:
            raise StorageError.of(exc, self.active.txn_index.path) from None

    def first_unstable_offset(self) -> int | None:
        """A write session's: the first offset of the oldest open transaction (None: none open)."""
        return self.producers.first_unstable_offset()

    def ongoing_transactions(self) -> dict[int, int]:
        """Producer id -> first offset of its open transaction, oldest first (a reader's as of its last
        :meth:`last_stable_offset`, which it computes first if it never did)."""
        if self._writing:
            return self.producers.ongoing()
        if self._txn_view is None:
            self.last_stable_offset()
        return dict(self._txn_view.ongoing) if self._txn_view is not None else {}

    def last_stable_offset(self) -> int:
        """The first offset of the oldest open transaction, else the log end: read_committed readers get
        no batch at or past it.  A write session knows it; a reader (another process) reads the newest
        snapshot and the batch headers after it once, then continues from where it stopped."""
        if self._writing:
            first = self.producers.first_unstable_offset()
            return self.log_end_offset if first is None else first
        if not self._bases:
            return 0
        end = self.log_end_offset
        try:
            view = self._txn_view
            if view is None or not self._first_base <= view.offset <= end or not self._still_there(view):
                self._txn_view = view = self._fresh_view(end)
            self._scan(view, end)
        except CorruptRecordError:
            pass  # damage ends what can be known: the read that reaches it reports it, as without transactions
        view = self._txn_view
        return end if view is None else min(view.ongoing.values(), default=end)

    def _scan(self, view: _TxnView, end: int) -> None:
        """Continue a reader's view of the open transactions over the batches up to ``end``."""
        ongoing = view.ongoing
        start = self._start_of(view.offset)
        for _seg, _pos, header in self._walk(*start) if start is not None else ():
            if header.base_offset >= end:
                break
            pid = header.producer_id
            if header.attributes & records.ATTR_CONTROL:
                ongoing.pop(pid, None)
            elif header.attributes & records.ATTR_TRANSACTIONAL and pid not in ongoing:
                ongoing[pid] = header.base_offset
            view.offset, view.last_crc = header.next_offset, header.crc

    def _fresh_view(self, end: int) -> _TxnView:
        """A reader's starting point: the newest snapshot at or below ``end``, else the log's tail."""
        found = self._newest_snapshot(end)
        if found is not None:
            offset, entries = found
            ongoing = {e.producer_id: e.current_txn_first_offset for e in entries if e.current_txn_first_offset >= 0}
            return _TxnView(offset, dict(sorted(ongoing.items(), key=lambda item: item[1])))
        idx, pos = self._tail_start(STATE_FROM_BYTES)
        for _seg, _pos, header in self._walk(idx, pos):
            return _TxnView(header.base_offset, {})
        return _TxnView(end, {})

    def _still_there(self, view: _TxnView) -> bool:
        """Whether the batch a reader's view last scanned is still in the log (not truncated and rewritten)."""
        if view.last_crc is None:
            return True
        start = self._start_of(view.offset - 1)
        if start is None:
            return False
        for _seg, _pos, header in self._walk(*start):
            return header.next_offset == view.offset and header.crc == view.last_crc
        return False

    def aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping offsets [start, end), from the transaction indexes of the
        segments from the one holding ``start`` on (a marker may be in any later segment)."""
        idx = self._segment_for(start) or 0
        return [entry for base in self._bases[idx:] for entry in self.segment(base).txn_index.entries()
                if entry.last_offset >= start and entry.first_offset < end]

    # ------------------------------------------------------------ leader epochs

    def epochs(self) -> list[tuple[int, int]]:
        return checkpoint.read_epochs(os.path.join(self.directory, checkpoint.LEADER_EPOCH))

    def record_epoch(self, epoch: int, start_offset: int) -> None:
        """Note that ``epoch`` starts at ``start_offset`` (leader-epoch-checkpoint), if it is new."""
        path = os.path.join(self.directory, checkpoint.LEADER_EPOCH)
        epochs = checkpoint.read_epochs(path)
        if epochs and epochs[-1][0] >= epoch:
            self._last_epoch = epochs[-1][0]
            return
        epochs.append((epoch, start_offset))
        checkpoint.write_epochs(path, epochs)
        self._last_epoch = epoch

    def _latest_epoch(self) -> int:
        if self._last_epoch is None:
            epochs = self.epochs()
            self._last_epoch = epochs[-1][0] if epochs else -1
        return self._last_epoch

    def _truncate_epochs(self, end_offset: int) -> None:
        """Forget epochs that start at or after ``end_offset`` (their records are gone), as Kafka does."""
        epochs = self.epochs()
        kept = [(e, start) for e, start in epochs if start < end_offset]
        if kept != epochs:
            checkpoint.write_epochs(os.path.join(self.directory, checkpoint.LEADER_EPOCH), kept)
        self._last_epoch = kept[-1][0] if kept else -1


class _TxnView:
    """What a reader of the log knows of its open transactions: those open below ``offset``, and the CRC
    of the batch ending there (None: none read yet) to tell that the log was not rewritten since."""

    __slots__ = ("offset", "ongoing", "last_crc")

    def __init__(self, offset: int, ongoing: dict[int, int], last_crc: int | None = None) -> None:
        self.offset = offset
        self.ongoing = ongoing
        self.last_crc = last_crc


def _marker(batch: records.BytesLike, header: records.BatchHeader, producers: ProducerStates,
            offset: int) -> tuple[int, AbortedTxn | None]:
    """The coordinator epoch of the transaction marker ``batch`` at ``offset`` and, for an ABORT, the
    transaction index entry it ends (None for a COMMIT or when ``producers`` has no transaction open):
    what appending the marker and replaying it both need."""
    from kcli.storage.control import ABORT, control_type, coordinator_epoch  # only for markers

    epoch = coordinator_epoch(batch, 0, header)
    if control_type(batch, 0, header) != ABORT:
        return epoch, None
    return epoch, producers.aborted_txn(header.producer_id, offset)


def _checkpointed_start(directory: str) -> int:
    """The log start its broker's ``log-start-offset-checkpoint`` (in the folder above) keeps for the
    partition in ``directory``; 0 when it keeps none or cannot be read (the first segment's base holds)."""
    key = parse_partition_dir(os.path.basename(directory))
    if key is None:
        return 0
    return checkpoint.read_offset(os.path.join(os.path.dirname(directory), checkpoint.LOG_START), key) or 0


def finish_swaps(directory: str) -> bool:
    """Kafka's LogLoader for the cleaner's files after a crash: ``.cleaned`` files are an unfinished pass
    (dropped: the old segments are whole); a ``<base>.log.swap`` is a committed one, installed again from
    the start.  True if any was found."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return False
    found = [name for name in names if name.endswith((CLEANED, SWAP, _SWAPPING))]
    unfinished = {name[:20] for name in found if name.endswith(LOG_SUFFIX + CLEANED)}
    for name in found:
        if name.endswith((CLEANED, _SWAPPING)) or name[:20] in unfinished:
            _unlink(os.path.join(directory, name))
    for name in found:
        if name.endswith(LOG_SUFFIX + SWAP) and name[:20] not in unfinished:
            _install_swap(directory, int(name[:20]))
    for name in found:  # a transaction index whose log was installed to the end
        if name.endswith(TXN_SUFFIX + SWAP):
            _unlink(os.path.join(directory, name))
    return bool(found)


_SWAPPING = ".swapping"  # a hard link of a .swap file about to replace its namesake


def _install_swap(directory: str, base: int) -> None:
    """Make ``<base>.log.swap`` (and its ``.txnindex.swap``) the segment at ``base`` in place of the
    segments whose bases lie in its offsets.  Each file is replaced atomically (a hard link renamed over
    it), so readers never find the segment missing; the ``.swap`` files go last, the log's first, so the
    whole can be redone after a crash at any point."""
    stem = os.path.join(directory, segment_name(base))
    swap = LogSegment(directory, base)
    swap.log_path = stem + LOG_SUFFIX + SWAP  # read its batches, not its namesake's
    end = base
    for _pos, header in swap.headers(0):
        end = header.next_offset
    swap.close()
    for suffix in (".index", ".timeindex"):  # the old segment's: readers scan until they are rebuilt
        _unlink(stem + suffix)
    for suffix in (TXN_SUFFIX, LOG_SUFFIX):
        if os.path.exists(stem + suffix + SWAP):
            os.link(stem + suffix + SWAP, stem + suffix + _SWAPPING)
            os.replace(stem + suffix + _SWAPPING, stem + suffix)
            # a rename between two links of one file does nothing (POSIX): so it is when a crash came
            # after this very step, before the .swap went, and the temporary link would stay behind
            _unlink(stem + suffix + _SWAPPING)
        else:
            _unlink(stem + suffix)
    for name in sorted(os.listdir(directory), reverse=True):
        other = name[:20]
        if name.endswith(LOG_SUFFIX) and other.isdigit() and base < int(other) < end:
            LogSegment(directory, int(other)).delete()
    LogSegment(directory, base, writable=lambda: True).write_indexes()
    sync_files([stem + LOG_SUFFIX])
    _unlink(stem + LOG_SUFFIX + SWAP)
    _unlink(stem + TXN_SUFFIX + SWAP)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rebuilt(problem: Damage) -> Damage:
    """An index problem as recovery reports it: mended by rebuilding the segment's indexes."""
    return Damage(problem.path, f"{problem.reason}; rebuilt the segment's indexes from the log", problem.position)


def _cut_at(data: bytes, upper: int) -> bytes:
    end = 0
    while True:
        peek = records.peek_size(data, end)
        if peek is None or peek[0] >= upper:
            return data[:end]
        end += peek[1]


def _set_log_append_time(buf: bytearray, now: int) -> None:
    """LogAppendTime changes the attributes and max timestamp, which the CRC covers: recompute it."""
    import struct

    from crc32c import crc32c

    attrs = struct.unpack_from(">h", buf, 21)[0] | records.ATTR_LOG_APPEND_TIME
    struct.pack_into(">h", buf, 21, attrs)
    struct.pack_into(">q", buf, 35, now)
    struct.pack_into(">I", buf, 17, crc32c(memoryview(buf)[21:]))
