"""Replication guidance printed by `topic create`/`alter`: warnings on stderr, never a failure."""

from __future__ import annotations

import os
import subprocess
import sys


def run(tmp_path, *args):
    env = dict(os.environ, KCLI_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "kcli.cli.main", *args], env=env, capture_output=True, text=True)


def test_factor_four_and_min_insync_warnings(tmp_path):
    assert run(tmp_path, "cluster", "init", "--brokers", "4").returncode == 0
    r = run(tmp_path, "topic", "create", "wide", "-r", "4", "-c", "min.insync.replicas=4")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("kcli: warning:")]
    assert len(warnings) == 2
    assert "replication factor 4 stores every record 4 times" in warnings[0]
    assert "min.insync.replicas=4 >= replication factor 4" in warnings[1]


def test_sensible_settings_are_quiet(tmp_path):
    run(tmp_path, "cluster", "init", "--brokers", "3")
    r = run(tmp_path, "topic", "create", "ok", "-r", "3", "-c", "min.insync.replicas=2")
    assert r.returncode == 0 and "warning" not in r.stderr


def test_alter_to_risky_min_insync_warns(tmp_path):
    run(tmp_path, "cluster", "init", "--brokers", "3")
    run(tmp_path, "topic", "create", "t", "-r", "2")
    r = run(tmp_path, "topic", "alter", "t", "-c", "min.insync.replicas=2")
    assert r.returncode == 0
    assert "min.insync.replicas=2 >= replication factor 2" in r.stderr


def test_factor_above_broker_count_is_an_error(tmp_path):
    run(tmp_path, "cluster", "init", "--brokers", "2")
    r = run(tmp_path, "topic", "create", "t", "-r", "3")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "larger than the 2 available brokers" in r.stderr
