"""confluent-kafka (librdkafka) against a real ``kcli broker serve`` process.

librdkafka opens with ApiVersions v3 (flexible) and goes on with the newest versions both sides speak
(Metadata v13, Produce v10, Fetch v16 by topic id: see test_flexible_data_path.py).
"""

from __future__ import annotations

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # noqa: E402
from support.confluent import read_to_end  # noqa: E402

from kcli.client.partitioner import DefaultPartitioner  # noqa: E402

N = 10_000
PARTITIONS = 3


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    ).values():
        future.result(30)
    del admin


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume_every_codec(broker, codec):
    _create(broker.bootstrap, "ck", PARTITIONS)
    # murmur2_random is the Java client's partitioner (librdkafka's default hashes with CRC32)
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "compression.type": codec,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "enable.idempotence": codec == "zstd",
        }
    )
    errors, acked = [], {}

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.setdefault(msg.partition(), []).append(msg.offset())

    for i in range(N):
        producer.produce("ck", key=f"key-{i % 101}", value=f"value-{i}", on_delivery=report)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    del producer  # librdkafka instances live until the last reference goes
    assert errors == []
    for offsets in acked.values():
        assert offsets == list(range(len(offsets)))

    got, low_high = read_to_end(broker.bootstrap, "ck", PARTITIONS)
    assert len(got) == N
    partitioner = DefaultPartitioner()
    per_partition: dict[int, list] = {}
    for msg in got:
        per_partition.setdefault(msg.partition(), []).append(msg)
        assert msg.partition() == partitioner.partition("ck", msg.key(), PARTITIONS)
    for msgs in per_partition.values():
        assert [m.offset() for m in msgs] == list(range(len(msgs)))
        values = [int(m.value().split(b"-")[1]) for m in msgs]
        assert values == sorted(values)
    assert low_high == [(0, len(per_partition.get(p, []))) for p in range(PARTITIONS)]


def test_offsets_for_times_and_kcli_reads_what_librdkafka_wrote(broker):
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        producer.produce("times", value=f"m{i}", timestamp=1_700_000_000_000 + i * 1000)
    assert producer.flush(30) == 0  # "times" is auto-created by librdkafka's Metadata request
    del producer
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kcli-test-unused"})
    found = consumer.offsets_for_times([TopicPartition("times", 0, 1_700_000_000_000 + 41_500)], 10)
    assert found[0].offset == 42
    consumer.close()
    out = broker.kcli("consume", "times", "-b", "-e").stdout.split()
    assert out == [f"m{i}" for i in range(100)]


def test_admin_partitions_and_delete(broker):
    _create(broker.bootstrap, "grow", 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_partitions([NewPartitions("grow", 3)]).values():
        future.result(30)
    assert len(admin.list_topics(timeout=10).topics["grow"].partitions) == 3
    for future in admin.delete_topics(["grow"]).values():
        future.result(30)
    assert "grow" not in admin.list_topics(timeout=10).topics
    del admin
    assert not (broker.folder / "grow-0").exists()
