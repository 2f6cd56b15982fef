"""One log segment: a ``.log`` file of record batches with its ``.index``, ``.timeindex`` and ``.txnindex``.

Reads use ``os.pread`` on a shared descriptor; appends use an O_APPEND descriptor.  A segment never
assumes it is the only process looking at its files: a reader stops at a partial batch at the end,
which is what a concurrent append looks like from outside, and at zeros after the last batch (a crash
after the file grew but before the data reached it), which recovery cuts like any torn tail.

Indexes are checked against the log when first used (Kafka's sanity check at open): one that fails is
rebuilt from the log, in memory for a reader and on disk for a writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kcli.errors import CorruptRecordError, StorageError
from kcli.storage import records
from kcli.storage.damage import Damage
from kcli.storage.fileio import owned_fd, truncate_file
from kcli.storage.index import OffsetIndex, TimeIndex

if TYPE_CHECKING:
    from kcli.storage.txnindex import TxnIndex

LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXN_SUFFIX = ".log", ".index", ".timeindex", ".txnindex"
DEFAULT_INDEX_INTERVAL = 4096
_ZERO_PROBE = 1 << 16  # how far zeros must run for a reader to take them as the end of the data
_MIN_SIZE = records.HEADER_SIZE  # the smallest batch: a header and no records
_MAGIC_AT = 16  # the magic byte's position in a batch


def segment_name(base_offset: int) -> str:
    """Kafka's 20-digit zero-padded file name stem."""
    return f"{base_offset:020d}"


class RecoveryResult:
    """What recovering a segment found: where valid data ends, what was cut, and the damage that ended the
    valid data (None for a torn tail, which is no damage), with its file and position as fields."""

    __slots__ = ("valid_bytes", "truncated_bytes", "next_offset", "error")

    def __init__(
        self, valid_bytes: int, truncated_bytes: int, next_offset: int, error: CorruptRecordError | None
    ) -> None:
        self.valid_bytes = valid_bytes
        self.truncated_bytes = truncated_bytes
        self.next_offset = next_offset
        self.error = error


class LogSegment:
    """A segment's files and the operations Kafka's ``LogSegment`` offers."""

    def __init__(self, directory: str, base_offset: int, index_interval: int = DEFAULT_INDEX_INTERVAL,
                 writable: Callable[[], bool] | None = None) -> None:
        self.directory = directory
        self.base_offset = base_offset
        stem = os.path.join(directory, segment_name(base_offset))
        self.log_path = stem + LOG_SUFFIX
        self._index = OffsetIndex(stem + INDEX_SUFFIX, base_offset)
        self._time_index = TimeIndex(stem + TIMEINDEX_SUFFIX, base_offset)
        self.txn_index_path = stem + TXN_SUFFIX  # the transactions aborted in this segment
        self._txn_index: TxnIndex | None = None
        self.index_interval = index_interval
        self._writable = writable or (lambda: False)  # whether a rebuilt index may be written to disk
        self._indexes_checked = False
        self.index_problem: Damage | None = None  # what check_indexes found (the index was rebuilt)
        self._rebuilt_on_disk = False
        self._fd: int | None = None
        self._afd: int | None = None
        self._closers: list[Callable[[], object]] = []  # of both descriptors (fileio.owned_fd)
        self._size: int | None = None
        self._torn = False  # a failed append left bytes past ``_size`` that could not be cut yet
        self._first_timestamp: int | None = None
        self.bytes_since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset

    # ------------------------------------------------------------ file access

    def _read_fd(self) -> int:
        if self._fd is None:
            self._fd, closer = owned_fd(self, self.log_path, os.O_RDONLY)
            self._closers.append(closer)
        return self._fd

    @property
    def size(self) -> int:
        if self._afd is not None and self._size is not None:
            return self._size
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def pread(self, position: int, length: int) -> bytes:
        try:
            return os.pread(self._read_fd(), length, position)
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror} (reading {length} bytes at position {position})",
                          self.log_path) from None

    def open_for_append(self) -> None:
        if self._afd is None:
            self._afd, closer = owned_fd(self, self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            self._closers.append(closer)
            self._size = os.fstat(self._afd).st_size

    def close(self) -> None:
        if self._torn:
            try:
                self._cut_back()  # leave no partial batch behind (recovery would cut it otherwise)
            except StorageError:
                pass
        for closer in self._closers:
            closer()
        self._closers.clear()
        self._fd = self._afd = None
        self._size = None
        self._first_timestamp = None
        self._index.close()
        self._time_index.close()

    def flush(self) -> None:
        """fsync the log; index files are rebuilt on recovery, so they are not synced."""
        if self._afd is not None:
            os.fsync(self._afd)

    def delete(self) -> None:
        self.close()
        for path in (self.log_path, self._index.path, self._time_index.path, self.txn_index_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------ indexes

    @property
    def txn_index(self) -> TxnIndex:
        """The transaction index, made on first use: most logs never hold an aborted transaction, and a
        write session that finds no file has nothing to cut."""
        if self._txn_index is None:
            from kcli.storage.txnindex import TxnIndex

            self._txn_index = TxnIndex(self.txn_index_path)
        return self._txn_index

    @property
    def index(self) -> OffsetIndex:
        if not self._indexes_checked:
            self._first_check()
        return self._index

    @property
    def time_index(self) -> TimeIndex:
        if not self._indexes_checked:
            self._first_check()
        return self._time_index

    def _first_check(self) -> None:
        if self.check_indexes() is not None and self._rebuilt_on_disk:
            _report(f"{self.index_problem}; rebuilt both indexes of the segment from the log")

    def check_indexes(self) -> Damage | None:
        """Kafka's sanity check of both indexes, against the log: on failure rebuild them from the log (on
        disk when ``writable()``, else in memory) and return what was wrong, in which file."""
        if not self._indexes_checked:
            self._indexes_checked = True
            self.index_problem = self._find_index_problem()
            if self.index_problem is not None:
                self._rebuild_indexes()
        if self.index_problem is not None and not self._rebuilt_on_disk and self._writable():
            self._index.persist()
            self._time_index.persist()
            self._rebuilt_on_disk = True
        return self.index_problem

    def _find_index_problem(self) -> Damage | None:
        index, time_index = self._index, self._time_index
        if index.problem is not None:
            return Damage(index.path, index.problem)
        size = self.size
        offset, position = index.last()
        if position > size:
            return Damage(index.path, f"entry for offset {offset} points at position {position}, past the end of the log")
        raw = self.pread(position, records.HEADER_SIZE) if len(index) else b""
        if len(raw) == records.HEADER_SIZE:  # else its batch is missing (a log an earlier kcli wrote): tail() copes
            try:
                header = records.parse_header(raw)
            except CorruptRecordError:
                header = None
            if header is None or not header.base_offset <= offset <= header.last_offset:
                return Damage(index.path, f"entry for offset {offset} does not point at the batch holding it")
        if time_index.problem is not None:
            return Damage(time_index.path, time_index.problem)
        if len(time_index):
            timestamp, offset = time_index.last()
            try:
                for _pos, header in self.headers(index.lookup(offset)[1], size):
                    if header.last_offset >= offset:
                        if header.base_offset > offset or header.max_timestamp != timestamp:
                            return Damage(time_index.path, f"entry (timestamp {timestamp}, offset {offset}) does not "
                                          "match the batch holding that offset")
                        break
            except CorruptRecordError:
                pass  # the log is damaged there: reading reports it
        return None

    def _rebuild_indexes(self) -> None:
        """Both indexes as a writer makes them (an entry before a batch once more than index_interval bytes
        were written since the last), from the complete batches up to the first damage, with a final time
        index entry for the newest timestamp."""
        offsets: list[tuple[int, int]] = []
        times: list[tuple[int, int]] = []
        since, max_ts, offset_of_max = 0, -1, self.base_offset
        try:
            for position, header in self.headers(0):
                if header.max_timestamp > max_ts:
                    max_ts, offset_of_max = header.max_timestamp, header.last_offset
                if since > self.index_interval:
                    offsets.append((header.last_offset, position))
                    if not times or max_ts > times[-1][0]:
                        times.append((max_ts, offset_of_max))
                    since = 0
                since += header.size
        except CorruptRecordError:
            pass  # index what precedes the damage
        if max_ts >= 0 and (not times or max_ts > times[-1][0]):
            times.append((max_ts, offset_of_max))
        self._index.replace(offsets)
        self._time_index.replace(times)

    def write_indexes(self) -> None:
        """Build both indexes from the log and write them (a segment the cleaner just swapped in)."""
        self._rebuild_indexes()
        self._index.persist()
        self._time_index.persist()
        self._indexes_checked = True

    # ------------------------------------------------------------ scanning

    def headers(self, position: int = 0, end: int | None = None) -> Iterator[tuple[int, records.BatchHeader]]:
        """Yield (position, header) of each complete batch from ``position``; stop at a partial tail or at
        zeros running to the end (see ``zero_tail``); raise CorruptRecordError at any other invalid header."""
        end = self.size if end is None else end
        while end - position >= records.HEADER_SIZE:
            raw = self.pread(position, records.HEADER_SIZE)
            try:
                header = records.parse_header(raw)
            except CorruptRecordError as exc:
                if self.zero_tail(position, end):
                    return
                raise CorruptRecordError(exc.reason, self.log_path, position) from None
            if position + header.size > end:
                return
            yield position, header
            position += header.size

    def zero_tail(self, position: int, end: int | None = None) -> bool:
        """Whether the bytes from ``position`` are zeros up to ``end`` (or for the first 64 KiB): what a
        crash leaves when the file grew before its data was written.  No batch starts with zeros."""
        end = self.size if end is None else end
        length = min(end - position, _ZERO_PROBE)
        return length > 0 and not self.pread(position, length).strip(b"\0")

    def damage(self, position: int) -> str:
        """What is wrong with the bytes at ``position``, where a batch should start (for error messages)."""
        left = self.size - position
        raw = self.pread(position, min(left, records.HEADER_SIZE))
        if not raw.strip(b"\0"):
            return f"zero bytes instead of a record batch ({left} bytes to the end of the segment)"
        peek = records.peek_size(raw, 0)
        if peek is not None and peek[1] > left:
            return f"a record batch of {peek[1]} bytes runs past the end of the segment ({left} bytes left)"
        try:
            records.parse_header(raw)
        except CorruptRecordError as exc:
            return f"corrupt record batch header: {exc.reason}"
        return "invalid record batch"

    def tail(self) -> tuple[int, int]:
        """(next offset, end position of the last complete batch), scanning from the last index entry.

        An index entry is written after the batch it names, so its batch is complete.  Only a log cut
        behind its index's back (a power cut that kept the unsynced index but not the log, or a log
        written by an earlier kcli, which wrote the entry first) has an entry past the last complete
        batch: then the whole segment is scanned, as recovery would.  Damage after the last complete
        batch ends the log here, as a torn tail does: the next writer's recovery cuts it, and readers
        still get every record before it.
        """
        _o, position = self.index.last()
        size = self.size
        next_offset, end = self._scan_tail(position if position <= size else 0, size)
        if position and not end:
            next_offset, end = self._scan_tail(0, size)
        return next_offset, end

    def _scan_tail(self, position: int, size: int) -> tuple[int, int]:
        next_offset, end = self.base_offset, 0
        try:
            for pos, header in self.headers(position, size):
                next_offset = header.next_offset
                end = pos + header.size
                self._note_timestamp(header)
        except CorruptRecordError:
            pass  # see tail()
        return next_offset, end

    def _note_timestamp(self, header: records.BatchHeader) -> None:
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset

    def largest_timestamp(self) -> int:
        """The newest record timestamp in the segment (time index, then a scan of what follows it)."""
        self.max_timestamp = max(self.max_timestamp, self.time_index.max_timestamp())
        _o, position = self.index.last()
        for _pos, header in self.headers(position):
            self._note_timestamp(header)
        return self.max_timestamp

    def first_timestamp(self) -> int | None:
        """The first batch's max timestamp, which Kafka's segment.ms rolling is measured from (read once
        per session: only a truncation, which closes the segment, can change it)."""
        if self._first_timestamp is None:
            raw = self.pread(0, records.HEADER_SIZE)
            if len(raw) < records.HEADER_SIZE:
                return None
            self._first_timestamp = records.parse_header(raw).max_timestamp
        return self._first_timestamp

    def find_position(self, offset: int) -> int | None:
        """Position of the first batch whose last offset >= ``offset``; None past the end."""
        _o, position = self.index.lookup(offset)
        if position > self.size:
            position = 0
        for pos, header in self.headers(position):
            if header.last_offset >= offset:
                return pos
        return None

    def read(self, position: int, max_bytes: int) -> bytes:
        """Whole batches from ``position``: at least one (even if larger than max_bytes), at most max_bytes.

        Reading stops before anything that is not a batch (a length below the header's size, a bad magic,
        zeros), so the batches before damage are served; damage at ``position`` itself raises
        CorruptRecordError naming the file and position, except zeros to the end: there the data ends."""
        size = self.size
        data = self.pread(position, max(0, min(max_bytes, size - position)))
        end = 0
        while True:
            peek = records.peek_size(data, end)
            if peek is None or end + peek[1] > len(data) or not _plausible(data, end, peek[1]):
                break
            end += peek[1]
        if end:
            return data[:end]
        head = data if len(data) >= records.HEADER_SIZE else self.pread(position, records.HEADER_SIZE)
        peek = records.peek_size(head, 0)
        if peek is None:
            return b""  # fewer than 17 bytes: a header being written
        if not _plausible(head, 0, peek[1]):
            if self.zero_tail(position, size):
                return b""
            raise CorruptRecordError(self.damage(position), self.log_path, position)
        if position + peek[1] > size:
            return b""
        return self.pread(position, peek[1])

    # ------------------------------------------------------------ writing

    def append(
        self, batch: bytes | bytearray, last_offset: int, max_timestamp: int, index_interval: int, sync: bool = False
    ) -> int:
        """Append one batch, all or nothing, and fsync it if ``sync``; then maintain the sparse indexes like
        Kafka (an entry for this batch once more than ``index_interval`` bytes were written since the
        last).  Returns the batch's position.

        The batch goes first and its index entry after it, so an index entry always names a complete
        batch.  A write or fsync that fails (a full disk) cuts the file back to where the batch started
        and raises StorageError: no partial batch, no index entry, and the caller's log end stays put.
        A failed index write costs only that entry (the index is sparse; the batch is whole)."""
        if self._afd is None:
            self.open_for_append()
        if self._torn:
            self._cut_back()  # an earlier failure could not cut: do it now, or refuse
        position = self._size or 0
        view = memoryview(batch)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._afd, view[written:])  # type: ignore[arg-type]
            if sync:
                self.flush()
        except OSError as exc:
            # name the file: "No space left on device" alone does not say which disk filled up
            error = StorageError.of(exc, self.log_path)
            if written:
                self._torn = True
                try:
                    self._cut_back()
                except StorageError:
                    pass  # the next append, or close, tries again; the error to report is the first one
            raise error from None
        self._size = position + len(view)
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = last_offset
        if self.bytes_since_index > index_interval:
            try:
                self._index_entry(last_offset, position)
            except OSError:
                self._trim_indexes()
        self.bytes_since_index += len(view)
        return position

    def _index_entry(self, last_offset: int, position: int) -> None:
        """The sparse index entries for the batch at ``position`` (the caller decided one is due), as append
        and recovery make them: offset and position, and the newest timestamp so far."""
        self.index.append(last_offset, position)
        self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.bytes_since_index = 0

    def _cut_back(self) -> None:
        """Cut the log file back to the end of its last whole batch (``_size``): undo a failed append."""
        try:
            os.ftruncate(self._afd, self._size or 0)  # type: ignore[arg-type]
        except OSError as exc:
            raise StorageError.of(exc, self.log_path) from None
        self._torn = False

    def _trim_indexes(self) -> None:
        """Drop the partial entry a failed index write may have left (best effort: a torn index file
        fails the sanity check and is rebuilt by the next recovery)."""
        for index in (self.index, self.time_index):
            try:
                index.close()
                truncate_file(index.path, len(index) * index.entry_size)
            except OSError:
                pass

    def on_roll(self) -> None:
        """Kafka's onBecomeInactiveSegment: a final time index entry, then flush and release."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.flush()
        self.close()

    def truncate(self, position: int) -> None:
        """Cut the log at ``position`` and drop index entries beyond it."""
        self.close()
        truncate_file(self.log_path, position)
        self.index.truncate_to_position(position)
        next_offset = self.base_offset
        for _pos, header in self.headers(self.index.last()[1] if position else 0):
            next_offset = header.next_offset
        self.time_index.truncate_to_offset(next_offset)
        self.max_timestamp = -1

    def recover(self, start_position: int, index_interval: int) -> RecoveryResult:
        """Re-validate batches from ``start_position`` (sizes and CRC), rebuild index entries after it, and
        truncate at the first partial or invalid batch."""
        size = self.size
        if start_position > size:
            start_position = 0
        if self.check_indexes() is not None:
            start_position = 0
        if start_position == 0:
            self.index.reset()
            self.time_index.reset()
            self._rebuilt_on_disk = True
        else:
            self.index.truncate_to_position(start_position)
        self.bytes_since_index = start_position - self.index.last()[1] if start_position else 0
        self.max_timestamp = self.time_index.max_timestamp()
        position = start_position
        next_offset = self.base_offset
        error: CorruptRecordError | None = None
        if start_position:  # the batches between the last index entry and where recovery starts
            for _pos, header in self.headers(self.index.last()[1], start_position):
                self._note_timestamp(header)
                next_offset = header.next_offset
        while position < size:
            raw = self.pread(position, records.HEADER_SIZE)
            if len(raw) < records.HEADER_SIZE:
                break  # a partial header at the end is a torn tail, not corruption
            try:
                header = records.parse_header(raw)
            except CorruptRecordError as exc:
                if not self.zero_tail(position, size):  # zeros after the last batch are a torn tail too
                    error = CorruptRecordError(exc.reason, self.log_path, position)
                break
            if position + header.size > size:
                break
            batch = self.pread(position, header.size)
            if not records.crc_valid(batch, 0, header):
                error = CorruptRecordError("record batch CRC mismatch", self.log_path, position)
                break
            if header.base_offset < next_offset and position > 0:
                error = CorruptRecordError("offsets go backwards", self.log_path, position)
                break
            self._note_timestamp(header)
            if self.bytes_since_index > index_interval:
                self._index_entry(header.last_offset, position)
            self.bytes_since_index += header.size
            next_offset = header.next_offset
            position += header.size
        self.time_index.truncate_to_offset(next_offset)
        truncated = size - position
        if truncated:
            truncate_file(self.log_path, position)
            self.close()
        return RecoveryResult(position, truncated, next_offset, error)


def _plausible(data: bytes | memoryview, position: int, size: int) -> bool:
    """Whether a batch of ``size`` bytes can start at ``position``: the cheap checks a read makes per batch
    (its length and magic byte; a full header check is the client's, as in Kafka)."""
    return size >= _MIN_SIZE and (len(data) <= position + _MAGIC_AT or data[position + _MAGIC_AT] == records.MAGIC)


def _report(message: str) -> None:
    """Tell the operator (a broker's log; nothing on a CLI's stderr) about a repair made while reading."""
    import logging  # not at start-up: rebuilding an index is rare

    logger = logging.getLogger("kcli.storage")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.warning("%s", message)
