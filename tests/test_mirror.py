"""``kcli mirror`` against tansu: data dir -> cluster -> a second data dir keeps every record's partition,
key, value, headers and timestamp; reruns copy only what is new; a run killed with SIGKILL mid-way is
resumed with nothing lost and nothing doubled; the checkpoint's blind spot (acknowledged, not yet
recorded) is recognised; targets that cannot keep partitions, or that someone else wrote, are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.runner import KcliRunner
from support.waits import wait_for


@pytest.fixture
def here(tmp_path: Path) -> KcliRunner:
    return KcliRunner(tmp_path / "here")


@pytest.fixture
def there(tmp_path: Path, tansu) -> KcliRunner:
    runner = KcliRunner(tmp_path / "untouched")
    runner.env["KCLI_BOOTSTRAP_SERVER"] = tansu.bootstrap
    return runner


def dump(runner: KcliRunner, topic: str) -> dict[int, list[tuple]]:
    """Per partition, in offset order: (key, value, headers, timestamp) of every record (read in this
    process: the mirror is under test here, not consume)."""
    out: dict[int, list[tuple]] = {}
    for line in runner.in_process("consume", topic, "-b", "-e", "--json").stdout.splitlines():
        r = json.loads(line)
        out.setdefault(r["partition"], []).append((r["key"], r["value"], r["headers"], r["timestamp"]))
    return out


def produce_json(runner: KcliRunner, topic: str, first: int, count: int, partitions: int) -> None:
    lines = []
    for i in range(first, first + count):
        rec = {
            "key": f"k{i}" if i % 7 else None,
            "value": None if i % 13 == 5 else f"value-{i}",
            "timestamp": 1_700_000_000_000 + i * 10,
            "headers": [["seq", str(i)], ["h", None]] if i % 3 else [],
        }
        if rec["key"] is None:
            rec["partition"] = i % partitions
        lines.append(json.dumps(rec) + "\n")
    runner.produce_lines(topic, "".join(lines), "--json")


def checkpoint(runner: KcliRunner) -> Path:
    (path,) = (runner.data_dir / "cluster" / "mirror").glob("*.json")
    return path


def test_round_trip_through_the_cluster_keeps_everything(
    here: KcliRunner, there: KcliRunner, tansu, tmp_path: Path
) -> None:
    here.in_process("topic", "create", "orders", "-p", "3")
    produce_json(here, "orders", 0, 500, 3)
    first = here("mirror", "orders", "--to", tansu.bootstrap, "-z", "zstd")
    assert "Created topic orders with 3 partition(s)" in first.stderr
    assert "Mirrored 500 record(s) of orders (3 partition(s))" in first.stderr
    assert dump(there, "orders") == dump(here, "orders")

    back = KcliRunner(tmp_path / "back")
    summary = json.loads(
        back("mirror", "orders", "--from", tansu.bootstrap, "--to-topic", "copy", "--json").stdout
    )
    assert summary["copied"] == 500 and summary["created"] and summary["partitions"] == 3
    assert dump(back, "copy") == dump(here, "orders")
    assert back("topic", "describe", "copy", "--json").stdout.count('"partition"') == 3


def test_a_rerun_copies_only_what_is_new(here: KcliRunner, there: KcliRunner, tansu) -> None:
    here.in_process("topic", "create", "t", "-p", "2")
    produce_json(here, "t", 0, 100, 2)
    here("mirror", "t", "--to", tansu.bootstrap)
    again = json.loads(here("mirror", "t", "--to", tansu.bootstrap, "--json").stdout)
    assert again["copied"] == 0 and again["resumed"]
    produce_json(here, "t", 100, 40, 2)
    more = json.loads(here("mirror", "t", "--to", tansu.bootstrap, "--json").stdout)
    assert more["copied"] == 40
    assert dump(there, "t") == dump(here, "t")


def test_killed_mid_way_resumes_without_loss_or_duplicates(
    here: KcliRunner, there: KcliRunner, tansu
) -> None:
    here.in_process("topic", "create", "big", "-p", "3")
    total = 20_000
    here.produce_lines("big", "".join(f"key{i}:{i:08d}\n" for i in range(total)), "-K:")
    proc = here.popen(
        "mirror",
        "big",
        "--to",
        tansu.bootstrap,
        "--batch-bytes",
        "4096",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    copied = 0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                doc = json.loads(checkpoint(here).read_text())
                copied = sum(p["copied"] for p in doc["partitions"].values())
            except (ValueError, FileNotFoundError):
                pass
            if copied >= total // 10:
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 0 < copied < total, "the mirror should have been killed part of the way through"

    second = json.loads(here("mirror", "big", "--to", tansu.bootstrap, "--json").stdout)
    assert second["resumed"] and second["copied"] + second["recovered"] <= total
    expected = dump(here, "big")
    assert dump(there, "big") == expected
    assert sum(map(len, expected.values())) == total


def test_acknowledged_but_unrecorded_records_are_not_sent_again(
    here: KcliRunner, there: KcliRunner, tansu
) -> None:
    """A process dying between the target's acknowledgement and the checkpoint write: simulated by
    putting back the checkpoint of an earlier run after a later one."""
    here.in_process("topic", "create", "t", "-p", "2")
    produce_json(here, "t", 0, 50, 2)
    here("mirror", "t", "--to", tansu.bootstrap)
    path = checkpoint(here)
    earlier = path.read_bytes()
    produce_json(here, "t", 50, 30, 2)
    here("mirror", "t", "--to", tansu.bootstrap)
    path.write_bytes(earlier)
    produce_json(here, "t", 80, 5, 2)
    third = json.loads(here("mirror", "t", "--to", tansu.bootstrap, "--json").stdout)
    assert (third["recovered"], third["copied"]) == (30, 5)
    assert dump(there, "t") == dump(here, "t")


def test_records_written_by_someone_else_stop_the_mirror(here: KcliRunner, there: KcliRunner, tansu) -> None:
    here.in_process("topic", "create", "t")
    produce_json(here, "t", 0, 10, 1)
    here("mirror", "t", "--to", tansu.bootstrap)
    there.produce_lines("t", "intruder\n")
    proc = here("mirror", "t", "--to", tansu.bootstrap, ok=False)
    assert proc.returncode == 1
    assert "has 1 record(s) after offset 10 that are not the next records of t-0" in proc.stderr
    assert dump(there, "t")[0][-1][1] == "intruder"


def test_a_target_with_fewer_partitions_is_refused(here: KcliRunner, there: KcliRunner, tansu) -> None:
    here.in_process("topic", "create", "t", "-p", "3")
    produce_json(here, "t", 0, 10, 3)
    there.in_process("topic", "create", "t", "-p", "2")
    proc = here("mirror", "t", "--to", tansu.bootstrap, ok=False)
    assert proc.returncode == 1
    assert "has 2 partition(s), fewer than the 3 of 't'" in proc.stderr
    assert "Created" not in proc.stderr
    assert not list((here.data_dir / "cluster" / "mirror").glob("*.json")), "nothing recorded"


def test_follow_keeps_copying_until_interrupted(here: KcliRunner, there: KcliRunner, tansu) -> None:
    here.in_process("topic", "create", "live")
    here.produce_lines("live", "one\n")
    proc = here.popen(
        "mirror", "live", "--to", tansu.bootstrap, "--follow", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        def mirrored() -> str:
            return there.in_process("consume", "live", "-b", "-e", ok=False).stdout

        wait_for("the first record mirrored", lambda: mirrored() == "one\n", 20)
        here.produce_lines("live", "two\nthree\n")
        wait_for("all three records mirrored", lambda: mirrored() == "one\ntwo\nthree\n", 20)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Interrupted: mirrored 3 record(s) of live" in err.decode()


def test_usage(here: KcliRunner) -> None:
    for args in (["mirror", "t"], ["mirror", "t", "--to", "a:1", "--from", "b:2"]):
        proc = here(*args, ok=False)
        assert proc.returncode == 2 and "exactly one of --to" in proc.stderr
    missing = here("mirror", "nope", "--to", "127.0.0.1:1", ok=False)
    assert missing.returncode == 3 and "topic 'nope' does not exist" in missing.stderr


def test_checkpoint_lives_under_the_data_dir(here: KcliRunner, tansu) -> None:
    here.in_process("topic", "create", "t")
    here("mirror", "t", "--to", tansu.bootstrap, "--to-topic", "t2")
    path = checkpoint(here)
    assert path.name == f"to-t-127.0.0.1_{tansu.port}-t2.json"
    doc = json.loads(path.read_text())
    assert doc["direction"] == "to" and doc["target_topic"] == "t2" and doc["partitions"]["0"]["copied"] == 0
    assert oct(os.stat(path).st_mode)[-3:] in ("644", "600")


def test_a_recreated_target_is_not_silently_refilled_in_part(
    here: KcliRunner, there: KcliRunner, tansu
) -> None:
    here.in_process("topic", "create", "t")
    produce_json(here, "t", 0, 10, 1)
    here("mirror", "t", "--to", tansu.bootstrap)
    there.in_process("topic", "delete", "t")
    proc = here("mirror", "t", "--to", tansu.bootstrap, ok=False)
    assert proc.returncode == 1
    assert "ends at offset 0, before the 10 this mirror had written" in proc.stderr
    assert f"hint: delete {checkpoint(here)} to copy from the start again" in proc.stderr
    checkpoint(here).unlink()
    here("mirror", "t", "--to", tansu.bootstrap)
    assert dump(there, "t") == dump(here, "t")


def test_two_runs_of_the_same_mirror_do_not_overlap(here: KcliRunner, tansu) -> None:
    from kcli.cluster.datadir import FileLock

    here.in_process("topic", "create", "t")
    here("mirror", "t", "--to", tansu.bootstrap)
    lock = FileLock(str(checkpoint(here)) + ".lock", 0).acquire()  # as a running mirror holds it
    try:
        proc = here("mirror", "t", "--to", tansu.bootstrap, ok=False)
    finally:
        lock.release()
    assert proc.returncode == 5 and f"held by pid {os.getpid()}" in proc.stderr


def test_records_of_aborted_transactions_are_not_copied(here: KcliRunner, there: KcliRunner, tansu) -> None:
    """The source is read read_committed: an aborted transaction's records stay behind."""
    here("produce", "t", "--transactional-id", "ok", input="c1\nc2\n")
    doomed = here.popen("produce", "t", "--transactional-id", "doomed", stdin=subprocess.PIPE,
                        stderr=subprocess.DEVNULL)
    assert doomed.stdin is not None
    doomed.stdin.write(b"a1\na2\n")
    doomed.stdin.flush()
    wait_for("the open transaction's records",
             lambda: len(here("consume", "t", "-b", "-e", "--isolation-level", "read_uncommitted").stdout.split())
             == 4)
    doomed.send_signal(signal.SIGTERM)  # aborts it
    assert doomed.wait(30) == 143
    here("produce", "t", input="c3\n")
    summary = json.loads(here("mirror", "t", "--to", tansu.bootstrap, "--json").stdout)
    assert summary["copied"] == 3
    assert [value for _k, value, _h, _t in dump(there, "t")[0]] == ["c1", "c2", "c3"]
