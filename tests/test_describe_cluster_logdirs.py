"""DescribeCluster (60) v0-1 and DescribeLogDirs (35) v0-4 against real brokers: raw requests, and the
admin clients that use them (confluent-kafka's describe_cluster, kafka-python's describe_cluster and
describe_log_dirs)."""

from __future__ import annotations

import os
import time

import pytest
from support.brokers import call, connect

from kcli.protocol import ApiKey, ErrorCode

# Kafka's cluster operations with no authorizer: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
# ALTER_CONFIGS, IDEMPOTENT_WRITE (AclOperation codes 5, 7-12)
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


@pytest.fixture
def two(brokers):
    brokers.init(2)
    started = [brokers.start(0), brokers.start(1)]
    deadline = time.monotonic() + 20
    while True:  # each broker lists the other once it has seen its heartbeat
        with connect(("127.0.0.1", started[1].port)) as sock:
            if len(call(sock, ApiKey.METADATA, 8, {"topics": []}).brokers) == 2:
                return started
        assert time.monotonic() < deadline, "the brokers never saw each other"
        time.sleep(0.1)


def _cluster_id(port: int) -> str:
    with connect(("127.0.0.1", port)) as sock:
        return call(sock, ApiKey.METADATA, 8, {"topics": []}).cluster_id


@pytest.mark.parametrize("version", [0, 1])
def test_describe_cluster_lists_both_brokers_and_the_acting_controller(two, version):
    b0, b1 = two
    for asked in (b0, b1):
        with connect(("127.0.0.1", asked.port)) as sock:
            resp = call(
                sock, ApiKey.DESCRIBE_CLUSTER, version, {"include_cluster_authorized_operations": False}
            )
        assert resp.error_code == ErrorCode.NONE and resp.error_message is None
        assert resp.cluster_id == _cluster_id(b0.port) and resp.cluster_id
        assert resp.controller_id == 0  # the lowest running broker acts as the controller
        assert [(b.broker_id, b.host, b.port, b.rack) for b in resp.brokers] == [
            (0, "127.0.0.1", b0.port, None),
            (1, "127.0.0.1", b1.port, None),
        ]
        assert resp.cluster_authorized_operations == -(1 << 31)  # not asked for
        if version == 1:
            assert resp.endpoint_type == 1


def test_describe_cluster_controller_moves_when_the_controller_stops(two):
    b0, b1 = two
    b0.stop()
    deadline = time.monotonic() + 30
    with connect(("127.0.0.1", b1.port)) as sock:
        while True:
            resp = call(sock, ApiKey.DESCRIBE_CLUSTER, 1, {"include_cluster_authorized_operations": False})
            if resp.controller_id == 1 and [b.broker_id for b in resp.brokers] == [1]:
                break
            assert time.monotonic() < deadline, f"controller still {resp.controller_id}"
            time.sleep(0.2)


def test_describe_cluster_authorized_operations_and_endpoint_types(broker):
    with connect(("127.0.0.1", broker.port)) as sock:
        resp = call(sock, ApiKey.DESCRIBE_CLUSTER, 1, {"include_cluster_authorized_operations": True})
        assert resp.cluster_authorized_operations == CLUSTER_OPERATIONS
        controllers = call(
            sock,
            ApiKey.DESCRIBE_CLUSTER,
            1,
            {"include_cluster_authorized_operations": False, "endpoint_type": 2},
        )
        assert controllers.error_code == ErrorCode.MISMATCHED_ENDPOINT_TYPE and controllers.brokers == []
        unknown = call(
            sock,
            ApiKey.DESCRIBE_CLUSTER,
            1,
            {"include_cluster_authorized_operations": False, "endpoint_type": 7},
        )
        assert unknown.error_code == ErrorCode.UNSUPPORTED_ENDPOINT_TYPE and unknown.error_message
        # the connection lives on
        assert (
            call(
                sock, ApiKey.DESCRIBE_CLUSTER, 0, {"include_cluster_authorized_operations": False}
            ).error_code
            == 0
        )


def test_confluent_describe_cluster(two):
    admin_mod = pytest.importorskip("confluent_kafka.admin")
    b0, b1 = two
    admin = admin_mod.AdminClient({"bootstrap.servers": b1.bootstrap})
    desc = admin.describe_cluster(include_authorized_operations=True, request_timeout=15).result(timeout=20)
    assert desc.cluster_id == _cluster_id(b0.port)
    # librdkafka's describe_cluster asks Metadata (not DescribeCluster), whose controller is the broker asked
    assert desc.controller.id == 1
    assert sorted((n.id, n.port) for n in desc.nodes) == [(0, b0.port), (1, b1.port)]


def test_kafka_python_describe_cluster(two):
    kafka_admin = pytest.importorskip("kafka.admin")
    b0, b1 = two
    # asked through broker 1: DescribeCluster names the acting controller (0), Metadata would name 1
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=b1.bootstrap, request_timeout_ms=15000)
    try:
        desc = admin.describe_cluster()
    finally:
        admin.close()
    assert desc["cluster_id"] == _cluster_id(b0.port)
    assert desc["controller_id"] == 0
    assert sorted((b["broker_id"], b["port"]) for b in desc["brokers"]) == [(0, b0.port), (1, b1.port)]
    # asked for with DescribeCluster (the Metadata fallback gives None): Kafka's set with no authorizer
    assert set(desc["authorized_operations"]) == {
        "CREATE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
    }


# ---------------------------------------------------------------- DescribeLogDirs


def _segment_sizes(folder, topic: str, partition: int) -> int:
    path = folder / f"{topic}-{partition}"
    return sum(os.path.getsize(path / n) for n in os.listdir(path) if n.endswith(".log"))


@pytest.fixture
def two_topics(broker):
    broker.kcli("topic", "create", "alpha", "-p", "2")
    broker.kcli("topic", "create", "beta")
    broker.kcli("produce", "alpha", "-p", "0", input="".join(f"a{i}\n" for i in range(50)))
    broker.kcli("produce", "alpha", "-p", "1", input="one\n")
    broker.kcli("produce", "beta", input="".join(f"b{i}\n" for i in range(20)))
    return broker


def _by_partition(result) -> dict[tuple[str, int], tuple[int, int, bool]]:
    return {
        (t.name, p.partition_index): (p.partition_size, p.offset_lag, p.is_future_key)
        for t in result.topics
        for p in t.partitions
    }


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_describe_log_dirs_sizes_match_the_segments(two_topics, version):
    b = two_topics
    with connect(("127.0.0.1", b.port)) as sock:
        resp = call(sock, ApiKey.DESCRIBE_LOG_DIRS, version, {"topics": None})
    if version >= 3:
        assert resp.error_code == ErrorCode.NONE
    [result] = resp.results
    assert result.error_code == ErrorCode.NONE
    assert os.path.samefile(result.log_dir, b.folder)
    expected = {
        (t, p): (_segment_sizes(b.folder, t, p), 0, False)
        for t, p in [("alpha", 0), ("alpha", 1), ("beta", 0)]
    }
    assert _by_partition(result) == expected
    assert expected[("alpha", 0)][0] > expected[("beta", 0)][0] > 0
    if version >= 4:
        volume = os.statvfs(b.folder)
        assert result.total_bytes == volume.f_blocks * volume.f_frsize
        assert 0 < result.usable_bytes <= result.total_bytes


def test_describe_log_dirs_topics_filter(two_topics):
    b = two_topics
    with connect(("127.0.0.1", b.port)) as sock:
        resp = call(sock, ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": [{"topic": "alpha", "partitions": [1]}]})
        assert list(_by_partition(resp.results[0])) == [("alpha", 1)]
        resp = call(sock, ApiKey.DESCRIBE_LOG_DIRS, 2, {"topics": [{"topic": "nope", "partitions": [0]}]})
        assert resp.results[0].topics == []


def test_kafka_python_describe_log_dirs(two_topics):
    kafka_admin = pytest.importorskip("kafka.admin")
    b = two_topics
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        everything = admin.describe_log_dirs()
        only_beta = admin.describe_log_dirs(topic_partitions=["beta"])
    finally:
        admin.close()
    [entry] = everything
    assert entry["broker"] == 0
    [log_dir] = entry["log_dirs"]
    sizes = {
        (t["name"], p["partition_index"]): p["partition_size"]
        for t in log_dir["topics"]
        for p in t["partitions"]
    }
    assert sizes == {
        (t, p): _segment_sizes(b.folder, t, p) for t, p in [("alpha", 0), ("alpha", 1), ("beta", 0)]
    }
    assert [t["name"] for t in only_beta[0]["log_dirs"][0]["topics"]] == ["beta"]


def test_describe_log_dirs_on_a_follower(brokers, two):
    """A follower lists its replica too: once caught up, the leader's size and a lag of 0."""
    b0, b1 = two
    brokers.kcli("topic", "create", "rep", "-r", "2")
    leader = b0 if _leads(b0, "rep") else b1
    follower = b1 if leader is b0 else b0
    producer = pytest.importorskip("kafka").KafkaProducer(bootstrap_servers=leader.bootstrap, acks="all")
    for i in range(30):
        producer.send("rep", f"r{i}".encode(), partition=0)
    producer.flush(timeout=20)
    producer.close()
    deadline = time.monotonic() + 20
    with connect(("127.0.0.1", follower.port)) as sock:
        while True:
            result = call(
                sock, ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": [{"topic": "rep", "partitions": [0]}]}
            )
            got = _by_partition(result.results[0]).get(("rep", 0))
            want = _segment_sizes(leader.folder, "rep", 0)
            if got == (want, 0, False):
                break
            assert time.monotonic() < deadline, f"follower reports {got}, leader has {want} bytes"
            time.sleep(0.2)
    assert os.path.samefile(result.results[0].log_dir, follower.folder)


def _leads(b, topic: str) -> bool:
    with connect(("127.0.0.1", b.port)) as sock:
        meta = call(sock, ApiKey.METADATA, 8, {"topics": [{"name": topic}]})
    return meta.topics[0].partitions[0].leader_id == b.broker_id
