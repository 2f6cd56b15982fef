"""A record without a key to a topic whose cleanup.policy holds compact is refused as Kafka refuses it:
INVALID_RECORD on the wire, one line and exit code 2 on the CLI, nothing written."""

from __future__ import annotations

import json

from confluent_kafka import KafkaError, Producer
from support.runner import one_error_line


def test_embedded_keyless_produce_to_compacted_topic_is_refused(kcli) -> None:
    kcli("topic", "create", "c", "-c", "cleanup.policy=compact")
    kcli("produce", "c", "-K:", input="a:1\nb:2\n")
    proc = kcli("produce", "c", input="no key\n", ok=False)
    one_error_line(proc, 2, "Compacted topic cannot accept message without key in topic partition c-0")
    proc = kcli("produce", "c", "-K:", input="a:3\nkeyless\n", ok=False)  # one keyless record in the batch
    assert proc.returncode == 2
    rows = [json.loads(line) for line in kcli("consume", "c", "-b", "-e", "--json").stdout.splitlines()]
    assert [(r["key"], r["value"]) for r in rows] == [("a", "1"), ("b", "2")]
    kcli("topic", "create", "d", "-c", "cleanup.policy=delete")
    kcli("produce", "d", input="no key\n")  # a delete topic takes it


def test_broker_answers_invalid_record_to_a_confluent_producer(broker) -> None:
    broker.kcli("topic", "create", "c", "-c", "cleanup.policy=compact,delete")
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0,
                         "enable.idempotence": False, "message.timeout.ms": 20000})
    producer.produce("c", value=b"keyless", on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    producer.produce("c", key=b"k", value=b"v", on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    codes = [err.code() if err is not None else None for err in errors]
    assert codes == [KafkaError.INVALID_RECORD, None], errors


def test_confluent_admin_creates_a_compacted_topic_with_kafkas_cleaner_configs(broker) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    configs = {"cleanup.policy": "compact,delete", "delete.retention.ms": "1000", "min.cleanable.dirty.ratio": "0.1",
               "min.compaction.lag.ms": "0", "max.compaction.lag.ms": "60000"}
    admin.create_topics([NewTopic("changelog", 1, 1, config=configs)])["changelog"].result(30)
    bad = admin.create_topics([NewTopic("bad", 1, 1, config={"cleanup.policy": "shred"})])["bad"]
    try:
        bad.result(30)
        raise AssertionError("an unknown policy was accepted")
    except Exception as exc:  # KafkaException carrying INVALID_CONFIG
        assert "INVALID_CONFIG" in str(exc) or "nvalid" in str(exc), exc
    seen = json.loads(broker.kcli("config", "describe", "--topic", "changelog", "--json").stdout)
    values = {e["name"]: e["value"] for e in seen["configs"]}
    assert values["cleanup.policy"] == "compact,delete" and values["min.cleanable.dirty.ratio"] == "0.1"
