"""The log cleaner (kcli.storage.cleaner) on logs built with PartitionLog directly: what a pass keeps,
what it drops, offsets with gaps, tombstones' delete horizon, transactions, bounds and map size."""

from __future__ import annotations

import os
from contextlib import nullcontext

import pytest

from kcli.errors import InvalidConfigError
from kcli.storage import checkpoint, records
from kcli.storage.cleaner import MAP_BYTES_PER_KEY, _save_first_dirty, clean, cleanable, first_dirty_offset
from kcli.storage.config import LogConfig, parse_topic_config
from kcli.storage.log import PartitionLog

NOW = 1_700_000_000_000
DAY = 86_400_000
KEYS, VERSIONS, DELETED = 10_000, 10, 1_000


def _config(**kw: object) -> LogConfig:
    base = {"segment_bytes": 64 * 1024, "compact": True, "delete": False}
    base.update(kw)
    return LogConfig(**base)  # type: ignore[arg-type]


def _open(path: str, config: LogConfig) -> PartitionLog:
    log = PartitionLog(path, config)
    log.open_for_append(None)
    return log


def _append(log: PartitionLog, rows: list[records.RecordTuple], **kw: object) -> None:
    log.append(records.encode_batch(rows, **kw))  # type: ignore[arg-type]


def _read_all(log: PartitionLog) -> list[records.Record]:
    out: list[records.Record] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20)
        if not data:
            break
        for pos, header in records.iter_batches(data):
            out += records.decode_records(data, pos, header)
            offset = header.next_offset
    return out


def _key(i: int) -> bytes:
    return b"k%05d" % i


@pytest.fixture
def big(tmp_path) -> tuple[PartitionLog, int]:
    """10,000 keys x 10 versions, then tombstones for the first 1,000, then one record in the active
    segment; returns the log and the first offset of the active segment."""
    log = _open(str(tmp_path / "broker-0" / "t-0"), _config())
    for v in range(VERSIONS):
        for start in range(0, KEYS, 100):
            _append(log, [(_key(i), b"v%d-%d" % (v, i), [("h", b"%d" % v)], NOW + v) for i in range(start, start + 100)])
    for start in range(0, DELETED, 100):
        _append(log, [(_key(i), None, (), NOW + 20) for i in range(start, start + 100)])
    log.roll()
    active = log.log_end_offset
    _append(log, [(_key(0), b"active", (), NOW + 30)])
    return log, active


def _expected_latest(records_: list[records.Record]) -> dict[bytes, records.Record]:
    return {r.key: r for r in records_ if r.key is not None}


def test_clean_keeps_latest_value_per_key_with_offsets_headers_timestamps(big) -> None:
    log, active = big
    before = _read_all(log)
    active_bytes = open(log.active.log_path, "rb").read()
    latest = {r.key: r for r in before if r.offset < active}
    size_before, segments_before = log.size_bytes(), len(log.segment_bases)
    assert segments_before > 20
    todo = cleanable(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100)
    assert todo.first_dirty == 0 and todo.first_uncleanable == active and todo.due
    result = clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100)
    assert result.first_dirty == active
    after = _read_all(log)
    cleaned = [r for r in after if r.offset < active]
    assert len(cleaned) == KEYS
    assert [r.offset for r in cleaned] == sorted(r.offset for r in latest.values())
    values = [r for r in cleaned if r.value is not None]
    tombstones = [r for r in cleaned if r.value is None]
    assert len(values) == KEYS - DELETED and len(tombstones) == DELETED
    for r in cleaned:
        want = latest[r.key]
        assert (r.offset, r.value, r.timestamp, r.headers) == (want.offset, want.value, want.timestamp, want.headers)
    assert open(log.active.log_path, "rb").read() == active_bytes  # the active segment untouched
    assert [r.value for r in after if r.offset >= active] == [b"active"]
    assert result.records_removed == KEYS * VERSIONS + DELETED - KEYS
    assert first_dirty_offset(log) == active
    ckpt = checkpoint.read_offsets(os.path.join(os.path.dirname(log.directory), checkpoint.CLEANER_OFFSET))
    assert ckpt == {("t", 0): active}
    assert log.size_bytes() < 0.2 * size_before
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100)
    assert len(log.segment_bases) < 10 < segments_before  # a second pass groups the small cleaned segments
    assert _read_all(log) == after or [(r.offset, r.value) for r in _read_all(log)] == [
        (r.offset, r.value) for r in after]
    log.release()
    # a new write session (recovery) reads the same
    again = _open(log.directory, log.config)
    assert [(r.offset, r.value) for r in _read_all(again)] == [(r.offset, r.value) for r in after]
    again.release()


def test_tombstones_go_after_delete_retention(big) -> None:
    log, active = big
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100)
    # nothing dirty, but a pass still rewrites: tombstones stay until their horizon
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100 + DAY - 1)
    assert sum(r.value is None for r in _read_all(log)) == DELETED
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100 + DAY)
    after = [r for r in _read_all(log) if r.offset < active]
    assert len(after) == KEYS - DELETED and all(r.value is not None for r in after)
    assert {r.key for r in after} == {_key(i) for i in range(DELETED, KEYS)}


def test_small_map_takes_several_passes_and_ends_the_same(tmp_path, big) -> None:
    log, active = big
    passes = 0
    while first_dirty_offset(log) < active:
        clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100, max_map_bytes=(MAP_BYTES_PER_KEY + len(_key(0))) * 3000)
        passes += 1
        assert passes < 100
    assert passes >= 4
    cleaned = [r for r in _read_all(log) if r.offset < active]
    assert len(cleaned) == KEYS and sum(r.value is None for r in cleaned) == DELETED


def test_nothing_at_or_above_upper_is_touched(big) -> None:
    log, active = big
    upper = log.segment_bases[len(log.segment_bases) // 2]
    keep = {base: open(log.segment(base).log_path, "rb").read() for base in log.segment_bases if base >= upper}
    result = clean(log, log.config, upper=upper + 5, now_ms=NOW + 100)
    assert result.first_dirty <= upper + 5
    for base, data in keep.items():
        assert open(log.segment(base).log_path, "rb").read() == data
    assert all(r.offset < upper for r in _read_all(log)[:1])


def test_min_compaction_lag_and_ratio(big) -> None:
    log, _active = big
    lagged = cleanable(log, _config(min_compaction_lag_ms=1000), upper=log.log_end_offset, now_ms=NOW + 100)
    assert lagged.first_uncleanable == 0 and not lagged.due
    todo = cleanable(log, _config(min_cleanable_dirty_ratio=1.0), upper=log.log_end_offset, now_ms=NOW)
    assert todo.dirty_ratio == 1.0 and todo.due


def test_keyless_records_dropped_and_aborted_transactions_removed(tmp_path) -> None:
    from kcli.storage import control

    log = _open(str(tmp_path / "b" / "t-0"), _config(segment_bytes=1 << 20))
    _append(log, [(b"a", b"1", (), NOW)])
    _append(log, [(None, b"keyless", (), NOW)])
    # an aborted transaction and a committed one, of two producers
    _append(log, [(b"x", b"aborted", (), NOW)], producer_id=7, producer_epoch=0, base_sequence=0, transactional=True)
    _append(log, [(b"y", b"committed", (), NOW)], producer_id=8, producer_epoch=0, base_sequence=0, transactional=True)
    log.append(control.control_batch(7, 0, commit=False, timestamp=NOW))
    log.append(control.control_batch(8, 0, commit=True, timestamp=NOW))
    _append(log, [(b"a", b"2", (), NOW)])
    log.roll()
    _append(log, [(b"z", b"active", (), NOW)])
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW)
    values = [(r.key, r.value) for r in _read_all(log)]
    assert values == [(b"y", b"committed"), (b"a", b"2"), (b"z", b"active")]
    assert [e.producer_id for e in log.aborted_transactions(0, log.log_end_offset)] == [7]
    # later passes, past any delete horizon, keep the same records; the markers stay as Kafka keeps them
    # while their producers' last batches (kept for the sequences) belong to their transactions
    for now in (NOW + 1, NOW + 2, NOW + 2 + DAY, NOW + 3 + DAY):
        clean(log, log.config, upper=log.log_end_offset, now_ms=now)
    assert [(r.key, r.value) for r in _read_all(log)] == values
    markers = [h for base in log.segment_bases for _pos, h in log.segment(base).headers() if h.is_control]
    assert [h.producer_id for h in markers] == [7, 8]
    # producer 7's last batch is kept, empty, so its sequence survives a reload, with no damage
    log.release()
    again = PartitionLog(log.directory, log.config)
    assert again.open_for_append(None) == []
    assert again.producers.last_batches()[7][0] == 2
    again.release()


def test_cleanup_policy_parsing() -> None:
    assert parse_topic_config("cleanup.policy", "compact,delete") == "compact,delete"
    cfg = LogConfig.from_topic({"cleanup.policy": "delete,compact"})
    assert cfg.compact and cfg.delete
    assert not LogConfig.from_topic({"cleanup.policy": "compact"}).delete
    for bad in ("shred", "compact,", ",delete", "Compact"):
        with pytest.raises(InvalidConfigError):
            parse_topic_config("cleanup.policy", bad)
    # as in Kafka: a name given twice counts once; empty means neither policy
    assert parse_topic_config("cleanup.policy", " compact , compact") == "compact"
    assert parse_topic_config("cleanup.policy", " ") == ""
    neither = LogConfig.from_topic({"cleanup.policy": ""})
    assert not neither.compact and not neither.delete
    with pytest.raises(InvalidConfigError):
        parse_topic_config("min.compaction.lag.ms", "-1")


def test_retention_only_with_delete(tmp_path) -> None:
    for policy, survives in (("compact", True), ("compact,delete", False), ("", True)):
        cfg = LogConfig.from_topic({"cleanup.policy": policy, "retention.ms": 1000, "segment.bytes": 1024})
        log = _open(str(tmp_path / (policy or "neither") / "t-0"), cfg)
        for i in range(50):
            _append(log, [(b"k%d" % i, b"x" * 100, (), NOW)])
        assert len(log.segment_bases) > 2
        deleted = log.delete_old_segments(now=NOW + 10_000)
        assert (deleted == []) is survives
        log.release()


def test_kcli_reads_and_verifies_a_cleaned_partition(kcli) -> None:
    """A partition kcli wrote, cleaned: `kcli consume` gets the latest value per key at its offsets
    (gaps and the cleaner's empty batches included) and `kcli verify` finds nothing wrong."""
    import json

    kcli("topic", "create", "c", "-c", "cleanup.policy=compact", "-c", "segment.bytes=2000")
    for version in range(4):
        kcli("produce", "c", "-K:", input="".join(f"k{i}:v{version}-{i}\n" for i in range(100)))
    kcli("produce", "c", "-K:", input="k0:last\n")
    directory = str(kcli.data_dir / "broker-0" / "c-0")
    cfg = LogConfig(segment_bytes=2000, compact=True, delete=False)
    log = _open(directory, cfg)
    result = clean(log, cfg, upper=log.log_end_offset, now_ms=NOW)
    log.release()
    assert result.records_removed > 0
    rows = [json.loads(line) for line in kcli("consume", "c", "-b", "-e", "--json").stdout.splitlines()]
    latest = {r["key"]: (r["offset"], r["value"]) for r in rows}
    assert len(rows) < 401 and latest["k5"] == (305, "v3-5") and latest["k0"] == (400, "last")
    kcli("verify")


def test_a_marker_goes_once_its_transaction_is_empty_and_its_horizon_passed(tmp_path) -> None:
    from kcli.storage import control

    log = _open(str(tmp_path / "b" / "t-0"), _config(segment_bytes=1 << 20))
    _append(log, [(b"x", b"aborted", (), NOW)], producer_id=9, producer_epoch=0, base_sequence=0, transactional=True)
    log.append(control.control_batch(9, 0, commit=False, timestamp=NOW))
    _append(log, [(b"x", b"later", (), NOW)], producer_id=9, producer_epoch=0, base_sequence=1)
    _append(log, [(b"end", b"1", (), NOW)])
    log.roll()
    _append(log, [(b"z", b"active", (), NOW)])

    def markers() -> list[records.BatchHeader]:
        return [h for base in log.segment_bases[:-1] for _p, h in log.segment(base).headers() if h.is_control]

    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW)  # the aborted data goes, the marker stays
    assert len(markers()) == 1 and not markers()[0].attributes & records.ATTR_DELETE_HORIZON
    assert len(log.aborted_transactions(0, log.log_end_offset)) == 1
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 1)  # empty now: it gets a delete horizon
    (marker,) = markers()
    assert marker.attributes & records.ATTR_DELETE_HORIZON and marker.base_timestamp == NOW + 1 + DAY
    assert log.aborted_transactions(0, log.log_end_offset) == []
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + DAY)  # before its horizon: kept
    assert len(markers()) == 1
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 1 + DAY)
    assert markers() == []
    assert [(r.key, r.value) for r in _read_all(log)] == [(b"x", b"later"), (b"end", b"1"), (b"z", b"active")]
    log.release()


def test_damaged_checkpoint_costs_a_pass_from_the_start(tmp_path) -> None:
    """A damaged cleaner-offset-checkpoint is taken as empty (as a lost one), like the other log-dir
    checkpoints: the pass cleans from the log start and writes the file afresh."""
    log = _open(str(tmp_path / "broker-0" / "t-0"), _config(segment_bytes=1024))
    for v in range(20):
        _append(log, [(_key(i), b"v%d" % v, [], NOW) for i in range(5)])
    path = os.path.join(os.path.dirname(log.directory), checkpoint.CLEANER_OFFSET)
    with open(path, "wb") as f:
        f.write(b"not a checkpoint\n")
    assert first_dirty_offset(log) == 0
    result = clean(log, log.config, upper=log.log_end_offset, now_ms=NOW)
    assert result.records_removed > 0
    assert checkpoint.read_offsets(path) == {("t", 0): result.first_dirty}


def _files(log: PartitionLog) -> dict[int, tuple[int, int]]:
    """base -> (inode, mtime in ns) of each segment's log file."""
    out = {}
    for base in log.segment_bases:
        st = os.stat(log.segment(base).log_path)
        out[base] = (st.st_ino, st.st_mtime_ns)
    return out


def test_a_segment_that_would_come_out_the_same_is_not_rewritten(tmp_path) -> None:
    """A group of one segment whose batches all stay as they are (no key newer in the dirty part, no
    tombstone to stamp) keeps its file: no .cleaned, no swap, same inode and mtime; the others are rewritten."""
    log = _open(str(tmp_path / "broker-0" / "t-0"), _config(segment_bytes=4096))
    for start in range(0, 200, 20):  # keys written once: their segments come out the same
        _append(log, [(b"once%03d" % i, b"x" * 50, (), NOW) for i in range(start, start + 20)])
    unique = log.segment_bases[:-1]  # the closed ones, each a group of its own (two exceed segment.bytes)
    for v in range(3):
        for start in range(0, 100, 20):
            _append(log, [(_key(i), b"v%d" % v + b"y" * 50, (), NOW) for i in range(start, start + 20)])
    log.roll()
    _append(log, [(b"z", b"active", (), NOW)])
    before = _read_all(log)
    latest = {r.key: (r.offset, r.value) for r in before}
    stale = {r.offset for r in before} - {offset for offset, _value in latest.values()}
    files = _files(log)
    bounds = [*files, log.log_end_offset]
    changes = {base: any(base <= o < end for o in stale) for base, end in zip(bounds, bounds[1:], strict=False)}
    assert len(unique) >= 3 and 3 <= sum(changes.values()) < len(files) - len(unique)
    result = clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100)
    assert result.records_removed == len(stale) == 200
    after = _files(log)
    assert set(after) == set(files)  # each closed segment was a group of its own
    assert {base: after[base] != files[base] for base in files} == changes
    assert all(after[base][0] != files[base][0] for base in files if changes[base])  # new files
    assert not [n for n in os.listdir(log.directory) if n.endswith((".cleaned", ".swap", ".swapping"))]
    assert {r.key: (r.offset, r.value) for r in _read_all(log)} == latest
    assert len(_read_all(log)) == len(latest)
    # a second pass finds nothing to change anywhere past the grouping: a third leaves every file as it is
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100)
    settled = _files(log)
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100)
    assert _files(log) == settled
    log.release()


def test_a_producer_that_aborted_before_the_dirty_part_has_its_later_records_mapped(tmp_path) -> None:
    """An aborted transaction wholly in the clean part does not make the map skip its producer's committed
    records in the dirty part (Kafka collects the aborted transactions from the first dirty offset): the
    older value of a key they update goes."""
    from kcli.storage import control

    log = _open(str(tmp_path / "b" / "t-0"), _config(segment_bytes=1 << 20))
    _append(log, [(b"k", b"old", (), NOW)])
    _append(log, [(b"x", b"aborted", (), NOW)], producer_id=7, producer_epoch=0, base_sequence=0, transactional=True)
    log.append(control.control_batch(7, 0, commit=False, timestamp=NOW))
    log.roll()
    _append(log, [(b"z", b"1", (), NOW)])
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW)
    _append(log, [(b"k", b"new", (), NOW)], producer_id=7, producer_epoch=0, base_sequence=1, transactional=True)
    log.append(control.control_batch(7, 0, commit=True, timestamp=NOW))
    log.roll()
    _append(log, [(b"z", b"2", (), NOW)])
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW)
    assert [(r.key, r.value) for r in _read_all(log)] == [(b"z", b"1"), (b"k", b"new"), (b"z", b"2")]
    log.release()


def _oracle(batch: records.BatchHeader, kept: list[records.Record], horizon: int | None) -> records.Section:
    """The records section a rebuild from decoded records gives (what the cleaner's spliced bytes must equal)."""
    stamps = [r.timestamp for r in kept]
    base_ts = horizon if horizon is not None else stamps[0]
    tuples = [(r.key, r.value, r.headers, r.timestamp) for r in kept]
    body = records.encode_records(tuples, base_ts, [r.offset - batch.base_offset for r in kept])
    max_ts = batch.max_timestamp if batch.log_append_time else max(stamps)
    return records.Section(body, len(kept), base_ts, max_ts)


@pytest.mark.parametrize("codec", [0, 1, 4])
def test_rewritten_batches_hold_the_kept_records_byte_for_byte(tmp_path, codec) -> None:
    """Records are copied out of the source batch, with a new timestamp delta where the base timestamp
    moves (to the first kept record's, or to a tombstone's delete horizon): the batch equals one encoded
    afresh from its decoded records -- per-record timestamps, headers, codecs, append time."""
    log = _open(str(tmp_path / "b" / "t-0"), _config(segment_bytes=1 << 20))
    rows = [(_key(i % 23), b"v%d" % i if i % 5 else None, [("h", b"%d" % i)] if i % 3 else [], NOW + 1000 - 37 * i)
            for i in range(40)]
    for start in range(0, 40, 10):
        _append(log, rows[start : start + 10], codec=codec, log_append_time=start == 20)
    log.roll()
    _append(log, [(b"z", b"active", (), NOW)])
    before = {base: list(log.segment(base).headers()) for base in log.segment_bases[:1]}
    originals = {h.base_offset: h for _p, h in before[0]}
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 5000)
    horizon = NOW + 5000 + DAY
    seg = log.segment(0)
    checked = 0
    for pos, header in seg.headers():
        batch = seg.pread(pos, header.size)
        kept = records.decode_records(batch, 0, header)
        source = originals[header.base_offset]
        with_horizon = any(r.value is None for r in kept)
        assert bool(header.attributes & records.ATTR_DELETE_HORIZON) == with_horizon
        want = records.frame(_oracle(source, kept, horizon if with_horizon else None), codec,
                             base_offset=header.base_offset, log_append_time=source.log_append_time,
                             partition_leader_epoch=header.partition_leader_epoch,
                             last_offset_delta=kept[-1].offset - header.base_offset, delete_horizon=with_horizon)
        assert batch == want
        checked += 1
    assert checked == 3
    latest = {k: (i, v) for i, (k, v, _h, _t) in enumerate(rows)}
    assert {r.key: (r.offset, r.value) for r in _read_all(log) if r.key != b"z"} == latest
    log.release()


def test_a_segment_with_bytes_past_its_last_batch_is_rewritten_without_them(tmp_path) -> None:
    """Batches that all come out the same do not make a segment unchanged when its file holds more than
    them: the rewrite leaves the trailing bytes out, as a rewrite of any group does."""
    log = _open(str(tmp_path / "broker-0" / "t-0"), _config(segment_bytes=4096))
    for start in range(0, 100, 20):
        _append(log, [(b"once%03d" % i, b"x" * 50, (), NOW) for i in range(start, start + 20)])
    log.roll()
    _append(log, [(b"z", b"active", (), NOW)])
    path = log.segment(0).log_path
    size = os.path.getsize(path)
    with open(path, "ab") as fh:
        fh.write(b"\0" * 30)
    clean(log, log.config, upper=log.log_end_offset, now_ms=NOW)
    assert os.path.getsize(log.segment(0).log_path) == size
    assert len(_read_all(log)) == 101
    log.release()


def test_nothing_is_due_when_upper_stops_at_the_first_dirty_offset(big) -> None:
    """A high watermark held at the cleaner's checkpoint (a follower in the ISR not caught up yet) leaves
    nothing to map: no pass is due, else the cleaner would rewrite the clean part every backoff for
    nothing."""
    log, _active = big
    middle = log.segment_bases[1] + 7  # inside a segment near the start: the rest is dirty
    _save_first_dirty(log, middle, nullcontext())
    todo = cleanable(log, log.config, upper=middle, now_ms=NOW + 100)
    assert todo.first_dirty == middle and todo.cleanable_bytes == 0 and not todo.due
    assert cleanable(log, log.config, upper=log.log_end_offset, now_ms=NOW + 100).due
