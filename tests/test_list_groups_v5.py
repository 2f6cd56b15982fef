"""ListGroups v0-5 and DescribeGroups v0-5 against a real broker: each group's state (KIP-518) and type
(KIP-848) in the answer, the states and types filters (case-insensitive, as Kafka matches them), and the
admin clients that use them -- confluent-kafka's list_consumer_groups(states=..., types=...) and
describe_consumer_groups, kafka-python's list_groups(states_filter=..., types_filter=...).

Two groups: "live" has a confluent-kafka member (Stable), "idle" only committed offsets (Empty)."""

from __future__ import annotations

import pytest
from support.brokers import call, connect
from support.waits import wait_for

from kcli.protocol import ApiKey, ErrorCode

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient  # noqa: E402

TOPIC = "events"
WAIT = 30.0
# DescribeGroups' authorized operations of a group when there are no ACLs: READ, DELETE, DESCRIBE,
# DESCRIBE_CONFIGS, ALTER_CONFIGS (Kafka's bit per AclOperation code: 3, 6, 8, 10, 11)
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
NOT_REQUESTED = -(1 << 31)


@pytest.fixture
def groups(broker):
    """The broker with a Stable group "live" (a member stays until the test ends) and an Empty one
    "idle" (offsets committed, no member)."""
    broker.runner.in_process("topic", "create", TOPIC, "--partitions", 2)
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    idle = confluent_kafka.Consumer({**conf, "group.id": "idle"})
    idle.commit(offsets=[confluent_kafka.TopicPartition(TOPIC, 0, 0)], asynchronous=False)
    idle.close()
    live = confluent_kafka.Consumer({**conf, "group.id": "live"})
    live.subscribe([TOPIC])
    wait_for("the live member's assignment", lambda: live.poll(0.2) is None and bool(live.assignment()), WAIT)
    try:
        yield broker
    finally:
        live.close()


def listed(broker, version: int, **filters) -> dict[str, tuple[str, str, str]]:
    with connect(broker.socket_path) as sock:
        body = call(sock, ApiKey.LIST_GROUPS, version, filters)
    assert body.error_code == ErrorCode.NONE
    return {g.group_id: (g.protocol_type, g.group_state, g.group_type) for g in body.groups}


def test_every_version_lists_and_describes_both_groups(groups):
    """ListGroups v0-3 and DescribeGroups v0-5 (v3 classic, v5 flexible): the same groups, states only
    where the version has them."""
    for version in range(4):
        assert listed(groups, version) == {"live": ("consumer", "", ""), "idle": ("consumer", "", "")}
    with connect(groups.socket_path) as sock:
        for version in range(6):
            body = call(sock, ApiKey.DESCRIBE_GROUPS, version, {"groups": ["live", "idle", "never"]})
            got = [(g.error_code, g.group_id, g.group_state, len(g.members)) for g in body.groups]
            assert got == [(0, "live", "Stable", 1), (0, "idle", "Empty", 0), (0, "never", "Dead", 0)], (
                version
            )


def test_list_groups_v4_answers_states_and_filters_by_them(groups):
    assert listed(groups, 4) == {"live": ("consumer", "Stable", ""), "idle": ("consumer", "Empty", "")}
    assert set(listed(groups, 4, states_filter=["stable"])) == {"live"}
    assert set(listed(groups, 4, states_filter=[" EMPTY "])) == {"idle"}  # trimmed, any case
    assert set(listed(groups, 4, states_filter=["Empty", "Stable"])) == {"live", "idle"}
    assert listed(groups, 4, states_filter=["Dead"]) == {}
    assert listed(groups, 4, states_filter=["no-such-state"]) == {}


def test_list_groups_v5_answers_types_and_filters_by_them(groups):
    both = {"live": ("consumer", "Stable", "classic"), "idle": ("consumer", "Empty", "classic")}
    assert listed(groups, 5) == both
    assert listed(groups, 5, types_filter=["Classic"]) == both
    assert listed(groups, 5, types_filter=["consumer"]) == {}
    assert listed(groups, 5, types_filter=["no-such-type"]) == {}
    assert set(listed(groups, 5, states_filter=["stable"], types_filter=["classic"])) == {"live"}


def test_describe_groups_v5_is_flexible_with_authorized_operations(groups):
    with connect(groups.socket_path) as sock:
        body = call(
            sock,
            ApiKey.DESCRIBE_GROUPS,
            5,
            {"groups": ["live", "idle"], "include_authorized_operations": True},
        )
        plain = call(
            sock, ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["live"], "include_authorized_operations": False}
        )
    live, idle = body.groups
    assert (live.error_code, live.group_state, live.protocol_type) == (0, "Stable", "consumer")
    assert [(m.group_instance_id, m.client_id) for m in live.members] == [(None, "rdkafka")]
    assert live.authorized_operations == idle.authorized_operations == GROUP_OPERATIONS
    assert (idle.group_state, idle.members) == ("Empty", [])
    assert plain.groups[0].authorized_operations == NOT_REQUESTED


def test_confluent_kafka_lists_and_describes_with_states_and_types(groups):
    admin = AdminClient({"bootstrap.servers": groups.bootstrap})
    state = confluent_kafka.ConsumerGroupState
    group_type = confluent_kafka.ConsumerGroupType

    def listing(**kw) -> dict[str, tuple]:
        result = admin.list_consumer_groups(request_timeout=10, **kw).result()
        assert result.errors == []
        return {g.group_id: (g.state, g.type) for g in result.valid}

    assert listing() == {
        "live": (state.STABLE, group_type.CLASSIC),
        "idle": (state.EMPTY, group_type.CLASSIC),
    }
    assert set(listing(states={state.EMPTY})) == {"idle"}
    assert set(listing(states={state.STABLE, state.EMPTY})) == {"live", "idle"}
    assert set(listing(types={group_type.CLASSIC})) == {"live", "idle"}
    assert listing(types={group_type.CONSUMER}) == {}

    described = admin.describe_consumer_groups(["live", "idle"], include_authorized_operations=True)
    live, idle = described["live"].result(10), described["idle"].result(10)
    assert live.state == state.STABLE and idle.state == state.EMPTY
    assert [m.client_id for m in live.members] == ["rdkafka"]
    assert {tp.partition for tp in live.members[0].assignment.topic_partitions} == {0, 1}
    assert live.authorized_operations and len(live.authorized_operations) == 5


def test_kafka_python_lists_groups_with_state_and_type_filters(groups):
    admin_module = pytest.importorskip("kafka.admin")
    admin = admin_module.KafkaAdminClient(bootstrap_servers=groups.bootstrap)
    try:
        every = admin.list_groups()
        assert {g["group_id"] for g in every} == {"live", "idle"}
        stable = admin.list_groups(states_filter=["Stable"])
        assert [(g["group_id"], g["group_state"]) for g in stable] == [("live", "Stable")]
        typed = admin.list_groups(types_filter=["classic"])
        assert {(g["group_id"], g["group_type"]) for g in typed} == {("live", "classic"), ("idle", "classic")}
    finally:
        admin.close()
