"""Reading a log whose offsets have gaps, as compaction leaves them (issue #20): gaps between batches,
inside batches (a batch's last offset past its last record), between segments, a segment named below its
first batch and a log start no record has.  The log is written by tests/support/compacted.py, so these
tests hold before any cleaner exists: every reader, embedded and through a broker, gets every record with
its offset, ends at the log end, starts at the next record when asked for an offset in a gap, commits and
reports lag; dump-log shows the real offsets; verify accepts the gaps of a compacted topic and still
catches damage; repair leaves them; a follower copies them byte for byte."""

from __future__ import annotations

import json
import os
import struct

import pytest
from support.compacted import (
    LAYOUT,
    LOG_END,
    LOG_START,
    OFFSETS,
    TOMBSTONES,
    Batch,
    make_compacted_topic,
    value_of,
    write_log,
)
from support.segments import read_segment
from support.waits import wait_for

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.storage import records
from kcli.storage.log import PartitionLog

TOPIC = "gappy"
FMT = "%o %s\n"


def _expected(start: int = 0) -> list[str]:
    return [f"{o} {(value_of(o) or b'').decode()}" for o in OFFSETS if o >= start]


def _offsets(stdout: str) -> list[int]:
    return [int(line.split()[0]) for line in stdout.splitlines() if line]


@pytest.fixture
def gapped(kcli):
    make_compacted_topic(kcli.data_dir)
    return kcli


def _seg(data_dir, base: int, broker: int = 0) -> str:
    return os.path.join(DataDir(str(data_dir)).partition_dir(broker, TOPIC, 0), f"{base:020d}.log")


# ---------------------------------------------------------------- the helper itself


def test_helper_writes_the_gaps_compaction_leaves(kcli):
    make_compacted_topic(kcli.data_dir)
    assert Metadata(DataDir(str(kcli.data_dir))).load().topics[TOPIC].configs["cleanup.policy"] == "compact"
    data, batches = read_segment(_seg(kcli.data_dir, 100))
    first = batches[0][1]
    assert (first.base_offset, first.last_offset, first.records_count) == (100, 107, 3)  # lastOffsetDelta 7
    data, batches = read_segment(_seg(kcli.data_dir, 130))
    assert batches[0][1].base_offset == 140  # a segment named below its first batch


# ---------------------------------------------------------------- the log and its indexes

TS = 1_700_000_000_000


@pytest.fixture
def gapped_log(tmp_path):
    directory = str(tmp_path / f"{TOPIC}-0")
    write_log(directory, LAYOUT, TS)
    log = PartitionLog(directory)
    yield log
    log.close()


def test_reads_from_any_offset_get_every_record_after_it(gapped_log):
    assert (gapped_log.log_start_offset, gapped_log.log_end_offset) == (LOG_START, LOG_END)
    for offset in range(0, LOG_END):  # each read: batches from the one holding offset (or the next one)
        got, position = [], offset
        while position < LOG_END:
            data = gapped_log.read(position)
            batches = list(records.iter_batches(data))
            assert batches and batches[0][1].last_offset >= position
            got += [r.offset for p, h in batches for r in records.decode_records(data, p, h) if r.offset >= position]
            position = batches[-1][1].next_offset
        assert got == [o for o in OFFSETS if o >= offset], offset
    assert gapped_log.read(LOG_END) == b""


@pytest.mark.parametrize(("offset", "found"), [(100, 103), (103, 103), (108, 110), (126, 140), (143, 155),
                                               (160, 200), (209, 209)])
def test_offset_for_timestamp_finds_the_next_record(gapped_log, offset, found):
    assert gapped_log.offset_for_timestamp(TS + offset) == found
    assert gapped_log.offset_for_timestamp(TS + LOG_END) is None


def test_a_writer_continues_a_gapped_log_at_its_end(gapped_log):
    assert gapped_log.open_for_append(None) == []
    info = gapped_log.append(records.encode_batch([(b"k", b"v", [], TS + LOG_END)]))
    assert (info.base_offset, gapped_log.log_end_offset) == (LOG_END, LOG_END + 1)
    gapped_log.release()


# ---------------------------------------------------------------- embedded readers


def test_consume_from_beginning_to_the_end_across_gaps(gapped):
    out = gapped("consume", TOPIC, "-b", "-e", "-f", FMT, timeout=30)
    assert out.stdout.splitlines() == _expected()
    js = [json.loads(line) for line in gapped("consume", TOPIC, "-b", "-e", "--json", timeout=30).stdout.splitlines()]
    assert [m["offset"] for m in js] == OFFSETS
    assert [m["offset"] for m in js if m["value"] is None] == sorted(TOMBSTONES)


@pytest.mark.parametrize(("start", "first"), [(100, 103), (104, 105), (107, 110), (111, 114), (126, 140),
                                              (143, 155), (160, 200), (199, 200), (209, 209)])
def test_offset_in_a_gap_starts_at_the_next_record(gapped, start, first):
    out = gapped("consume", TOPIC, "-o", start, "-e", "-f", FMT, timeout=30)
    assert _offsets(out.stdout) == [o for o in OFFSETS if o >= first]


@pytest.mark.parametrize("n", [3, 10, 12, 16, len(OFFSETS), 100])
def test_last_n_counts_records_not_offsets(gapped, n):
    out = gapped("consume", TOPIC, "-o", -n, "-e", "-f", FMT, timeout=30)
    assert _offsets(out.stdout) == OFFSETS[-n:]


def test_offset_at_the_end_reads_nothing(gapped):
    assert gapped("consume", TOPIC, "-o", LOG_END, "-e", "-f", FMT, timeout=30).stdout == ""


def test_group_commits_past_gaps_and_resumes(gapped):
    part = gapped("consume", TOPIC, "-g", "g", "--reset", "earliest", "-c", 3, "-f", FMT, timeout=30)
    assert _offsets(part.stdout) == OFFSETS[:3]
    rest = gapped("consume", TOPIC, "-g", "g", "-e", "-f", FMT, timeout=30)
    assert _offsets(rest.stdout) == OFFSETS[3:]
    describe = gapped("group", "describe", "g", timeout=30).stdout.splitlines()
    row = next(line.split() for line in describe if line.startswith("g\t") or line.startswith("g "))
    assert row[3:6] == [str(LOG_END), str(LOG_END), "0"]


def test_lag_after_a_partial_read_is_end_minus_committed(gapped):
    gapped("consume", TOPIC, "-g", "g", "--reset", "earliest", "-c", 3, "-f", FMT, timeout=30)
    describe = gapped("group", "describe", "g", timeout=30).stdout.splitlines()
    row = next(line.split() for line in describe if line.startswith("g"))
    committed = int(row[3])
    assert OFFSETS[2] < committed <= OFFSETS[3]  # past the last record read, at or before the next one
    assert row[4:6] == [str(LOG_END), str(LOG_END - committed)]
    lag = gapped("lag", timeout=30).stdout.splitlines()
    assert lag[1].split()[3:6] == [str(committed), str(LOG_END), str(LOG_END - committed)]


def test_a_committed_offset_in_a_gap_resumes_at_the_next_record(gapped):
    gapped("group", "reset-offsets", "g", "--topic", TOPIC, "--to-offset", 111, "--execute", timeout=30)
    lag = gapped("lag", timeout=30).stdout.splitlines()
    assert lag[1].split()[3:6] == ["111", str(LOG_END), str(LOG_END - 111)]
    out = gapped("consume", TOPIC, "-g", "g", "-e", "-f", FMT, timeout=30)
    assert _offsets(out.stdout) == [o for o in OFFSETS if o >= 114]


def test_kafka_python_group_commits_into_a_gap(gapped_broker):
    kafka = pytest.importorskip("kafka")
    consumer = kafka.KafkaConsumer(TOPIC, bootstrap_servers=gapped_broker.bootstrap, group_id="kp",
                                   auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=1)
    got = []
    while len(got) < 3:
        for msgs in consumer.poll(timeout_ms=1000).values():
            got += [m.offset for m in msgs]
    consumer.commit()  # the offset after the last record read: 107, a gap
    consumer.close()
    assert got == OFFSETS[:3]
    pre = ("--bootstrap-server", gapped_broker.bootstrap)
    out = gapped_broker.kcli(*pre, "consume", TOPIC, "-g", "kp", "-e", "-f", FMT, timeout=60)
    assert _offsets(out.stdout) == OFFSETS[3:]


# ---------------------------------------------------------------- inspection


def test_dump_log_prints_the_real_offsets(gapped):
    out = gapped("dump-log", "--deep-iteration", _seg(gapped.data_dir, 100), timeout=30).stdout
    assert "baseOffset: 100 lastOffset: 107 count: 3" in out
    assert [int(line.split()[2]) for line in out.splitlines() if line.startswith("| offset:")] == [103, 105, 106, 110,
                                                                                                 114, 125]


def test_dump_log_index_check_finds_no_mismatch(gapped):
    directory = os.path.dirname(_seg(gapped.data_dir, 100))
    out = gapped("dump-log", "--verify-index-only", directory, ok=False, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "not found in the log" not in out.stdout + out.stderr
    assert "Mismatches" not in out.stdout + out.stderr


def test_verify_accepts_gaps_of_a_compacted_topic(gapped):
    out = gapped("verify", "--deep", ok=False, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    path = gapped("verify", os.path.dirname(_seg(gapped.data_dir, 100)), ok=False, timeout=30)
    assert path.returncode == 0, path.stdout + path.stderr


def test_verify_flags_gaps_in_a_topic_that_is_not_compacted(gapped):
    Metadata(DataDir(str(gapped.data_dir))).set_topic_configs(TOPIC, {}, remove=["cleanup.policy"])
    out = gapped("verify", ok=False, timeout=30)
    assert out.returncode == 1 and "offset gap" in out.stdout


def test_verify_still_catches_a_flipped_byte(gapped):
    path = _seg(gapped.data_dir, 130)
    with open(path, "r+b") as fh:
        fh.seek(80)
        byte = fh.read(1)
        fh.seek(80)
        fh.write(bytes([byte[0] ^ 0x40]))
    out = gapped("verify", ok=False, timeout=30)
    assert out.returncode == 1 and "CRC mismatch" in out.stdout


def test_verify_still_catches_a_decreasing_offset(gapped):
    path = _seg(gapped.data_dir, 130)
    _data, batches = read_segment(path)
    position = batches[1][0]
    with open(path, "r+b") as fh:  # the second batch's base offset (not covered by the CRC) goes back
        fh.seek(position)
        fh.write(struct.pack(">q", 141))
    out = gapped("verify", ok=False, timeout=30)
    assert out.returncode == 1 and "overlap" in out.stdout


def test_verify_still_catches_a_segment_overlapping_the_previous(kcli):
    layout = [LAYOUT[0], (128, [Batch(128, [128, 129])]), LAYOUT[2]]
    make_compacted_topic(kcli.data_dir, layout=layout)
    out = kcli("verify", ok=False, timeout=30)
    assert out.returncode == 1 and "overlap" in out.stdout


def test_repair_leaves_legitimate_gaps(gapped):
    directory = os.path.dirname(_seg(gapped.data_dir, 100))
    before = {n: open(os.path.join(directory, n), "rb").read() for n in os.listdir(directory) if n.endswith(".log")}
    out = gapped("repair", "--execute", directory, timeout=30)
    assert "nothing to repair" in out.stdout
    after = {n: open(os.path.join(directory, n), "rb").read() for n in os.listdir(directory) if n.endswith(".log")}
    assert after == before


# ---------------------------------------------------------------- through a broker


@pytest.fixture
def gapped_broker(brokers):
    make_compacted_topic(brokers.data_dir)
    broker = brokers.start(0)
    broker.kcli = brokers.kcli
    return broker


def test_consume_through_a_broker_across_gaps(gapped_broker):
    b = gapped_broker
    out = b.kcli("--bootstrap-server", b.bootstrap, "consume", TOPIC, "-b", "-e", "-f", FMT, timeout=30)
    assert out.stdout.splitlines() == _expected()
    out = b.kcli("--bootstrap-server", b.bootstrap, "consume", TOPIC, "-o", 111, "-e", "-f", FMT, timeout=30)
    assert _offsets(out.stdout) == [o for o in OFFSETS if o >= 114]
    out = b.kcli("--bootstrap-server", b.bootstrap, "consume", TOPIC, "-o", 160, "-e", "-f", FMT, timeout=30)
    assert _offsets(out.stdout) == [o for o in OFFSETS if o >= 200]
    out = b.kcli("--bootstrap-server", b.bootstrap, "consume", TOPIC, "-o", -12, "-e", "-f", FMT, timeout=30)
    assert _offsets(out.stdout) == OFFSETS[-12:]


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_group_through_a_broker_across_gaps(gapped_broker, protocol):
    b = gapped_broker
    pre = ("--bootstrap-server", b.bootstrap)
    group = ("-g", "g", "--group-protocol", protocol)
    part = b.kcli(*pre, "consume", TOPIC, *group, "--reset", "earliest", "-c", 4, "-f", FMT, timeout=60)
    assert _offsets(part.stdout) == OFFSETS[:4]
    rest = b.kcli(*pre, "consume", TOPIC, *group, "-e", "-f", FMT, timeout=60)
    assert _offsets(rest.stdout) == OFFSETS[4:]
    describe = b.kcli(*pre, "group", "describe", "g", timeout=30).stdout.splitlines()
    row = next(line.split() for line in describe if line.startswith("g"))
    assert row[3:6] == [str(LOG_END), str(LOG_END), "0"]


def test_kafka_python_reads_every_record_with_its_offset(gapped_broker):
    kafka = pytest.importorskip("kafka")
    consumer = kafka.KafkaConsumer(bootstrap_servers=gapped_broker.bootstrap, group_id=None,
                                   enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = kafka.TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    assert consumer.beginning_offsets([tp]) == {tp: LOG_START}
    assert consumer.end_offsets([tp]) == {tp: LOG_END}
    consumer.seek_to_beginning(tp)
    got = []
    for msg in consumer:
        got.append((msg.offset, msg.value))
        if msg.offset == OFFSETS[-1]:
            break
    consumer.close()
    assert got == [(o, value_of(o)) for o in OFFSETS]


def test_confluent_kafka_reads_every_record_with_its_offset(gapped_broker):
    pytest.importorskip("confluent_kafka")
    from support.confluent import read_to_end

    got, low_high = read_to_end(gapped_broker.bootstrap, TOPIC, 1)
    assert [(m.offset(), m.value()) for m in got] == [(o, value_of(o)) for o in OFFSETS]
    assert low_high == [(LOG_START, LOG_END)]


def test_a_follower_copies_a_gapped_log_byte_for_byte(brokers):
    make_compacted_topic(brokers.data_dir, replication_factor=2)
    dd = DataDir(str(brokers.data_dir))
    leader = Metadata(dd).load().topics[TOPIC].partitions[0].leader
    follower = 1 - leader
    fdir = dd.partition_dir(follower, TOPIC, 0)
    for name in os.listdir(fdir):  # the follower starts empty and copies the leader
        os.unlink(os.path.join(fdir, name))
    # the copy is compared byte for byte: a cleaner pass on the leader while the follower copies would
    # rewrite batches the follower already has (each replica is cleaned on its own)
    no_cleaner = ("--override", "log.cleaner.enable=false")
    for started in [brokers.spawn(leader, *no_cleaner), brokers.spawn(follower, *no_cleaner)]:
        started.wait_ready()

    def caught_up() -> bool:
        return any(n.endswith(".log") and n != f"{0:020d}.log" for n in os.listdir(fdir)) and \
            brokers.kcli("verify", ok=False, timeout=30).returncode == 0 and \
            _log_records(fdir) == _log_records(dd.partition_dir(leader, TOPIC, 0))

    wait_for("the follower to copy the leader's gapped log", caught_up, timeout=60)
    brokers.stop_all()
    out = brokers.kcli("verify", "--deep", ok=False, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def _log_records(directory: str) -> list[tuple[int, int, int]]:
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".log"):
            _data, batches = read_segment(os.path.join(directory, name))
            out += [(h.base_offset, h.last_offset, h.crc) for _p, h in batches]
    return out


def test_an_embedded_writer_brings_a_follower_level_across_gaps(kcli):
    make_compacted_topic(kcli.data_dir, replication_factor=2)
    dd = DataDir(str(kcli.data_dir))
    meta = Metadata(dd).load().topics[TOPIC].partitions[0]
    fdir = dd.partition_dir(next(b for b in meta.replicas if b != meta.leader), TOPIC, 0)
    for name in os.listdir(fdir):  # a follower left behind (empty): the next writer copies the leader
        os.unlink(os.path.join(fdir, name))
    kcli("produce", TOPIC, "-K:", input="k210:v210\n", timeout=30)
    assert _log_records(fdir) == _log_records(dd.partition_dir(meta.leader, TOPIC, 0))
    out = kcli("verify", "--deep", ok=False, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _offsets(kcli("consume", TOPIC, "-b", "-e", "-f", FMT, timeout=30).stdout) == [*OFFSETS, LOG_END]
