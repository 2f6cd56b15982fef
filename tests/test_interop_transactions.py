"""Transactions (KIP-98) through real ``kcli broker serve`` processes with real Kafka clients.

confluent-kafka (librdkafka): a transactional producer commits records in 3 partitions together with a
consumer group's offsets (send_offsets_to_transaction), aborts another transaction, and is fenced by a
newer instance with the same transactional.id; read_committed consumers see exactly the committed
records (no aborted one, no control record), read_uncommitted ones see the aborted ones too.
kafka-python's transactional producer does the same where the installed version has one.
"""

from __future__ import annotations

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import (  # noqa: E402
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient  # noqa: E402
from support.confluent import read_to_end  # noqa: E402
from support.negotiated import LOG_REQUESTS, assert_negotiated, versions_used  # noqa: E402

pytestmark = pytest.mark.log_requests  # the versions clients negotiate are checked (support.negotiated)

PARTITIONS = 3


def _topic(broker, name: str, partitions: int = PARTITIONS, *extra: str) -> None:
    broker.kcli("topic", "create", name, "-p", partitions, *extra)


def _producer(bootstrap: str, transactional_id: str, **extra: object) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 60000,
            "linger.ms": 5,
            **extra,
        }
    )


def _read_all(bootstrap: str, topic: str, isolation: str, partitions: int = PARTITIONS) -> list:
    """Every message a consumer with ``isolation`` gets up to each partition's end (partition EOF)."""
    return read_to_end(bootstrap, topic, partitions, isolation)[0]


def _values(messages: list) -> list[str]:
    return sorted(m.value().decode() for m in messages)


def test_commit_with_offsets_abort_and_isolation(broker):
    _topic(broker, "in", 1)
    _topic(broker, "out")
    broker.kcli("produce", "in", input="".join(f"in-{i}\n" for i in range(10)))
    group = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "copier", "enable.auto.commit": False}
    )
    producer = _producer(broker.bootstrap, "tx-commit")
    producer.init_transactions(30)

    producer.begin_transaction()
    for i in range(30):
        producer.produce("out", value=f"committed-{i}", partition=i % PARTITIONS)
    producer.send_offsets_to_transaction([TopicPartition("in", 0, 10)], group.consumer_group_metadata(), 30)
    producer.commit_transaction(30)

    producer.begin_transaction()
    for i in range(12):
        producer.produce("out", value=f"aborted-{i}", partition=i % PARTITIONS)
    producer.send_offsets_to_transaction([TopicPartition("in", 0, 99)], group.consumer_group_metadata(), 30)
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce("out", value="committed-last", partition=1)
    producer.commit_transaction(30)

    committed = _read_all(broker.bootstrap, "out", "read_committed")
    assert _values(committed) == sorted([f"committed-{i}" for i in range(30)] + ["committed-last"])
    assert all(m.key() is None and m.headers() is None for m in committed)  # no control record leaks out
    uncommitted = _read_all(broker.bootstrap, "out", "read_uncommitted")
    assert _values(uncommitted) == sorted(
        [f"committed-{i}" for i in range(30)] + ["committed-last"] + [f"aborted-{i}" for i in range(12)]
    )
    # the markers take offsets: each partition's end lies past its last record
    for p in range(PARTITIONS):
        last = max(m.offset() for m in uncommitted if m.partition() == p)
        low, high = group.get_watermark_offsets(TopicPartition("out", p), 10)
        assert high > last + 1
    # the committed transaction moved the group's offset; the aborted one did not
    assert group.committed([TopicPartition("in", 0)], 10)[0].offset == 10
    group.close()
    # librdkafka's newest: InitProducerId v4 (PRODUCER_FENCED), TxnOffsetCommit v3 (flexible, member check)
    assert_negotiated(broker, {"InitProducerId": 4, "TxnOffsetCommit": 3, "OffsetFetch": 9}, client="rdkafka")


def test_an_open_transaction_holds_read_committed_readers_back(broker):
    _topic(broker, "out", 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("out", value="plain-0", partition=0)
    plain.flush(30)
    producer = _producer(broker.bootstrap, "tx-open")
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("out", value="pending", partition=0)
    producer.flush(30)
    plain.produce("out", value="plain-1", partition=0)  # after the open transaction's first offset
    plain.flush(30)

    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "x", "isolation.level": "read_committed"}
    )
    # ListOffsets latest under read_committed is the last stable offset: the pending record's offset
    assert consumer.get_watermark_offsets(TopicPartition("out", 0), 10) == (0, 1)
    assert _values(_read_all(broker.bootstrap, "out", "read_committed", 1)) == ["plain-0"]
    consumer.close()

    producer.commit_transaction(30)
    assert _values(_read_all(broker.bootstrap, "out", "read_committed", 1)) == [
        "pending",
        "plain-0",
        "plain-1",
    ]


def test_a_zombie_is_fenced_by_a_newer_instance(broker):
    _topic(broker, "out")
    zombie = _producer(broker.bootstrap, "tx-zombie")
    zombie.init_transactions(30)
    zombie.begin_transaction()
    for i in range(6):
        zombie.produce("out", value=f"zombie-{i}", partition=i % PARTITIONS)
    zombie.flush(30)

    newer = _producer(broker.bootstrap, "tx-zombie")
    newer.init_transactions(30)  # bumps the epoch and aborts the zombie's open transaction
    newer.begin_transaction()
    for i in range(6):
        newer.produce("out", value=f"newer-{i}", partition=i % PARTITIONS)
    newer.commit_transaction(30)

    with pytest.raises(KafkaException) as raised:
        zombie.produce("out", value="zombie-late", partition=0)
        zombie.commit_transaction(30)
    error = raised.value.args[0]
    assert error.fatal() or error.code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    ), error

    assert _values(_read_all(broker.bootstrap, "out", "read_committed")) == sorted(
        f"newer-{i}" for i in range(6)
    )
    uncommitted = _values(_read_all(broker.bootstrap, "out", "read_uncommitted"))
    assert "zombie-late" not in uncommitted
    assert set(uncommitted) >= {f"zombie-{i}" for i in range(6)}


def test_markers_reach_partitions_led_by_other_brokers(brokers):
    """Three brokers, each leading one partition: the coordinator writes its own partition's marker and
    asks the two other leaders (WriteTxnMarkers)."""
    brokers.init(3)
    running = [brokers.spawn(b, *LOG_REQUESTS) for b in range(3)]
    for b in running:
        b.wait_ready()
    brokers.kcli("topic", "create", "out", "-p", 3, "-r", 1)
    bootstrap = running[0].bootstrap
    producer = _producer(bootstrap, "tx-spread")
    producer.init_transactions(30)
    for outcome in ("commit", "abort", "commit"):
        producer.begin_transaction()
        for i in range(9):
            producer.produce("out", value=f"{outcome}-{i}", partition=i % 3)
        if outcome == "commit":
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)
    got = _values(_read_all(bootstrap, "out", "read_committed"))
    assert got == sorted([f"commit-{i}" for i in range(9)] * 2)
    leaders = {
        p.leader
        for p in AdminClient({"bootstrap.servers": bootstrap})
        .list_topics("out", 10)
        .topics["out"]
        .partitions.values()
    }
    assert len(leaders) > 1, "the partitions should have been spread over the brokers"
    # the brokers asked each other in the flexible WriteTxnMarkers v1
    assert set().union(*(versions_used(b).get("WriteTxnMarkers", set()) for b in running)) == {1}


def test_bad_transactional_requests_get_kafka_codes(broker):
    _topic(broker, "out", 1)
    too_long = Producer(
        {"bootstrap.servers": broker.bootstrap, "transactional.id": "t", "transaction.timeout.ms": 900_001}
    )
    with pytest.raises(KafkaException) as raised:
        too_long.init_transactions(10)
    assert raised.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT
    producer = _producer(broker.bootstrap, "tx-bad")
    producer.init_transactions(30)
    with pytest.raises(KafkaException):
        producer.commit_transaction(10)  # no transaction begun: refused by the client, nothing sent
    producer.begin_transaction()
    producer.commit_transaction(10)  # an empty transaction commits (nothing was added)
    assert _read_all(broker.bootstrap, "out", "read_committed", 1) == []


def test_kafka_python_transactional_producer(broker):
    pytest.importorskip("kafka")
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KpTopicPartition

    if not hasattr(KafkaProducer, "init_transactions"):
        pytest.skip("this kafka-python has no transactional producer")
    _topic(broker, "in", 1)
    _topic(broker, "out")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-tx")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(9):
        producer.send("out", value=f"kp-{i}".encode(), partition=i % PARTITIONS)
    producer.send_offsets_to_transaction(
        {KpTopicPartition("in", 0): OffsetAndMetadata(4, "", -1)}, "kp-group"
    )
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send("out", value=b"kp-aborted", partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    consumer.assign([KpTopicPartition("out", p) for p in range(PARTITIONS)])
    assert sorted(m.value.decode() for m in consumer) == sorted(f"kp-{i}" for i in range(9))
    consumer.close()
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kp-group"})
    assert reader.committed([TopicPartition("in", 0)], 10)[0].offset == 4
    reader.close()
    assert_negotiated(
        broker,
        {
            "FindCoordinator": 5,
            "InitProducerId": 4,  # kafka-python's newest
            "AddPartitionsToTxn": 3,  # v4+ is for brokers
            "AddOffsetsToTxn": 3,
            "TxnOffsetCommit": 3,
            "EndTxn": 3,
        },
        client="kafka-python-producer",
    )
