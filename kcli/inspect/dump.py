"""kafka-dump-log for kcli: the contents of segment, index, transaction index, producer snapshot and
``partition.metadata`` files as events, and Kafka's text lines for them.

``dump_file`` yields one dict per thing found (a batch, a record, an index entry, a mismatch, invalid
bytes); ``--json`` prints those dicts as they are, and ``TextRenderer`` turns them into the lines
Kafka's ``DumpLogSegments`` prints, including the diagnostics it collects and prints on stderr at the
end.  Unlike Kafka's tool, a corrupt batch header is reported with its position instead of a stack trace.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kcli.errors import CorruptRecordError, NotFoundError, UsageError
from kcli.inspect import indexes, layout, scan, txnlog
from kcli.storage import partition_metadata, records
from kcli.storage.compression import CODEC_NAMES
from kcli.storage.producer_snapshot import SNAPSHOT_SUFFIX, list_snapshots, read_snapshot, snapshot_name
from kcli.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, TXN_SUFFIX
from kcli.storage.txnindex import TxnIndex

Event = dict[str, object]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class DumpOptions:
    """The options of ``kafka-dump-log`` that kcli supports."""

    deep_iteration: bool = False
    print_data: bool = False  # implies deep iteration
    max_bytes: int | None = None  # only whole batches within the first max_bytes of a .log
    verify_index_only: bool = False
    index_sanity_check: bool = False
    skip_record_metadata: bool = False
    transaction_log: bool = False  # keys and values are __transaction_state records (implies print_data)

    @property
    def deep(self) -> bool:
        return self.deep_iteration or self.print_data or self.transaction_log

    @property
    def with_data(self) -> bool:
        return self.print_data or self.transaction_log


# ---------------------------------------------------------------- inputs


def resolve_inputs(paths: list[str] | tuple[str, ...]) -> list[str]:
    """Check every argument before dumping anything, expanding partition dirs into their segment files
    (for each segment in offset order: .log, .index, .timeindex, .txnindex), then their producer
    snapshots in offset order.  Bad input is a one-line error."""
    out: list[str] = []
    for path in paths:
        if not os.path.exists(path):
            raise NotFoundError(f"{path} does not exist")
        if os.path.isdir(path):
            layout.check_partition_dir(path)
            if os.path.isfile(marker := os.path.join(path, partition_metadata.FILE_NAME)):
                out.append(marker)
            for _base, files in sorted(layout.segment_files(path).items()):
                out.extend(files[s] for s in layout.SEGMENT_SUFFIXES if s in files)
            out.extend(os.path.join(path, snapshot_name(offset)) for offset in list_snapshots(path))
            continue
        if os.path.basename(path) == partition_metadata.FILE_NAME:
            out.append(path)
            continue
        suffix = os.path.splitext(path)[1]
        if suffix not in (*layout.SEGMENT_SUFFIXES, SNAPSHOT_SUFFIX):
            raise UsageError(
                f"{path} is not a segment file",
                hint="dump-log reads .log, .index, .timeindex, .txnindex, .snapshot and partition.metadata "
                "files and partition directories",
            )
        if suffix != LOG_SUFFIX and layout.segment_base(path) is None:
            raise UsageError(f"{path}: an index or snapshot file name must be a 20-digit offset")
        out.append(path)
    return out


def dump_file(path: str, opts: DumpOptions, progress: Progress | None = None) -> Iterator[Event]:
    """Events for one file, starting with ``{"type": "file"}``."""
    yield {"type": "file", "file": path}
    suffix = os.path.splitext(path)[1]
    if os.path.basename(path) == partition_metadata.FILE_NAME:
        yield from _dump_partition_metadata(path)
    elif suffix == LOG_SUFFIX:
        yield from _dump_log(path, opts, progress)
    elif suffix == INDEX_SUFFIX:
        yield from _dump_index(path, opts)
    elif suffix == TIMEINDEX_SUFFIX:
        yield from _dump_time_index(path, opts)
    elif suffix == TXN_SUFFIX:
        yield from _dump_txn_index(path)
    elif suffix == SNAPSHOT_SUFFIX:
        yield from _dump_snapshot(path)
    if progress is not None and suffix != LOG_SUFFIX:
        progress(os.path.getsize(path))


# ---------------------------------------------------------------- .log


def batch_event(path: str, batch: scan.Batch) -> Event:
    h = batch.header
    delete_horizon = h.base_timestamp if h.attributes & records.ATTR_DELETE_HORIZON else None
    return {
        "type": "batch",
        "file": path,
        "baseOffset": h.base_offset,
        "lastOffset": h.last_offset,
        "count": h.records_count,
        "baseSequence": h.base_sequence,
        "lastSequence": h.last_sequence,
        "producerId": h.producer_id,
        "producerEpoch": h.producer_epoch,
        "partitionLeaderEpoch": h.partition_leader_epoch,
        "isTransactional": h.is_transactional,
        "isControl": h.is_control,
        "deleteHorizonMs": delete_horizon,
        "position": batch.position,
        "timestampType": "LogAppendTime" if h.log_append_time else "CreateTime",
        "maxTimestamp": h.max_timestamp,
        "size": h.size,
        "magic": h.magic,
        "compresscodec": CODEC_NAMES.get(h.codec, f"unknown({h.codec})"),
        "crc": h.crc,
        "isvalid": batch.crc_ok,
    }


def _sequence(header: records.BatchHeader, offset: int) -> int:
    if header.base_sequence < 0:
        return -1
    return (header.base_sequence + offset - header.base_offset) & 0x7FFFFFFF


def record_event(path: str, batch: scan.Batch, record: records.Record, with_data: bool,
                 transaction_log: bool = False) -> Event:
    h = batch.header
    event: Event = {
        "type": "record",
        "file": path,
        "offset": record.offset,
        "timestampType": "LogAppendTime" if h.log_append_time else "CreateTime",
        "timestamp": record.timestamp,
        "keySize": -1 if record.key is None else len(record.key),
        "valueSize": -1 if record.value is None else len(record.value),
        "sequence": _sequence(h, record.offset),
        "headerKeys": [k for k, _v in record.headers],
    }
    if h.is_control:
        name, type_id, epoch = scan.control_marker(record)
        if epoch is not None:
            event["endTxnMarker"], event["coordinatorEpoch"] = name, epoch
        else:
            event["controlType"], event["controlTypeId"] = name, type_id
    elif transaction_log:
        event["key"], event["payload"] = txnlog.decode(record.key, record.value)
    elif with_data:
        event["key"] = None if record.key is None else record.key.decode("utf-8", "replace")
        event["payload"] = None if record.value is None else record.value.decode("utf-8", "replace")
    return event


def _dump_log(path: str, opts: DumpOptions, progress: Progress | None) -> Iterator[Event]:
    base = layout.segment_base(path)
    if base is not None:
        yield {"type": "log_start", "file": path, "offset": base}
    name = os.path.basename(path)
    last_offset = -1
    for item in scan.scan_log(path, end=opts.max_bytes, with_data=opts.deep):
        if isinstance(item, scan.Stop):
            if item.kind == scan.CORRUPT:
                yield {"type": "corrupt", "file": path, "position": item.position, "error": item.reason}
            if opts.max_bytes is None:
                yield {
                    "type": "invalid_bytes",
                    "file": path,
                    "name": name,
                    "position": item.position,
                    "bytes": item.invalid_bytes,
                }
            break
        yield batch_event(path, item)
        if progress is not None:
            progress(item.header.size)
        if not opts.deep:
            continue
        try:
            recs = scan.batch_records(item)
        except CorruptRecordError as exc:
            yield {"type": "record_error", "file": path, "position": item.position, "error": str(exc)}
            continue
        for record in recs:
            if last_offset != -1 and record.offset != last_offset + 1:
                yield {
                    "type": "non_consecutive",
                    "file": os.path.abspath(path),
                    "offset": last_offset,
                    "nextOffset": record.offset,
                }
            last_offset = record.offset
            yield record_event(path, item, record, opts.with_data, opts.transaction_log)


# ---------------------------------------------------------------- indexes


def _sanity(index: indexes.RawIndex, time_index: bool) -> str | None:
    """Kafka's index sanity check (the one that decides whether a broker rebuilds the index)."""
    if index.trailing_bytes:
        return (
            f"index file {index.path} is corrupt: found {index.file_size} bytes, which is not a multiple "
            f"of {index.entry_size}"
        )
    if not index.entries:
        return None
    if time_index:
        first_ts, last_ts, last_offset = index.entries[0][0], index.entries[-1][0], index.entries[-1][1]
        if last_ts < first_ts:
            return f"the last timestamp {last_ts} is less than the first timestamp {first_ts}"
    else:
        last_offset = index.entries[-1][0]
    if last_offset < index.base_offset:
        return f"the last offset {last_offset} is less than the base offset {index.base_offset}"
    return None


def _sibling(path: str, suffix: str) -> str:
    return os.path.splitext(path)[0] + suffix


def _dump_index(path: str, opts: DumpOptions) -> Iterator[Event]:
    base = layout.segment_base(path)
    assert base is not None  # resolve_inputs checked the name
    index = indexes.read_offset_index(path, base)
    if opts.index_sanity_check:
        yield {"type": "sanity", "file": path, "ok": (err := _sanity(index, False)) is None, "error": err}
        return
    if index.slots == 0:
        yield {"type": "index_empty", "file": path}
        return
    log_path = _sibling(path, LOG_SUFFIX)
    fd = os.open(log_path, os.O_RDONLY) if os.path.exists(log_path) else None
    if fd is None:
        yield {"type": "no_log", "file": path, "log": log_path}
    try:
        size = os.fstat(fd).st_size if fd is not None else 0
        for offset, position in index.entries:
            if not opts.verify_index_only:
                yield {"type": "index_entry", "file": path, "offset": offset, "position": position}
            if fd is None:
                continue
            header = scan.header_at(fd, position, size)
            log_offset = header.last_offset if header is not None else -1
            if log_offset != offset:
                yield {
                    "type": "index_mismatch",
                    "file": os.path.abspath(path),
                    "indexOffset": offset,
                    "logOffset": log_offset,
                }
    finally:
        if fd is not None:
            os.close(fd)


def _max_record_timestamp(fd: int, position: int, header: records.BatchHeader) -> int:
    """The largest record timestamp of a batch, as Kafka's check computes it (the header's max if the
    records cannot be decoded)."""
    data = memoryview(os.pread(fd, header.size, position))
    try:
        recs = scan.batch_records(scan.Batch(position, header, True, data))
    except CorruptRecordError:
        return header.max_timestamp
    return max((r.timestamp for r in recs), default=-1)


def _dump_time_index(path: str, opts: DumpOptions) -> Iterator[Event]:
    base = layout.segment_base(path)
    assert base is not None
    time_index = indexes.read_time_index(path, base)
    if opts.index_sanity_check:
        yield {"type": "sanity", "file": path, "ok": (err := _sanity(time_index, True)) is None, "error": err}
        return
    log_path = _sibling(path, LOG_SUFFIX)
    if not os.path.exists(log_path):
        yield {"type": "no_log", "file": path, "log": log_path}
        for timestamp, offset in time_index.entries:
            if not opts.verify_index_only:
                yield {"type": "timeindex_entry", "file": path, "timestamp": timestamp, "offset": offset}
        return
    offset_index = indexes.read_offset_index(_sibling(path, INDEX_SUFFIX), base)
    index_offsets = [o for o, _p in offset_index.entries]
    abs_path = os.path.abspath(path)
    fd = os.open(log_path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        previous = -1
        for timestamp, offset in time_index.entries:
            if not opts.verify_index_only:
                yield {"type": "timeindex_entry", "file": path, "timestamp": timestamp, "offset": offset}
            i = bisect.bisect_right(index_offsets, offset)
            start = offset_index.entries[i - 1][1] if i else 0
            found = next(
                ((p, h) for p, h in scan.headers_from(fd, start, size) if h.last_offset >= offset), None
            )
            if found is None or found[1].last_offset != offset:
                yield {
                    "type": "indexed_offset_not_found",
                    "file": abs_path,
                    "indexOffset": offset,
                    "logOffset": -1 if found is None else found[1].last_offset,
                }
            else:
                log_ts = _max_record_timestamp(fd, found[0], found[1])
                if log_ts != timestamp:
                    yield {
                        "type": "timestamp_mismatch",
                        "file": abs_path,
                        "indexTimestamp": timestamp,
                        "logTimestamp": log_ts,
                    }
                if previous >= timestamp:
                    yield {
                        "type": "timestamp_out_of_order",
                        "file": abs_path,
                        "indexTimestamp": timestamp,
                        "previousTimestamp": previous,
                    }
            previous = timestamp
    finally:
        os.close(fd)


# ---------------------------------------------------------------- transactions


def _dump_txn_index(path: str) -> Iterator[Event]:
    """The aborted transactions a ``.txnindex`` lists (Kafka's ``AbortedTxn`` fields)."""
    try:
        entries = TxnIndex(path).entries()
    except CorruptRecordError as exc:
        yield {"type": "corrupt_file", "file": path, "error": exc.reason}
        return
    for entry in entries:
        yield {"type": "txn_entry", "file": path, "version": 0, "producerId": entry.producer_id,
               "firstOffset": entry.first_offset, "lastOffset": entry.last_offset,
               "lastStableOffset": entry.last_stable_offset}


def _dump_partition_metadata(path: str) -> Iterator[Event]:
    """The topic id a replica folder belongs to, in Kafka's text form."""
    try:
        version, raw = partition_metadata.parse(path)
    except CorruptRecordError as exc:
        yield {"type": "corrupt_file", "file": path, "error": exc.reason}
        return
    yield {"type": "partition_metadata", "file": path, "version": version,
           "topicId": partition_metadata.uuid_text(raw)}


def _dump_snapshot(path: str) -> Iterator[Event]:
    """The entries of a producer state snapshot; the batch fields only for an entry that has a batch
    (Kafka's tool prints them from the entry's batch metadata)."""
    try:
        entries = read_snapshot(path)
    except CorruptRecordError as exc:
        yield {"type": "corrupt_file", "file": path, "error": exc.reason}
        return
    for e in entries:
        event: Event = {
            "type": "snapshot_entry",
            "file": path,
            "producerId": e.producer_id,
            "producerEpoch": e.producer_epoch,
            "coordinatorEpoch": e.coordinator_epoch,
            "currentTxnFirstOffset": None if e.current_txn_first_offset < 0 else e.current_txn_first_offset,
            "lastTimestamp": e.timestamp,
        }
        if e.last_offset >= 0:
            event.update(firstSequence=(e.last_sequence - e.offset_delta) & 0x7FFFFFFF,
                         lastSequence=e.last_sequence, lastOffset=e.last_offset, offsetDelta=e.offset_delta,
                         timestamp=e.timestamp)
        yield event
