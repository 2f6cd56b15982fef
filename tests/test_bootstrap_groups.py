"""``lag`` and ``group list/describe`` through ``--bootstrap-server``: committed offsets from OffsetFetch,
members from DescribeGroups, groups from ListGroups -- against tansu (offsets committed with raw
OffsetCommit requests, since tansu's group membership hands out no partitions), and against kcli's own
broker, where the answer must either agree with the data dir's view or say in one line which API the
broker lacks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.brokers import KAFKA_REBALANCE_DELAY, call, connect
from support.runner import KcliRunner

from kcli.net.connection import parse_bootstrap
from kcli.protocol import ApiKey

GROUP_APIS = (ApiKey.FIND_COORDINATOR, ApiKey.OFFSET_FETCH, ApiKey.LIST_GROUPS, ApiKey.DESCRIBE_GROUPS)


def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """A simple (generation -1) offset commit, as a consumer with a manual assignment sends it."""
    sock = connect(parse_bootstrap(bootstrap))
    try:
        body = call(
            sock,
            ApiKey.OFFSET_COMMIT,
            2,
            {
                "group_id": group,
                "generation_id": -1,
                "member_id": "",
                "retention_time_ms": -1,
                "topics": [
                    {
                        "name": topic,
                        "partitions": [
                            {"partition_index": p, "committed_offset": o, "committed_metadata": ""}
                            for p, o in offsets.items()
                        ],
                    }
                ],
            },
        )
    finally:
        sock.close()
    assert all(p.error_code == 0 for t in body.topics for p in t.partitions)


@pytest.fixture
def remote(tmp_path: Path, tansu) -> KcliRunner:
    runner = KcliRunner(tmp_path / "untouched")
    runner.env["KCLI_BOOTSTRAP_SERVER"] = tansu.bootstrap
    yield runner
    assert not runner.data_dir.exists()


def test_lag_and_groups_from_a_cluster(remote: KcliRunner, tansu) -> None:
    remote("topic", "create", "orders", "-p", "2")
    remote("produce", "orders", "-p", "0", input="a\nb\nc\nd\ne\n")
    remote("produce", "orders", "-p", "1", input="x\ny\nz\n")
    commit(tansu.bootstrap, "billing", "orders", {0: 2, 1: 3})
    commit(tansu.bootstrap, "audit", "orders", {0: 5})

    lag = json.loads(remote("lag", "--json").stdout)
    assert lag["groups"] == {"audit": 0, "billing": 3}
    assert lag["total_lag"] == 3
    rows = {
        (r["group"], r["partition"]): (r["current_offset"], r["log_end_offset"], r["lag"])
        for r in lag["partitions"]
    }
    assert rows == {("audit", 0): (5, 5, 0), ("billing", 0): (2, 5, 3), ("billing", 1): (3, 3, 0)}

    watched = remote("lag", "--watch", "--count", "2", "--interval", "0.1", "--json").stdout.splitlines()
    assert [json.loads(line)["total_lag"] for line in watched] == [3, 3]

    over = remote("lag", "--group", "billing", "--max-lag", "2", ok=False)
    assert over.returncode == 1 and "total lag 3 is above --max-lag 2" in over.stderr
    assert remote("group", "list").stdout.split() == ["audit", "billing"]

    (desc,) = json.loads(remote("group", "describe", "billing", "--json").stdout)
    assert desc["state"] == "Empty" and desc["members"] == [] and desc["total_lag"] == 3
    assert desc["coordinator"].startswith(f"{tansu.bootstrap} (id ")
    table = remote("group", "describe", "billing").stdout.splitlines()
    assert table[0].split("\t")[:6] == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
    ]
    assert [line.split("\t")[:6] for line in table[1:]] == [
        ["billing", "orders", "0", "2", "5", "3"],
        ["billing", "orders", "1", "3", "3", "0"],
    ]

    missing = remote("group", "describe", "nobody", ok=False)
    assert missing.returncode == 3 and "consumer group 'nobody' does not exist" in missing.stderr


def test_groups_through_a_kcli_broker(brokers) -> None:
    """kcli's broker keeps groups in the data dir; through its TCP listener the group view must either
    match the data dir's exactly or name the API the broker does not offer."""
    brokers.init()
    broker = brokers.start(0)
    brokers.kcli("produce", "t", input="".join(f"{i}\n" for i in range(10)))
    brokers.kcli("consume", "t", "--group", "g", "--reset", "earliest", "-e", "-c", "4")
    brokers.kcli("produce", "t", input="late\n")
    local_lag = json.loads(brokers.kcli("lag", "--json").stdout)
    assert local_lag["total_lag"] >= 1

    sock = connect(("127.0.0.1", broker.port))
    try:
        offered = {k.api_key for k in call(sock, ApiKey.API_VERSIONS, 2, {}).api_keys}
    finally:
        sock.close()
    over_tcp = brokers.kcli("--bootstrap-server", broker.bootstrap, "lag", "--json", ok=False)
    described = brokers.kcli(
        "--bootstrap-server", broker.bootstrap, "group", "describe", "g", "--json", ok=False
    )
    if all(api in offered for api in GROUP_APIS):
        assert over_tcp.returncode == 0, over_tcp.stderr
        assert json.loads(over_tcp.stdout) == local_lag
        assert described.returncode == 0, described.stderr
        assert json.loads(described.stdout)[0]["partitions"] == [
            {**r, "consumer_id": None, "host": None, "client_id": None} for r in local_lag["partitions"]
        ]
    else:
        for proc in (over_tcp, described):
            assert proc.returncode == 8
            assert proc.stderr.startswith(f"kcli: error: broker at {broker.bootstrap} does not support ")
            assert proc.stderr.count("\n") == 1


def test_members_of_a_group_kept_by_a_kcli_broker(brokers) -> None:
    """A Kafka client in a group coordinated by kcli's broker: DescribeGroups' member bytes decode to its
    subscription and assignment, shown by ``group describe --members`` through --bootstrap-server."""
    kafka = pytest.importorskip("kafka")
    brokers.init()
    broker = brokers.start(0, *KAFKA_REBALANCE_DELAY)
    sock = connect(("127.0.0.1", broker.port))
    try:
        offered = {k.api_key for k in call(sock, ApiKey.API_VERSIONS, 2, {}).api_keys}
    finally:
        sock.close()
    if not {*GROUP_APIS, ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP} <= offered:
        pytest.skip("this kcli broker does not coordinate groups")
    brokers.kcli("topic", "create", "t", "-p", "2")
    brokers.kcli("produce", "t", input="1\n2\n3\n")
    consumer = kafka.KafkaConsumer(
        "t",
        bootstrap_servers=broker.bootstrap,
        group_id="kg",
        client_id="kp",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        seen = 0
        deadline = time.monotonic() + 20
        while seen < 3 and time.monotonic() < deadline:
            seen += sum(len(batch) for batch in consumer.poll(200).values())
        consumer.commit()
        (desc,) = json.loads(
            brokers.kcli("--bootstrap-server", broker.bootstrap, "group", "describe", "kg", "--json").stdout
        )
    finally:
        consumer.close()
    assert seen == 3
    assert desc["state"] == "Stable" and desc["assignor"] == "range"
    (member,) = desc["members"]
    assert member["client_id"] == "kp" and member["topics"] == ["t"]
    assert member["assignment"] == [{"topic": "t", "partition": 0}, {"topic": "t", "partition": 1}]
    assert sum(r["current_offset"] for r in desc["partitions"]) == 3
