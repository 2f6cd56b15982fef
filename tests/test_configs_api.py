"""DescribeConfigs / AlterConfigs / IncrementalAlterConfigs against a real broker, through
confluent-kafka's AdminClient, kafka-python's KafkaAdminClient and raw requests: topic and broker
resources, sources and synonyms, validate_only, and bad input answered with Kafka's codes (nothing
changed, the connection still usable)."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)
from support.brokers import api_versions_ok, call, connect

from kcli.protocol import ApiKey, ErrorCode

TIMEOUT = 30


@pytest.fixture
def admin(broker) -> AdminClient:
    broker.kcli("topic", "create", "orders", "-p", "2", "-c", "retention.ms=3600000")
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def _describe(admin: AdminClient, resource: ConfigResource) -> dict:
    return admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(TIMEOUT)


def _incremental(admin: AdminClient, resource: ConfigResource, *entries: ConfigEntry, validate_only=False):
    resource = ConfigResource(resource.restype, resource.name, incremental_configs=list(entries))
    futures = admin.incremental_alter_configs([resource], validate_only=validate_only, request_timeout=TIMEOUT)
    return futures[resource].result(TIMEOUT)


def _topic_configs(kcli, topic: str) -> dict:
    out = kcli("config", "describe", "--topic", topic, "--json").stdout
    return {e["name"]: e for e in json.loads(out)["configs"]}


def test_confluent_describe_topic_shows_override_and_defaults(admin) -> None:
    configs = _describe(admin, ConfigResource(ConfigResource.Type.TOPIC, "orders"))
    retention = configs["retention.ms"]
    assert retention.value == "3600000"
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not retention.is_read_only
    segment = configs["segment.bytes"]
    assert (segment.value, segment.source) == (str(1 << 30), ConfigSource.DEFAULT_CONFIG.value)
    # Kafka's synonyms: the topic override, then the broker configs behind it (log.retention.hours=168)
    names = [(s.name, s.source) for s in retention.synonyms.values()]
    assert ("retention.ms", ConfigSource.DYNAMIC_TOPIC_CONFIG.value) in names
    assert ("log.retention.hours", ConfigSource.DEFAULT_CONFIG.value) in names


def test_confluent_incremental_alter_topic_set_delete_append(admin, broker) -> None:
    topic = ConfigResource(ConfigResource.Type.TOPIC, "orders")
    _incremental(
        admin,
        topic,
        ConfigEntry("min.insync.replicas", "1", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND),
    )
    configs = _describe(admin, topic)
    assert configs["min.insync.replicas"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    assert configs["cleanup.policy"].value == "delete"
    # the data dir's metadata holds it: kcli (through the broker) sees the same
    seen = _topic_configs(broker.kcli, "orders")
    assert seen["min.insync.replicas"]["source"] == "DYNAMIC_TOPIC_CONFIG"


def test_confluent_validate_only_changes_nothing(admin) -> None:
    topic = ConfigResource(ConfigResource.Type.TOPIC, "orders")
    _incremental(admin, topic, ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
                 validate_only=True)
    assert _describe(admin, topic)["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("no.such.config", "1", "INVALID_CONFIG"),
        ("segment.bytes", "lots", "INVALID_CONFIG"),
        ("min.insync.replicas", "0", "INVALID_CONFIG"),
    ],
)
def test_confluent_bad_topic_change_is_refused_and_nothing_applied(admin, name, value, code) -> None:
    topic = ConfigResource(ConfigResource.Type.TOPIC, "orders")
    with pytest.raises(KafkaException) as err:
        _incremental(
            admin,
            topic,
            ConfigEntry("segment.ms", "60000", incremental_operation=AlterConfigOpType.SET),  # a good one
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET),
        )
    assert err.value.args[0].name() == code
    configs = _describe(admin, topic)
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value  # the good one was not applied


def test_confluent_unknown_topic(admin) -> None:
    missing = ConfigResource(ConfigResource.Type.TOPIC, "nope")
    with pytest.raises(KafkaException) as err:
        _describe(admin, missing)
    assert err.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"
    with pytest.raises(KafkaException) as err:
        _incremental(admin, missing, ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET))
    assert err.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_confluent_broker_configs_dynamic_per_broker_and_default(admin, broker) -> None:
    broker0 = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = _describe(admin, broker0)
    assert configs["num.partitions"].value == "1"
    assert configs["num.partitions"].is_read_only
    assert not configs["log.retention.ms"].is_read_only
    assert configs["log.retention.hours"].value == "168"

    # confluent-kafka cannot name the default entity (an empty broker name): kcli through the broker can
    broker.kcli("config", "alter", "--broker-defaults", "--set", "log.retention.ms=600000")
    _incremental(admin, broker0, ConfigEntry("min.insync.replicas", "2", incremental_operation=AlterConfigOpType.SET))
    configs = _describe(admin, broker0)
    assert configs["log.retention.ms"].value == "600000"
    assert configs["log.retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert configs["min.insync.replicas"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    defaults = json.loads(broker.kcli("config", "describe", "--broker-defaults", "--json").stdout)["configs"]
    assert [(c["name"], c["value"]) for c in defaults] == [("log.retention.ms", "600000")]
    # topics without an override now default to them; the topic's own override still wins
    topic = _describe(admin, ConfigResource(ConfigResource.Type.TOPIC, "orders"))
    assert topic["min.insync.replicas"].value == "2"
    assert topic["min.insync.replicas"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert topic["retention.ms"].value == "3600000"
    from confluent_kafka.admin import NewTopic

    admin.create_topics([NewTopic("fresh", 1, 1)])["fresh"].result(TIMEOUT)
    fresh = _describe(admin, ConfigResource(ConfigResource.Type.TOPIC, "fresh"))
    assert (fresh["retention.ms"].value, fresh["retention.ms"].source) == (
        "600000",
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
    )


def test_confluent_read_only_and_bad_broker_configs_are_invalid_requests(admin) -> None:
    broker0 = ConfigResource(ConfigResource.Type.BROKER, "0")
    for name, value in (("num.partitions", "4"), ("no.such.config", "1"), ("log.retention.ms", "soon")):
        with pytest.raises(KafkaException) as err:
            _incremental(admin, broker0, ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
        assert err.value.args[0].name() == "INVALID_REQUEST", name
    configs = _describe(admin, broker0)
    assert configs["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["log.retention.ms"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value


def test_confluent_legacy_alter_configs_replaces_the_set(admin) -> None:
    topic = ConfigResource(ConfigResource.Type.TOPIC, "orders", set_config={"segment.ms": "60000"})
    admin.alter_configs([topic], request_timeout=TIMEOUT)[topic].result(TIMEOUT)
    configs = _describe(admin, ConfigResource(ConfigResource.Type.TOPIC, "orders"))
    assert configs["segment.ms"].value == "60000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value  # no longer in the set


def test_kafka_python_describe_and_alter(admin, broker) -> None:
    from kafka.admin import ConfigResource as KPResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        client.alter_configs([KPResource(ConfigResourceType.TOPIC, "orders", {"retention.bytes": "1048576"})])
        # kafka-python alters incrementally where the broker offers it: retention.ms stays
        configs = _kp_describe(client, KPResource(ConfigResourceType.TOPIC, "orders"))["topic"]["orders"]
        assert (configs["retention.bytes"]["value"], configs["retention.ms"]["value"]) == ("1048576", "3600000")
        assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert {s["name"] for s in configs["retention.ms"]["synonyms"]} == {"retention.ms", "log.retention.hours"}
        # the legacy AlterConfigs replaces the topic's whole set; kafka-python sends the set it described
        client.alter_configs([KPResource(ConfigResourceType.TOPIC, "orders", {"segment.ms": "60000"})],
                             incremental=False)
        configs = _kp_describe(client, KPResource(ConfigResourceType.TOPIC, "orders"))["topic"]["orders"]
        assert configs["segment.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert configs["retention.ms"]["value"] == "3600000"
        brokers = _kp_describe(client, KPResource(ConfigResourceType.BROKER, "0"))["broker"]["0"]
        assert brokers["num.partitions"]["value"] == "1" and brokers["num.partitions"]["read_only"]
    finally:
        client.close()


def _kp_describe(client, resource) -> dict:
    return client.describe_configs([resource], include_synonyms=True, config_filter="all")


def test_raw_requests_every_version_and_bad_input_keep_the_connection(broker) -> None:
    broker.kcli("topic", "create", "raw")
    sock = connect(("127.0.0.1", broker.port))
    try:
        for version in range(5):
            resp = call(sock, ApiKey.DESCRIBE_CONFIGS, version, {
                "resources": [{"resource_type": 2, "resource_name": "raw", "configuration_keys": ["segment.ms"]},
                              {"resource_type": 4, "resource_name": "7", "configuration_keys": None},
                              {"resource_type": 8, "resource_name": "0", "configuration_keys": None}],
                "include_synonyms": True, "include_documentation": True})
            topic, other_broker, logger = resp.results
            assert topic.error_code == 0 and [c.name for c in topic.configs] == ["segment.ms"]
            assert other_broker.error_code == ErrorCode.INVALID_REQUEST
            assert logger.error_code == ErrorCode.INVALID_REQUEST
            if version >= 3:
                assert topic.configs[0].documentation and topic.configs[0].config_type == 5
        for version in range(3):
            resp = call(sock, ApiKey.ALTER_CONFIGS, version, {
                "resources": [{"resource_type": 2, "resource_name": "raw",
                               "configs": [{"name": "segment.ms", "value": str(60000 + version)}]}],
                "validate_only": False})
            assert resp.responses[0].error_code == 0
        for version in range(2):
            resp = call(sock, ApiKey.INCREMENTAL_ALTER_CONFIGS, version, {
                "resources": [{"resource_type": 2, "resource_name": "raw",
                               "configs": [{"name": "segment.ms", "config_operation": 0, "value": "70000"},
                                           {"name": "segment.ms", "config_operation": 1, "value": None}]},
                              {"resource_type": 2, "resource_name": "raw2", "configs": []},
                              {"resource_type": 2, "resource_name": "raw",
                               "configs": [{"name": "segment.ms", "config_operation": 9, "value": "1"}]}],
                "validate_only": False})
            codes = [r.error_code for r in resp.responses]
            assert codes == [ErrorCode.INVALID_REQUEST, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                             ErrorCode.INVALID_REQUEST]
        assert api_versions_ok(sock)
    finally:
        sock.close()
    configs = _topic_configs(broker.kcli, "raw")
    assert configs["segment.ms"]["value"] == "60002"


def test_dynamic_retention_reaches_the_running_broker(brokers) -> None:
    """A cluster-wide log.retention.ms set at run time deletes old segments of a topic without an
    override, on the broker that leads it, without a restart."""
    broker = brokers.start(0, "--override", "log.retention.check.interval.ms=300")
    broker.kcli = brokers.kcli
    broker.kcli("topic", "create", "old", "-c", "segment.bytes=1024")
    for batch in range(4):  # a batch each: four segments, the last one active
        broker.kcli("produce", "old", input="".join(f"{batch}{i:0100d}\n" for i in range(20)))
    before = _start_offset(broker.kcli, "old")
    assert before == 0
    time.sleep(1.5)
    broker.kcli("config", "alter", "--broker-defaults", "--set", "log.retention.ms=1000")
    deadline = time.monotonic() + 60
    while _start_offset(broker.kcli, "old") == 0:
        assert time.monotonic() < deadline, "retention never ran"
        time.sleep(0.5)


def _start_offset(kcli, topic: str) -> int:
    rows = json.loads(kcli("topic", "describe", topic, "--json").stdout)
    return int(rows[0]["partitions"][0]["log_start_offset"])


def _alter_raw(sock, resource_type: int, name: str, configs: list[tuple[str, int, str | None]],
               validate_only: bool = False) -> tuple[int, str | None]:
    resp = call(sock, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
        "resources": [{"resource_type": resource_type, "resource_name": name,
                       "configs": [{"name": n, "config_operation": op, "value": v} for n, op, v in configs]}],
        "validate_only": validate_only})
    return resp.responses[0].error_code, resp.responses[0].error_message


def test_raw_cluster_default_entity_list_ops_and_validate_only(broker) -> None:
    """The empty broker name (Kafka's --entity-default), which confluent-kafka and kafka-python cannot
    name; APPEND/SUBTRACT only on list configs; validate_only on a broker resource."""
    broker.kcli("topic", "create", "lists")
    sock = connect(("127.0.0.1", broker.port))
    try:
        assert _alter_raw(sock, 4, "", [("log.retention.bytes", 0, "1048576")], validate_only=True)[0] == 0
        describe = {"resources": [{"resource_type": 4, "resource_name": "", "configuration_keys": None}],
                    "include_synonyms": False, "include_documentation": False}
        assert call(sock, ApiKey.DESCRIBE_CONFIGS, 4, describe).results[0].configs == []
        assert _alter_raw(sock, 4, "", [("log.retention.bytes", 0, "1048576")]) == (0, None)
        (entry,) = call(sock, ApiKey.DESCRIBE_CONFIGS, 4, describe).results[0].configs
        assert (entry.name, entry.value, entry.config_source, entry.read_only) == (
            "log.retention.bytes", "1048576", 3, False)
        # a list config takes APPEND and SUBTRACT; others refuse them
        assert _alter_raw(sock, 2, "lists", [("cleanup.policy", 2, "delete")])[0] == 0
        code, message = _alter_raw(sock, 2, "lists", [("retention.ms", 2, "5")])
        assert code == ErrorCode.INVALID_CONFIG and "not a list" in message
        code, _ = _alter_raw(sock, 2, "lists", [("cleanup.policy", 2, "shred")])  # not a policy
        assert code == ErrorCode.INVALID_CONFIG
        # nothing left is Kafka's empty list: neither delete nor compact
        assert _alter_raw(sock, 2, "lists", [("cleanup.policy", 3, "delete")])[0] == 0
        code, _ = _alter_raw(sock, 2, "lists", [("retention.ms", 0, None)])  # SET needs a value
        assert code == ErrorCode.INVALID_REQUEST
        assert api_versions_ok(sock)
    finally:
        sock.close()
    configs = _topic_configs(broker.kcli, "lists")
    assert (configs["cleanup.policy"]["value"], configs["cleanup.policy"]["source"]) == ("", "DYNAMIC_TOPIC_CONFIG")
    assert configs["retention.bytes"]["source"] == "DYNAMIC_DEFAULT_BROKER_CONFIG"
