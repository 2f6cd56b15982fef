"""``kcli reassign --list / --cancel`` and Kafka's reassignment JSON file on a data dir with no broker
running (the same flags through running brokers: tests/test_partition_reassignments.py)."""

from __future__ import annotations

import json

import pytest
from support.runner import KcliRunner

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.replica import reassignment


@pytest.fixture
def kcli(tmp_path) -> KcliRunner:
    """Three brokers; t (2 partitions) on [0, 1] each, led by 0, with records in t-0."""
    runner = KcliRunner(tmp_path / "data")
    runner("cluster", "init", "-n", 3)
    runner.in_process("topic", "create", "t", "-p", 2, "-r", 2)
    md = Metadata(DataDir(str(tmp_path / "data")))
    for p in (0, 1):
        md.update_partition("t", p, replicas=[0, 1], leader=0, isr=[0, 1])
    runner.produce_lines("t", "a\nb\n", "-p", 0)
    return runner


def _md(kcli) -> Metadata:
    return Metadata(DataDir(str(kcli.data_dir)))


def _pending_move(kcli) -> None:
    """t-0 on its way to [2, 1], broker 2 never having caught up (its brokers were stopped midway)."""
    reassignment.start(_md(kcli), "t", 0, [2, 1], running=set())
    (kcli.data_dir / "broker-2" / "t-0").mkdir(parents=True, exist_ok=True)


def test_list_shows_pending_reassignments_as_kafka_does(kcli):
    assert kcli("reassign", "--list").stdout == "No partition reassignments found.\n"
    _pending_move(kcli)
    out = kcli("reassign", "--list").stdout
    assert out == "Current partition reassignments:\nt-0: replicas: 2,1,0. adding: 2. removing: 0.\n"


def test_cancel_reverts_and_a_second_cancel_is_not_found(kcli):
    _pending_move(kcli)
    kcli("reassign", "--cancel", "--topic", "t", "--partition", "0")
    meta = _md(kcli).load().partition("t", 0)
    assert (meta.replicas, meta.leader, meta.isr) == ([0, 1], 0, [0, 1])
    assert reassignment.pending(DataDir(str(kcli.data_dir))) == {}
    assert not (kcli.data_dir / "broker-2" / "t-0").exists()  # the adding replica's folder went
    assert kcli("reassign", "--list").stdout == "No partition reassignments found.\n"
    again = kcli("reassign", "--cancel", "-t", "t", "-p", "0", ok=False)
    assert again.returncode == 3
    assert again.stderr == "kcli: error: t-0 has no reassignment in progress\n"
    assert kcli("reassign", "--cancel", "-t", "t", ok=False).returncode == 2


def _plan(tmp_path, doc) -> str:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_kafkas_json_file_is_executed(kcli, tmp_path):
    plan = _plan(tmp_path, {"version": 1, "partitions": [
        {"topic": "t", "partition": 0, "replicas": [2, 1], "log_dirs": ["any", "any"]},
        {"topic": "t", "partition": 1, "replicas": [1, 2]}]})
    kcli("reassign", "--reassignment-json-file", plan, "--execute")
    state = _md(kcli).load()
    assert [state.partition("t", p).replicas for p in (0, 1)] == [[2, 1], [1, 2]]
    assert kcli("consume", "t", "-p", "0", "-b", "-e").stdout.split() == ["a", "b"]


@pytest.mark.parametrize("bad, code", [
    ({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 1]},
                                   {"topic": "t", "partition": 1, "replicas": [0, 9]}]}, 2),
    ({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 1]},
                                   {"topic": "t", "partition": 5, "replicas": [0, 1]}]}, 3),
    ({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 1]},
                                   {"topic": "t", "partition": 0, "replicas": [1, 2]}]}, 2),
    ({"version": 2, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 1]}]}, 2),
    ({"version": 1, "partitions": [{"topic": "t", "partition": "0", "replicas": [2, 1]}]}, 2),
    ({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 1],
                                    "log_dirs": ["/x", "any"]}]}, 2),
    ({"version": 1, "partitions": []}, 2),
])
def test_a_bad_json_file_changes_nothing(kcli, tmp_path, bad, code):
    before, folders = _md(kcli).load(), sorted(kcli.data_dir.glob("broker-*/t-*"))
    out = kcli("reassign", "--reassignment-json-file", _plan(tmp_path, bad), "--execute", ok=False)
    assert out.returncode == code, out.stderr
    assert out.stderr.startswith("kcli: error: ") and out.stderr.count("\n") == 1
    after = _md(kcli).load()
    assert [after.partition("t", p).replicas for p in (0, 1)] == [before.partition("t", p).replicas for p in (0, 1)]
    assert sorted(kcli.data_dir.glob("broker-*/t-*")) == folders
