"""kcli dump-log on a transactional partition: markers, ``.txnindex`` and ``.snapshot`` files in the lines of
Kafka's DumpLogSegments, and in JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support.runner import KcliRunner

from kcli.storage import records
from kcli.storage.config import LogConfig
from kcli.storage.control import control_batch
from kcli.storage.log import PartitionLog
from kcli.storage.producer_snapshot import SnapshotEntry, encode_snapshot, snapshot_name
from kcli.storage.segment import TXN_SUFFIX

SEG0 = "00000000000000000000"
P1, P2 = 5000, 5001
TS = 1_700_000_000_000


def kcli(*args: object) -> subprocess.CompletedProcess:
    return KcliRunner(None)(*args, ok=False, timeout=60)


def _partition(tmp_path: Path) -> Path:
    """0: P1's data, 1: P2's data, 2: P1's ABORT, 3: P2's COMMIT, 4: P1's next transaction, still open."""
    path = tmp_path / "t-0"
    log = PartitionLog(str(path), LogConfig())
    log.open_for_append(None)

    def data(pid: int, seq: int) -> bytes:
        return records.encode_batch([(None, b"v", [], TS)], producer_id=pid, producer_epoch=1,
                                    base_sequence=seq, transactional=True)

    log.append(data(P1, 0))
    log.append(data(P2, 0))
    log.append(control_batch(P1, 1, commit=False, coordinator_epoch=4, timestamp=TS))
    log.append(control_batch(P2, 1, commit=True, coordinator_epoch=4, timestamp=TS))
    log.append(data(P1, 1))
    log.release()
    return path


def test_a_partition_dir_dumps_markers_txnindex_and_snapshot(tmp_path: Path) -> None:
    path = _partition(tmp_path)
    proc = kcli("dump-log", "--deep-iteration", path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    dumped = [line.removeprefix("Dumping ") for line in lines if line.startswith("Dumping ")]
    assert [Path(f).name for f in dumped] == [f"{SEG0}.log", f"{SEG0}{TXN_SUFFIX}", snapshot_name(5)]
    markers = [line for line in lines if "endTxnMarker" in line]
    assert markers == [
        f"| offset: 2 CreateTime: {TS} keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] "
        "endTxnMarker: ABORT coordinatorEpoch: 4",
        f"| offset: 3 CreateTime: {TS} keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] "
        "endTxnMarker: COMMIT coordinatorEpoch: 4",
    ]
    assert sum("isTransactional: true isControl: true" in line for line in lines) == 2
    txn = lines[lines.index(f"Dumping {path / (SEG0 + TXN_SUFFIX)}") + 1]
    assert txn == f"version: 0 producerId: {P1} firstOffset: 0 lastOffset: 2 lastStableOffset: 1"
    after = lines[lines.index(f"Dumping {path / snapshot_name(5)}") + 1 :]
    assert [line.split(" lastTimestamp")[0] for line in after] == [
        f"producerId: {P2} producerEpoch: 1 coordinatorEpoch: 4 currentTxnFirstOffset: OptionalLong.empty",
        f"producerId: {P1} producerEpoch: 1 coordinatorEpoch: 4 currentTxnFirstOffset: OptionalLong[4]",
        f"producerId: {P1} producerEpoch: 1 coordinatorEpoch: 4 currentTxnFirstOffset: OptionalLong[4]",
    ]
    assert after[2].endswith("firstSequence: 1 lastSequence: 1 lastOffset: 4 offsetDelta: 0 timestamp: "
                             + after[2].split("lastTimestamp: ")[1].split()[0])


def test_snapshot_lines_exactly_and_json(tmp_path: Path) -> None:
    snapshot = tmp_path / snapshot_name(42)
    snapshot.write_bytes(encode_snapshot([
        SnapshotEntry(P1, 3, 9, 40, 2, TS, 7, 38),
        SnapshotEntry(P2, 0, -1, -1, 0, TS + 1, 2, -1),  # known from a marker only: no batch
    ]))
    proc = kcli("dump-log", snapshot)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == [
        f"producerId: {P1} producerEpoch: 3 coordinatorEpoch: 7 currentTxnFirstOffset: OptionalLong[38] "
        f"lastTimestamp: {TS} firstSequence: 7 lastSequence: 9 lastOffset: 40 offsetDelta: 2 timestamp: {TS}",
        f"producerId: {P2} producerEpoch: 0 coordinatorEpoch: 2 currentTxnFirstOffset: OptionalLong.empty "
        f"lastTimestamp: {TS + 1} ",
    ]
    proc = kcli("dump-log", "--json", snapshot)
    first = json.loads(proc.stdout.splitlines()[0])
    assert first["currentTxnFirstOffset"] == 38 and first["firstSequence"] == 7
    assert "lastOffset" not in json.loads(proc.stdout.splitlines()[1])


def test_a_corrupt_snapshot_or_txnindex_is_one_line_on_stderr(tmp_path: Path) -> None:
    snapshot = tmp_path / snapshot_name(1)
    snapshot.write_bytes(encode_snapshot([SnapshotEntry(P1, 0, 0, 0, 0, TS, -1, -1)])[:-1] + b"\x01")
    index = tmp_path / (SEG0 + TXN_SUFFIX)
    index.write_bytes(b"\x00\x07" + bytes(32))
    proc = kcli("dump-log", snapshot, index)
    assert proc.returncode == 0
    errors = proc.stderr.splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"{snapshot}: producer snapshot CRC mismatch (stored ")
    assert errors[1] == f"{index}: transaction index entry of unknown version 7"
    json_proc = kcli("dump-log", "--json", index)
    assert json.loads(json_proc.stdout)["type"] == "corrupt_file"


def _kafka_txn_state_segment(tmp_path: Path) -> Path:
    """A segment of Kafka's __transaction_state, its records built from TransactionLogKey/Value's layout:
    a v0 value, a flexible v1 value (compact strings and arrays, tagged fields) and a tombstone."""
    import struct

    def key(tid: str) -> bytes:
        return struct.pack(">hh", 0, len(tid)) + tid.encode()

    v0 = (struct.pack(">hqhib", 0, 7, 2, 60000, 1) + struct.pack(">i", 1) + struct.pack(">h", 6) + b"orders"
          + struct.pack(">iii", 2, 0, 1) + struct.pack(">qq", TS + 5, TS))
    v1 = (struct.pack(">hqhib", 1, 8, 0, 30000, 4) + bytes([2]) + bytes([4]) + b"out" + bytes([2])
          + struct.pack(">i", 3) + bytes([1, 0, 1, 9]) + struct.pack(">qq", TS + 9, -1)
          + bytes([1, 2, 2]) + struct.pack(">h", 2))  # a struct tagged field, then ClientTransactionVersion
    path = tmp_path / "__transaction_state-0"
    path.mkdir()
    cut = struct.pack(">hqhib", 1, 9, 0, 1000, 1) + bytes([0x80])  # ends inside a varint
    batch = records.encode_batch([(key("app"), v0, [], TS), (key("etl"), v1, [], TS), (key("gone"), None, [], TS),
                                  (key("cut"), cut, [], TS)])
    (path / f"{SEG0}.log").write_bytes(batch)
    return path / f"{SEG0}.log"


def test_transaction_log_decoder_reads_kafkas_transaction_state(tmp_path: Path) -> None:
    segment = _kafka_txn_state_segment(tmp_path)
    proc = kcli("dump-log", "--transaction-log-decoder", segment)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| offset:")]
    assert [line.split(" key: ", 1)[1] for line in lines] == [
        "transaction_metadata::transactionalId=app payload: producerId:7,producerEpoch:2,state=Ongoing,"
        f"partitions=[orders-0,orders-1],txnLastUpdateTimestamp={TS + 5},txnTimeoutMs=60000",
        "transaction_metadata::transactionalId=etl payload: producerId:8,producerEpoch:0,state=CompleteCommit,"
        f"partitions=[out-3],txnLastUpdateTimestamp={TS + 9},txnTimeoutMs=30000",
        "transaction_metadata::transactionalId=gone payload: <DELETE>",
        "transaction_metadata::transactionalId=cut payload: <undecodable transaction state: truncated varint "
        "at offset 17>",
    ]
    plain = kcli("dump-log", "--print-data-log", segment)  # without the decoder: the raw bytes as text
    assert "transaction_metadata::" not in plain.stdout
