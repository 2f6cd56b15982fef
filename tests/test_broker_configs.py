"""Broker configs: kcli.toml's [broker] table and `kcli broker serve` flags as Kafka's server.properties
(a 3-broker cluster configured like a normal Kafka, 4 partitions and RF 3 by default), bad configs refused
before anything starts, a dynamic change seen by a running broker, and the topic APIs that use the
defaults (CreateTopics v0-7 with -1 and validate_only, DeleteTopics v0-6 by name and id, CreatePartitions
v0-3)."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaException, Producer
from support.brokers import api_versions_ok, call, connect

from kcli.protocol import ApiKey, ErrorCode

TIMEOUT = 30


def _describe(kcli, topic: str) -> tuple[int, int]:
    """(partitions, replication factor) of ``topic`` as kcli shows it."""
    rows = json.loads(kcli("topic", "describe", topic, "--json").stdout)
    parts = rows[0]["partitions"]
    return len(parts), len(parts[0]["replicas"])


def _auto_create_with_confluent(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(20):
        producer.produce(topic, key=str(i).encode(), value=b"v")
    assert producer.flush(TIMEOUT) == 0


@pytest.mark.parametrize("how", ["kcli.toml", "flags"])
def test_three_brokers_configured_like_kafka_auto_create_4_partitions_rf_3(brokers, how) -> None:
    brokers.init(3)
    extra: tuple[str, ...] = ()
    if how == "kcli.toml":
        (brokers.data_dir / "kcli.toml").write_text(
            "[broker]\nnum.partitions = 4\ndefault.replication.factor = 3\n"
        )
    else:
        extra = ("--num-partitions", "4", "--default-replication-factor", "3")
    started = [brokers.spawn(b, *extra) for b in range(3)]
    for b in started:
        b.wait_ready()
    _auto_create_with_confluent(started[0].bootstrap, "auto")
    assert _describe(brokers.kcli, "auto") == (4, 3)
    # kcli's own topic create without -p/-r gets them too (through the brokers)
    brokers.kcli("topic", "create", "plain")
    assert _describe(brokers.kcli, "plain") == (4, 3)
    # and the brokers report where the values come from
    shown = json.loads(brokers.kcli("config", "describe", "--broker", "1", "--name", "num.partitions",
                                    "--json").stdout)["configs"]
    assert [(c["value"], c["source"]) for c in shown] == [("4", "STATIC_BROKER_CONFIG")]


def test_kcli_toml_broker_table_flattens_and_keeps_serve_defaults(kcli) -> None:
    """``log.retention.ms = 5`` is TOML for nested tables; [broker.serve] still holds option defaults."""
    kcli("cluster", "init")
    (kcli.data_dir / "kcli.toml").write_text(
        '[broker]\nlog.retention.ms = 60000\n"num.partitions" = 3\n[broker.message]\nmax.bytes = 2048\n'
        "[broker.serve]\nmax_request_size = 2048\n"
    )
    kcli("topic", "create", "t")
    assert _describe(kcli, "t") == (3, 1)
    configs = {c["name"]: c for c in json.loads(kcli("config", "describe", "--topic", "t", "--json").stdout)["configs"]}
    assert (configs["retention.ms"]["value"], configs["retention.ms"]["source"]) == ("60000", "STATIC_BROKER_CONFIG")
    assert configs["max.message.bytes"]["value"] == "2048"


@pytest.mark.parametrize(
    ("toml", "args", "words"),
    [
        ("[broker]\nnum.partitionz = 4\n", (), "unknown broker config 'num.partitionz'"),
        ("[broker]\nnum.partitions = 0\n", (), "num.partitions"),
        ("[broker]\nlog.retention.ms = \"soon\"\n", (), "log.retention.ms"),
        ("", ("--override", "no.such=1"), "unknown broker config 'no.such'"),
        ("", ("--override", "log.segment.bytes=big"), "log.segment.bytes"),
        ("", ("--override", "justaname"), "NAME=VALUE"),
        ("", ("--num-partitions", "0"), "--num-partitions"),
    ],
)
def test_bad_broker_configs_are_usage_errors_and_nothing_starts(kcli, toml, args, words) -> None:
    kcli("cluster", "init")
    if toml:
        (kcli.data_dir / "kcli.toml").write_text(toml)
    res = kcli("broker", "serve", "--id", "0", *args, ok=False, timeout=30)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kcli: error:") and words in lines[0], res.stderr
    assert not (kcli.data_dir / "broker-0" / "broker.json").exists()


def test_dynamic_min_insync_replicas_reaches_the_running_broker(broker) -> None:
    broker.kcli("topic", "create", "orders")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "message.timeout.ms": 5000,
                         "retries": 0})
    producer.produce("orders", b"first")
    assert producer.flush(TIMEOUT) == 0
    broker.kcli("config", "alter", "--broker", "0", "--set", "min.insync.replicas=2")
    errors: list = []
    producer.produce("orders", b"refused", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(TIMEOUT)
    assert errors and errors[0] is not None and errors[0].name() == "NOT_ENOUGH_REPLICAS"
    broker.kcli("config", "alter", "--broker", "0", "--delete", "min.insync.replicas")
    errors.clear()
    producer.produce("orders", b"accepted", on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(TIMEOUT) == 0 and errors == [None]


# ---------------------------------------------------------------- topic APIs on the wire


def _create(sock, version: int, name: str, partitions: int, rf: int, validate_only: bool = False,
            configs: list | None = None):
    return call(sock, ApiKey.CREATE_TOPICS, version, {
        "topics": [{"name": name, "num_partitions": partitions, "replication_factor": rf, "assignments": [],
                    "configs": configs or []}],
        "timeout_ms": 10000, "validate_only": validate_only}).topics[0]


def test_create_topics_every_version_with_defaults_and_validate_only(brokers) -> None:
    brokers.init(1)
    broker = brokers.start(0, "--num-partitions", "3")
    sock = connect(("127.0.0.1", broker.port))
    try:
        for version in range(8):
            name = f"t{version}"
            if version >= 1:  # validate_only: the answer, and nothing made
                result = _create(sock, version, name, -1 if version >= 4 else 2, -1 if version >= 4 else 1,
                                 validate_only=True)
                assert result.error_code == 0, result
                if version >= 5:
                    assert (result.num_partitions, result.replication_factor) == (3 if version >= 4 else 2, 1)
            result = _create(sock, version, name, -1 if version >= 4 else 2, -1 if version >= 4 else 1,
                             configs=[{"name": "retention.ms", "value": "1000"}])
            assert result.error_code == 0, result
            expected = 3 if version >= 4 else 2
            assert _describe(brokers.kcli, name) == (expected, 1)
            if version >= 5:
                assert (result.num_partitions, result.replication_factor) == (expected, 1)
                configs = {c.name: c for c in result.configs}
                assert configs["retention.ms"].value == "1000" and configs["retention.ms"].config_source == 1
                assert configs["segment.bytes"].config_source == 5
            if version >= 7:
                topic_id = json.loads(brokers.kcli("topic", "describe", name, "--json").stdout)[0].get("topic_id")
                assert any(result.topic_id)
                if topic_id is not None:
                    assert result.topic_id.hex() == topic_id.replace("-", "")
        bad = _create(sock, 7, "bad", 1, 1, configs=[{"name": "retention.ms", "value": "soon"}])
        assert bad.error_code == ErrorCode.INVALID_CONFIG and bad.configs is None
        assert api_versions_ok(sock)
    finally:
        sock.close()
    assert "bad" not in brokers.kcli("topic", "list").stdout.split()


def test_delete_topics_every_version_by_name_and_id(broker) -> None:
    sock = connect(("127.0.0.1", broker.port))
    try:
        for version in range(7):
            broker.kcli("topic", "create", f"d{version}")
        for version in range(6):
            resp = call(sock, ApiKey.DELETE_TOPICS, version, {"topic_names": [f"d{version}", "missing"],
                                                             "timeout_ms": 10000})
            assert [r.error_code for r in resp.responses] == [0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
        created = _create(sock, 7, "byid", 1, 1)
        resp = call(sock, ApiKey.DELETE_TOPICS, 6, {"topics": [
            {"name": None, "topic_id": created.topic_id},
            {"name": "d6", "topic_id": bytes(16)},
            {"name": None, "topic_id": bytes.fromhex("11" * 16)},
            {"name": "d6", "topic_id": created.topic_id},
        ], "timeout_ms": 10000})
        results = [(r.name, r.error_code) for r in resp.responses]
        assert results == [("byid", 0), ("d6", 0), (None, ErrorCode.UNKNOWN_TOPIC_ID),
                           ("d6", ErrorCode.INVALID_REQUEST)]
        assert resp.responses[0].topic_id == created.topic_id
        assert api_versions_ok(sock)
    finally:
        sock.close()
    assert broker.kcli("topic", "list").stdout.split() == []


def test_create_partitions_every_version(broker) -> None:
    broker.kcli("topic", "create", "grow")
    sock = connect(("127.0.0.1", broker.port))
    try:
        for version in range(4):
            resp = call(sock, ApiKey.CREATE_PARTITIONS, version, {
                "topics": [{"name": "grow", "count": version + 2, "assignments": None},
                           {"name": "missing", "count": 2, "assignments": None}],
                "timeout_ms": 10000, "validate_only": False})
            assert [r.error_code for r in resp.results] == [0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    finally:
        sock.close()
    assert _describe(broker.kcli, "grow") == (5, 1)


def test_confluent_create_topics_uses_broker_defaults_and_validate_only(brokers) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    brokers.init(1)
    broker = brokers.start(0, "--override", "num.partitions=5")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("checked")], validate_only=True)["checked"].result(TIMEOUT)
    assert "checked" not in brokers.kcli("topic", "list").stdout.split()
    admin.create_topics([NewTopic("made")])["made"].result(TIMEOUT)
    assert _describe(brokers.kcli, "made") == (5, 1)
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic("toomany", replication_factor=3)])["toomany"].result(TIMEOUT)
    assert err.value.args[0].name() == "INVALID_REPLICATION_FACTOR"
