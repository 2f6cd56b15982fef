"""kill -9 inside ``kcli topic delete-records``: at every checkpoint rename, between the new log start's
checkpoint and the deletion of the segments below it, and halfway through deleting a segment.  After
the crash each replica's log start is the old one or the new one, never anything else; a consumer from
the beginning starts there; the next write session brings the replicas level and ``kcli verify``
passes; the command run again completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.runner import KcliRunner

from kcli.cluster.datadir import DataDir
from kcli.storage.log import PartitionLog

from .harness import CRASHPOINT

OLD, NEW, RECORDS = 0, 33, 60


def _start(data: Path, broker: int) -> int:
    log = PartitionLog(DataDir(str(data)).partition_dir(broker, "t", 0))
    try:
        return log.log_start_offset
    finally:
        log.close()


@pytest.mark.parametrize(
    "point",
    # write_checkpoints writes the recovery point, the log start, then the high watermark, per replica:
    # checkpoint:2 / :5 are the leader's / follower's log start rename
    ["checkpoint:1", "checkpoint:2", "checkpoint:3", "checkpoint:5", "log-start:1", "log-start:2",
     "retention:1", "retention:4"],
)
def test_kill_during_delete_records_leaves_the_old_or_the_new_start(tmp_path, point):
    data = tmp_path / "data"
    kcli = KcliRunner(data)
    kcli("cluster", "init", "-n", 2)
    kcli("topic", "create", "t", "-r", 2, "-c", "segment.bytes=300")
    kcli.produce_lines("t", "".join(f"m{i}\n" for i in range(RECORDS)), "--batch-size", 1)
    env = dict(os.environ, KCLI_DATA_DIR=str(data))
    crashed = subprocess.run(
        [sys.executable, CRASHPOINT, point, "--", "topic", "delete-records", "t", "-p", "0", "--before", str(NEW)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert crashed.returncode == -signal.SIGKILL, (point, crashed.stdout, crashed.stderr)
    starts = {b: _start(data, b) for b in (0, 1)}
    assert set(starts.values()) <= {OLD, NEW}, starts
    described = json.loads(kcli("topic", "describe", "t", "--json").stdout)[0]["partitions"][0]
    first = kcli("consume", "t", "-b", "-e").stdout.split()[0]
    assert first == f"m{starts[0]}" and described["log_start_offset"] == starts[0]
    # the next write session recovers and brings the follower's start level with the leader's
    kcli.produce_lines("t", "after\n")
    after = {b: _start(data, b) for b in (0, 1)}
    assert len(set(after.values())) == 1 and after[0] in (OLD, NEW), after
    verify = kcli("verify", ok=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    r = kcli("topic", "delete-records", "t", "-p", "0", "--before", str(NEW))
    assert r.stdout == f"partition: t-0\tlow_watermark: {NEW}\n"
    assert {b: _start(data, b) for b in (0, 1)} == {0: NEW, 1: NEW}
    assert kcli("consume", "t", "-b", "-e").stdout.split() == [f"m{i}" for i in range(NEW, RECORDS)] + ["after"]
    assert kcli("verify", ok=False).returncode == 0
