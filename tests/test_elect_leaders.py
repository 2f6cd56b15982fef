"""ElectLeaders (43) v0-2 against real brokers: raw requests with every outcome Kafka names, confluent-
kafka's and kafka-python's elect_leaders, and ``kcli leader-election`` going through the API."""

from __future__ import annotations

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
def stage(brokers):
    """Broker 1 never runs; only broker 0 does.  a-0: preferred 0, led by 1 (preferred election needed);
    b-0: preferred 1 (not live); off-0: offline, its only in-sync replica 1 (unclean election elects 0);
    solo-0: only on 1 (no eligible leader)."""
    brokers.init(2)
    run = brokers.runner.in_process
    for name, rf in (("a", 2), ("b", 2), ("off", 2), ("solo", 1)):
        run("topic", "create", name, "-r", rf)
    md = _metadata(brokers)
    md.update_partition("a", 0, replicas=[0, 1], leader=1, isr=[0, 1])
    md.update_partition("b", 0, replicas=[1, 0], leader=0, isr=[0, 1])
    md.update_partition("off", 0, replicas=[0, 1], leader=-1, isr=[1])
    md.update_partition("solo", 0, replicas=[1], leader=1, isr=[1])
    return brokers.start(0)


def _elect(sock, version: int, election_type: int, partitions) -> dict:
    body = {"election_type": election_type, "topic_partitions": partitions, "timeout_ms": 10000}
    resp = call(sock, ApiKey.ELECT_LEADERS, version, body)
    if version >= 1:
        assert resp.error_code == ErrorCode.NONE
    return {
        (r.topic, p.partition_id): (p.error_code, p.error_message is None)
        for r in resp.replica_election_results
        for p in r.partition_result
    }


def _tp(*pairs):
    out: dict[str, list[int]] = {}
    for topic, p in pairs:
        out.setdefault(topic, []).append(p)
    return [{"topic": t, "partitions": ps} for t, ps in out.items()]


@pytest.mark.parametrize("version", [0, 1, 2])
def test_preferred_election_outcomes(stage, brokers, version):
    with connect(("127.0.0.1", stage.port)) as sock:
        got = _elect(sock, version, 0, _tp(("a", 0), ("b", 0), ("nope", 0), ("a", 7)))
        assert got == {
            ("a", 0): (ErrorCode.NONE, True),
            ("b", 0): (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, False),
            ("nope", 0): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, False),
            ("a", 7): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, False),
        }
        after = _metadata(brokers).load().partition("a", 0)
        assert (after.leader, after.leader_epoch) == (0, 1)
        assert _elect(sock, version, 0, _tp(("a", 0)))[("a", 0)][0] == ErrorCode.ELECTION_NOT_NEEDED
        # null: every partition, answering only where an election was needed
        everything = _elect(sock, version, 0, None)
        assert ("a", 0) not in everything and ("solo", 0) not in everything
        assert everything[("b", 0)][0] == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
        # the broker follows at once: it leads a-0 now
        _wait_for(lambda: call(sock, ApiKey.METADATA, 8, {"topics": [{"name": "a"}]}).topics[0]
                  .partitions[0].leader_id == 0, "metadata never named the new leader")


@pytest.mark.parametrize("version", [1, 2])
def test_unclean_election_outcomes(stage, brokers, version):
    with connect(("127.0.0.1", stage.port)) as sock:
        got = _elect(sock, version, 1, _tp(("off", 0), ("solo", 0), ("b", 0)))
        assert got == {
            ("off", 0): (ErrorCode.NONE, True),
            ("solo", 0): (ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, False),
            ("b", 0): (ErrorCode.ELECTION_NOT_NEEDED, False),
        }
        off = _metadata(brokers).load().partition("off", 0)
        assert (off.leader, off.isr) == (0, [0])
        bad = call(sock, ApiKey.ELECT_LEADERS, version, {"election_type": 5, "topic_partitions": None,
                                                          "timeout_ms": 1000})
        assert bad.error_code == ErrorCode.INVALID_REQUEST
        assert call(sock, ApiKey.METADATA, 8, {"topics": []}).brokers  # the connection lives on
    brokers.runner.produce_lines("off", "x\n")
    assert brokers.kcli("consume", "off", "-b", "-e").stdout.split()[-1] == "x"


def test_confluent_unclean_and_preferred(stage, brokers):
    ck = pytest.importorskip("confluent_kafka")
    admin_mod = pytest.importorskip("confluent_kafka.admin")
    admin = admin_mod.AdminClient({"bootstrap.servers": stage.bootstrap})
    unclean = admin.elect_leaders(ck.ElectionType.UNCLEAN, [ck.TopicPartition("off", 0)]).result(timeout=30)
    assert unclean == {ck.TopicPartition("off", 0): None}
    preferred = admin.elect_leaders(
        ck.ElectionType.PREFERRED, [ck.TopicPartition("a", 0), ck.TopicPartition("b", 0)]
    ).result(timeout=30)
    assert preferred[ck.TopicPartition("a", 0)] is None
    assert preferred[ck.TopicPartition("b", 0)].code() == ck.KafkaError.PREFERRED_LEADER_NOT_AVAILABLE
    meta = _metadata(brokers).load()
    assert meta.partition("off", 0).leader == 0 and meta.partition("a", 0).leader == 0


def test_kafka_python_elect_leaders(stage, brokers):
    kafka_admin = pytest.importorskip("kafka.admin")
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=stage.bootstrap, request_timeout_ms=20000)
    try:
        resp = admin.elect_leaders(0, {"a": [0]}, timeout_ms=10000)
        unclean = admin.elect_leaders(1, {"off": [0]}, timeout_ms=10000)
    finally:
        admin.close()
    assert [(r.topic, [(p.partition_id, p.error_code) for p in r.partition_result])
            for r in resp.replica_election_results] == [("a", [(0, 0)])]
    assert unclean.replica_election_results[0].partition_result[0].error_code == 0
    assert _metadata(brokers).load().partition("a", 0).leader == 0


def test_preferred_leader_back_after_it_moved(brokers):
    """The preferred leader stops (its leadership moves), comes back, catches up; confluent-kafka's
    preferred election and then `kcli leader-election` (through ElectLeaders) give it back."""
    ck = pytest.importorskip("confluent_kafka")
    admin_mod = pytest.importorskip("confluent_kafka.admin")
    brokers.init(2)
    running = {0: brokers.start(0), 1: brokers.start(1)}
    brokers.kcli("topic", "create", "t", "-p", "2", "-r", "2")
    brokers.runner.produce_lines("t", "1\n2\n", "-p", "0")
    md = _metadata(brokers)
    _wait_for(lambda: all(len(p.isr) == 2 for p in md.load().topic("t").partitions), "a full ISR")
    preferred = md.load().partition("t", 0).replicas[0]
    other = 1 - preferred
    assert running[preferred].stop() == 0
    assert md.load().partition("t", 0).leader == other
    running[preferred] = brokers.start(preferred)
    _wait_for(lambda: preferred in md.load().partition("t", 0).isr, "the preferred replica back in sync")
    admin = admin_mod.AdminClient({"bootstrap.servers": running[other].bootstrap})
    result = admin.elect_leaders(ck.ElectionType.PREFERRED, [ck.TopicPartition("t", 0)]).result(timeout=30)
    assert result == {ck.TopicPartition("t", 0): None}
    assert md.load().partition("t", 0).leader == preferred
    # again through kcli: the leadership of t-1 moved too when the broker stopped
    t1 = md.load().partition("t", 1)
    out = brokers.kcli("leader-election", "--preferred", "--all").stdout
    if t1.leader != t1.replicas[0]:
        assert f"t-1: leader {t1.replicas[0]} (was {t1.leader}), epoch {t1.leader_epoch + 1}" in out
    assert "t-0" not in out  # not needed
    assert md.load().partition("t", 1).leader == t1.replicas[0]
    brokers.runner.produce_lines("t", "3\n", "-p", "0")
    assert brokers.kcli("consume", "t", "-p", "0", "-b", "-e").stdout.split() == ["1", "2", "3"]


def test_leader_election_cli_goes_through_the_broker(stage, brokers):
    out = brokers.kcli("leader-election", "--unclean", "--topic", "off").stdout
    assert out == "off-0: leader 0 (was -1), epoch 1, isr 0; UNCLEAN election: records the old leader had may be lost\n"
    assert "unclean leader election: off-0" in stage.log()
