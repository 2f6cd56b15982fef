"""ListOffsets v6-8 against a real broker: flexible encoding (v6), MAX_TIMESTAMP (-3, v7, KIP-734) and
EARLIEST_LOCAL_TIMESTAMP (-4, v8, KIP-405), as Kafka's brokers answer them -- also through
kafka-python's and confluent-kafka's admin clients."""

from __future__ import annotations

import time

import pytest
from support.brokers import call, connect

from kcli.protocol import ApiKey, ErrorCode
from kcli.storage.records import encode_batch

EARLIEST, LATEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -2, -1, -3, -4


def _produce(sock, topic: str, timestamps: list[int]) -> None:
    """One batch whose records carry ``timestamps`` in that order."""
    records = encode_batch([(None, f"v{ts}".encode(), [], ts) for ts in timestamps], 0)
    body = {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    }
    part = call(sock, ApiKey.PRODUCE, 7, body).responses[0].partition_responses[0]
    assert part.error_code == 0


def _list(sock, topic: str, timestamp: int, version: int = 8, isolation: int = 0):
    body = {
        "replica_id": -1,
        "isolation_level": isolation,
        "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp}]}],
    }
    return call(sock, ApiKey.LIST_OFFSETS, version, body).topics[0].partitions[0]


def _answer(part) -> tuple[int, int, int]:
    return part.error_code, part.timestamp, part.offset


def test_v5_and_the_flexible_versions_give_the_same_answers(broker):
    broker.runner.in_process("topic", "create", "lo")
    with connect(broker.socket_path) as sock:
        _produce(sock, "lo", [1000, 2000, 3000])
        for version in (5, 6, 7, 8):
            assert _answer(_list(sock, "lo", EARLIEST, version)) == (0, -1, 0), version
            assert _answer(_list(sock, "lo", LATEST, version)) == (0, -1, 3), version
            assert _answer(_list(sock, "lo", 2000, version)) == (0, 2000, 1), version
            assert _list(sock, "lo", LATEST, version).leader_epoch == 0


def test_max_timestamp_is_the_earliest_record_with_the_largest_timestamp(broker):
    broker.runner.in_process("topic", "create", "mt")
    with connect(broker.socket_path) as sock:
        _produce(sock, "mt", [1000, 5000, 2000])  # offsets 0-2: the max in the middle of a batch
        _produce(sock, "mt", [3000, 5000, 4000])  # offsets 3-5: a tie, later -- not the answer
        _produce(sock, "mt", [4500])  # the newest record is not the one with the largest timestamp
        assert _answer(_list(sock, "mt", MAX_TIMESTAMP, 7)) == (0, 5000, 1)
        assert _answer(_list(sock, "mt", MAX_TIMESTAMP, 8)) == (0, 5000, 1)
        assert _answer(_list(sock, "mt", LATEST)) == (0, -1, 7)


def test_max_timestamp_across_segments(broker):
    """Each batch rolls a segment (segment.bytes is smaller than two batches): the largest timestamp is
    in the second segment, neither the first nor the active one."""
    broker.runner.in_process("topic", "create", "seg", "-c", "segment.bytes=100")
    with connect(broker.socket_path) as sock:
        _produce(sock, "seg", [1000, 3000])
        _produce(sock, "seg", [2000, 9000, 500])  # offsets 2-4
        _produce(sock, "seg", [8000, 9000])  # a tie in a later segment
        _produce(sock, "seg", [100])
        logs = sorted(p.name for p in (broker.folder / "seg-0").glob("*.log"))
        assert len(logs) >= 3, logs
        assert _answer(_list(sock, "seg", MAX_TIMESTAMP)) == (0, 9000, 3)
        assert _answer(_list(sock, "seg", 8500)) == (0, 9000, 3)  # by time, for comparison


def test_earliest_local_is_the_log_start_offset(broker):
    broker.runner.in_process("topic", "create", "el")
    with connect(broker.socket_path) as sock:
        _produce(sock, "el", [1000, 2000])
        assert _answer(_list(sock, "el", EARLIEST_LOCAL, 8)) == (0, -1, 0)
        assert _list(sock, "el", EARLIEST_LOCAL, 8).leader_epoch == 0


def test_an_empty_partition(broker):
    broker.runner.in_process("topic", "create", "empty")
    with connect(broker.socket_path) as sock:
        assert _answer(_list(sock, "empty", MAX_TIMESTAMP)) == (0, -1, -1)
        assert _answer(_list(sock, "empty", EARLIEST_LOCAL)) == (0, -1, 0)
        assert _answer(_list(sock, "empty", LATEST)) == (0, -1, 0)


@pytest.mark.parametrize(
    ("timestamp", "version"), [(MAX_TIMESTAMP, 6), (EARLIEST_LOCAL, 7), (-5, 8), (-9, 8)]
)
def test_a_special_timestamp_newer_than_the_version_is_unsupported(broker, timestamp, version):
    """Kafka answers UNSUPPORTED_VERSION for the partition (ReplicaManager's timestampMinSupportedVersion);
    the connection stays usable."""
    broker.runner.in_process("topic", "create", "uv")
    with connect(broker.socket_path) as sock:
        _produce(sock, "uv", [1000])
        part = _list(sock, "uv", timestamp, version)
        assert _answer(part) == (ErrorCode.UNSUPPORTED_VERSION, -1, -1)
        assert _answer(_list(sock, "uv", LATEST, version)) == (0, -1, 1)


def test_kafka_python_list_partition_offsets_max_timestamp(broker):
    admin_mod = pytest.importorskip("kafka.admin")
    from kafka import TopicPartition

    if not hasattr(admin_mod.KafkaAdminClient, "list_partition_offsets"):
        pytest.skip("this kafka-python has no list_partition_offsets")
    broker.runner.in_process("topic", "create", "kp")
    with connect(broker.socket_path) as sock:
        _produce(sock, "kp", [1000, 7000, 2000])
    admin = admin_mod.KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        spec = admin_mod.OffsetSpec
        tp = TopicPartition("kp", 0)
        found = admin.list_partition_offsets({tp: spec.MAX_TIMESTAMP})[tp]
        assert (found.offset, found.timestamp) == (1, 7000)
        local = admin.list_partition_offsets({tp: spec.EARLIEST_LOCAL})[tp]
        assert local.offset == 0
    finally:
        admin.close()


def test_confluent_list_offsets_max_timestamp(broker):
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    broker.runner.in_process("topic", "create", "ck")
    with connect(broker.socket_path) as sock:
        _produce(sock, "ck", [1000, 7000, 2000])
        _produce(sock, "ck", [7000])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    tp = TopicPartition("ck", 0)
    futures = admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=30)
    found = futures[tp].result(30)
    assert (found.offset, found.timestamp) == (1, 7000)
    futures = admin.list_offsets({tp: OffsetSpec.latest()}, request_timeout=30)
    assert futures[tp].result(30).offset == 4


def test_max_timestamp_is_not_answered_past_the_last_stable_offset(broker):
    """Kafka looks the record up in the whole log and answers (-1, -1) when it lies at or past the offset
    the consumer may read to: under read_committed, a record of an open transaction is not answered yet."""
    broker.runner.in_process("topic", "create", "tx")
    future = int(time.time() * 1000) + 3_600_000  # newer than the commit marker the broker writes
    with connect(broker.socket_path) as sock:
        _produce(sock, "tx", [1000])
        init = call(sock, ApiKey.INIT_PRODUCER_ID, 1, {"transactional_id": "t1", "transaction_timeout_ms": 60000})
        pid = init.producer_id
        add = {"transactional_id": "t1", "producer_id": pid, "producer_epoch": 0, "topics": [{"name": "tx", "partitions": [0]}]}
        assert call(sock, ApiKey.ADD_PARTITIONS_TO_TXN, 2, add).results_by_topic[0].results_by_partition[0].partition_error_code == 0
        batch = encode_batch([(None, b"t", [], future)], 0, producer_id=pid, producer_epoch=0, base_sequence=0, transactional=True)
        body = {
            "transactional_id": "t1",
            "acks": -1,
            "timeout_ms": 5000,
            "topic_data": [{"name": "tx", "partition_data": [{"index": 0, "records": batch}]}],
        }
        assert call(sock, ApiKey.PRODUCE, 7, body).responses[0].partition_responses[0].error_code == 0
        assert _answer(_list(sock, "tx", MAX_TIMESTAMP, isolation=1)) == (0, -1, -1)
        assert _answer(_list(sock, "tx", MAX_TIMESTAMP, isolation=0)) == (0, future, 1)
        end = {"transactional_id": "t1", "producer_id": pid, "producer_epoch": 0, "committed": True}
        assert call(sock, ApiKey.END_TXN, 2, end).error_code == 0
        assert _answer(_list(sock, "tx", MAX_TIMESTAMP, isolation=1)) == (0, future, 1)
