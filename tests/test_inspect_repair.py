"""kcli repair on partition dirs copied from the committed fixtures, and an end-to-end run."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_helpers import FIXTURES, SEG0, kcli, leader, make_datadir, one_error_line

from kcli.cluster.datadir import DataDir
from kcli.inspect import layout, repair, verify
from kcli.storage import checkpoint, records
from kcli.storage.log import PartitionLog


@pytest.fixture
def dd(tmp_path: Path) -> DataDir:
    return make_datadir(
        tmp_path / "data", {"demo": ("multi", 2, {}), "torn": ("torn", 1, {}), "flipped": ("flipped", 1, {})}
    )


# ---------------------------------------------------------------- repair


def test_repair_dry_run_changes_nothing(dd: DataDir) -> None:
    part = Path(dd.partition_dir(leader(dd, "flipped"), "flipped", 0))
    before = {p.name: p.read_bytes() for p in part.iterdir()}
    proc = kcli("repair", part)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"Repair plan for {part} (topic flipped, partition 0):",
        f"  truncate {SEG0}.log: from 492 to 246 bytes (CRC mismatch in batch 4..5 at position 246); "
        "offsets 4..15 are dropped; the cut bytes are kept in 00000000000000000000.log.246.damaged; its indexes "
        "are rebuilt",
        "  move segment 00000000000000000008 aside: 492 bytes after the truncation point, kept in "
        "00000000000000000008.log.0.damaged",
        "log end offset would go from 16 to 4",
        "dry run: nothing was changed; run again with --execute to apply this plan",
    ]
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before


def test_repair_execute_cuts_at_the_corrupt_batch(dd: DataDir) -> None:
    part = dd.partition_dir(leader(dd, "flipped"), "flipped", 0)
    proc = kcli("repair", part, "--execute")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "log end offset is now 4 (was 16)"
    assert layout.log_bases(part) == [0] and os.path.getsize(os.path.join(part, f"{SEG0}.log")) == 246
    assert kcli("verify", "flipped", data_dir=Path(dd.root)).returncode == 0
    log = PartitionLog(part)
    log.open_for_append(None)
    assert log.append(records.encode_batch([(None, b"after repair", [], 1)])).base_offset == 4
    log.close()


def test_repair_torn_tail_and_resume_writing(dd: DataDir) -> None:
    part = dd.partition_dir(leader(dd, "torn"), "torn", 0)
    Path(part, "kcli-writer-state").write_text("10 430 16 0\n")
    Path(part, "00000000000000000016.snapshot").write_bytes(b"")  # producer state at the new end: kept
    Path(part, "00000000000000000020.snapshot").write_bytes(b"")  # ... past the cut: removed
    proc = kcli("repair", part, "--execute", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["executed"] is True and doc["logEndOffsetAfter"] == 16
    assert [a["kind"] for a in doc["actions"]] == ["truncate", "remove_state", "remove_state"]
    assert os.path.getsize(os.path.join(part, "00000000000000000010.log")) == 369
    assert not os.path.exists(os.path.join(part, "kcli-writer-state"))
    assert not os.path.exists(os.path.join(part, "00000000000000000020.snapshot"))
    assert os.path.exists(os.path.join(part, "00000000000000000016.snapshot"))
    again = kcli("repair", part)
    assert again.stdout.startswith("nothing to repair in ")


def test_repair_rebuilds_indexes_with_the_topic_interval(tmp_path: Path) -> None:
    dd = make_datadir(tmp_path / "data", {"demo": ("multi", 1, {"index.interval.bytes": 300})})
    part = Path(dd.partition_dir(leader(dd, "demo"), "demo", 0))
    original = {n: (part / n).read_bytes() for n in (f"{SEG0}.index", f"{SEG0}.timeindex")}
    (part / f"{SEG0}.index").write_bytes(struct.pack(">ii", 14, 7) + b"\x00\x00")
    (part / f"{SEG0}.timeindex").write_bytes(b"")
    plan = repair.plan_repair(layout.locate_partition(str(part)))
    assert [a.kind for a in plan.actions] == ["rebuild_indexes"]
    assert plan.index_interval == 300
    proc = kcli("repair", part, "--execute")
    assert proc.returncode == 0, proc.stderr
    # rebuilt exactly as the writer made them, the rolled segment's final time index entry included
    assert {n: (part / n).read_bytes() for n in original} == original


def test_repair_trims_leader_epochs_past_the_cut(tmp_path: Path) -> None:
    dd = make_datadir(tmp_path / "data", {"demo": ("multi", 1, {})})
    part = dd.partition_dir(leader(dd, "demo"), "demo", 0)
    seg = Path(part, "00000000000000000018.log")
    data = bytearray(seg.read_bytes())
    data[202 + 16] = 9  # bad magic in the second batch: offsets 21.. are cut
    seg.write_bytes(data)
    assert checkpoint.read_epochs(os.path.join(part, checkpoint.LEADER_EPOCH)) == [(0, 0), (2, 21)]
    proc = kcli("repair", part, "--execute")
    assert proc.returncode == 0, proc.stderr
    assert "drop leader epochs [2] that start at or after offset 21" in proc.stdout
    assert checkpoint.read_epochs(os.path.join(part, checkpoint.LEADER_EPOCH)) == [(0, 0)]
    assert layout.log_bases(part) == [0, 18]


def test_repair_refuses_while_a_writer_holds_the_lock(dd: DataDir) -> None:
    part = dd.partition_dir(leader(dd, "torn"), "torn", 0)
    lock = dd.partition_lock("torn", 0)
    assert lock.try_acquire()
    try:
        line = one_error_line(kcli("repair", part, "--execute"), 5)
    finally:
        lock.release()
    assert f"partition torn-0 is locked by pid {os.getpid()}, a writer is active" in line
    assert os.path.getsize(os.path.join(part, "00000000000000000010.log")) == 430


def test_repair_refuses_a_kafka_log_dir_in_use(tmp_path: Path) -> None:
    log_dir = tmp_path / "kafka-logs"
    shutil.copytree(FIXTURES / "kafka", log_dir)
    with open(log_dir / ".lock", "w") as fh:
        fcntl.lockf(fh.fileno(), fcntl.LOCK_EX)
        line = one_error_line(kcli("repair", log_dir / "kafka-0"), 5)
    assert "a Kafka broker holds" in line
    proc = kcli("repair", log_dir / "kafka-0")
    assert proc.returncode == 0 and proc.stdout.startswith("nothing to repair in ")


def test_repair_refuses_what_is_not_a_partition_dir(dd: DataDir, tmp_path: Path) -> None:
    assert "does not look like a partition directory" in one_error_line(kcli("repair", dd.broker_dir(0)), 2)
    assert "does not exist" in one_error_line(kcli("repair", tmp_path / "gone-0"), 3)
    some_file = tmp_path / "t-0"
    some_file.write_text("x")
    assert "is not a directory" in one_error_line(kcli("repair", some_file), 2)
    empty = tmp_path / "empty-0"  # a partition dir before its first write
    empty.mkdir()
    assert kcli("repair", empty).stdout.startswith("nothing to repair in ")
    (empty / "notes.txt").write_text("x")
    assert "does not look like a partition directory" in one_error_line(kcli("repair", empty), 2)


def test_repair_caps_checkpoints_at_the_new_log_end(dd: DataDir) -> None:
    b = leader(dd, "flipped")
    hw = os.path.join(dd.broker_dir(b), checkpoint.HIGH_WATERMARK)
    checkpoint.write_offsets(hw, {("flipped", 0): 16, ("torn", 0): 16})
    proc = kcli("repair", dd.partition_dir(b, "flipped", 0), "--execute")
    assert proc.returncode == 0, proc.stderr
    assert "  rewrite replication-offset-checkpoint: flipped 0: 16 becomes 4, the log end" in proc.stdout
    assert checkpoint.read_offsets(hw) == {("flipped", 0): 4, ("torn", 0): 16}
    assert verify.verify_datadir(dd, "flipped").problems == []


def test_end_to_end_with_embedded_produce(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"}
    env.update(KCLI_DATA_DIR=str(tmp_path / "data"), NO_COLOR="1")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kcli.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    assert run("cluster", "init", "--brokers", "2").returncode == 0
    assert run("topic", "create", "e2e", "--partitions", "1", "--replication-factor", "2").returncode == 0
    for n in range(2):
        assert run("produce", "e2e", stdin="".join(f"line {n}.{i}\n" for i in range(50))).returncode == 0
    assert run("verify").returncode == 0
    dd = DataDir(str(tmp_path / "data"))
    part = dd.partition_dir(leader(dd, "e2e"), "e2e", 0)
    with open(os.path.join(part, f"{SEG0}.log"), "ab") as fh:
        fh.write(b"\0\0\0\0\0\0\0\x64\0\0\0\x80 a write cut short")  # a batch header, then nothing
    proc = run("verify", "e2e")
    assert proc.returncode == 1 and "invalid bytes at the end: a torn write" in proc.stdout
    assert run("repair", part, "--execute").returncode == 0
    assert run("verify", "e2e").returncode == 0
    assert run("produce", "e2e", stdin="after the repair\n").returncode == 0
    doc = json.loads(run("log-dirs", "--topic", "e2e").stdout)
    ends = {b["broker"]: [p["logEndOffset"] for p in b["partitions"]] for b in doc["brokers"]}
    assert ends == {0: [101], 1: [101]}
    assert run("verify", "--deep").returncode == 0


def _embedded(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"}
    env.update(KCLI_DATA_DIR=str(tmp_path / "data"), NO_COLOR="1")

    def run(*args: object, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kcli.cli.main", *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    return run


def test_repair_cuts_zeros_after_a_closed_segments_last_batch_and_keeps_the_segments_after(tmp_path: Path) -> None:
    run = _embedded(tmp_path)
    assert run("cluster", "init", "--brokers", "1").returncode == 0
    assert run("topic", "create", "z", "-p", "1", "-c", "segment.bytes=20000").returncode == 0
    lines = "".join(f"record-{i}\n" for i in range(3000))
    assert run("produce", "z", "--batch-size", "50", stdin=lines).returncode == 0
    part = Path(tmp_path, "data", "broker-0", "z-0")
    logs = sorted(part.glob("*.log"))
    assert len(logs) >= 5
    damaged = logs[-4]  # three intact segments after it, the active one included
    intact = {p.name: p.read_bytes() for p in logs}
    size = damaged.stat().st_size
    with open(damaged, "ab") as fh:
        fh.write(b"\0" * 300)

    proc = run("verify", "z")
    assert proc.returncode == 1 and f"{damaged.name}: position {size}:" in proc.stdout, proc.stdout
    plan = run("repair", part)
    assert plan.returncode == 0, plan.stderr
    assert "delete" not in plan.stdout and "log end offset would go from 3000 to 3000" in plan.stdout, plan.stdout
    proc = run("repair", part, "--execute")
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in sorted(part.glob("*.log"))} == intact
    aside = part / f"{damaged.name}.{size}.damaged"
    assert aside.read_bytes() == b"\0" * 300  # what was cut is kept, not deleted
    proc = run("verify", "z")
    assert proc.returncode == 0 and f"warning: {os.path.relpath(aside, tmp_path / 'data')}: bytes" in proc.stdout
    consumed = run("consume", "z", "-b", "-e", "-f", "%o\\n")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == [str(i) for i in range(3000)]


def test_repair_moves_unreachable_segments_aside(dd: DataDir) -> None:
    part = Path(dd.partition_dir(leader(dd, "flipped"), "flipped", 0))
    later = (part / "00000000000000000008.log").read_bytes()
    tail = (part / f"{SEG0}.log").read_bytes()[246:]
    assert kcli("repair", part, "--execute").returncode == 0
    assert (part / "00000000000000000008.log.0.damaged").read_bytes() == later
    assert (part / f"{SEG0}.log.246.damaged").read_bytes() == tail
    assert not list(part.glob("00000000000000000008.*index"))
