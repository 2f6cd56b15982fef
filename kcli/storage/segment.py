"""One log segment: a ``.log`` file of record batches with its ``.index`` and ``.timeindex``.

Reads use ``os.pread`` on a shared descriptor; appends use an O_APPEND descriptor.  A segment never
assumes it is the only process looking at its files: a reader stops at a partial batch at the end,
which is what a concurrent append looks like from outside.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from kcli.errors import CorruptRecordError, StorageError
from kcli.storage import records
from kcli.storage.fileio import open_fd, truncate_file
from kcli.storage.index import OffsetIndex, TimeIndex

LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX = ".log", ".index", ".timeindex"


def segment_name(base_offset: int) -> str:
    """Kafka's 20-digit zero-padded file name stem."""
    return f"{base_offset:020d}"


class RecoveryResult:
    """What recovering a segment found: where valid data ends and what was cut."""

    __slots__ = ("valid_bytes", "truncated_bytes", "next_offset", "error")

    def __init__(self, valid_bytes: int, truncated_bytes: int, next_offset: int, error: str | None) -> None:
        self.valid_bytes = valid_bytes
        self.truncated_bytes = truncated_bytes
        self.next_offset = next_offset
        self.error = error


class LogSegment:
    """A segment's files and the operations Kafka's ``LogSegment`` offers."""

    def __init__(self, directory: str, base_offset: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        stem = os.path.join(directory, segment_name(base_offset))
        self.log_path = stem + LOG_SUFFIX
        self.index = OffsetIndex(stem + INDEX_SUFFIX, base_offset)
        self.time_index = TimeIndex(stem + TIMEINDEX_SUFFIX, base_offset)
        self._fd: int | None = None
        self._afd: int | None = None
        self._size: int | None = None
        self._torn = False  # a failed append left bytes past ``_size`` that could not be cut yet
        self._first_timestamp: int | None = None
        self.bytes_since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset

    # ------------------------------------------------------------ file access

    def _read_fd(self) -> int:
        if self._fd is None:
            self._fd = open_fd(self.log_path, os.O_RDONLY)
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
        return os.pread(self._read_fd(), length, position)

    def open_for_append(self) -> None:
        if self._afd is None:
            self._afd = open_fd(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._afd).st_size

    def close(self) -> None:
        if self._torn:
            try:
                self._cut_back()  # leave no partial batch behind (recovery would cut it otherwise)
            except StorageError:
                pass
        for fd in (self._fd, self._afd):
            if fd is not None:
                os.close(fd)
        self._fd = self._afd = None
        self._size = None
        self._first_timestamp = None
        self.index.close()
        self.time_index.close()

    def flush(self) -> None:
        """fsync the log; index files are rebuilt on recovery, so they are not synced."""
        if self._afd is not None:
            os.fsync(self._afd)

    def delete(self) -> None:
        self.close()
        for path in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------ scanning

    def headers(self, position: int = 0, end: int | None = None) -> Iterator[tuple[int, records.BatchHeader]]:
        """Yield (position, header) of each complete batch from ``position``; stop at a partial tail."""
        end = self.size if end is None else end
        while end - position >= records.HEADER_SIZE:
            raw = self.pread(position, records.HEADER_SIZE)
            try:
                header = records.parse_header(raw)
            except CorruptRecordError as exc:
                raise CorruptRecordError(str(exc).split(" at position")[0], self.log_path, position) from None
            if position + header.size > end:
                return
            yield position, header
            position += header.size

    def tail(self) -> tuple[int, int]:
        """(next offset, end position of the last complete batch), scanning from the last index entry.

        An index entry is written after the batch it names, so its batch is complete.  Only a log cut
        behind its index's back (a power cut that kept the unsynced index but not the log, or a log
        written by kcli before 0.x, which wrote the entry first) has an entry past the last complete
        batch: then the whole segment is scanned, as recovery would.
        """
        _o, position = self.index.last()
        size = self.size
        next_offset, end = self._scan_tail(position if position <= size else 0, size)
        if position and not end:
            next_offset, end = self._scan_tail(0, size)
        return next_offset, end

    def _scan_tail(self, position: int, size: int) -> tuple[int, int]:
        next_offset, end = self.base_offset, 0
        for pos, header in self.headers(position, size):
            next_offset = header.next_offset
            end = pos + header.size
            self._note_timestamp(header)
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
        """Whole batches from ``position``: at least one (even if larger than max_bytes), at most max_bytes."""
        size = self.size
        data = self.pread(position, max(0, min(max_bytes, size - position)))
        end = 0
        while True:
            peek = records.peek_size(data, end)
            if peek is None or end + peek[1] > len(data):
                break
            end += peek[1]
        if end == 0:
            peek = records.peek_size(data, 0)
            if peek is None:
                # fewer than 17 bytes requested: read the header to learn the size
                head = self.pread(position, 17)
                peek = records.peek_size(head, 0)
                if peek is None:
                    return b""
            if position + peek[1] > size:
                return b""
            return self.pread(position, peek[1])
        return data[:end]

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
                self.index.append(last_offset, position)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                self.bytes_since_index = 0
            except OSError:
                self._trim_indexes()
        self.bytes_since_index += len(view)
        return position

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
        if not self.index.sane() or not self.time_index.sane():
            start_position = 0
        if start_position == 0:
            self.index.reset()
            self.time_index.reset()
        else:
            self.index.truncate_to_position(start_position)
        self.bytes_since_index = start_position - self.index.last()[1] if start_position else 0
        self.max_timestamp = self.time_index.max_timestamp()
        if start_position:
            _o, pos = self.index.last()
            for _pos, header in self.headers(pos, start_position):
                self._note_timestamp(header)
        position = start_position
        next_offset = self.base_offset
        error = None
        if start_position:
            for _pos, header in self.headers(self.index.last()[1], start_position):
                next_offset = header.next_offset
        while position < size:
            raw = self.pread(position, records.HEADER_SIZE)
            if len(raw) < records.HEADER_SIZE:
                break  # a partial header at the end is a torn tail, not corruption
            try:
                header = records.parse_header(raw)
            except CorruptRecordError as exc:
                error = f"{str(exc).split(' at position')[0]} at position {position}"
                break
            if position + header.size > size:
                break
            batch = self.pread(position, header.size)
            if not records.crc_valid(batch, 0, header):
                error = f"record batch CRC mismatch at position {position}"
                break
            if header.base_offset < next_offset and position > 0:
                error = f"offsets go backwards at position {position}"
                break
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            if self.bytes_since_index > index_interval:
                self.index.append(header.last_offset, position)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                self.bytes_since_index = 0
            self.bytes_since_index += header.size
            next_offset = header.next_offset
            position += header.size
        self.time_index.truncate_to_offset(next_offset)
        truncated = size - position
        if truncated:
            truncate_file(self.log_path, position)
            self.close()
        return RecoveryResult(position, truncated, next_offset, error)
