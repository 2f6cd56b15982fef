"""A record without a key to a topic whose cleanup.policy holds compact is refused as Kafka refuses it:
INVALID_RECORD on the wire, one line and exit code 2 on the CLI (1 when it aborts a transaction),
nothing of the refused batch written, and keyed records still taken after it: by every way records
come in (produce plain, -K, --json, --transactional-id, with and without a broker; confluent-kafka and
kafka-python; mirror both ways; transform)."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaError, Producer
from support.runner import KcliRunner, one_error_line

REFUSED = "Compacted topic cannot accept message without key in topic partition"


def end_offset(kcli, topic: str) -> int:
    (described,) = json.loads(kcli("topic", "describe", topic, "--json").stdout)
    return described["partitions"][0]["log_end_offset"]


def values(kcli, topic: str) -> list[tuple]:
    out = kcli("consume", topic, "-b", "-e", "--json").stdout
    return [(r["key"], r["value"]) for r in map(json.loads, out.splitlines())]


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


@pytest.fixture(params=["embedded", "broker"])
def runner(request, brokers):
    """kcli on a one-broker data dir with compacted topic ``c`` holding a:1, with or without its broker
    running (then kcli produces through it, and the broker answers INVALID_RECORD)."""
    brokers.init(1)
    if request.param == "broker":
        brokers.start(0)
    brokers.kcli("topic", "create", "c", "-c", "cleanup.policy=compact")
    brokers.kcli("produce", "c", "-K:", input="a:1\n")
    return brokers.kcli


def test_keyless_records_by_every_produce_path_store_nothing(runner) -> None:
    for args, lines, code in [
        ([], "no key\n", 2),
        (["-K:"], "b:2\nkeyless\n", 2),
        (["--json"], '{"key": "b", "value": "2"}\n{"key": null, "value": "x"}\n', 2),
        (["--json"], '{"value": "x"}\n', 2),
        (["-K:", "--null-value", "DEL"], "DEL\n", 2),  # a keyless tombstone too
        (["-K:", "--transactional-id", "tx"], "b:2\nkeyless\n", 1),
        (["--json", "--transactional-id", "tx"], '{"key": null, "value": "x"}\n', 1),
    ]:
        proc = runner("produce", "c", *args, input=lines, ok=False)
        line = one_error_line(proc, code, REFUSED, "c-0")
        assert ("transaction aborted" in line) == (code == 1), line
        assert end_offset(runner, "c") == 1, args  # nothing: no record, no abort marker
    runner("produce", "c", "-K:", input="b:2\n")
    runner("produce", "c", "-K:", "--transactional-id", "tx", input="a:3\n")
    assert values(runner, "c") == [("a", "1"), ("b", "2"), ("a", "3")]


def test_kafka_python_and_an_idempotent_confluent_producer_get_invalid_record(broker) -> None:
    kafka = pytest.importorskip("kafka")
    broker.kcli("topic", "create", "c", "-c", "cleanup.policy=compact")
    producer = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=0)
    try:
        with pytest.raises(kafka.errors.InvalidRecordError):
            producer.send("c", value=b"keyless").get(timeout=30)
        assert producer.send("c", key=b"k", value=b"1").get(timeout=30).offset == 0
    finally:
        producer.close()
    # idempotent: the refused batch takes no sequence number, so the next keyed ones are stored
    reports: list[tuple[str, KafkaError | None]] = []
    idempotent = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                           "message.timeout.ms": 20000, "linger.ms": 20})
    for name, key in (("keyed", b"k"), ("keyless", None), ("after", b"k")):
        idempotent.produce("c", key=key, value=name.encode(), on_delivery=lambda e, _m, n=name: reports.append((n, e)))
        assert idempotent.flush(30) == 0
    # a batch of a keyed and a keyless record is refused whole, as Kafka refuses it
    idempotent.produce("c", key=b"k", value=b"mixed", on_delivery=lambda e, _m: reports.append(("mixed", e)))
    idempotent.produce("c", value=b"mixed", on_delivery=lambda e, _m: reports.append(("mixed", e)))
    assert idempotent.flush(30) == 0
    idempotent.produce("c", key=b"k", value=b"last", on_delivery=lambda e, _m: reports.append(("last", e)))
    assert idempotent.flush(30) == 0
    assert [(n, e.code() if e else None) for n, e in reports] == [
        ("keyed", None), ("keyless", KafkaError.INVALID_RECORD), ("after", None), ("mixed", KafkaError.INVALID_RECORD),
        ("mixed", KafkaError.INVALID_RECORD), ("last", None)]
    assert values(broker.kcli, "c") == [("k", "1"), ("k", "keyed"), ("k", "after"), ("k", "last")]


def test_mirror_of_keyless_records_into_a_compacted_topic_is_refused_both_ways(broker, tmp_path) -> None:
    here = KcliRunner(tmp_path / "here")
    here("produce", "src", "-K:", input="a:1\nkeyless\nb:2\n")
    broker.kcli("topic", "create", "dst", "-c", "cleanup.policy=compact")
    one_error_line(here("mirror", "src", "--to", broker.bootstrap, "--to-topic", "dst", ok=False), 2, REFUSED, "dst-0")
    assert end_offset(broker.kcli, "dst") == 0
    broker.kcli("produce", "plain", "-K:", input="a:1\nkeyless\n")
    here("topic", "create", "copy", "-c", "cleanup.policy=compact")
    one_error_line(here("mirror", "plain", "--from", broker.bootstrap, "--to-topic", "copy", ok=False), 2, REFUSED,
                   "copy-0")
    assert end_offset(here, "copy") == 0
    here("produce", "copy", "-K:", input="a:2\n")
    assert values(here, "copy") == [("a", "2")]


def test_transform_into_a_compacted_topic_is_refused_before_cmd_runs(kcli, tmp_path) -> None:
    """transform writes CMD's lines without keys, which a compacted OUT refuses: the run is refused (exit 2)
    before CMD runs, leaving OUT and the group's offsets as they were."""
    kcli("produce", "in", input="x\ny\n")
    kcli("topic", "create", "out", "-c", "cleanup.policy=compact,delete")
    ran = tmp_path / "ran"
    one_error_line(kcli("transform", "in", "out", "-g", "g", "--", "touch", str(ran), ok=False), 2, "compacted",
                   "cleanup.policy=compact,delete", "without keys")
    assert not ran.exists() and end_offset(kcli, "out") == 0
    kcli("topic", "create", "plain")
    kcli("transform", "in", "plain", "-g", "g", "--", "cat")  # the same input is still new for g
    assert values(kcli, "plain") == [(None, "x"), (None, "y")]
