"""kafka-python, an independent Kafka client, against a real ``kcli broker serve`` process.

It negotiates versions with ApiVersions, creates topics with CreateTopics, produces idempotently
(InitProducerId + sequence numbers, its default) with every codec, and consumes with assign + seek
(no group), so these tests cover what the broker claims to speak.
"""

from __future__ import annotations

import time

import pytest
from support.waits import wait_for

kafka = pytest.importorskip("kafka")
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewPartitions, NewTopic  # noqa: E402

from kcli.client.partitioner import DefaultPartitioner  # noqa: E402

N = 10_000
PARTITIONS = 3


def _produce(bootstrap: str, topic: str, codec: str | None, n: int = N) -> dict[int, list[int]]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=5)
    futures = [
        producer.send(topic, key=f"key-{i % 101}".encode(), value=f"value-{i}".encode()) for i in range(n)
    ]
    producer.flush(30)
    offsets: dict[int, list[int]] = {}
    for f in futures:
        md = f.get(timeout=30)
        offsets.setdefault(md.partition, []).append(md.offset)
    producer.close(5)
    return offsets


def _consume(bootstrap: str, topic: str, partitions: int, n: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
            got.extend(batch)
    consumer.close()
    return got


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume_every_codec(broker, codec):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("kp", PARTITIONS, 1)])
    assert "kp" in admin.list_topics()
    admin.close()

    acked = _produce(broker.bootstrap, "kp", codec)
    for offsets in acked.values():
        assert offsets == list(range(len(offsets)))  # dense, in send order per partition

    got = _consume(broker.bootstrap, "kp", PARTITIONS, N)
    assert len(got) == N
    partitioner = DefaultPartitioner()
    per_partition: dict[int, list] = {}
    for rec in got:
        per_partition.setdefault(rec.partition, []).append(rec)
        # kafka-python's murmur2 partitioner and kcli's agree
        assert rec.partition == partitioner.partition("kp", rec.key, PARTITIONS)
    for p, recs in per_partition.items():
        assert [r.offset for r in recs] == list(range(len(recs)))
        values = [int(r.value.split(b"-")[1]) for r in recs]
        assert values == sorted(values)  # the order they were sent in
        assert len(recs) == len(acked[p])
    assert sorted(int(r.value.split(b"-")[1]) for r in got) == list(range(N))

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tps = [TopicPartition("kp", p) for p in range(PARTITIONS)]
    assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
    assert consumer.end_offsets(tps) == {tp: len(per_partition.get(tp.partition, [])) for tp in tps}
    first = got[0]
    found = consumer.offsets_for_times({TopicPartition("kp", first.partition): first.timestamp})
    assert found[TopicPartition("kp", first.partition)].offset == 0
    consumer.close()


def test_kcli_and_kafka_python_see_the_same_messages_live_and_after_stop(broker):
    _produce(broker.bootstrap, "shared", "lz4", n=3000)  # auto-created by its Metadata request
    broker.kcli("produce", "shared", "-K:", input="".join(f"kcli-{i}:from-kcli-{i}\n" for i in range(500)))
    got = _consume(broker.bootstrap, "shared", 1, 3500)
    expected = [(r.offset, r.value.decode()) for r in got]
    assert len(expected) == 3500

    live = broker.kcli("consume", "shared", "-b", "-e", "-f", "%o %s\\n").stdout.splitlines()
    assert [tuple(line.split(" ", 1)) for line in live] == [(str(o), v) for o, v in expected]
    assert broker.stop() == 0
    embedded = broker.kcli("consume", "shared", "-b", "-e", "-f", "%o %s\\n").stdout.splitlines()
    assert embedded == live


def test_admin_client_partitions_and_delete(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("grow", 1, 1)])
    admin.create_partitions({"grow": NewPartitions(total_count=4)})
    meta = admin.describe_topics(["grow"])
    assert len(meta[0]["partitions"]) == 4
    admin.delete_topics(["grow"])
    wait_for("the topic deleted", lambda: "grow" not in admin.list_topics(), interval=0.1)
    admin.close()
    assert not (broker.folder / "grow-0").exists()
