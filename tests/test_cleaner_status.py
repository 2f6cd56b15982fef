"""The cleaner's progress from the shell: ``topic describe`` shows the dirty ratio and cleanable bytes of
each compacted partition's leader replica, ``log-dirs`` the cleaner checkpoint against the log end and
the last pass (of ``kcli topic compact`` or of a broker's cleaner thread) from the broker folder's
``cleaner-status.json``; a damaged status file is ignored and a pass marked running by a dead process
is not running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

SEGMENT = "segment.bytes=16384"
KEYS, VERSIONS = 1000, 5
LINES = "".join(f"k{k}:v{k}.{v}\n" for v in range(VERSIONS) for k in range(KEYS))
OLD_DESCRIBE = {"partition", "leader", "replicas", "isr", "leader_epoch", "log_start_offset", "log_end_offset",
                "last_stable_offset"}
OLD_HEADERS = ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "EPOCH", "LOG-START", "LOG-END"]


def _described(run, topic: str, *args: object) -> dict:
    return json.loads(run(*args, "topic", "describe", topic, "--json").stdout)[0]["partitions"][0]


def _table(run, *args: object) -> list[dict[str, str]]:
    """``topic describe`` piped: tab-separated rows by header."""
    lines = run("topic", "describe", *args).stdout.splitlines()
    headers = lines[0].split("\t")
    return [dict(zip(headers, line.split("\t"), strict=True)) for line in lines[1:]]


def _replica(run, topic: str, broker: int = 0) -> dict:
    doc = json.loads(run("log-dirs", "--topic", topic, "--json").stdout)
    return next(p for b in doc["brokers"] if b["broker"] == broker for p in b["partitions"])


def _active_base(folder, topic: str) -> int:
    return max(int(n[:20]) for n in os.listdir(folder / f"{topic}-0") if n.endswith(".log"))


def test_describe_and_log_dirs_show_the_dirty_part_and_the_compact_pass(kcli, monkeypatch, capsys):
    kcli("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", SEGMENT)
    kcli("produce", "t", "-K:", "--batch-size", 50, input=LINES)
    before = _described(kcli, "t")
    assert before["dirty_ratio"] > 0.9 and before["cleanable_bytes"] > 100_000
    row = _table(kcli, "t")[0]
    assert float(row["DIRTY-RATIO"]) > 0.9 and int(row["CLEANABLE-BYTES"]) == before["cleanable_bytes"]
    cleaner = _replica(kcli, "t")["cleaner"]
    assert cleaner["firstDirtyOffset"] == 0 and cleaner["lastPass"] is None and cleaner["runningSinceMs"] is None
    assert cleaner["dirtyRatio"] == before["dirty_ratio"] and cleaner["cleanableBytes"] == before["cleanable_bytes"]

    started = time.time() * 1000
    done = json.loads(kcli("topic", "compact", "t", "--json").stdout)[0]
    after = _described(kcli, "t")
    assert after["dirty_ratio"] < before["dirty_ratio"] and after["cleanable_bytes"] == 0
    assert float(_table(kcli, "t")[0]["DIRTY-RATIO"]) == 0.0
    replica = _replica(kcli, "t")
    cleaner, last = replica["cleaner"], replica["cleaner"]["lastPass"]
    cleaned_to = _active_base(kcli.data_dir / "broker-0", "t")
    assert cleaner["firstDirtyOffset"] == last["firstDirtyOffset"] == cleaned_to < replica["logEndOffset"]
    assert (last["recordsKept"], last["recordsRemoved"], last["bytesBefore"], last["bytesAfter"]) == (
        done["records_kept"], done["records_removed"], done["bytes_before"], done["bytes_after"])
    assert started - 1000 <= last["startedMs"] <= last["endedMs"] <= time.time() * 1000
    assert last["durationMs"] == last["endedMs"] - last["startedMs"]
    assert cleaner["runningSinceMs"] is None

    from kcli.cli import main as cli_main
    from kcli.cli import output

    monkeypatch.setattr(output, "is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["--data-dir", str(kcli.data_dir), "log-dirs"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "log cleaner" in out and "CLEANED-TO" in out and f" {cleaned_to} " in out
    assert f" {done['records_removed']} " in out and "->" in out


def test_a_topic_that_is_not_compacted_is_described_as_before(kcli):
    kcli("topic", "create", "plain")
    kcli("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", SEGMENT)
    kcli("produce", "plain", "-K:", input=LINES)
    kcli("produce", "t", "-K:", "--batch-size", 50, input=LINES)
    assert set(_described(kcli, "plain")) == OLD_DESCRIBE
    assert kcli("topic", "describe", "plain").stdout.splitlines()[0].split("\t") == OLD_HEADERS
    assert "cleaner" not in _replica(kcli, "plain")
    rows = {r["TOPIC"]: r for r in _table(kcli)}  # both topics: the plain one's cleaner cells are "-"
    assert (rows["plain"]["DIRTY-RATIO"], rows["plain"]["CLEANABLE-BYTES"]) == ("-", "-")
    assert float(rows["t"]["DIRTY-RATIO"]) > 0.9


@pytest.mark.parametrize("garbage", [b"\x00garbage{", b"[1, 2]", b'{"partitions": {"t-0": "x"}}',
                                     b'{"partitions": {"t-0": {"last": {"started_ms": "soon"}, "running": 7}}}'])
def test_a_damaged_status_file_is_ignored(kcli, garbage):
    kcli("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", SEGMENT)
    kcli("produce", "t", "-K:", "--batch-size", 50, input=LINES)
    kcli("topic", "compact", "t")
    status = kcli.data_dir / "broker-0" / "cleaner-status.json"
    status.write_bytes(garbage)
    cleaner = _replica(kcli, "t")["cleaner"]
    assert cleaner["firstDirtyOffset"] == _active_base(kcli.data_dir / "broker-0", "t")
    assert cleaner["lastPass"] is None and cleaner["runningSinceMs"] is None
    kcli("topic", "compact", "t")  # the next pass writes a whole file again
    assert _replica(kcli, "t")["cleaner"]["lastPass"]["recordsRemoved"] == 0


def test_a_pass_runs_only_while_its_process_lives(kcli):
    kcli("topic", "create", "t", "-c", "cleanup.policy=compact")
    kcli("produce", "t", "-K:", input="a:1\n")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        status = kcli.data_dir / "broker-0" / "cleaner-status.json"
        status.write_text(json.dumps({"version": 1, "partitions": {
            "t-0": {"running": {"started_ms": 1_700_000_000_000, "pid": sleeper.pid}}}}))
        assert _replica(kcli, "t")["cleaner"]["runningSinceMs"] == 1_700_000_000_000
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _replica(kcli, "t")["cleaner"]["runningSinceMs"] is None  # killed mid-pass: not running


def test_log_dirs_shows_the_last_pass_of_a_brokers_cleaner(brokers):
    brokers.init(1)
    broker = brokers.start(0, "--override", "log.cleaner.backoff.ms=200")
    run = brokers.kcli
    run("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", SEGMENT, "-c", "min.cleanable.dirty.ratio=0.01",
        "-c", "min.compaction.lag.ms=3600000")
    run("produce", "t", "-K:", "--batch-size", 50, input=LINES)
    held = _described(run, "t")  # min.compaction.lag.ms holds every segment back: nothing to clean yet
    assert (held["dirty_ratio"], held["cleanable_bytes"]) == (0.0, 0)
    assert _replica(run, "t")["cleaner"]["lastPass"] is None
    run("config", "alter", "--topic", "t", "--set", "min.compaction.lag.ms=0")
    deadline = time.monotonic() + 60
    while (last := _replica(run, "t")["cleaner"]["lastPass"]) is None:
        assert time.monotonic() < deadline, "the broker's cleaner made no pass"
        time.sleep(0.2)
    assert last["recordsRemoved"] > 0 and last["bytesAfter"] < last["bytesBefore"]
    assert last["firstDirtyOffset"] == _active_base(broker.folder, "t")
    assert "log cleaner: t-0 (leader)" in broker.log()
    assert _described(run, "t")["dirty_ratio"] < 0.5  # read from the data dir while the broker runs
    remote = _described(run, "t", "--bootstrap-server", broker.bootstrap)  # no data dir: no cleaner columns
    assert set(remote) == OLD_DESCRIBE
    header = run("--bootstrap-server", broker.bootstrap, "topic", "describe", "t").stdout.splitlines()[0]
    assert header.split("\t") == OLD_HEADERS


def test_a_topic_created_again_starts_with_no_cleaner_history(kcli):
    """Deleting a topic drops its entries from the status file and from the cleaner checkpoint: the new
    topic of that name is dirty from its first offset and shows no pass of the old one."""
    kcli("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", SEGMENT)
    kcli("produce", "t", "-K:", "--batch-size", 50, input=LINES)
    kcli("topic", "compact", "t")
    assert _replica(kcli, "t")["cleaner"]["lastPass"] is not None
    kcli("topic", "delete", "t")
    kcli("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", SEGMENT)
    kcli("produce", "t", "-K:", "--batch-size", 50, input=LINES)
    cleaner = _replica(kcli, "t")["cleaner"]
    assert cleaner["lastPass"] is None and cleaner["firstDirtyOffset"] == 0 and cleaner["dirtyRatio"] > 0.9
