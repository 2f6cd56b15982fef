"""Storage for transactions: control batches, ``.txnindex`` and ``.snapshot`` files in Kafka's formats, the
read_committed filter, and the last stable offset a log gives writers and readers -- across reopening,
truncation, retention and a writer killed with -9."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from crc32c import crc32c

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import PartitionMeta
from kcli.errors import CorruptRecordError, ProducerFencedError, TransactionError
from kcli.replica.writer import PartitionWriter
from kcli.storage import records
from kcli.storage.config import LogConfig
from kcli.storage.control import ABORT, COMMIT, control_batch, control_type, coordinator_epoch
from kcli.storage.isolation import committed
from kcli.storage.log import PartitionLog
from kcli.storage.producer_snapshot import (
    SnapshotEntry,
    decode_snapshot,
    encode_snapshot,
    list_snapshots,
    read_snapshot,
    snapshot_name,
)
from kcli.storage.producer_state import ProducerStates
from kcli.storage.segment import TXN_SUFFIX
from kcli.storage.txnindex import AbortedTxn, TxnIndex

P1, P2, P3 = 4000, 4001, 4002


def data(pid: int = -1, seq: int = -1, *values: bytes, txn: bool = False, epoch: int = 0) -> bytes:
    values = values or (b"v",)
    return records.encode_batch([(None, v, [], int(time.time() * 1000)) for v in values], producer_id=pid,
                                producer_epoch=epoch if pid >= 0 else -1, base_sequence=seq, transactional=txn)


def marker(pid: int, commit: bool, epoch: int = 0) -> bytes:
    return control_batch(pid, epoch, commit, coordinator_epoch=3)


def new_log(path, **cfg) -> PartitionLog:
    log = PartitionLog(str(path), LogConfig(**cfg))
    assert log.open_for_append(None) == []
    return log


def reader(path) -> PartitionLog:
    return PartitionLog(str(path))


# ---------------------------------------------------------------- formats


def test_a_control_batch_is_laid_out_as_kafka_writes_it():
    got = control_batch(42, 3, commit=True, coordinator_epoch=7, timestamp=1_700_000_000_000)
    key = struct.pack(">hh", 0, 1)  # ControlRecordType: version 0, COMMIT
    value = struct.pack(">hi", 0, 7)  # EndTransactionMarker: version 0, coordinator epoch
    body = bytes([0, 0, 0]) + bytes([len(key) * 2]) + key + bytes([len(value) * 2]) + value + bytes([0])
    record = bytes([len(body) * 2]) + body  # zigzag varints of small numbers: 2n
    after_crc = struct.pack(">hiqqqhii", 0x30, 0, 1_700_000_000_000, 1_700_000_000_000, 42, 3, -1, 1) + record
    expected = struct.pack(">qiib", 0, 49 + len(record), -1, 2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    assert got == expected
    header = records.parse_header(got)
    assert header.is_control and header.is_transactional and header.base_sequence == -1
    assert control_type(got, 0, header) == COMMIT and coordinator_epoch(got, 0, header) == 7
    abort = control_batch(42, 3, commit=False)
    assert control_type(abort, 0, records.parse_header(abort)) == ABORT
    assert records.decode_records(got) == []  # never handed to applications


def test_a_transactional_batch_carries_the_attribute():
    header = records.parse_header(data(P1, 0, txn=True))
    assert header.is_transactional and not header.is_control
    assert not records.parse_header(data(P1, 0)).is_transactional


def test_txnindex_entries_round_trip_in_kafkas_34_byte_layout(tmp_path):
    index = TxnIndex(str(tmp_path / ("0" * 20 + TXN_SUFFIX)))
    assert index.entries() == []
    entries = [AbortedTxn(P1, 10, 15, 12), AbortedTxn(P2, 12, 20, 21), AbortedTxn(P3, 30, 31, 32)]
    for entry in entries:
        index.append(entry)
    raw = open(index.path, "rb").read()
    assert raw[:34] == struct.pack(">hqqqq", 0, P1, 10, 15, 12) and len(raw) == 3 * 34
    assert index.entries() == entries
    with open(index.path, "ab") as fh:
        fh.write(b"\0" * 10)  # a torn entry
    assert index.entries() == entries
    index.truncate(20)
    assert index.entries() == entries[:1] and os.path.getsize(index.path) == 34
    with open(index.path, "r+b") as fh:
        fh.write(struct.pack(">h", 1))
    with pytest.raises(CorruptRecordError, match="unknown version 1"):
        index.entries()


def test_snapshot_round_trip_and_kafka_layout(tmp_path):
    states = ProducerStates()
    now = 1_700_000_000_000
    for i in range(7):  # more than the 5 batches remembered
        h = records.parse_header(data(P1, 2 * i, b"a", b"b"))
        states.appended(h, 10 + 2 * i, now)
    states.appended(records.parse_header(data(P2, 0, txn=True, epoch=4)), 30, now)
    states.appended(records.parse_header(data(P3, 0, txn=True)), 31, now)
    states.appended(records.parse_header(marker(P3, True)), 32, now, coordinator_epoch=9)
    entries = states.entries()
    assert [e.producer_id for e in entries] == [P1] * 5 + [P2, P3]
    assert entries[4] == SnapshotEntry(P1, 0, 13, 23, 1, now, -1, -1)
    assert entries[5] == SnapshotEntry(P2, 4, 0, 30, 0, now, -1, 30)
    assert entries[6] == SnapshotEntry(P3, 0, 0, 31, 0, now, 9, -1)
    raw = encode_snapshot(entries)
    version, crc, count = struct.unpack_from(">hIi", raw)
    assert (version, count, len(raw)) == (1, 7, 10 + 7 * 46) and crc == crc32c(raw[6:])
    assert raw[10:56] == struct.pack(">qhiqiqiq", *entries[0])
    assert decode_snapshot(raw) == entries
    again = ProducerStates.from_entries(decode_snapshot(raw))
    assert again.entries() == entries and again.ongoing() == {P2: 30} and again.first_unstable_offset() == 30
    assert again.check(records.parse_header(data(P1, 4, b"a", b"b"))) == 14  # each of the last 5: a retry
    damaged = bytearray(raw)
    damaged[20] ^= 1
    with pytest.raises(CorruptRecordError, match="CRC"):
        decode_snapshot(bytes(damaged))
    with pytest.raises(CorruptRecordError):
        decode_snapshot(raw[:-3])
    # Kafka writes one entry per producer (its newest batch): that one is a retry, the next is in sequence
    kafkas = ProducerStates.from_entries([SnapshotEntry(P1, 0, 13, 23, 1, now, -1, -1)])
    assert kafkas.check(records.parse_header(data(P1, 12, b"a", b"b"))) == 22
    assert kafkas.check(records.parse_header(data(P1, 14))) is None


# ---------------------------------------------------------------- producer state rules


def test_transactional_rules():
    states = ProducerStates()
    states.appended(records.parse_header(data(P1, 0, txn=True, epoch=2)), 5, 0)
    with pytest.raises(TransactionError):
        states.check(records.parse_header(data(P1, 1, epoch=2)))  # not transactional, transaction open
    assert states.check(records.parse_header(data(P1, 1, txn=True, epoch=2))) is None
    with pytest.raises(ProducerFencedError):
        states.check_marker(P1, 1)
    assert states.check_marker(P1, 2) and not states.check_marker(P2, 0)
    assert states.aborted_txn(P1, 9) == AbortedTxn(P1, 5, 9, 10)
    states.appended(records.parse_header(data(P2, 0, txn=True)), 7, 0)
    assert states.aborted_txn(P2, 9) == AbortedTxn(P2, 7, 9, 5)  # P1's is older and still open
    states.appended(records.parse_header(marker(P1, False, epoch=3)), 9, 0)  # a bumped epoch ends it too
    assert states.ongoing() == {P2: 7} and not states.check_marker(P1, 3)
    assert states.check(records.parse_header(data(P1, 0, epoch=3))) is None  # the new epoch starts at 0
    assert states.expire(86_400_000, 86_400_000) == [P1]  # P2's transaction is open: never expired
    assert states.ongoing() == {P2: 7}


# ---------------------------------------------------------------- read_committed


def _log_of(tmp_path, batches: list[bytes]) -> PartitionLog:
    log = new_log(tmp_path / "t-0")
    for b in batches:
        log.append(b)
    return log


def _offsets(buf: bytes) -> list[int]:
    return [h.base_offset for _p, h in records.iter_batches(buf)]


def test_committed_drops_aborted_and_control_batches(tmp_path):
    log = _log_of(tmp_path, [
        data(),                              # 0
        data(P1, 0, txn=True),               # 1 P1 commits later
        data(P1, 1, txn=True),               # 2
        marker(P1, True),                    # 3
        data(P1, 2, txn=True),               # 4 P1 aborts
        data(P2, 0, txn=True),               # 5 P2 aborts
        data(),                              # 6
        data(P1, 3, txn=True),               # 7
        marker(P1, False),                   # 8
        data(P2, 1, txn=True),               # 9
        marker(P2, False),                   # 10
        data(P3, 0, txn=True),               # 11 P3 commits
        marker(P3, True),                    # 12
    ])
    aborted = log.aborted_transactions(0, log.log_end_offset)
    assert aborted == [AbortedTxn(P1, 4, 8, 5), AbortedTxn(P2, 5, 10, 11)]
    everything = log.read(0, 1 << 20)
    kept, next_offset = committed(everything, aborted)
    assert _offsets(kept) == [0, 1, 2, 6, 11] and next_offset == 13
    # a fetch that ends in dropped batches still moves the consumer past them
    part = log.read(7, 1 << 20, upper=11)
    kept, next_offset = committed(part, log.aborted_transactions(7, 11))
    assert kept == b"" and next_offset == 11
    # without aborted transactions only the markers go; a batch that is all kept comes back whole
    kept, next_offset = committed(log.read(11, 1 << 20), [])
    assert _offsets(kept) == [11] and next_offset == 13
    plain = log.read(0, 1 << 20, upper=1)
    assert committed(plain, [])[0] is plain
    assert committed(b"", []) == (b"", -1)
    assert committed(everything[:-5], aborted)[1] == 12  # a partial batch at the end is not passed
    assert log.aborted_transactions(9, 10) == [AbortedTxn(P2, 5, 10, 11)]
    assert log.aborted_transactions(11, 13) == []
    log.release()


# ---------------------------------------------------------------- last stable offset


def test_last_stable_offset_for_writer_and_reader_across_reopen_and_truncation(tmp_path):
    path = tmp_path / "t-0"
    log = _log_of(tmp_path, [data(), data(P1, 0, txn=True), data(P2, 0, txn=True), data(P1, 1, txn=True)])
    assert log.last_stable_offset() == 1 == log.first_unstable_offset()
    assert log.ongoing_transactions() == {P1: 1, P2: 2}
    outside = reader(path)
    assert outside.last_stable_offset() == 1 and outside.ongoing_transactions() == {P1: 1, P2: 2}
    log.append(marker(P1, True))  # 4
    assert log.last_stable_offset() == 2 == outside.last_stable_offset()  # the reader continues
    log.append(data(P3, 0))  # 5
    log.release()
    assert list_snapshots(str(path)) == [6]
    log = PartitionLog(str(path))
    log.open_for_append(None)
    assert log.last_stable_offset() == 2 and log.ongoing_transactions() == {P2: 2}
    assert reader(path).last_stable_offset() == 2
    log.append(marker(P2, False))  # 6
    assert log.last_stable_offset() == 7 == reader(path).last_stable_offset() == outside.last_stable_offset()
    assert log.aborted_transactions(0, 7) == [AbortedTxn(P2, 2, 6, 7)]
    log.truncate_to(6)  # the abort is gone: its entry too, and the snapshot at 6 is kept
    assert log.last_stable_offset() == 2 and log.aborted_transactions(0, 7) == []
    assert outside.last_stable_offset() == 2  # the reader saw the log rewritten below where it was
    log.truncate_to(1)
    assert log.last_stable_offset() == 1 == log.log_end_offset and log.ongoing_transactions() == {}
    assert list_snapshots(str(path)) == []
    log.append(data(P2, 0, txn=True))
    log.append(data())
    assert log.last_stable_offset() == 1 == outside.last_stable_offset()
    log.truncate_to(1)  # and rewritten past where the reader stopped (3): it must notice
    for value in (b"n1", b"n2", b"n3"):
        log.append(data(-1, -1, value))
    assert log.last_stable_offset() == 4 == outside.last_stable_offset()
    log.release()


def test_an_abort_marker_whose_txnindex_entry_was_lost_gets_it_back(tmp_path):
    """The entry is written before the marker but not synced: after a crash that lost it (and a session
    killed, so no snapshot at the end), the replay from the last snapshot restores it."""
    path = tmp_path / "t-0"
    log = _log_of(tmp_path, [data()])
    log.release()
    log = PartitionLog(str(path))
    log.open_for_append(None)
    log.append(data(P1, 0, txn=True))
    log.append(marker(P1, False))
    index = log.active.txn_index.path
    log.close()  # killed
    os.unlink(index)
    assert not (path / "kcli-writer-state").exists()
    log = PartitionLog(str(path))
    log.open_for_append(None)
    assert log.aborted_transactions(0, 3) == [AbortedTxn(P1, 1, 2, 3)]
    # and an entry whose marker never made it is dropped
    TxnIndex(index).append(AbortedTxn(P2, 3, 7, 8))
    log.close()
    log = PartitionLog(str(path))
    log.open_for_append(None)
    assert log.aborted_transactions(0, 10) == [AbortedTxn(P1, 1, 2, 3)]
    log.release()


def test_retention_deletes_txnindex_files_and_old_snapshots(tmp_path):
    path = tmp_path / "t-0"
    log = new_log(path, segment_bytes=300, retention_bytes=300)
    pid_seq = 0
    for i in range(8):
        log.append(data(P1, pid_seq, b"x" * 40, txn=True))
        pid_seq += 1
        log.append(marker(P1, i % 2 == 1))  # the first aborts
    assert len(log.segment_bases) > 3
    with_index = [b for b in log.segment_bases if (path / f"{b:020d}{TXN_SUFFIX}").exists()]
    assert with_index[0] == log.segment_bases[0]
    assert list_snapshots(str(path)) == log.segment_bases[1:]  # one per roll
    deleted = log.delete_old_segments()
    assert deleted and all(not (path / f"{b:020d}{TXN_SUFFIX}").exists() for b in deleted)
    assert min(list_snapshots(str(path))) >= log.log_start_offset
    log.release()


# ---------------------------------------------------------------- a writer killed mid-transaction

WRITER = textwrap.dedent("""
    import sys, time
    from kcli.storage import records
    from kcli.storage.config import LogConfig
    from kcli.storage.control import control_batch
    from kcli.storage.log import PartitionLog

    log = PartitionLog(sys.argv[1], LogConfig(segment_bytes=6000))
    log.open_for_append(None)
    seqs = {}
    i = 0
    while True:  # producers 0..2 in turns: two transactional batches, then a marker (abort every third)
        pid = 7000 + i % 3
        step = (i // 3) % 3
        if step < 2:
            seq = seqs.get(pid, 0)
            log.append(records.encode_batch([(None, b"x" * 50, [], 1)], producer_id=pid, producer_epoch=0,
                                            base_sequence=seq, transactional=True))
            seqs[pid] = seq + 1
        else:
            log.append(control_batch(pid, 0, commit=(i // 9) % 3 != 0))
        i += 1
        if i == 200:
            print("ready", flush=True)
""")


def _model(path) -> tuple[int, list[AbortedTxn]]:
    """LSO and aborted transactions of the log's batches, worked out from the segment files alone."""
    ongoing: dict[int, int] = {}
    aborted = []
    end = 0
    for name in sorted(os.listdir(path)):
        if not name.endswith(".log"):
            continue
        buf = open(os.path.join(path, name), "rb").read()
        for pos, h in records.iter_batches(buf):
            if h.is_control:
                first = ongoing.pop(h.producer_id, None)
                if first is not None and control_type(buf, pos, h) == ABORT:
                    aborted.append(AbortedTxn(h.producer_id, first, h.base_offset,
                                              min(ongoing.values(), default=h.base_offset + 1)))
            elif h.producer_id not in ongoing:
                ongoing[h.producer_id] = h.base_offset
            end = h.next_offset
    return min(ongoing.values(), default=end), aborted


@pytest.mark.faults
@pytest.mark.parametrize("wait", [0.3, 1.0])
def test_a_writer_killed_mid_transaction_leaves_a_log_with_the_right_stable_offset(tmp_path, wait):
    path = tmp_path / "t-0"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            env={**os.environ})
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(wait)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list_snapshots(str(path))  # the rolls'; none at the end (no clean release)
    outside = reader(path)
    log = PartitionLog(str(path), LogConfig(segment_bytes=6000))
    log.open_for_append(None)  # recovery cuts a torn batch at the end
    lso, aborted = _model(path)
    assert len(aborted) > 5
    assert log.last_stable_offset() == lso == outside.last_stable_offset()
    assert log.aborted_transactions(0, log.log_end_offset) == aborted
    cut = lso + 1 if lso < log.log_end_offset else lso - 1  # keep an open transaction's start if any
    log.truncate_to(cut)
    lso, aborted = _model(path)
    assert log.last_stable_offset() == lso and log.aborted_transactions(0, cut) == aborted
    assert all(offset <= cut for offset in list_snapshots(str(path)))
    log.release()
    assert reader(path).last_stable_offset() == lso
    assert read_snapshot(str(path / snapshot_name(cut)))


# ---------------------------------------------------------------- the write session


def test_write_marker_on_every_replica_and_once(tmp_path):
    datadir = DataDir(str(tmp_path / "data"))
    meta = PartitionMeta([0, 1, 2], 0, [0, 1, 2], 1)
    writer = PartitionWriter(datadir, "t", 0, meta, LogConfig(), followers=[1, 2])
    try:
        assert writer.write_marker(P1, 0, commit=True) is None  # never wrote here
        assert writer.append(data(P1, 0, txn=True, epoch=2)) == 0
        with pytest.raises(TransactionError):
            writer.append(data(P1, 1, epoch=2))
        with pytest.raises(ProducerFencedError):
            writer.write_marker(P1, 1, commit=True)
        assert writer.write_marker(P1, 2, commit=False, coordinator_epoch=5) == 1
        assert writer.write_marker(P1, 2, commit=False, coordinator_epoch=5) is None  # again: a no-op
        assert writer.leader.last_stable_offset() == 2
    finally:
        writer.close(durable=True)
    for broker in (0, 1, 2):
        log = PartitionLog(datadir.partition_dir(broker, "t", 0))
        assert [h.is_control for _p, h in records.iter_batches(log.read(0))] == [False, True]
        assert log.aborted_transactions(0, 2) == [AbortedTxn(P1, 0, 1, 2)]
        assert log.last_stable_offset() == 2
