"""kcli dump-log: Kafka's kafka-dump-log lines for the committed fixtures, JSON, damage, bad input."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from support.runner import KcliRunner, one_error_line

from kcli.inspect import dump
from kcli.storage import records

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
COMPRESSED = FIXTURES / "compressed" / "codecs-0"
KAFKA = FIXTURES / "kafka" / "kafka-0"
TORN = FIXTURES / "torn" / "torn-0"
FLIPPED = FIXTURES / "flipped" / "flipped-0"
MULTI = FIXTURES / "multi" / "demo-0"
SEG0 = "00000000000000000000"


def kcli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``kcli ARGS`` with no KCLI_DATA_DIR: dump-log takes paths."""
    return KcliRunner(None)(*args, ok=False, timeout=60, cwd=cwd)


def batch(
    base: int,
    last: int,
    pos: int,
    ts: int,
    size: int,
    crc: int,
    codec: str = "none",
    *,
    count: int = 0,
    seq: tuple[int, int] = (-1, -1),
    producer: tuple[int, int] = (-1, -1),
    epoch: int = 0,
    txn: bool = False,
    control: bool = False,
    ts_type: str = "CreateTime",
    valid: bool = True,
) -> str:
    count = count or last - base + 1
    return (
        f"baseOffset: {base} lastOffset: {last} count: {count} baseSequence: {seq[0]} lastSequence: {seq[1]} "
        f"producerId: {producer[0]} producerEpoch: {producer[1]} partitionLeaderEpoch: {epoch} "
        f"isTransactional: {str(txn).lower()} isControl: {str(control).lower()} "
        f"deleteHorizonMs: OptionalLong.empty position: {pos} {ts_type}: {ts} size: {size} magic: 2 "
        f"compresscodec: {codec} crc: {crc} isvalid: {str(valid).lower()}"
    )


# ---------------------------------------------------------------- exact lines of the fixtures


def test_compressed_fixture_batch_lines_exactly() -> None:
    proc = kcli("dump-log", COMPRESSED / f"{SEG0}.log")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.splitlines() == [
        f"Dumping {COMPRESSED / SEG0}.log",
        "Log starting offset: 0",
        batch(0, 3, 0, 1700000000003, 357, 1775624104),
        batch(4, 7, 357, 1700000001003, 152, 4019434805, "gzip"),
        batch(8, 11, 509, 1700000002003, 181, 3618901452, "snappy"),
        batch(12, 15, 690, 1700000003003, 182, 3945502263, "lz4"),
        batch(16, 19, 872, 1700000004003, 148, 3071069931, "zstd"),
        batch(20, 20, 1020, 1700000009000, 96, 1019331514, ts_type="LogAppendTime"),
    ]


def test_kafka_written_segment_deep_with_data_exactly() -> None:
    stem = KAFKA / "00000000000000000008"
    proc = kcli("dump-log", "--print-data-log", f"{stem}.log", f"{stem}.index", f"{stem}.timeindex")
    assert proc.returncode == 0 and proc.stderr == ""
    zstd_value = "zstd by kafka-python " * 3
    assert proc.stdout.splitlines() == [
        f"Dumping {stem}.log",
        "Log starting offset: 8",
        batch(8, 10, 0, 1700000051002, 136, 2096907322, seq=(0, 2), producer=(7001, 3), epoch=4, txn=True),
        "| offset: 8 CreateTime: 1700000051000 keySize: 2 valueSize: 16 sequence: 0 headerKeys: [] key: tx "
        "payload: in transaction 0",
        "| offset: 9 CreateTime: 1700000051001 keySize: 2 valueSize: 16 sequence: 1 headerKeys: [] key: tx "
        "payload: in transaction 1",
        "| offset: 10 CreateTime: 1700000051002 keySize: 2 valueSize: 16 sequence: 2 headerKeys: [] key: tx "
        "payload: in transaction 2",
        batch(
            11, 11, 136, 1700000051100, 78, 3980288967, producer=(7001, 3), epoch=4, txn=True, control=True
        ),
        "| offset: 11 CreateTime: 1700000051100 keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] "
        "endTxnMarker: COMMIT coordinatorEpoch: 12",
        batch(12, 13, 214, 1700000051201, 116, 994051508, "zstd", epoch=4),
        f"| offset: 12 CreateTime: 1700000051200 keySize: 1 valueSize: 63 sequence: -1 headerKeys: [] key: z "
        f"payload: {zstd_value}",
        f"| offset: 13 CreateTime: 1700000051201 keySize: 1 valueSize: 63 sequence: -1 headerKeys: [] key: z "
        f"payload: {zstd_value}",
        f"Dumping {stem}.index",
        "offset: 11 position: 136",  # the zero-filled preallocated slots after it are not entries
        f"Dumping {stem}.timeindex",
        "timestamp: 1700000051100 offset: 11",
    ]


def test_partition_dir_dumps_every_segment_file_in_order() -> None:
    proc = kcli("dump-log", "--deep-iteration", MULTI)
    assert proc.returncode == 0 and proc.stderr == ""
    dumping = [line.split("/")[-1] for line in proc.stdout.splitlines() if line.startswith("Dumping ")]
    assert dumping == [
        f"{SEG0}.log",
        f"{SEG0}.index",
        f"{SEG0}.timeindex",
        "00000000000000000018.log",
        "00000000000000000018.index",
        "00000000000000000018.timeindex",
        "00000000000000000033.log",
    ]
    out = proc.stdout.splitlines()
    assert sum(line.startswith("baseOffset: ") for line in out) == 12
    recs = [line for line in out if line.startswith("| offset: ")]
    assert len(recs) == 36
    assert recs[0] == (
        "| offset: 0 CreateTime: 1700000000000 keySize: -1 valueSize: 30 sequence: -1 headerKeys: []"
    )
    assert recs[2].endswith("headerKeys: [trace,empty]")
    assert "keySize: 7 valueSize: -1 sequence: -1" in recs[16]  # the null value
    assert "sequence: 3 headerKeys" in recs[27]  # idempotent producer: batch 9 starts at sequence 3
    assert out[out.index(f"Dumping {MULTI}/{SEG0}.index") + 1 :][:2] == [
        "offset: 8 position: 411",
        "offset: 14 position: 815",
    ]


def test_skip_record_metadata_prints_keys_and_payloads_only() -> None:
    proc = kcli("dump-log", "--print-data-log", "--skip-record-metadata", COMPRESSED / f"{SEG0}.log")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert lines[0] == "| key: none-0 payload: " + "none payload 0 " * 4
    assert len(lines) == 21


# ---------------------------------------------------------------- damage


def test_torn_tail_is_reported_as_invalid_bytes() -> None:
    proc = kcli("dump-log", TORN / "00000000000000000010.log")
    assert proc.returncode == 0
    out = proc.stdout.splitlines()
    assert out[-1] == "Found 61 invalid bytes at the end of 00000000000000000010.log"
    assert out[-2] == batch(14, 15, 246, 1700000000071, 123, 3060916006)


def test_flipped_byte_shows_isvalid_false_and_reading_goes_on() -> None:
    proc = kcli("dump-log", "--deep-iteration", FLIPPED / f"{SEG0}.log")
    assert proc.returncode == 0
    out = proc.stdout.splitlines()
    assert batch(4, 5, 246, 1700000000021, 123, 2605983868, valid=False) in out
    assert out[-3] == batch(6, 7, 369, 1700000000031, 123, 1409769657)
    assert not any("invalid bytes" in line for line in out)


def test_corrupt_header_is_reported_with_its_position(tmp_path: Path) -> None:
    log = tmp_path / f"{SEG0}.log"
    data = bytearray((MULTI / f"{SEG0}.log").read_bytes())
    data[202 + 16] = 7  # magic of the second batch
    log.write_bytes(data)
    proc = kcli("dump-log", log)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == [
        "Found a corrupt batch at position 202: unsupported record batch magic 7",
        f"Found {len(data) - 202} invalid bytes at the end of {SEG0}.log",
    ]


def test_max_bytes_reads_whole_batches_only_and_drops_the_trailer() -> None:
    proc = kcli("dump-log", "--max-bytes", 250, TORN / "00000000000000000010.log")
    out = proc.stdout.splitlines()
    assert [line.split(" lastOffset")[0] for line in out if line.startswith("baseOffset")] == [
        "baseOffset: 10",
        "baseOffset: 12",
    ]
    assert not any(line.startswith("Found") for line in out)


def test_index_entries_checked_against_the_log(tmp_path: Path) -> None:
    part = tmp_path / "demo-0"
    shutil.copytree(MULTI, part)
    index = part / f"{SEG0}.index"
    data = bytearray(index.read_bytes())
    struct.pack_into(">i", data, 12, 202)  # entry for offset 14 now points at the batch 3..5
    index.write_bytes(data)
    timeindex = part / f"{SEG0}.timeindex"
    tdata = bytearray(timeindex.read_bytes())
    struct.pack_into(">q", tdata, 0, 1700000000050)  # the batch ending at offset 8 has max timestamp ...56
    timeindex.write_bytes(tdata)
    proc = kcli("dump-log", index, timeindex)
    assert proc.returncode == 0
    assert "offset: 14 position: 202" in proc.stdout.splitlines()
    err = proc.stderr.splitlines()
    assert err[:2] == [f"Mismatches in :{index}", "  Index offset: 14, log offset: 5"]
    assert f"Found timestamp mismatch in :{timeindex}" in err
    assert "  Index timestamp: 1700000000050, log timestamp: 1700000000056" in err
    only = kcli("dump-log", "--verify-index-only", index)
    assert "offset: 14 position: 202" not in only.stdout and "Index offset: 14" in only.stderr


def test_non_consecutive_offsets_with_deep_iteration(tmp_path: Path) -> None:
    log = tmp_path / f"{SEG0}.log"
    recs = [(b"k", b"v", [], 1700000000000), (b"k", b"w", [], 1700000000001)]
    log.write_bytes(records.encode_batch(recs, 0) + records.encode_batch(recs, 5))
    proc = kcli("dump-log", "--deep-iteration", log)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [f"Non-consecutive offsets in {log}", "  1 is followed by 5"]


def test_index_sanity_check(tmp_path: Path) -> None:
    good = kcli("dump-log", "--index-sanity-check", KAFKA / "00000000000000000008.index")
    assert good.returncode == 0
    assert good.stdout.splitlines()[-1] == f"{KAFKA}/00000000000000000008.index passed sanity check."
    bad = tmp_path / f"{SEG0}.index"
    bad.write_bytes((MULTI / f"{SEG0}.index").read_bytes() + b"\x00\x01\x02")
    proc = kcli("dump-log", "--index-sanity-check", bad)
    assert proc.returncode == 1
    assert f"{bad} failed sanity check: index file {bad} is corrupt: found 19 bytes" in proc.stderr


# ---------------------------------------------------------------- JSON


def test_json_has_one_object_per_batch_record_and_entry() -> None:
    proc = kcli("dump-log", "--json", "--print-data-log", KAFKA)
    assert proc.returncode == 0 and proc.stderr == ""
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [o["type"] for o in objs]
    assert kinds.count("batch") == 7 and kinds.count("record") == 14
    assert kinds.count("index_entry") == 2 and kinds.count("timeindex_entry") == 3
    control = next(o for o in objs if o["type"] == "record" and o["offset"] == 11)
    assert control["endTxnMarker"] == "COMMIT" and control["coordinatorEpoch"] == 12
    assert objs[0] == {"type": "partition_metadata", "file": f"{KAFKA}/partition.metadata", "version": 0,
                       "topicId": "AAAAAAAAQACAAAAAAAAAAQ"}  # the id Kafka wrote into its folder
    first = objs[1]
    assert first["baseOffset"] == 0 and first["isvalid"] is True and first["compresscodec"] == "none"
    assert first["file"].endswith(f"{SEG0}.log") and first["deleteHorizonMs"] is None
    rec = next(o for o in objs if o["type"] == "record" and o["offset"] == 1)
    assert rec["key"] == "user-0-1" and rec["payload"] == '{"n": 1}'
    assert next(o for o in objs if o["type"] == "record" and o["offset"] == 0)["key"] is None


def test_json_reports_invalid_bytes() -> None:
    proc = kcli("dump-log", "--json", TORN / "00000000000000000010.log")
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last == {
        "type": "invalid_bytes",
        "file": str(TORN / "00000000000000000010.log"),
        "name": "00000000000000000010.log",
        "position": 369,
        "bytes": 61,
    }


# ---------------------------------------------------------------- bad input


def test_bad_inputs_are_one_error_lines(tmp_path: Path) -> None:
    assert "does not exist" in one_error_line(kcli("dump-log", tmp_path / "nope.log"), 3)
    random_file = tmp_path / "notes.txt"
    random_file.write_text("hello\n")
    assert "is not a segment file" in one_error_line(kcli("dump-log", random_file), 2)
    assert "does not look like a partition directory" in one_error_line(kcli("dump-log", tmp_path), 2)
    badly_named = tmp_path / "foo.index"
    badly_named.write_bytes(b"\0" * 8)
    assert "20-digit" in one_error_line(kcli("dump-log", badly_named), 2)


def test_garbage_with_a_log_suffix_is_reported_not_crashed(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_bytes(os.urandom(100) + b"\x7f" * 40)
    junk.write_bytes(struct.pack(">qi", 0, 10) + junk.read_bytes()[12:])  # a length below the minimum
    proc = kcli("dump-log", "--deep-iteration", junk)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == [
        "Found a corrupt batch at position 0: batch length 10 is below the minimum of 49",
        "Found 140 invalid bytes at the end of junk.log",
    ]


# ---------------------------------------------------------------- library


def test_resolve_inputs_expands_partition_dirs_in_segment_order() -> None:
    files = dump.resolve_inputs([str(TORN)])
    assert [os.path.basename(f) for f in files] == [
        f"{SEG0}.log",
        f"{SEG0}.index",
        f"{SEG0}.timeindex",
        "00000000000000000010.log",
        "00000000000000000010.index",
        "00000000000000000010.timeindex",
    ]


def test_undecodable_records_are_an_event_not_an_exception(tmp_path: Path) -> None:
    log = tmp_path / f"{SEG0}.log"
    good = bytearray(records.encode_batch([(b"k", b"value", [], 1)], codec=1))
    good[-8] ^= 0xFF  # the gzip trailer's CRC-32
    log.write_bytes(bytes(good))
    events = list(dump.dump_file(str(log), dump.DumpOptions(deep_iteration=True)))
    kinds = [e["type"] for e in events]
    assert kinds == ["file", "log_start", "batch", "record_error"]
    assert events[2]["isvalid"] is False
    assert "cannot decompress gzip" in str(events[3]["error"])


@pytest.mark.parametrize("fixture", [COMPRESSED, KAFKA, MULTI])
def test_fixtures_dump_without_diagnostics(fixture: Path) -> None:
    opts = dump.DumpOptions(print_data=True)
    events = [e for f in dump.resolve_inputs([str(fixture)]) for e in dump.dump_file(f, opts)]
    assert not [
        e
        for e in events
        if e["type"]
        not in ("file", "partition_metadata", "log_start", "batch", "record", "index_entry", "timeindex_entry",
                "index_empty")
    ]
    assert all(e["isvalid"] for e in events if e["type"] == "batch")
