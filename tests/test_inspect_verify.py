"""kcli log-dirs and verify on data dirs assembled from the committed fixtures."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest
from inspect_helpers import FIXTURES, SEG0, kcli, leader, make_datadir, one_error_line

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.inspect import verify
from kcli.storage import checkpoint, records
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog


def follower(dd: DataDir, topic: str) -> int:
    p = Metadata(dd).load().topics[topic].partitions[0]
    return next(b for b in p.replicas if b != p.leader)


@pytest.fixture
def dd(tmp_path: Path) -> DataDir:
    return make_datadir(
        tmp_path / "data", {"demo": ("multi", 2, {}), "torn": ("torn", 1, {}), "flipped": ("flipped", 1, {})}
    )


# ---------------------------------------------------------------- log-dirs


def test_log_dirs_json_when_piped(dd: DataDir) -> None:
    proc = kcli("log-dirs", data_dir=Path(dd.root))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and [b["broker"] for b in doc["brokers"]] == [0, 1]
    parts = {(b["broker"], p["topic"]): p for b in doc["brokers"] for p in b["partitions"]}
    demo = parts[(leader(dd, "demo"), "demo")]
    assert demo | {"path": None} == {
        "topic": "demo",
        "partition": 0,
        "path": None,
        "size": 2440,
        "segments": 3,
        "logStartOffset": 0,
        "logEndOffset": 36,
        "highWatermark": 36,
        "highWatermarkSource": "leader",
        "role": "leader",
        "inSync": True,
    }
    assert parts[(follower(dd, "demo"), "demo")]["role"] == "follower"
    torn = parts[(leader(dd, "torn"), "torn")]
    assert (torn["segments"], torn["logEndOffset"]) == (2, 16)  # the torn batch is not an offset


def test_log_dirs_reads_high_watermark_checkpoints(dd: DataDir) -> None:
    b = follower(dd, "demo")
    checkpoint.write_offsets(os.path.join(dd.broker_dir(b), checkpoint.HIGH_WATERMARK), {("demo", 0): 30})
    checkpoint.write_offsets(os.path.join(dd.broker_dir(b), checkpoint.LOG_START), {("demo", 0): 3})
    proc = kcli("log-dirs", "--topic", "demo", "--json", data_dir=Path(dd.root))
    doc = json.loads(proc.stdout)
    parts = {b["broker"]: b["partitions"] for b in doc["brokers"]}
    assert parts[b][0]["highWatermark"] == 30 and parts[b][0]["highWatermarkSource"] == "checkpoint"
    assert parts[b][0]["logStartOffset"] == 3
    assert all(p["topic"] == "demo" for ps in parts.values() for p in ps)


def test_log_dirs_table_on_a_terminal(
    dd: DataDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kcli.cli import main as cli_main
    from kcli.cli import output

    monkeypatch.setattr(output, "is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["--data-dir", dd.root, "log-dirs", "--topic", "demo"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "LOG-END" in out and "demo-0" in out and "follower" in out and "2.4 KiB" in out


def test_log_dirs_errors(tmp_path: Path, dd: DataDir) -> None:
    assert "does not exist" in one_error_line(kcli("log-dirs", "--topic", "nope", data_dir=Path(dd.root)), 3)
    assert "does not exist" in one_error_line(kcli("log-dirs", data_dir=tmp_path / "missing"), 3)


# ---------------------------------------------------------------- verify


def test_verify_reports_each_problem_and_exits_1(dd: DataDir) -> None:
    proc = kcli("verify", data_dir=Path(dd.root))
    assert proc.returncode == 1
    flipped, torn = leader(dd, "flipped"), leader(dd, "torn")
    assert proc.stdout.splitlines() == [
        f"broker-{flipped}/flipped-0/{SEG0}.log: position 246: CRC mismatch in batch 4..5 (stored crc 2605983868)",
        f"broker-{torn}/torn-0/00000000000000000010.log: position 369: 61 invalid bytes at the end: a torn write "
        "(a batch of 123 bytes with only 61 bytes left)",
        "verify: 2 problems (3 partitions, 4 replicas, 10 segments, 40 batches, 6848 bytes)",
    ]
    assert proc.stderr == "kcli: error: verify found 2 problems\n"


def test_verify_clean_topic_exits_0(dd: DataDir) -> None:
    proc = kcli("verify", "demo", "--deep", data_dir=Path(dd.root))
    assert proc.returncode == 0, proc.stdout
    assert (
        proc.stdout == "verify: no problems (1 partitions, 2 replicas, 6 segments, 24 batches, 4880 bytes)\n"
    )


def test_verify_json(dd: DataDir) -> None:
    proc = kcli("verify", "torn", "--json", data_dir=Path(dd.root))
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["summary"]["batches"] == 8
    [p] = doc["problems"]
    assert (p["topic"], p["partition"], p["broker"], p["position"]) == ("torn", 0, leader(dd, "torn"), 369)
    assert p["path"].endswith("torn-0/00000000000000000010.log")


def test_verify_unknown_topic_is_not_found(dd: DataDir) -> None:
    assert "does not exist" in one_error_line(kcli("verify", "nope", data_dir=Path(dd.root)), 3)


def test_verify_finds_diverged_replicas(dd: DataDir) -> None:
    b = follower(dd, "demo")
    log = PartitionLog(
        dd.partition_dir(b, "demo", 0), LogConfig(segment_bytes=1200, index_interval_bytes=300)
    )
    log.open_for_append(None)
    log.truncate_to(33)
    log.append(records.encode_batch([(b"x", b"diverged", [], 1700000009999)] * 3), leader_epoch=2)
    log.close()
    report = verify.verify_datadir(dd, "demo")
    [problem] = report.problems
    lead = leader(dd, "demo")
    assert problem.line() == (
        f"demo-0: replica on broker {b} differs from broker {lead} at offset 33: "
        f"batch 33..35 crc {_crc_at_33(dd, b)} vs batch 33..35 crc {_crc_at_33(dd, lead)}"
    )


def _crc_at_33(dd: DataDir, broker: int) -> int:
    return records.parse_header(PartitionLog(dd.partition_dir(broker, "demo", 0)).read(33)).crc


def test_verify_checks_the_high_watermark_checkpoint(dd: DataDir) -> None:
    lead, other = leader(dd, "demo"), follower(dd, "demo")
    PartitionLog(dd.partition_dir(other, "demo", 0)).truncate_to(18)
    checkpoint.write_offsets(os.path.join(dd.broker_dir(lead), checkpoint.HIGH_WATERMARK), {("demo", 0): 40})
    lines = [p.line() for p in verify.verify_datadir(dd, "demo").problems]
    assert lines == [
        "demo-0: the checkpointed high watermark 40 is past the leader's log end offset 36",
        f"demo-0: in-sync replica on broker {other} ends at offset 18, below the high watermark 40",
    ]


def test_verify_warnings_do_not_fail(dd: DataDir) -> None:
    stray = dd.partition_dir(follower(dd, "demo"), "torn", 0)
    shutil.copytree(FIXTURES / "kafka" / "kafka-0", stray)
    (Path(stray) / "00000000000000000099.index").write_bytes(b"")
    report = verify.verify_datadir(dd, "torn")
    warnings = [w.message for w in report.warnings]
    assert any(w.startswith("stray replica directory") for w in warnings)
    assert any("index file without its .log segment" in w for w in warnings)


def test_verify_tail_being_written_is_only_a_warning(dd: DataDir) -> None:
    lock = dd.partition_lock("torn", 0)
    assert lock.try_acquire()
    try:
        proc = kcli("verify", "torn", data_dir=Path(dd.root))
    finally:
        lock.release()
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.startswith("warning: ") and "may be an append in progress" in proc.stdout


def test_verify_index_problems(tmp_path: Path) -> None:
    part = tmp_path / "demo-0"
    shutil.copytree(FIXTURES / "multi" / "demo-0", part)
    index = part / f"{SEG0}.index"
    index.write_bytes(index.read_bytes()[:8] + struct.pack(">ii", 14, 500) + b"\x01")
    proc = kcli("verify", part)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[:2] == [
        f"demo-0/{SEG0}.index: size 17 is not a multiple of 8 (Kafka rebuilds such an index)",
        f"demo-0/{SEG0}.index: entry for offset 14 points at position 500, not at the start of a batch",
    ]


def test_verify_a_kafka_log_dir_by_path() -> None:
    proc = kcli("verify", FIXTURES / "kafka", "--deep")
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout == "verify: no problems (1 partitions, 1 replicas, 2 segments, 7 batches, 766 bytes)\n"


# ---------------------------------------------------------------- progress


def test_progress_bar_is_fed_on_a_terminal(
    dd: DataDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kcli.cli import inspect as cli_inspect
    from kcli.cli import main as cli_main
    from kcli.cli import output

    calls: list[tuple] = []

    class FakeBar:
        def __init__(self, total: int, description: str) -> None:
            calls.append(("start", total, description))

        def __enter__(self) -> FakeBar:
            return self

        def __exit__(self, *exc: object) -> None:
            calls.append(("stop",))

        def advance(self, n: int = 1) -> None:
            calls.append(("advance", n))

    monkeypatch.setattr(output, "progress", FakeBar)
    monkeypatch.setattr(cli_inspect, "_MIB", 500)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["--data-dir", dd.root, "verify", "demo"])
    assert exit_info.value.code == 0
    assert calls[0] == ("start", 4880, "verify") and calls[-1] == ("stop",)
    advanced = sum(c[1] for c in calls if c[0] == "advance")
    assert 4880 - 500 < advanced <= 4880
    assert "verify: no problems" in capsys.readouterr().out


def test_verify_ignores_kafka_preallocated_index_space(tmp_path: Path) -> None:
    part = tmp_path / "kafka-0"
    shutil.copytree(FIXTURES / "kafka" / "kafka-0", part)
    (part / "00000000000000000008.index").write_bytes(b"\0" * 80)  # an active segment with no entries yet
    (part / "00000000000000000008.timeindex").write_bytes(b"\0" * 120)
    report = verify.verify_path(str(part), deep=True)
    assert report.findings == [] and report.batches == 7
