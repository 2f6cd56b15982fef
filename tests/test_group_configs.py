"""Group configs (Kafka 4.0's ``kafka-configs --entity-type groups``, KIP-848) against a real broker:
DescribeConfigs / IncrementalAlterConfigs / AlterConfigs on resource type GROUP through confluent-kafka
and raw requests, the broker's bounds (INVALID_CONFIG, nothing changed), and the coordinator using a
group's own heartbeat interval and session timeout: a live confluent consumer heartbeats at the group's
interval and is expired after the group's session timeout, much shorter than the broker's."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from support.brokers import call, connect
from support.waits import stop_process, wait_for

from kcli.protocol import ApiKey, ErrorCode

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import KafkaException  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

TIMEOUT = 30
GROUP_RESOURCE = 32
SESSION, HEARTBEAT = "consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"
# the broker's own: long enough that only the group's configs can explain what the tests see
FLAGS = (
    "--group-consumer-session-timeout-ms", "45000", "--group-consumer-heartbeat-interval-ms", "5000",
    "--override", "group.consumer.min.session.timeout.ms=2000",
    "--override", "group.consumer.min.heartbeat.interval.ms=200",
)


@pytest.fixture
def broker(brokers):
    b = brokers.start(0, *FLAGS)
    b.kcli = brokers.kcli
    b.runner = brokers.runner
    b.runner.in_process("topic", "create", "orders", "--partitions", 2)
    return b


@pytest.fixture
def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def _group(name: str, *entries: ConfigEntry) -> ConfigResource:
    return ConfigResource(ResourceType.GROUP, name, incremental_configs=list(entries))


def _describe(admin: AdminClient, name: str) -> dict:
    resource = _group(name)
    return admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(TIMEOUT)


def _set(admin: AdminClient, name: str, validate_only: bool = False, **values: int) -> None:
    entries = [ConfigEntry(k.replace("_", "."), str(v), incremental_operation=AlterConfigOpType.SET)
               for k, v in values.items()]
    resource = _group(name, *entries)
    admin.incremental_alter_configs([resource], validate_only=validate_only,
                                    request_timeout=TIMEOUT)[resource].result(TIMEOUT)


def _values(admin: AdminClient, name: str) -> dict[str, tuple[str, int]]:
    return {k: (v.value, v.source) for k, v in _describe(admin, name).items()}


def test_confluent_describe_and_alter_group_configs(admin, broker) -> None:
    # a group that does not exist answers with the broker's values, as Kafka does
    assert _values(admin, "nobody") == {SESSION: ("45000", ConfigSource.DEFAULT_CONFIG.value),
                                        HEARTBEAT: ("5000", ConfigSource.DEFAULT_CONFIG.value)}
    _set(admin, "g", consumer_session_timeout_ms=3000, consumer_heartbeat_interval_ms=1000)
    configs = _describe(admin, "g")
    assert (configs[SESSION].value, configs[HEARTBEAT].value) == ("3000", "1000")
    assert configs[SESSION].source == ConfigSource.GROUP_CONFIG.value
    assert not configs[SESSION].is_read_only
    assert [(s.name, s.value) for s in configs[SESSION].synonyms.values()] == [
        (SESSION, "3000"), ("group.consumer.session.timeout.ms", "45000")]
    # validate_only changes nothing; DELETE falls back to the broker's value
    _set(admin, "g", validate_only=True, consumer_heartbeat_interval_ms=500)
    assert _values(admin, "g")[HEARTBEAT] == ("1000", ConfigSource.GROUP_CONFIG.value)
    resource = _group("g", ConfigEntry(SESSION, None, incremental_operation=AlterConfigOpType.DELETE),
                      ConfigEntry(HEARTBEAT, "2000", incremental_operation=AlterConfigOpType.SET))
    admin.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource].result(TIMEOUT)
    assert _values(admin, "g") == {SESSION: ("45000", ConfigSource.DEFAULT_CONFIG.value),
                                   HEARTBEAT: ("2000", ConfigSource.GROUP_CONFIG.value)}
    # kcli sees the same through the broker
    table = broker.kcli("config", "describe", "--group", "g").stdout.splitlines()
    assert f"{HEARTBEAT}\t2000\tDYNAMIC_GROUP_CONFIG\tno" in table


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({SESSION: "1000"}, "group.consumer.min.session.timeout.ms"),  # below the broker's bound
        ({SESSION: "60001"}, "group.consumer.max.session.timeout.ms"),  # above Kafka's default max
        ({HEARTBEAT: "100"}, "group.consumer.min.heartbeat.interval.ms"),
        ({HEARTBEAT: "15001"}, "group.consumer.max.heartbeat.interval.ms"),
        ({SESSION: "3000", HEARTBEAT: "3000"}, "must be greater than"),
        ({"share.session.timeout.ms": "3000"}, "unknown config"),
        ({SESSION: "soon"}, "not an integer"),
    ],
)
def test_out_of_bounds_is_invalid_config_and_nothing_changes(admin, broker, values, words) -> None:
    _set(admin, "g", consumer_heartbeat_interval_ms=1000)
    entries = [ConfigEntry(HEARTBEAT, "2000", incremental_operation=AlterConfigOpType.SET)] if HEARTBEAT not in values else []
    entries += [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()]
    resource = _group("g", *entries)
    with pytest.raises(KafkaException) as err:
        admin.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource].result(TIMEOUT)
    assert err.value.args[0].name() == "INVALID_CONFIG"
    assert words in err.value.args[0].str()
    assert _values(admin, "g") == {SESSION: ("45000", ConfigSource.DEFAULT_CONFIG.value),
                                   HEARTBEAT: ("1000", ConfigSource.GROUP_CONFIG.value)}


def test_raw_every_version_alter_configs_and_empty_name(broker) -> None:
    with connect(broker.socket_path) as sock:
        for version in range(5):
            resp = call(sock, ApiKey.DESCRIBE_CONFIGS, version, {
                "resources": [{"resource_type": GROUP_RESOURCE, "resource_name": "g", "configuration_keys": None}],
                "include_synonyms": True, "include_documentation": True})
            result = resp.results[0]
            assert (result.error_code, result.resource_type) == (ErrorCode.NONE, GROUP_RESOURCE)
            assert sorted(c.name for c in result.configs) == [HEARTBEAT, SESSION]
        # AlterConfigs replaces the group's whole set
        for version in range(3):
            resp = call(sock, ApiKey.ALTER_CONFIGS, version, {
                "resources": [{"resource_type": GROUP_RESOURCE, "resource_name": "g",
                               "configs": [{"name": SESSION, "value": str(10_000 + version)}]}],
                "validate_only": False})
            assert resp.responses[0].error_code == ErrorCode.NONE
        resp = call(sock, ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": GROUP_RESOURCE, "resource_name": "g", "configuration_keys": [SESSION]}],
            "include_synonyms": False, "include_documentation": False})
        assert [(c.name, c.value, c.config_source) for c in resp.results[0].configs] == [(SESSION, "10002", 8)]
        # Kafka has no default group entity: an empty name is an invalid request, both ways
        resp = call(sock, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
            "resources": [{"resource_type": GROUP_RESOURCE, "resource_name": "",
                           "configs": [{"name": SESSION, "config_operation": 0, "value": "10000"}]}],
            "validate_only": False})
        assert resp.responses[0].error_code == ErrorCode.INVALID_REQUEST
        resp = call(sock, ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": GROUP_RESOURCE, "resource_name": "", "configuration_keys": None}],
            "include_synonyms": False, "include_documentation": False})
        assert resp.results[0].error_code == ErrorCode.INVALID_REQUEST


def _heartbeat(sock, group: str, member_id: str = "", epoch: int = 0):
    return call(sock, ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, {
        "group_id": group, "member_id": member_id, "member_epoch": epoch, "rebalance_timeout_ms": 30_000,
        "subscribed_topic_names": ["orders"], "topic_partitions": []})


def _members(broker, group: str) -> list:
    with connect(broker.socket_path) as sock:
        return list(call(sock, ApiKey.CONSUMER_GROUP_DESCRIBE, 0, {"group_ids": [group]}).groups[0].members)


def test_heartbeat_answers_carry_the_group_interval_and_it_follows_changes(admin, broker) -> None:
    with connect(broker.socket_path) as sock:
        first = _heartbeat(sock, "g")
        assert (first.error_code, first.heartbeat_interval_ms) == (ErrorCode.NONE, 5000)  # the broker's
        _set(admin, "g", consumer_heartbeat_interval_ms=700)
        again = _heartbeat(sock, "g", first.member_id, first.member_epoch)
        assert (again.error_code, again.heartbeat_interval_ms) == (ErrorCode.NONE, 700)
        other = _heartbeat(sock, "other")
        assert other.heartbeat_interval_ms == 5000  # only that group's


CONSUMER = """
import sys, confluent_kafka
c = confluent_kafka.Consumer({"bootstrap.servers": sys.argv[1], "group.id": "live", "group.protocol": "consumer",
                              "auto.offset.reset": "earliest"})
c.subscribe(["orders"])
while True:
    c.poll(0.1)
"""


def test_live_consumer_follows_the_group_interval_and_expires_after_its_session(admin, broker) -> None:
    # a 3 s session with a 1 s interval: a consumer heartbeating at the broker's 5 s would be expired
    _set(admin, "live", consumer_session_timeout_ms=3000, consumer_heartbeat_interval_ms=1000)
    proc = subprocess.Popen([sys.executable, "-c", CONSUMER, broker.bootstrap])
    try:
        wait_for("the consumer joins", lambda: len(_members(broker, "live")) == 1)
        member = _members(broker, "live")[0]
        time.sleep(8)  # well past the session: it stays because it heartbeats at the group's interval
        now = _members(broker, "live")
        assert [(m.member_id, m.member_epoch) for m in now] == [(member.member_id, member.member_epoch)]
        proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        wait_for("the silent member is expired", lambda: not _members(broker, "live"), 40)
        assert time.monotonic() - stopped < 20  # the group's 3 s session, not the broker's 45 s
    finally:
        proc.send_signal(signal.SIGCONT)
        stop_process(proc)


def test_group_configs_survive_a_metadata_snapshot_and_resolve_per_group() -> None:
    from kcli.cluster.configs import group_configs
    from kcli.cluster.metadata import ClusterState

    state = ClusterState()
    state.apply({"type": "group_config", "group": "g", "configs": {SESSION: 3000}, "offset": 0})
    state.apply({"type": "broker_config", "entity": "", "configs": {}, "offset": 1})
    again = ClusterState.from_json(state.to_json())
    assert group_configs(again, "g") == {SESSION: 3000, HEARTBEAT: 5000}
    assert group_configs(again, "h") == {SESSION: 45000, HEARTBEAT: 5000}
    again.apply({"type": "group_config", "group": "g", "configs": {}, "offset": 2})
    assert again.group_configs == {}
