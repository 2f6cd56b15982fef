"""Reading a topic to its end with confluent-kafka (librdkafka), as the interop tests do."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def read_to_end(bootstrap: str, topic: str, partitions: int, isolation: str = "read_uncommitted",
                ) -> tuple[list, list[tuple[int, int]]]:
    """Every message of ``topic`` up to the end of each partition (partition EOF events), read by a
    consumer with ``isolation`` through assign (no group use), and each partition's (low, high)
    watermarks as that consumer sees them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kcli-test-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got, eof = [], set()
    deadline = time.monotonic() + 30
    while len(eof) < partitions and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                eof.add(msg.partition())
            else:
                got.append(msg)
    assert len(eof) == partitions, f"no end of partition seen for {set(range(partitions)) - eof}"
    low_high = [consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in range(partitions)]
    consumer.close()
    return got, low_high
