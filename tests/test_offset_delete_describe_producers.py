"""OffsetDelete (47) and DescribeProducers (61) of a real ``kcli broker serve``: kafka-python's
KafkaAdminClient (delete_group_offsets, describe_producers) and raw requests asking; confluent-kafka
consumers making the groups and producers (one transactional, its transaction left open) and
``kcli --bootstrap-server ... produce`` (idempotent) making the producer state."""

from __future__ import annotations

import pytest
from support.brokers import call, connect
from support.waits import wait_for

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.protocol import ApiKey, ErrorCode

kafka_admin = pytest.importorskip("kafka.admin")
kafka_errors = pytest.importorskip("kafka.errors")
confluent_kafka = pytest.importorskip("confluent_kafka")
from kafka import TopicPartition  # noqa: E402

TOPIC, OTHER = "events", "other"
WAIT = 30.0


def _consumer(broker, group: str):
    return confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _commit(consumer, offsets: dict[tuple[str, int], int]) -> None:
    tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
    consumer.commit(offsets=tps, asynchronous=False)


def _committed(broker, group: str) -> dict[tuple[str, int], int]:
    """OffsetFetch of every committed offset (topics null)."""
    with connect(broker.socket_path) as sock:
        body = call(sock, ApiKey.OFFSET_FETCH, 5, {"group_id": group, "topics": None})
    assert body.error_code == ErrorCode.NONE
    return {(t.name, p.partition_index): p.committed_offset for t in body.topics for p in t.partitions}


def _offset_delete(broker, group: str, topics: dict[str, list[int]]):
    request = {
        "group_id": group,
        "topics": [{"name": t, "partitions": [{"partition_index": p} for p in ps]} for t, ps in topics.items()],
    }
    with connect(broker.socket_path) as sock:
        return call(sock, ApiKey.OFFSET_DELETE, 0, request)


@pytest.fixture
def topics(broker):
    broker.runner.in_process("topic", "create", TOPIC, "--partitions", 2)
    broker.runner.in_process("topic", "create", OTHER, "--partitions", 1)
    return broker


def test_both_advertised_in_api_versions(broker):
    with connect(broker.socket_path) as sock:
        keys = {
            k.api_key: (k.min_version, k.max_version) for k in call(sock, ApiKey.API_VERSIONS, 2, {}).api_keys
        }
    assert keys[ApiKey.OFFSET_DELETE] == (0, 0)
    assert keys[ApiKey.DESCRIBE_PRODUCERS] == (0, 0)


# ---------------------------------------------------------------- OffsetDelete


def test_offset_delete_of_an_empty_groups_offsets(topics):
    """An Empty group (offsets only): the asked partitions' offsets go, the others stay; a partition
    with none committed is NONE too, an unknown one UNKNOWN_TOPIC_OR_PARTITION."""
    idle = _consumer(topics, "idle")
    _commit(idle, {(TOPIC, 0): 3, (TOPIC, 1): 4, (OTHER, 0): 5})
    idle.close()
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=topics.bootstrap)
    try:
        result = admin.delete_group_offsets("idle", [TopicPartition(TOPIC, 0), TopicPartition(OTHER, 0)])
    finally:
        admin.close()
    assert result == {
        TopicPartition(TOPIC, 0): kafka_errors.NoError,
        TopicPartition(OTHER, 0): kafka_errors.NoError,
    }
    assert _committed(topics, "idle") == {(TOPIC, 1): 4}

    body = _offset_delete(topics, "idle", {TOPIC: [0, 1, 7], "nosuch": [0]})
    assert body.error_code == ErrorCode.NONE
    got = {(t.name, p.partition_index): p.error_code for t in body.topics for p in t.partitions}
    assert got == {
        (TOPIC, 0): ErrorCode.NONE,  # nothing committed any more: still deleted, as Kafka answers
        (TOPIC, 1): ErrorCode.NONE,
        (TOPIC, 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ("nosuch", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert _committed(topics, "idle") == {}


def test_offset_delete_refused_for_a_topic_a_live_member_subscribes_to(topics):
    """A Stable group with a confluent-kafka member subscribed to TOPIC: TOPIC's offsets stay
    (GROUP_SUBSCRIBED_TO_TOPIC), OTHER's (committed, not subscribed) go."""
    live = _consumer(topics, "live")
    live.subscribe([TOPIC])
    wait_for("the live member's assignment", lambda: live.poll(0.2) is None and bool(live.assignment()), WAIT)
    try:
        _commit(live, {(TOPIC, 0): 1, (TOPIC, 1): 2, (OTHER, 0): 3})
        admin = kafka_admin.KafkaAdminClient(bootstrap_servers=topics.bootstrap)
        try:
            result = admin.delete_group_offsets(
                "live", [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1), TopicPartition(OTHER, 0)]
            )
        finally:
            admin.close()
        assert result == {
            TopicPartition(TOPIC, 0): kafka_errors.GroupSubscribedToTopicError,
            TopicPartition(TOPIC, 1): kafka_errors.GroupSubscribedToTopicError,
            TopicPartition(OTHER, 0): kafka_errors.NoError,
        }
        assert _committed(topics, "live") == {(TOPIC, 0): 1, (TOPIC, 1): 2}
    finally:
        live.close()
    # the member left: the group is Empty and TOPIC's offsets can go
    body = _offset_delete(topics, "live", {TOPIC: [0, 1]})
    assert (body.error_code, [p.error_code for p in body.topics[0].partitions]) == (0, [0, 0])
    assert _committed(topics, "live") == {}


def test_offset_delete_of_an_unknown_or_invalid_group(topics):
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=topics.bootstrap)
    try:
        with pytest.raises(kafka_errors.GroupIdNotFoundError):
            admin.delete_group_offsets("never", [TopicPartition(TOPIC, 0)])
    finally:
        admin.close()
    body = _offset_delete(topics, "never", {TOPIC: [0]})
    assert (body.error_code, body.topics) == (ErrorCode.GROUP_ID_NOT_FOUND, [])
    assert not (topics.data_dir / "cluster" / "groups" / "never").exists()  # not created by the ask
    body = _offset_delete(topics, "", {TOPIC: [0]})
    assert (body.error_code, body.topics) == (ErrorCode.INVALID_GROUP_ID, [])


# ---------------------------------------------------------------- DescribeProducers


def test_describe_producers_lists_an_idempotent_and_an_open_transactional_producer(topics):
    """``kcli produce`` (idempotent, 5 records in one batch) then a confluent-kafka transactional
    producer (3 records, transaction left open): both producers with their epoch and last sequence,
    the open transaction's first offset; after the commit, no open transaction."""
    topics.kcli("--bootstrap-server", topics.bootstrap, "produce", TOPIC, "-p", "0", input="a\nb\nc\nd\ne\n")
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": topics.bootstrap, "transactional.id": "tx", "linger.ms": 50}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in (b"x", b"y", b"z"):
        producer.produce(TOPIC, value, partition=0)
    producer.flush(30)

    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=topics.bootstrap)
    try:
        tp = TopicPartition(TOPIC, 0)
        active = admin.describe_producers([tp])[tp].active_producers
        by_txn = {p.current_transaction_start_offset: p for p in active}
        assert sorted(by_txn) == [-1, 5], active
        plain, txn = by_txn[-1], by_txn[5]
        assert plain.producer_id != txn.producer_id
        assert (plain.producer_epoch, plain.last_sequence, plain.coordinator_epoch) == (0, 4, -1)
        assert (txn.producer_epoch, txn.last_sequence, txn.coordinator_epoch) == (0, 2, -1)
        assert plain.last_timestamp > 0 and txn.last_timestamp >= plain.last_timestamp
        # a partition nobody wrote: no producers
        assert admin.describe_producers([TopicPartition(TOPIC, 1)])[TopicPartition(TOPIC, 1)].active_producers == []

        producer.commit_transaction(30)
        after = {p.producer_id: p for p in admin.describe_producers([tp])[tp].active_producers}
        assert after[txn.producer_id].current_transaction_start_offset == -1
        assert after[txn.producer_id].coordinator_epoch >= 0  # the marker's coordinator epoch
        assert after[plain.producer_id] == plain
    finally:
        admin.close()


def test_describe_producers_errors_per_partition(brokers):
    """A partition led by the other broker: NOT_LEADER_OR_FOLLOWER; an unknown topic or partition:
    UNKNOWN_TOPIC_OR_PARTITION; each partition answered on its own."""
    brokers.init(2)
    b0 = brokers.start(0)
    brokers.start(1)
    brokers.runner.in_process("topic", "create", "two", "-p", "2", "-r", "1")
    state = Metadata(DataDir(str(brokers.data_dir))).load()
    led = {p: meta.leader for p, meta in enumerate(state.topic("two").partitions)}
    assert sorted(led.values()) == [0, 1]
    request = {"topics": [{"name": "two", "partition_indexes": [0, 1, 5]}, {"name": "nosuch", "partition_indexes": [0]}]}
    with connect(b0.socket_path) as sock:
        body = call(sock, ApiKey.DESCRIBE_PRODUCERS, 0, request)
    got = {(t.name, p.partition_index): (p.error_code, p.active_producers) for t in body.topics for p in t.partitions}
    elsewhere = ErrorCode.NONE if led[0] == 0 else ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert got == {
        ("two", 0): (elsewhere, []),
        ("two", 1): (ErrorCode.NOT_LEADER_OR_FOLLOWER if led[0] == 0 else ErrorCode.NONE, []),
        ("two", 5): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, []),
        ("nosuch", 0): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, []),
    }
