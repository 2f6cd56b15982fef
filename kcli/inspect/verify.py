"""verify: every check an operator wants before trusting a data dir, one Problem per finding.

Per replica: each batch's CRC, offset continuity (a batch starts where the previous one ended, within
and across segments, and a segment's first batch starts at the segment's base offset), torn tails and
corrupt headers, and index sanity (sizes, increasing entries, offset index positions at batch starts
holding the indexed offset, time index entries matching the batch they name).  Per partition: every
in-sync replica holds the same batches (offsets and CRCs) up to the high watermark, or up to the
shortest in-sync log end when no broker has checkpointed one.  Each broker compacts its own replica of a
compacted topic, so below the highest cleaner checkpoint of its replicas their batches may differ: there,
when they do, the replicas must agree on what a reader sees, the newest committed record of every key
(:mod:`kcli.inspect.newest`); from that checkpoint on, batches must match as for any topic.

Per replica folder too: its ``partition.metadata`` (Kafka's file naming the folder's topic id) must
parse and, where the cluster metadata knows the topic, name that topic's id; a missing file is fine
(folders made before kcli wrote it get it on next open).

Problems are errors (exit 1); warnings (a stray replica dir, an orphan index, a tail being written right
now) are shown but do not fail the run.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from itertools import zip_longest

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata, PartitionMeta
from kcli.errors import CorruptRecordError, NotFoundError, UsageError
from kcli.inspect import indexes, layout, newest, scan
from kcli.inspect.logdirs import replica_dirs
from kcli.storage import checkpoint, partition_metadata
from kcli.storage.log import parse_partition_dir
from kcli.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, segment_name

Progress = Callable[[int], None]


@dataclass
class Problem:
    message: str
    path: str | None = None
    position: int | None = None
    broker: int | None = None
    topic: str | None = None
    partition: int | None = None
    severity: str = "error"

    def line(self, root: str | None = None) -> str:
        where = self.path or ""
        if where and root:
            rel = os.path.relpath(where, root)
            where = where if rel.startswith("..") else rel
        if self.position is not None:
            where += f": position {self.position}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}: {self.message}" if where else f"{prefix}{self.message}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ReplicaScan:
    """What the consistency check needs from one replica: its batches as (base, last, stored CRC), kept
    flat in an array (24 bytes a batch) because a replica may hold millions."""

    broker: int | None
    batches: array[int] = field(default_factory=lambda: array("q"))

    def add(self, base: int, last: int, crc: int) -> None:
        self.batches.extend((base, last, crc))

    def window(self, start: int, limit: int) -> Iterator[tuple[int, int, int]]:
        """The batches whose base offset is in [start, limit)."""
        b = self.batches
        for i in range(0, len(b), 3):
            if start <= b[i] < limit:
                yield b[i], b[i + 1], b[i + 2]

    start: int = 0  # first offset present
    end: int = 0  # next offset after the last complete batch
    exists: bool = True
    path: str = ""  # the replica's folder
    cleaned: int = 0  # its cleaner checkpoint: below it, its broker's cleaner rewrote the log


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    findings: list[Problem] = field(default_factory=list)  # both, in the order they were found
    partitions: int = 0
    replicas: int = 0
    segments: int = 0
    batches: int = 0
    bytes: int = 0

    def add(self, problem: Problem) -> None:
        (self.warnings if problem.severity == "warning" else self.problems).append(problem)
        self.findings.append(problem)

    def summary(self) -> str:
        counts = (
            f"{self.partitions} partitions, {self.replicas} replicas, {self.segments} segments, "
            f"{self.batches} batches, {self.bytes} bytes"
        )
        if not self.problems:
            return f"verify: no problems ({counts})"
        n = len(self.problems)
        return f"verify: {n} problem{'s' if n != 1 else ''} ({counts})"

    def to_json(self) -> dict[str, object]:
        return {
            "ok": not self.problems,
            "problems": [p.to_json() for p in self.problems],
            "warnings": [p.to_json() for p in self.warnings],
            "summary": {
                "partitions": self.partitions,
                "replicas": self.replicas,
                "segments": self.segments,
                "batches": self.batches,
                "bytes": self.bytes,
            },
        }


# ---------------------------------------------------------------- one replica


def compacted(configs: Mapping[str, object]) -> bool:
    """Whether a topic's configs let the cleaner compact it: then its offsets may have gaps."""
    return "compact" in str(configs.get("cleanup.policy", "delete")).split(",")



def _check_records(batch: scan.Batch) -> str | None:
    """Deep check of one batch's records: decodable, as many as the header says, offsets in range."""
    h = batch.header
    try:
        recs = scan.batch_records(batch)
    except CorruptRecordError as exc:
        return f"records of batch {h.base_offset}..{h.last_offset} cannot be decoded: {exc}"
    if len(recs) != h.records_count:
        return f"batch {h.base_offset}..{h.last_offset} holds {len(recs)} records but its header says {h.records_count}"
    previous = h.base_offset - 1
    for r in recs:
        if not previous < r.offset <= h.last_offset:
            return (
                f"record offset {r.offset} is out of order or outside batch {h.base_offset}..{h.last_offset}"
            )
        previous = r.offset
    return None


def _stop_message(stop: scan.Stop, in_flight: bool) -> tuple[str, str]:
    """(message, severity) for where reading a segment had to stop."""
    if stop.kind == scan.CORRUPT:
        return (
            f"corrupt batch header: {stop.reason}; the {stop.invalid_bytes} bytes from here on cannot be "
            "read",
            "error",
        )
    message = f"{stop.invalid_bytes} invalid bytes at the end: a torn write ({stop.reason})"
    if in_flight:
        return message + "; a writer holds the partition lock, so it may be an append in progress", "warning"
    return message, "error"


def _verify_segment(
    log_path: str,
    base: int,
    deep: bool,
    in_flight: bool,
    report: VerifyReport,
    problem: Callable[..., None],
    rs: ReplicaScan,
    progress: Progress | None,
    gaps: bool,
) -> tuple[indexes.SegmentBatches, int, int]:
    """Check one .log file batch by batch; returns its batches, next offset and end of valid data.
    ``gaps``: offsets may skip (a compacted log keeps its offsets), but never go back."""
    seg = indexes.SegmentBatches()
    next_offset, valid_end = base, 0
    for item in scan.scan_log(log_path, with_data=deep):
        if isinstance(item, scan.Stop):
            message, severity = _stop_message(item, in_flight)
            problem(message, log_path, item.position, severity)
            break
        h = item.header
        report.batches += 1
        report.bytes += h.size
        if progress is not None:
            progress(h.size)
        if not item.crc_ok:
            problem(
                f"CRC mismatch in batch {h.base_offset}..{h.last_offset} (stored crc {h.crc})",
                log_path,
                item.position,
            )
        elif deep and (err := _check_records(item)) is not None:
            problem(err, log_path, item.position)
        if h.base_offset < next_offset or (h.base_offset > next_offset and not gaps):
            if item.position == 0:
                msg = f"first batch starts at offset {h.base_offset}, not at the segment's base offset {base}"
            else:
                kind = "gap" if h.base_offset > next_offset else "overlap"
                msg = (
                    f"batch {h.base_offset}..{h.last_offset} follows offset {next_offset - 1} (offset {kind})"
                )
            problem(msg, log_path, item.position)
        next_offset, valid_end = h.next_offset, item.position + h.size
        seg.add(item.position, h.base_offset, h.last_offset, h.max_timestamp)
        rs.add(h.base_offset, h.last_offset, h.crc)
    return seg, next_offset, valid_end


def verify_replica(
    directory: str,
    report: VerifyReport,
    broker: int | None = None,
    deep: bool = False,
    writer_active: bool = False,
    progress: Progress | None = None,
    topic_id: str | None = None,
    gaps: bool = False,
) -> ReplicaScan:
    """Check one partition dir, adding its problems to ``report``; return its batches for comparison.
    ``topic_id`` (hex, from the cluster metadata) is the one its ``partition.metadata`` must name;
    ``gaps``: the log may be compacted, so offsets may skip between batches and segments."""
    parsed = parse_partition_dir(os.path.basename(directory))
    topic, partition = parsed if parsed else (None, None)
    rs = ReplicaScan(broker, path=directory)
    report.replicas += 1

    def problem(message: str, path: str, position: int | None = None, severity: str = "error") -> None:
        report.add(Problem(message, path, position, broker, topic, partition, severity))

    _check_topic_id(directory, topic_id, problem)
    files = layout.segment_files(directory)
    bases = sorted(b for b, f in files.items() if LOG_SUFFIX in f)
    for b in sorted(set(files) - set(bases)):
        for path in files[b].values():
            problem(
                "index file without its .log segment (Kafka deletes it on startup)", path, None, "warning"
            )
    for name in sorted(os.listdir(directory)):
        if name.endswith(".damaged"):
            problem("bytes `kcli repair` cut from the log and kept; delete the file once it is not needed",
                    os.path.join(directory, name), None, "warning")
    expected: int | None = None
    rs.start = rs.end = bases[0] if bases else 0
    for n, base in enumerate(bases):
        log_path = files[base][LOG_SUFFIX]
        report.segments += 1
        if expected is not None and (base < expected or (base > expected and not gaps)):
            gap = "a gap" if base > expected else "an overlap"
            problem(
                f"segment starts at offset {base}, but the previous segment's next offset is {expected} "
                f"({gap})",
                log_path,
            )
        in_flight = writer_active and n == len(bases) - 1
        seg, expected, valid_end = _verify_segment(
            log_path, base, deep, in_flight, report, problem, rs, progress, gaps
        )
        rs.end = expected
        stem = os.path.join(directory, segment_name(base))
        for msg in indexes.check_offset_index(stem + INDEX_SUFFIX, base, seg, valid_end):
            problem(msg, stem + INDEX_SUFFIX)
        for msg in indexes.check_time_index(stem + TIMEINDEX_SUFFIX, base, seg):
            problem(msg, stem + TIMEINDEX_SUFFIX)
    if rs.batches:
        rs.start = rs.batches[0]
    return rs


def _check_topic_id(directory: str, topic_id: str | None, problem: Callable[..., None]) -> None:
    """The folder's ``partition.metadata`` parses and names ``topic_id`` (when known and set)."""
    path = os.path.join(directory, partition_metadata.FILE_NAME)
    try:
        found = partition_metadata.read(directory)
    except CorruptRecordError as exc:
        problem(f"{exc.reason}: kcli does not open the replica", path)
        return
    expected = partition_metadata.topic_uuid(topic_id or "")
    if found is not None and expected != partition_metadata.ZERO_UUID and found != expected:
        problem(
            f"names topic id {partition_metadata.uuid_text(found)}, not {partition_metadata.uuid_text(expected)}: "
            "the folder of another topic (deleted and created again under the same name?); kcli does not open it",
            path,
        )


# ---------------------------------------------------------------- replicas of a partition


def compare_replicas(
    scans: dict[int, ReplicaScan],
    meta: PartitionMeta,
    high_watermark: int | None,
    report: VerifyReport,
    topic: str,
    partition: int,
    compacted: bool = False,
) -> None:
    """In-sync replicas must hold identical batches below the high watermark; those of a ``compacted``
    topic, below the highest cleaner checkpoint among them, the same newest record of every key."""
    isr = [b for b in meta.isr if b in scans]
    if not isr:
        return
    ref = meta.leader if meta.leader in isr else isr[0]
    name = f"{topic}-{partition}"

    def problem(message: str, broker: int, severity: str = "error") -> None:
        report.add(Problem(message, None, None, broker, topic, partition, severity))

    if high_watermark is not None and high_watermark > scans[ref].end:
        problem(
            f"{name}: the checkpointed high watermark {high_watermark} is past the leader's log end "
            f"offset {scans[ref].end}",
            ref,
        )
    for b in isr:
        s = scans[b]
        if b == ref:
            continue
        if high_watermark is not None and s.end < high_watermark:
            missing = "has no directory" if not s.exists else f"ends at offset {s.end}"
            problem(
                f"{name}: in-sync replica on broker {b} {missing}, below the high watermark {high_watermark}",
                b,
            )
        elif not s.exists and scans[ref].end > scans[ref].start:
            problem(
                f"{name}: in-sync replica on broker {b} has no directory while broker {ref} holds offsets "
                f"{scans[ref].start}..{scans[ref].end - 1}",
                b,
                "warning",
            )
    present = [b for b in isr if scans[b].exists]
    if len(present) < 2:
        return
    limit = min(scans[b].end for b in present)
    if high_watermark is not None:
        limit = min(limit, high_watermark)
    start = max(scans[b].start for b in present)
    cleaned = max(scans[b].cleaned for b in present) if compacted else start
    logical = []
    for b in present:
        if b == ref:
            continue
        if cleaned > start and _batches_differ(scans[b], scans[ref], start, min(cleaned, limit)):
            logical.append(b)
        first = max(start, cleaned)
        for mine, theirs in zip_longest(scans[b].window(first, limit), scans[ref].window(first, limit)):
            if mine != theirs:
                offset = (mine or theirs)[0]
                problem(
                    f"{name}: replica on broker {b} differs from broker {ref} at offset {offset}: "
                    f"{_describe(mine)} vs {_describe(theirs)}",
                    b,
                )
                break
    if logical:  # nothing at or above ``cleaned`` was rewritten: there the batches are compared above
        _compare_newest(scans, ref, logical, start, min(cleaned, limit), problem, name)


def _batches_differ(mine: ReplicaScan, theirs: ReplicaScan, start: int, limit: int) -> bool:
    return any(a != b for a, b in zip_longest(mine.window(start, limit), theirs.window(start, limit)))


def _compare_newest(scans: dict[int, ReplicaScan], ref: int, others: list[int], start: int, limit: int,
                    problem: Callable[..., None], name: str) -> None:
    """Report each of ``others`` whose newest record of some key, among [start, limit), is not ``ref``'s,
    reading the replicas one bucket of keys at a time."""
    buckets: list[newest.Bucket] = [(0, 0)]
    todo = list(others)
    while buckets and todo:
        theirs, bucket, split = newest.newest_records(scans[ref].path, start, limit, buckets.pop(),
                                                      newest.KEYS_PER_PASS)
        buckets += split
        for b in list(todo):
            mine, _bucket, _split = newest.newest_records(scans[b].path, start, limit, bucket)
            diff = newest.first_difference(mine, theirs, scans[b].cleaned, scans[ref].cleaned)
            if diff is None:
                continue
            todo.remove(b)
            holder = b if diff.mine is not None and diff.mine.offset == diff.offset else ref
            key = newest.key_at(scans[holder].path, diff.offset, limit)
            problem(f"{name}: replica on broker {b} differs from broker {ref} in what readers see: "
                    f"{_newest_difference(diff, _key_text(key), ref)}", b)


def _key_text(key: bytes | None) -> str:
    text = repr(key)[1:] if key is not None else "?"
    return text if len(text) <= 60 else text[:57] + "..."


def _newest_difference(diff: newest.Difference, key: str, ref: int) -> str:
    mine, theirs = diff.mine, diff.theirs
    if mine is not None and theirs is not None and (mine.offset, mine.tombstone) == (theirs.offset, theirs.tombstone):
        return f"the newest record of key {key}, at offset {mine.offset}, has another value, headers or timestamp"
    return f"the newest record of key {key} is {_last_text(mine)}, on broker {ref} {_last_text(theirs)}"


def _last_text(last: newest.Last | None) -> str:
    if last is None:
        return "missing"
    return f"{'a tombstone' if last.tombstone else 'a record'} at offset {last.offset}"


def _describe(batch: tuple[int, int, int] | None) -> str:
    if batch is None:
        return "no batch"
    return f"batch {batch[0]}..{batch[1]} crc {batch[2]}"


# ---------------------------------------------------------------- entry points


def _log_bytes(directory: str) -> int:
    return sum(
        os.path.getsize(layout.segment_path(directory, b, LOG_SUFFIX)) for b in layout.log_bases(directory)
    )


def _writer_active(datadir: DataDir, topic: str, partition: int, brokers: list[int]) -> bool:
    """Whether a writer holds the partition, or one of its replicas (a broker), now: then a partial last
    batch may be an append in flight."""
    if not os.path.isdir(datadir.cluster_dir):
        return False
    try:
        return datadir.partition_lock(topic, partition).is_locked() or any(
            datadir.replica_lock(b, topic, partition).is_locked() for b in brokers
        )
    except OSError:  # a read-only data dir: nobody can be writing to it
        return False


def datadir_bytes(datadir: DataDir, topic: str | None = None) -> int:
    """Bytes of .log data ``verify_datadir`` reads (to size a progress bar)."""
    if not os.path.isdir(datadir.root):
        return 0
    return sum(_log_bytes(d[3]) for d in replica_dirs(datadir, topic))


def verify_datadir(
    datadir: DataDir, topic: str | None = None, deep: bool = False, progress: Progress | None = None
) -> VerifyReport:
    """Verify every replica (of ``topic``, or of all topics) in a kcli data dir; ``progress`` is told
    about every batch's bytes."""
    if not os.path.isdir(datadir.root):
        raise NotFoundError(
            f"data dir {datadir.root} does not exist", hint="pass --data-dir or set KCLI_DATA_DIR"
        )
    state = Metadata(datadir).load()
    dirs = replica_dirs(datadir, topic)
    if topic is not None and topic not in state.topics and not dirs:
        raise NotFoundError(f"topic {topic!r} does not exist and has no replica on disk")
    report = VerifyReport()
    by_partition: dict[tuple[str, int], dict[int, str]] = {}
    for broker, t, p, path in dirs:
        by_partition.setdefault((t, p), {})[broker] = path
    for name, known in state.topics.items():
        if topic is None or name == topic:
            for p in range(len(known.partitions)):
                by_partition.setdefault((name, p), {})
    hw_cache: dict[int, dict[tuple[str, int], int]] = {}
    cleaner_cache: dict[int, dict[tuple[str, int], int] | None] = {}
    start_cache: dict[int, dict[tuple[str, int], int]] = {}
    for (t, p), replicas in sorted(by_partition.items()):
        report.partitions += 1
        topic_meta = state.topics.get(t)
        meta = topic_meta.partitions[p] if topic_meta and p < len(topic_meta.partitions) else None
        active = _writer_active(datadir, t, p, sorted(replicas))
        is_compacted = topic_meta is not None and compacted(topic_meta.configs)
        scans: dict[int, ReplicaScan] = {}
        for broker, path in sorted(replicas.items()):
            if meta is None or broker not in meta.replicas:
                assigned = (
                    "the topic is not in the metadata" if meta is None else f"replicas are {meta.replicas}"
                )
                report.add(
                    Problem(f"stray replica directory ({assigned})", path, None, broker, t, p, "warning")
                )
            scans[broker] = verify_replica(
                path, report, broker, deep, active, progress, topic_meta.topic_id if topic_meta else None,
                is_compacted,
            )
            if broker not in start_cache:
                start_cache[broker] = _read_offsets(datadir, broker, checkpoint.LOG_START, report)
            _check_log_start(start_cache[broker].get((t, p)), scans[broker], report, t, p, active)
        if meta is None:
            continue
        for b in meta.isr:
            if b not in scans:
                scans[b] = ReplicaScan(b, exists=False)
        if is_compacted:
            for b, s in scans.items():
                if b not in cleaner_cache:
                    cleaner_cache[b] = _read_cleaner_checkpoint(datadir, b, report)
                done = cleaner_cache[b]
                s.cleaned = s.end if done is None else done.get((t, p), 0)
        if meta.leader not in hw_cache:
            hw_cache[meta.leader] = _read_offsets(datadir, meta.leader, checkpoint.HIGH_WATERMARK, report)
        hw = hw_cache[meta.leader].get((t, p))
        compare_replicas(scans, meta, hw, report, t, p, is_compacted)
    return report


def _read_cleaner_checkpoint(datadir: DataDir, broker: int, report: VerifyReport) -> dict[tuple[str, int], int] | None:
    """A broker folder's cleaner checkpoints; None when unreadable (a warning: the cleaner then starts over,
    and verify takes the broker's replicas as cleaned up to their ends)."""
    path = os.path.join(datadir.broker_dir(broker), checkpoint.CLEANER_OFFSET)
    try:
        return checkpoint.read_offsets(path)
    except (CorruptRecordError, ValueError, IndexError) as exc:
        report.add(Problem(f"unreadable cleaner checkpoint ({exc}): the next pass of the broker's cleaner "
                           "starts from the log start", path, broker=broker, severity="warning"))
        return None


def _check_log_start(start: int | None, scan: ReplicaScan, report: VerifyReport, topic: str, partition: int,
                     active: bool) -> None:
    """The logical log start (DeleteRecords) a broker checkpointed must lie within its replica's log;
    below the first segment it is harmless (retention moved past it since)."""
    if start is not None and not active and start > scan.end:
        report.add(Problem(
            f"{topic}-{partition}: the checkpointed log start {start} is past the replica's log end {scan.end}",
            None, None, scan.broker, topic, partition,
        ))


def _read_offsets(datadir: DataDir, broker: int, name: str, report: VerifyReport) -> dict[tuple[str, int], int]:
    path = os.path.join(datadir.broker_dir(broker), name)
    try:
        return checkpoint.read_offsets(path)
    except (CorruptRecordError, ValueError, IndexError) as exc:
        report.add(Problem(f"unreadable checkpoint: {exc}", path, broker=broker))
        return {}


def _path_partitions(path: str) -> list[str]:
    """The partition dirs a verify PATH means: itself, or the partition dirs of a log dir."""
    if not os.path.exists(path):
        raise NotFoundError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"{path} is not a directory", hint="give a partition dir or a log dir")
    names = sorted(os.listdir(path))
    children = [
        os.path.join(path, n)
        for n in names
        if parse_partition_dir(n) and os.path.isdir(os.path.join(path, n))
    ]
    if any(layout.segment_base(n) is not None for n in names) or not children:
        layout.check_partition_dir(path)
        return [os.path.normpath(path)]
    return [os.path.normpath(c) for c in children]


def path_bytes(path: str) -> int:
    """Bytes of .log data ``verify_path`` reads."""
    return sum(_log_bytes(c) for c in _path_partitions(path))


def verify_path(path: str, deep: bool = False, progress: Progress | None = None) -> VerifyReport:
    """Verify a partition dir, or every partition dir of a log dir (a kcli broker dir or a Kafka log dir),
    without metadata: no replica comparison, and offset gaps are accepted (without the topic's configs,
    any log may be a compacted one)."""
    report = VerifyReport()
    for child in _path_partitions(path):
        report.partitions += 1
        verify_replica(child, report, None, deep, False, progress, gaps=True)
    return report
