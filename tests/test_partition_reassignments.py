"""AlterPartitionReassignments (45) v0 and ListPartitionReassignments (46) v0 against real brokers: raw
requests, kafka-python's admin client, and ``kcli reassign`` (which sends the former while brokers run).
The acting controller carries a reassignment out: adding replicas, then (once they are in sync) the
removing ones go; one that waits for a stopped broker stays listed, and can be cancelled."""

from __future__ import annotations

import os
import time

import pytest
from support.brokers import call, connect

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.protocol import ApiKey, ErrorCode


def _metadata(brokers) -> Metadata:
    return Metadata(DataDir(str(brokers.data_dir)))


def _wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


@pytest.fixture
def cluster(brokers):
    """Three brokers in the metadata, 0 and 1 running; t-0 on [0, 1] led by 0 with 200 records."""
    brokers.init(3)
    brokers.runner.in_process("topic", "create", "t", "-r", 2)
    _metadata(brokers).update_partition("t", 0, replicas=[0, 1], leader=0, isr=[0, 1])
    started = {0: brokers.start(0), 1: brokers.start(1)}
    brokers.runner.produce_lines("t", "".join(f"m{i}\n" for i in range(200)))
    return started


def _alter(sock, partitions: list[dict]) -> list[tuple[int, int]]:
    resp = call(sock, ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0,
                {"timeout_ms": 10000, "topics": [{"name": "t", "partitions": partitions}]})
    assert resp.error_code == ErrorCode.NONE
    return [(p.partition_index, p.error_code) for r in resp.responses for p in r.partitions]


def _list(sock, topics=None) -> dict:
    resp = call(sock, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, {"timeout_ms": 10000, "topics": topics})
    assert resp.error_code == ErrorCode.NONE
    return {(t.name, p.partition_index): (p.replicas, p.adding_replicas, p.removing_replicas)
            for t in resp.topics for p in t.partitions}


def test_a_reassignment_waiting_for_a_stopped_broker_is_listed_and_cancelled(brokers, cluster):
    with connect(("127.0.0.1", cluster[0].port)) as sock:
        assert _list(sock) == {}
        assert _alter(sock, [{"partition_index": 0, "replicas": [2, 1]}]) == [(0, ErrorCode.NONE)]
        # broker 2 does not run, so it never catches up: in flight, target and original together
        meta = _wait_for(lambda: (m := _metadata(brokers).load().partition("t", 0)).replicas == [2, 1, 0] and m,
                         "the adding replica never came into the replicas")
        assert meta.leader == 0 and sorted(meta.isr) == [0, 1]
        assert _list(sock) == {("t", 0): ([2, 1, 0], [2], [0])}
        assert _list(sock, [{"name": "t", "partition_indexes": [0, 5]}]) == {("t", 0): ([2, 1, 0], [2], [0])}
        assert _list(sock, [{"name": "other", "partition_indexes": [0]}]) == {}
        # cancelled: back to the original replicas
        assert _alter(sock, [{"partition_index": 0, "replicas": None}]) == [(0, ErrorCode.NONE)]
        assert _list(sock) == {}
        meta = _metadata(brokers).load().partition("t", 0)
        assert (meta.replicas, meta.leader, sorted(meta.isr)) == ([0, 1], 0, [0, 1])
        assert _alter(sock, [{"partition_index": 0, "replicas": None}]) == [(0, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS)]


def test_bad_reassignments_get_kafkas_codes_and_change_nothing(brokers, cluster):
    with connect(("127.0.0.1", cluster[1].port)) as sock:
        got = _alter(sock, [
            {"partition_index": 0, "replicas": []},
            {"partition_index": 0, "replicas": [1, 1]},
            {"partition_index": 0, "replicas": [0, 7]},
            {"partition_index": 3, "replicas": [0, 1]},
        ])
        assert got == [(0, ErrorCode.INVALID_REPLICA_ASSIGNMENT)] * 3 + [(3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
        resp = call(sock, ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, {"timeout_ms": 1000, "topics": [
            {"name": "nope", "partitions": [{"partition_index": 0, "replicas": [0]}]},
            {"name": "t", "partitions": [{"partition_index": 0, "replicas": [0, 7]}]},
        ]})
        codes = [(r.name, p.error_code, bool(p.error_message)) for r in resp.responses for p in r.partitions]
        assert codes == [("nope", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, True),
                         ("t", ErrorCode.INVALID_REPLICA_ASSIGNMENT, True)]
        assert _list(sock) == {}
        assert call(sock, ApiKey.METADATA, 8, {"topics": []}).brokers  # the connection lives on
    assert _metadata(brokers).load().partition("t", 0).replicas == [0, 1]


def test_kafka_python_moves_a_replica_to_a_running_broker(brokers, cluster):
    kafka_admin = pytest.importorskip("kafka.admin")
    from kafka.structs import TopicPartition

    cluster[2] = brokers.start(2)
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=cluster[1].bootstrap, request_timeout_ms=20000)
    try:
        result = admin.alter_partition_reassignments({TopicPartition("t", 0): [2, 1]})
        assert result == {TopicPartition("t", 0): None}
        # done once broker 2 is in sync: then nothing is listed, and 0's replica goes
        _wait_for(lambda: _metadata(brokers).load().partition("t", 0).replicas == [2, 1], "never finished")
        assert admin.list_partition_reassignments() == {}
    finally:
        admin.close()
    meta = _metadata(brokers).load().partition("t", 0)
    assert meta.leader in (1, 2) and sorted(meta.isr) == [1, 2]
    removed = DataDir(str(brokers.data_dir)).partition_dir(0, "t", 0)
    _wait_for(lambda: not os.path.exists(removed), "broker 0 kept its replica")
    assert brokers.kcli("consume", "t", "-b", "-e").stdout.split() == [f"m{i}" for i in range(200)]


def test_kafka_python_lists_an_ongoing_reassignment(brokers, cluster):
    kafka_admin = pytest.importorskip("kafka.admin")
    from kafka.structs import TopicPartition

    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=cluster[0].bootstrap, request_timeout_ms=20000)
    try:
        assert admin.alter_partition_reassignments({TopicPartition("t", 0): [0, 2]}) == {TopicPartition("t", 0): None}
        listed = _wait_for(lambda: admin.list_partition_reassignments(), "nothing listed")
        assert listed == {TopicPartition("t", 0): {"replicas": [0, 2, 1], "adding_replicas": [2],
                                                   "removing_replicas": [1]}}
        assert admin.alter_partition_reassignments({TopicPartition("t", 0): None}) == {TopicPartition("t", 0): None}
        assert admin.list_partition_reassignments() == {}
    finally:
        admin.close()
    assert _metadata(brokers).load().partition("t", 0).replicas == [0, 1]


def test_kcli_reassign_lists_and_cancels_through_the_brokers(brokers, cluster):
    """`kcli reassign --list` is ListPartitionReassignments, `--cancel` AlterPartitionReassignments with
    a null target; cancelling none is NO_REASSIGNMENT_IN_PROGRESS: a one-line error, exit 3."""
    assert brokers.kcli("reassign", "--list").stdout == "No partition reassignments found.\n"
    with connect(("127.0.0.1", cluster[0].port)) as sock:
        assert _alter(sock, [{"partition_index": 0, "replicas": [2, 1]}]) == [(0, ErrorCode.NONE)]
    _wait_for(lambda: _metadata(brokers).load().partition("t", 0).replicas == [2, 1, 0], "never started")
    assert brokers.kcli("reassign", "--list").stdout == (
        "Current partition reassignments:\nt-0: replicas: 2,1,0. adding: 2. removing: 0.\n")
    brokers.kcli("reassign", "--cancel", "-t", "t", "-p", "0")
    meta = _metadata(brokers).load().partition("t", 0)
    assert (meta.replicas, meta.leader, sorted(meta.isr)) == ([0, 1], 0, [0, 1])
    again = brokers.kcli("reassign", "--cancel", "-t", "t", "-p", "0", ok=False)
    assert (again.returncode, again.stderr) == (3, "kcli: error: t-0 has no reassignment in progress\n")
