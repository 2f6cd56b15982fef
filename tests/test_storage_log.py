"""Partition logs on real files: rolling, sparse indexes, reads, time lookup, retention, checkpoints and
recovery after kill -9, torn or garbage tails and corrupt batches."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys

import pytest
from support.segments import all_records, check_segments, index_entries, read_segment, segment_files

from kcli.storage import checkpoint, compression, records
from kcli.storage.config import LogConfig
from kcli.storage.damage import Damage
from kcli.storage.log import PartitionLog

DAY = 24 * 3600 * 1000
T0 = 1_600_000_000_000


# ---------------------------------------------------------------- helpers (read files independently of the log)


def new_log(path, **cfg) -> PartitionLog:
    log = PartitionLog(str(path), LogConfig(**cfg))
    assert log.open_for_append(None) == []
    return log


def batch(first: int, n: int = 1, ts: int = T0, size: int = 100, codec: int = compression.NONE) -> bytes:
    """``n`` records whose values carry their intended offsets ``first..first+n-1``."""
    return records.encode_batch(
        [(None, f"{first + i:010d}".encode().ljust(size, b"."), [], ts + i) for i in range(n)], codec=codec
    )


# ---------------------------------------------------------------- rolling and indexes


def test_segments_roll_by_segment_bytes_and_files_are_kafka_named(tmp_path):
    log = new_log(tmp_path / "t-0", segment_bytes=10_000, index_interval_bytes=1500)
    for i in range(0, 300, 3):
        info = log.append(batch(i, 3, size=300))
        assert (info.base_offset, info.last_offset) == (i, i + 2)
    log.release()
    files = segment_files(tmp_path / "t-0")
    assert len(files) >= 9
    for path in files:
        assert len(os.path.basename(path)) == len("00000000000000000000.log")
        assert os.path.getsize(path) <= 10_000
    assert check_segments(tmp_path / "t-0", interval=1500) == 300
    assert [int(r.value[:10]) for r in all_records(tmp_path / "t-0")] == list(range(300))
    assert [r.offset for r in all_records(tmp_path / "t-0")] == list(range(300))
    # closed segments got their indexes (the active one too once it is large enough)
    assert all(index_entries(p)[0] for p in files[:-1])


def test_segment_ms_rolls_on_record_timestamps(tmp_path):
    log = new_log(tmp_path / "t-0", segment_ms=1000)
    for i, ts in enumerate([T0, T0 + 400, T0 + 5000, T0 + 5100, T0 + 20_000, T0 + 20_001]):
        log.append(batch(i, ts=ts))
    assert log.segment_bases == [0, 2, 4]
    assert check_segments(tmp_path / "t-0") == 6


def test_index_interval_zero_indexes_every_batch_but_the_first(tmp_path):
    log = new_log(tmp_path / "t-0", index_interval_bytes=0)
    for i in range(20):
        log.append(batch(i, ts=T0 + i))
    log.release()
    path = segment_files(tmp_path / "t-0")[0]
    offs, times = index_entries(path)
    assert [o for o, _p in offs] == list(range(1, 20))
    assert [o for _t, o in times] == list(range(1, 20))
    check_segments(tmp_path / "t-0")


def test_reading_any_offset_of_a_multi_segment_log(tmp_path):
    log = new_log(tmp_path / "t-0", segment_bytes=4000, index_interval_bytes=500)
    for i in range(0, 400, 4):
        log.append(batch(i, 4, size=90, codec=compression.LZ4 if i % 8 else compression.NONE))
    log.release()
    assert len(log.segment_bases) > 5
    reader = PartitionLog(str(tmp_path / "t-0"))  # a fresh reader, as another process would open it
    assert reader.log_end_offset == 400
    assert reader.log_start_offset == 0
    for offset in range(400):
        data = reader.read(offset, max_bytes=1)  # at least one whole batch, even past max_bytes
        first = records.decode_records(data)
        assert first[0].offset <= offset <= first[-1].offset
        assert int([r for r in first if r.offset == offset][0].value[:10]) == offset
    big = reader.read(37, max_bytes=3000)
    got = [r.offset for pos, h in records.iter_batches(big) for r in records.decode_records(big, pos, h)]
    assert got[0] == 36 and got == list(range(36, 36 + len(got))) and len(big) <= 3000
    assert reader.read(400) == b""
    assert reader.read(10_000) == b""
    cut = reader.read(0, max_bytes=1 << 20, upper=10)
    assert [h.base_offset for _p, h in records.iter_batches(cut)] == [0, 4, 8]


@pytest.mark.parametrize("max_bytes", [0, 700, 3000, 9000, 10**9])
def test_the_tail_walk_covers_the_last_bytes_of_the_log_from_a_batch_boundary(tmp_path, max_bytes):
    """What a writer without a producer snapshot reads to rebuild producer state: whole batches, oldest first, ending
    at the log end and covering at least ``max_bytes`` (or the whole log), across segments."""
    log = new_log(tmp_path / "t-0", segment_bytes=4000, index_interval_bytes=500)
    for i in range(0, 400, 4):
        log.append(batch(i, 4, size=90))
    headers = [header for _seg, _pos, header in log._walk(*log._tail_start(max_bytes))]
    assert headers[-1].next_offset == 400
    assert [h.base_offset for h in headers] == list(range(headers[0].base_offset, 400, 4))
    assert sum(h.size for h in headers) >= min(max_bytes, log.size_bytes())
    if max_bytes >= log.size_bytes():
        assert headers[0].base_offset == 0
    else:  # no more than an index interval and a batch beyond what was asked
        assert sum(h.size for h in headers) <= max_bytes + 500 + headers[0].size
    log.release()


def test_flush_messages_fsyncs_once_that_many_records_are_unsynced(tmp_path, monkeypatch):
    from kcli.storage import segment

    synced: list[int] = []
    real = segment.LogSegment.flush
    monkeypatch.setattr(segment.LogSegment, "flush", lambda seg: (synced.append(seg.base_offset), real(seg)))
    log = new_log(tmp_path / "t-0", flush_messages=5)
    for i in range(12):
        log.append(batch(i, 2))  # 2 records a batch: the 3rd, 6th, 9th and 12th batches reach 5
        assert len(synced) == (i + 1) // 3, i
    log.release()
    synced.clear()
    default = new_log(tmp_path / "u-0")
    for i in range(50):
        default.append(batch(i))
    assert synced == []  # by default the OS decides, as Kafka does
    default.release()


def test_offset_for_timestamp(tmp_path):
    log = new_log(tmp_path / "t-0", segment_bytes=3000, index_interval_bytes=300)
    # batch i holds 5 records at T0 + 100*i + 0..4 (ms)
    for i in range(60):
        log.append(batch(5 * i, 5, ts=T0 + 100 * i))
    log.release()
    assert len(log.segment_bases) > 3
    reader = PartitionLog(str(tmp_path / "t-0"))
    assert reader.offset_for_timestamp(0) == 0
    assert reader.offset_for_timestamp(T0) == 0
    assert reader.offset_for_timestamp(T0 + 3) == 3
    assert reader.offset_for_timestamp(T0 + 5) == 5  # between batches: the next batch's first record
    assert reader.offset_for_timestamp(T0 + 100) == 5
    assert reader.offset_for_timestamp(T0 + 2_502) == 127
    assert reader.offset_for_timestamp(T0 + 5_904) == 299
    assert reader.offset_for_timestamp(T0 + 5_905) is None
    for i in range(0, 60, 7):  # every segment boundary region
        assert reader.offset_for_timestamp(T0 + 100 * i + 2) == 5 * i + 2


def test_max_timestamp_offset_is_the_earliest_record_with_the_largest_timestamp(tmp_path):
    """Out-of-order timestamps over many segments (and indexed batches): the largest one is in a middle
    segment, in the middle of its batch, and again later (a tie: the earliest wins); a reopened log (its
    segments' maximum from the time index and a scan) answers the same."""
    log = new_log(tmp_path / "t-0", segment_bytes=1500, index_interval_bytes=300)
    assert log.max_timestamp_offset() is None
    peak = T0 + 50_000
    for i in range(60):
        stamps = [T0 + 100 * ((i * 37) % 60) + j for j in range(5)]
        if i in (23, 41):
            stamps[2] = peak
        log.append(records.encode_batch([(None, b"v", [], ts) for ts in stamps]))
    bases = log.segment_bases
    assert len(bases) > 4 and bases[0] < 5 * 23 and bases[-1] > 5 * 41
    assert sum(base <= 5 * 23 for base in bases) < sum(base <= 5 * 41 for base in bases)  # the tie is later
    assert log.max_timestamp_offset() == (peak, 5 * 23 + 2)
    log.release()
    assert PartitionLog(str(tmp_path / "t-0")).max_timestamp_offset() == (peak, 5 * 23 + 2)


# ---------------------------------------------------------------- retention


def test_retention_ms_deletes_whole_old_segments_never_the_active_one(tmp_path):
    now = T0 + 30 * DAY
    log = new_log(tmp_path / "t-0", segment_bytes=2000, retention_ms=7 * DAY)
    for i in range(40):
        log.append(batch(i, ts=T0 + i))  # 30 days old
    for i in range(40, 80):
        log.append(batch(i, ts=now - DAY))  # 1 day old
    newest = {
        int(os.path.basename(p)[:20]): max(h.max_timestamp for _pos, h in read_segment(p)[1])
        for p in segment_files(tmp_path / "t-0")
    }
    expected = [b for b in sorted(newest)[:-1] if newest[b] < now - 7 * DAY]
    assert expected and expected == sorted(newest)[: len(expected)]
    assert log.delete_old_segments(now) == expected
    deleted = expected
    # every remaining segment holds a record newer than the retention limit, except possibly the active one
    for base in log.segment_bases[:-1]:
        assert log.segment(base).largest_timestamp() >= now - 7 * DAY
    assert log.log_start_offset == log.segment_bases[0]
    for base in deleted:
        for ext in (".log", ".index", ".timeindex"):
            assert not os.path.exists(os.path.join(str(tmp_path / "t-0"), f"{base:020d}{ext}"))
    # far in the future everything is expired: only the active segment stays
    active = log.segment_bases[-1]
    log.delete_old_segments(now + 365 * DAY)
    assert log.segment_bases == [active]
    assert log.log_end_offset == 80
    log.append(batch(80))
    log.release()
    reader = PartitionLog(str(tmp_path / "t-0"))
    assert reader.log_start_offset == active
    assert [r.offset for r in all_records(tmp_path / "t-0")] == list(range(active, 81))
    # a read below the log start offset starts at the log start offset
    assert records.parse_header(reader.read(0)).base_offset == active


def test_retention_bytes(tmp_path):
    log = new_log(tmp_path / "t-0", segment_bytes=1500, retention_bytes=5000, retention_ms=-1)
    for i in range(100):
        log.append(batch(i))
    sizes_before = log.size_bytes()
    deleted = log.delete_old_segments()
    assert deleted and deleted == sorted(deleted)
    remaining = [log.segment(b).size for b in log.segment_bases]
    assert sum(remaining) < sizes_before
    assert sum(remaining) >= 5000  # never below the limit by deleting
    assert len(remaining) == 1 or sum(remaining) - remaining[0] < 5000  # nothing more could go
    assert log.log_start_offset == log.segment_bases[0] > 0
    assert check_segments(tmp_path / "t-0") == 100
    # retention.bytes smaller than one segment: only the active segment remains
    log.config = LogConfig(segment_bytes=1500, retention_bytes=0, retention_ms=-1)
    log.delete_old_segments()
    assert len(log.segment_bases) == 1


# ---------------------------------------------------------------- recovery in the library


def _write_log(path, n_batches: int = 60) -> PartitionLog:
    log = new_log(path, segment_bytes=5000, index_interval_bytes=700)
    for i in range(n_batches):
        log.append(batch(2 * i, 2, ts=T0 + i))
    return log


@pytest.mark.parametrize("recovery_point", [None, 0, 37, 119, 120, 5000])
def test_recovery_truncates_torn_tail_from_any_recovery_point(tmp_path, recovery_point):
    log = _write_log(tmp_path / "t-0")
    log.close()  # no release(): like a writer killed -9 (no clean-shutdown state)
    active = segment_files(tmp_path / "t-0")[-1]
    size = os.path.getsize(active)
    with open(active, "r+b") as fh:
        fh.truncate(size - 30)  # the last batch is torn
    log = PartitionLog(str(tmp_path / "t-0"), LogConfig(segment_bytes=5000, index_interval_bytes=700))
    problems = log.open_for_append(recovery_point)
    [torn] = [p for p in problems if p.reason.startswith("truncated")]  # the fields, not a sentence
    assert torn.path == active and torn.reason == f"truncated {size - 30 - torn.position} invalid bytes", problems
    assert log.log_end_offset == 118
    log.append(batch(118, 2))
    log.release()
    assert check_segments(tmp_path / "t-0", interval=700) == 120
    assert [int(r.value[:10]) for r in all_records(tmp_path / "t-0")] == list(range(120))


def test_recovery_rebuilds_a_broken_index(tmp_path):
    log = _write_log(tmp_path / "t-0")
    log.close()
    path = segment_files(tmp_path / "t-0")[-1]
    good_offsets, good_times = index_entries(path)
    assert good_offsets
    stem = path[: -len(".log")]
    with open(stem + ".index", "ab") as fh:
        fh.write(b"\x01\x02\x03")  # a torn index entry: fails the sanity check
    os.unlink(stem + ".timeindex")
    log = PartitionLog(str(tmp_path / "t-0"), LogConfig(segment_bytes=5000, index_interval_bytes=700))
    assert log.open_for_append(None) == [  # like Kafka, the rebuild is reported
        Damage(
            f"{stem}.index",
            f"size {len(good_offsets) * 8 + 3} is not a multiple of 8; rebuilt the segment's indexes from the log",
        )
    ]
    assert index_entries(path)[0] == good_offsets
    assert index_entries(path)[1][: len(good_times)] == good_times
    log.release()
    check_segments(tmp_path / "t-0", interval=700)


def test_recovery_drops_segments_after_a_corrupt_batch(tmp_path):
    log = _write_log(tmp_path / "t-0")
    log.close()
    files = segment_files(tmp_path / "t-0")
    assert len(files) >= 3
    data, batches = read_segment(files[-2])
    pos, header = batches[len(batches) // 2]
    with open(files[-2], "r+b") as fh:
        fh.seek(pos + header.size - 5)
        fh.write(b"\xff")
    log = PartitionLog(str(tmp_path / "t-0"), LogConfig(segment_bytes=5000, index_interval_bytes=700))
    problems = log.open_for_append(int(os.path.basename(files[-2])[:20]))
    assert Damage(files[-2], "record batch CRC mismatch", pos) in problems, problems
    assert Damage(files[-1], "deleted: the segment is after the truncation point") in problems, problems
    assert not os.path.exists(files[-1])
    assert log.log_end_offset == header.base_offset
    log.release()
    assert check_segments(tmp_path / "t-0") == header.base_offset


def test_truncate_to_cuts_whole_batches_across_segments(tmp_path):
    log = _write_log(tmp_path / "t-0")
    log.truncate_to(51)  # inside batch 50-51: the whole batch goes
    assert log.log_end_offset == 50
    log.append(batch(50, 2))
    log.release()
    assert check_segments(tmp_path / "t-0", interval=700) == 52
    assert [int(r.value[:10]) for r in all_records(tmp_path / "t-0")] == list(range(52))


def test_follower_behind_the_leaders_log_start_is_resynced_with_the_same_offsets(tmp_path):
    from kcli.storage.replica_sync import sync_replica

    leader = new_log(tmp_path / "leader", segment_bytes=1500, retention_bytes=3000, retention_ms=-1)
    follower = new_log(tmp_path / "follower", segment_bytes=1500)
    for i in range(30):
        data = batch(i)
        leader.append(data, leader_epoch=1)
        follower.append(data, leader_epoch=1)
    follower.release()  # the follower stops getting data at offset 30
    for i in range(30, 80):
        leader.append(batch(i), leader_epoch=2)
    leader.delete_old_segments()
    assert leader.log_start_offset > 30
    follower = PartitionLog(str(tmp_path / "follower"), LogConfig(segment_bytes=1500))
    follower.open_for_append(None)
    sync_replica(leader, follower)
    assert (follower.log_start_offset, follower.log_end_offset) == (leader.log_start_offset, 80)
    leader.release()
    follower.release()
    want = [(r.offset, r.value) for r in all_records(tmp_path / "leader")]
    assert [(r.offset, r.value) for r in all_records(tmp_path / "follower")] == want
    assert [int(v[:10]) for _o, v in want] == [o for o, _v in want]
    assert check_segments(tmp_path / "follower") == 80
    # the follower's epoch cache describes what it holds, not the data it lost
    assert PartitionLog(str(tmp_path / "follower")).epochs() == [(2, leader.log_start_offset)]


def test_leader_epochs_are_recorded_on_append_and_truncated_with_the_log(tmp_path):
    log = new_log(tmp_path / "t-0")
    for i, epoch in enumerate([0, 0, 3, 3, 5, 5]):
        log.append(batch(2 * i, 2), leader_epoch=epoch)
    assert log.epochs() == [(0, 0), (3, 4), (5, 8)]
    log.truncate_to(6)
    assert log.epochs() == [(0, 0), (3, 4)]
    log.append(batch(6, 2), leader_epoch=6)
    assert log.epochs() == [(0, 0), (3, 4), (6, 6)]
    assert [records.parse_header(log.read(o)).partition_leader_epoch for o in (0, 4, 6)] == [0, 3, 6]
    log.release()


# ---------------------------------------------------------------- checkpoint files


def test_checkpoint_and_leader_epoch_file_formats(tmp_path):
    path = str(tmp_path / checkpoint.RECOVERY_POINT)
    checkpoint.write_offsets(path, {("b-t", 1): 10, ("a", 0): 5})
    assert open(path).read() == "0\n2\na 0 5\nb-t 1 10\n"
    assert checkpoint.read_offsets(path) == {("a", 0): 5, ("b-t", 1): 10}
    assert not os.path.exists(path + ".tmp")
    log = new_log(tmp_path / "t-0")
    log.record_epoch(0, 0)
    log.record_epoch(0, 5)  # same epoch again: ignored
    log.record_epoch(3, 17)
    log.record_epoch(2, 20)  # older epoch: ignored
    assert open(tmp_path / "t-0" / "leader-epoch-checkpoint").read() == "0\n2\n0 0\n3 17\n"
    assert log.epochs() == [(0, 0), (3, 17)]


def _read_checkpoint(path) -> list[str]:
    with open(path) as fh:
        return fh.read().splitlines()


def test_produce_writes_kafka_checkpoint_files(kcli):
    kcli.in_process("topic", "create", "cp", "-p", 2, "-c", "segment.bytes=2000", "-c", "retention.bytes=4000")
    kcli("produce", "cp", "-p", "1", "--batch-size", 1000, input="".join(f"{i:0100d}\n" for i in range(200)))
    kcli("produce", "other", input="x\ny\n")
    broker = kcli.data_dir / "broker-0"
    start = int(segment_files(broker / "cp-1")[0][-24:-4])
    assert start > 0  # retention.bytes deleted old segments
    expected = {
        checkpoint.RECOVERY_POINT: ["0", "2", "cp 1 200", "other 0 2"],
        checkpoint.HIGH_WATERMARK: ["0", "2", "cp 1 200", "other 0 2"],
        checkpoint.LOG_START: ["0", "2", f"cp 1 {start}", "other 0 0"],
    }
    for name, lines in expected.items():
        assert _read_checkpoint(broker / name) == lines
    assert _read_checkpoint(broker / "cp-1" / "leader-epoch-checkpoint") == ["0", "1", "0 0"]
    props = dict(line.split("=", 1) for line in _read_checkpoint(broker / "meta.properties") if "=" in line)
    assert props["version"] == "1" and props["node.id"] == "0" and props["cluster.id"]
    assert not glob.glob(str(broker / "*.tmp"))
    assert check_segments(broker / "cp-1") == 200
    out = kcli.in_process("consume", "cp", "-p", "1", "-b", "-e", "-f", "%o\\n").stdout.split()
    assert out == [str(o) for o in range(start, 200)]


def test_produce_applies_retention_ms_to_old_segments(kcli):
    """Records stamped 2001 are long past the default 7 days: whole old segments go when the producer
    finishes, never the active one, and consumers start at the new log start offset."""
    kcli.in_process("topic", "create", "old", "-c", "segment.bytes=2000")
    lines = [json.dumps({"value": f"old-{i}", "timestamp": 978_307_200_000 + i}) for i in range(100)]
    lines += [json.dumps({"value": f"new-{i}"}) for i in range(20)]
    kcli("produce", "old", "--json", "--batch-size", "1", input="\n".join(lines) + "\n")
    part = kcli.data_dir / "broker-0" / "old-0"
    files = segment_files(part)
    start = int(os.path.basename(files[0])[:20])
    assert 0 < start <= 100  # only segments with nothing newer than 7 days went
    for path in files[:-1]:
        assert max(h.max_timestamp for _p, h in read_segment(path)[1]) > 978_307_200_000 + 99
    desc = json.loads(kcli.in_process("topic", "describe", "old", "--json").stdout)[0]["partitions"][0]
    assert (desc["log_start_offset"], desc["log_end_offset"]) == (start, 120)
    assert _read_checkpoint(kcli.data_dir / "broker-0" / checkpoint.LOG_START) == ["0", "1", f"old 0 {start}"]
    values = kcli.in_process("consume", "old", "-b", "-e").stdout.split()
    assert values == [f"old-{i}" for i in range(start, 100)] + [f"new-{i}" for i in range(20)]


# ---------------------------------------------------------------- recovery through the CLI


def _partition(kcli, topic="t", partition=0, broker=0):
    return kcli.data_dir / f"broker-{broker}" / f"{topic}-{partition}"


def _offsets_and_values(kcli, topic="t") -> list[tuple[int, str]]:
    out = kcli.in_process("consume", topic, "-b", "-e", "-f", "%o %s\\n").stdout
    return [(int(o), v) for o, v in (line.split(" ", 1) for line in out.splitlines())]


GENERATOR = r"""
import sys
out = sys.stdout.buffer
i = 0
while True:
    out.write(b"".join(b"%09d " % n + b"p" * 120 + b"\n" for n in range(i, i + 500)))
    out.flush()
    i += 500
"""


def test_kill_9_mid_produce_then_reopen(kcli):
    kcli.in_process("topic", "create", "t", "-c", "segment.bytes=300000", "-c", "index.interval.bytes=2048")
    gen = subprocess.Popen(
        [sys.executable, "-c", GENERATOR], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    prod = kcli.popen(
        "produce",
        "t",
        "--print-offsets",
        "--linger-ms",
        "1",
        "--batch-size",
        "60000",
        stdin=gen.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    gen.stdout.close()
    acked = -1
    try:
        for line in prod.stdout:
            acked = int(line.split()[2])
            if acked >= 25_000:
                break
    finally:
        prod.send_signal(signal.SIGKILL)
        prod.wait()
        gen.kill()
        gen.wait()
        prod.stdout.close()
        stderr = prod.stderr.read()
        prod.stderr.close()
    assert b"Traceback" not in stderr
    assert acked >= 25_000
    part = _partition(kcli)
    assert len(segment_files(part)) > 3
    # reopen: the next produce recovers (no exception), then everything reads back in order
    res = kcli("produce", "t", input="after-1\nafter-2\n")
    assert "Traceback" not in res.stderr
    got = _offsets_and_values(kcli)
    n = len(got)
    assert [o for o, _v in got] == list(range(n))  # offsets contiguous from 0
    assert n - 2 > acked  # every acknowledged record survived
    assert [int(v[:9]) for _o, v in got[:-2]] == list(
        range(n - 2)
    )  # each record intact, none lost before the tail
    assert all(v[10:] == "p" * 120 for _o, v in got[:-2])
    assert [v for _o, v in got[-2:]] == ["after-1", "after-2"]
    assert check_segments(part, interval=2048) == n


# Python ignores SIGXFSZ; with its default action back, a write past RLIMIT_FSIZE kills the process.
DIE_ON_FILE_LIMIT = (
    "import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); sys.argv[0] = 'kcli'; "
    "from kcli.cli.main import main; main()"
)


@pytest.mark.parametrize("replicas", [1, 3])
def test_death_in_the_middle_of_a_batch_write(kcli, tmp_path, replicas):
    """A deterministic crash mid-append: the kernel cuts the batch write short at the file-size limit and
    the next write kills the producer by signal (no cleanup runs, as with kill -9), leaving a torn batch
    on the leader and the followers one batch behind.  The next produce recovers all replicas alike."""
    import resource

    limit = 150_000
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{i:09d} {'q' * 60}\n" for i in range(20_000)))
    kcli.in_process("cluster", "init", "--brokers", replicas)
    kcli.in_process("topic", "create", "t", "-r", replicas, "-c", "index.interval.bytes=1024")

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-c", DIE_ON_FILE_LIMIT, "produce", "t", "-f", str(src), "--batch-size", "20000"],
        env=kcli.env,
        capture_output=True,
        preexec_fn=limit_file_size,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr
    sizes = sorted(os.path.getsize(segment_files(_partition(kcli, broker=b))[0]) for b in range(replicas))
    assert sizes[-1] == limit  # the leader's write was cut short
    leader = [
        b for b in range(replicas) if os.path.getsize(segment_files(_partition(kcli, broker=b))[0]) == limit
    ]
    data, batches = read_segment(segment_files(_partition(kcli, broker=leader[0]))[0])
    complete = sum(h.size for _p, h in batches)
    assert complete < limit  # a torn batch at the end
    intact = batches[-1][1].next_offset
    res = kcli("produce", "t", input="after\n")
    assert "warning" in res.stderr and f"truncated {limit - complete} invalid bytes" in res.stderr
    got = _offsets_and_values(kcli)
    assert [o for o, _v in got] == list(range(intact + 1))
    assert [int(v[:9]) for _o, v in got[:-1]] == list(range(intact))
    assert got[-1] == (intact, "after")
    contents = []
    for b in range(replicas):
        assert check_segments(_partition(kcli, broker=b), interval=1024) == intact + 1
        part = _partition(kcli, broker=b)
        bookkeeping = ("kcli-writer-state", ".snapshot")  # the session's (producer states: each log's clock)
        contents.append({f: (part / f).read_bytes() for f in os.listdir(part) if not f.endswith(bookkeeping)})
    assert all(c == contents[0] for c in contents)


def _three_batches(kcli) -> tuple[str, list[tuple[int, records.BatchHeader]]]:
    for start in (0, 10, 20):
        kcli.produce_lines("t", "".join(f"m{i}\n" for i in range(start, start + 10)))
    path = segment_files(_partition(kcli))[0]
    _data, batches = read_segment(path)
    assert [h.base_offset for _p, h in batches] == [0, 10, 20]
    return path, batches


def test_torn_tail_is_dropped_with_a_warning_on_next_produce(kcli):
    path, batches = _three_batches(kcli)
    with open(path, "r+b") as fh:
        fh.truncate(batches[2][0] + batches[2][1].size - 7)
    res = kcli("produce", "t", input="new\n")
    assert "warning" in res.stderr.lower() and "truncated" in res.stderr
    assert "Traceback" not in res.stderr
    assert _offsets_and_values(kcli) == [(i, f"m{i}") for i in range(20)] + [(20, "new")]
    assert check_segments(_partition(kcli)) == 21


@pytest.mark.parametrize(
    "garbage",
    [b"\x00" * 5, b"\xde\xad\xbe\xef" * 10, os.urandom(16) * 40],
    ids=["short", "partial-header", "long"],
)
def test_garbage_tail_is_dropped_with_a_warning_on_next_produce(kcli, garbage):
    path, _batches = _three_batches(kcli)
    with open(path, "ab") as fh:
        fh.write(garbage)
    res = kcli("produce", "t", input="new\n")
    assert "warning" in res.stderr.lower()
    assert "Traceback" not in res.stderr
    assert _offsets_and_values(kcli) == [(i, f"m{i}") for i in range(30)] + [(30, "new")]
    assert check_segments(_partition(kcli)) == 31


@pytest.mark.parametrize("where", ["value", "magic", "length"])
def test_corrupt_batch_in_the_middle_is_reported_by_consume(kcli, where):
    """A flipped byte: in the records (CRC), the magic, or the length (the batch seems to run past the end
    of the file, like a write still under way; `consume -e` must not wait for it forever)."""
    path, batches = _three_batches(kcli)
    pos, header = batches[1]
    flip = {"value": pos + header.size - 3, "magic": pos + 16, "length": pos + 8}[where]
    with open(path, "r+b") as fh:
        fh.seek(flip)
        byte = fh.read(1)
        fh.seek(flip)
        fh.write(bytes([byte[0] ^ 0x41]))
    res = kcli("consume", "t", "-b", "-e", ok=False, timeout=30)
    assert res.returncode == 6, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert path in lines[0] and f"position {pos}" in lines[0]
    # the records before the corrupt batch were delivered
    assert res.stdout.splitlines()[:10] == [f"m{i}" for i in range(10)]


def test_a_reader_nobody_closed_keeps_no_file_open(tmp_path) -> None:
    """A broker runs for months: a log opened on an error path and never closed must give its segment
    and index descriptors back once it is garbage, as a closed one does."""
    import gc

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    writer = PartitionLog(str(tmp_path), LogConfig(segment_bytes=400, index_interval_bytes=1))
    writer.open_for_append(None)
    for _ in range(30):
        writer.append(records.encode_batch([(b"k", b"v" * 50, [], 1)]))
    assert len(writer.segment_bases) > 3
    before = open_fds()
    for _ in range(20):
        reader = PartitionLog(str(tmp_path))
        reader.last_stable_offset()
        assert reader.read(0)  # the segments are read too
        del reader
    gc.collect()
    assert open_fds() == before
    writer.close()
