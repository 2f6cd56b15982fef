"""KIP-848 consumer groups against a real broker, request by request: ConsumerGroupHeartbeat v0-1 (join,
incremental reconciliation, leave, static members, Kafka's error codes), ConsumerGroupDescribe v0,
OffsetCommit v8-9 / OffsetFetch v6-9 with member epochs, how ListGroups and DescribeGroups see a consumer
group, coexistence with classic groups, and the group's state surviving kill -9 of its coordinator."""

from __future__ import annotations

import json
import signal

import pytest
from support.brokers import api_versions_ok, call, connect
from support.group_members import HeartbeatMember

from kcli.protocol import ApiKey, ErrorCode

TOPIC = "orders"
ALL = {0, 1, 2, 3}
FLAGS = ("--group-consumer-session-timeout-ms", "6000", "--group-consumer-heartbeat-interval-ms", "500")


def member(broker, group: str = "g", version: int = 1, **join) -> HeartbeatMember:
    """A raw ConsumerGroupHeartbeat member subscribed to TOPIC."""
    return HeartbeatMember(broker, TOPIC, group, version, **join)


@pytest.fixture
def broker(brokers):
    b = brokers.start(0, *FLAGS)
    b.kcli = brokers.kcli
    b.runner = brokers.runner
    b.runner.in_process("topic", "create", TOPIC, "--partitions", 4)
    return b


def settle(*members: HeartbeatMember, rounds: int = 6) -> None:
    for _ in range(rounds):
        for m in members:
            m.report()


def describe(broker, *groups: str):
    with connect(broker.socket_path) as sock:
        return call(sock, ApiKey.CONSUMER_GROUP_DESCRIBE, 0, {"group_ids": list(groups)}).groups


def test_two_members_split_then_the_survivor_takes_all(broker):
    a = member(broker)
    assert (a.last.error_code, a.epoch, a.owned, a.last.heartbeat_interval_ms) == (0, 1, ALL, 500)
    assert a.member_id  # v1 with an empty id: the coordinator names the member
    b = member(broker)
    assert (b.epoch, b.owned) == (2, set())  # every partition is still a's
    a.beat()
    assert a.epoch == 1 and len(a.owned) == 2  # a must revoke two first; its epoch waits
    settle(a, b)
    assert (a.epoch, b.epoch) == (2, 2) and a.owned | b.owned == ALL and not a.owned & b.owned
    [group] = describe(broker, "g")
    assert (group.error_code, group.group_state, group.group_epoch, group.assignment_epoch) == (0, "Stable", 2, 2)
    assert group.assignor_name == "uniform"
    described = {m.member_id: (m.member_epoch, {p for t in m.assignment.topic_partitions for p in t.partitions})
                 for m in group.members}
    assert described == {a.member_id: (2, a.owned), b.member_id: (2, b.owned)}
    assert b.beat(epoch=-1).member_epoch == -1  # b leaves
    settle(a)
    assert (a.epoch, a.owned) == (3, ALL)


def test_bad_heartbeats_get_kafkas_codes_and_the_connection_lives(broker):
    a = member(broker)
    assert a.beat(epoch=a.epoch + 5).error_code == ErrorCode.FENCED_MEMBER_EPOCH
    assert a.beat(epoch=7, member_id="nobody").error_code == ErrorCode.UNKNOWN_MEMBER_ID
    with connect(broker.socket_path) as sock:

        def first(**fields):
            body = {"group_id": "g2", "member_id": "", "member_epoch": 0, "rebalance_timeout_ms": 1000,
                    "subscribed_topic_names": [TOPIC], "topic_partitions": [], **fields}
            return call(sock, ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, body).error_code

        assert first(server_assignor="sticky") == ErrorCode.UNSUPPORTED_ASSIGNOR
        assert first(rebalance_timeout_ms=-1) == ErrorCode.INVALID_REQUEST
        assert first(subscribed_topic_names=None) == ErrorCode.INVALID_REQUEST
        assert first(topic_partitions=None) == ErrorCode.INVALID_REQUEST
        assert first(group_id="") == ErrorCode.INVALID_REQUEST
        assert api_versions_ok(sock)
    assert describe(broker, "g2")[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND  # nothing was created


def test_offsets_with_member_epochs(broker):
    a = member(broker)

    def commit(version: int, epoch: int, member_id: str | None = None) -> int:
        body = {"group_id": "g", "generation_id": epoch, "member_id": a.member_id if member_id is None else member_id,
                "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 5}]}]}
        with connect(broker.socket_path) as sock:
            return call(sock, ApiKey.OFFSET_COMMIT, version, body).topics[0].partitions[0].error_code

    assert commit(9, a.epoch) == ErrorCode.NONE
    assert commit(9, a.epoch - 1) == ErrorCode.STALE_MEMBER_EPOCH
    assert commit(9, a.epoch, "nobody") == ErrorCode.UNKNOWN_MEMBER_ID
    assert commit(8, a.epoch) == ErrorCode.UNSUPPORTED_VERSION  # KIP-848 members commit with v9+
    assert commit(9, -1, "") == ErrorCode.UNKNOWN_MEMBER_ID  # an admin commit while members live

    def fetch(version: int, member_id, epoch: int):
        group = {"group_id": "g", "topics": [{"name": TOPIC, "partition_indexes": [0, 1]}]}
        if version >= 9:
            group.update(member_id=member_id, member_epoch=epoch)
        with connect(broker.socket_path) as sock:
            return call(sock, ApiKey.OFFSET_FETCH, version, {"groups": [group]}).groups[0]

    got = fetch(9, a.member_id, a.epoch)
    assert got.error_code == 0 and [p.committed_offset for p in got.topics[0].partitions] == [5, -1]
    assert fetch(9, a.member_id, a.epoch + 1).error_code == ErrorCode.STALE_MEMBER_EPOCH
    assert fetch(9, "nobody", 1).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert fetch(9, None, -1).error_code == ErrorCode.NONE  # an admin fetch
    assert fetch(8, None, -1).topics[0].partitions[0].committed_offset == 5
    with connect(broker.socket_path) as sock:  # the classic layout (v7) sees the same offsets
        body = call(sock, ApiKey.OFFSET_FETCH, 7, {"group_id": "g", "topics": None})
    assert [(t.name, p.partition_index, p.committed_offset) for t in body.topics for p in t.partitions] == [
        (TOPIC, 0, 5)
    ]
    # the data dir's view, and the cluster's (--bootstrap-server: ConsumerGroupDescribe) agree
    for server in ((), ("--bootstrap-server", broker.bootstrap)):
        report = json.loads(broker.kcli(*server, "group", "describe", "g", "--json").stdout)[0]
        assert (report["type"], report["assignor"], report["generation"]) == ("consumer", "uniform", 1), server
        assert [(m["consumer_id"], m["member_epoch"]) for m in report["members"]] == [(a.member_id, a.epoch)]
        assert {(r["partition"], r["current_offset"], r["consumer_id"]) for r in report["partitions"]} >= {
            (0, 5, a.member_id)
        }


def test_list_and_describe_groups_see_the_consumer_group(broker):
    member(broker)
    with connect(broker.socket_path) as sock:
        body = call(sock, ApiKey.LIST_GROUPS, 5, {"types_filter": ["consumer"]})
        assert [(g.group_id, g.protocol_type, g.group_state, g.group_type) for g in body.groups] == [
            ("g", "consumer", "Stable", "consumer")
        ]
        assert call(sock, ApiKey.LIST_GROUPS, 5, {"types_filter": ["classic"]}).groups == []
        # DescribeGroups is the classic groups' API: Kafka answers Dead for a consumer group
        [described] = call(sock, ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["g"]}).groups
        assert (described.error_code, described.group_state, described.members) == (0, "Dead", [])


def test_static_member_rejoins_with_its_partitions(broker):
    a = member(broker, instance_id="one")
    b = member(broker)
    settle(a, b)
    kept = set(a.owned)
    assert len(kept) == 2
    epoch = a.epoch
    assert a.beat(epoch=-2, instance_id="one").member_epoch == -2
    settle(b)
    assert len(b.owned) == 2  # the static member's partitions wait for it
    again = member(broker, instance_id="one")
    assert (again.owned, again.epoch) == (kept, epoch)
    taken = member(broker, instance_id="one")
    assert taken.last.error_code == ErrorCode.UNRELEASED_INSTANCE_ID


def test_classic_and_consumer_groups_coexist(broker):
    """Groups that cannot convert stay apart: a live classic group whose members' metadata is no
    consumer-protocol subscription (empty here) is not taken over by a consumer-protocol member
    (GROUP_ID_NOT_FOUND), and such a classic JoinGroup to a live consumer group is refused
    (INCONSISTENT_GROUP_PROTOCOL); an empty classic group (offsets only) is taken over.  Groups that can
    convert do: tests/test_group_migration.py."""
    with connect(broker.socket_path) as sock:
        join = {"group_id": "classic", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000,
                "member_id": "", "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]}
        joined = call(sock, ApiKey.JOIN_GROUP, 3, join)
        assert joined.error_code == 0
        assert member(broker, group="classic").last.error_code == ErrorCode.GROUP_ID_NOT_FOUND
        member(broker, group="g")
        assert call(sock, ApiKey.JOIN_GROUP, 3, {**join, "group_id": "g"}).error_code == (
            ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        )
    broker.runner.in_process("group", "reset-offsets", "empty", "--topic", TOPIC, "--to-earliest", "--execute")
    upgraded = member(broker, group="empty")
    assert upgraded.last.error_code == 0 and upgraded.owned == ALL


@pytest.mark.faults
def test_the_group_survives_kill_9_of_its_coordinator(brokers, broker):
    a = member(broker)
    b = member(broker)
    settle(a, b)
    before = (a.epoch, set(a.owned)), (b.epoch, set(b.owned))
    broker.stop(signal.SIGKILL)
    again = brokers.start(0, *FLAGS)
    for m in (a, b):
        m.sock.close()
        m.sock = connect(again.socket_path)
        assert m.report().error_code == ErrorCode.NONE  # same member id and epoch: still a member
    assert ((a.epoch, a.owned), (b.epoch, b.owned)) == before
    [group] = describe(again, "g")
    assert (group.group_state, sorted(m.member_id for m in group.members)) == (
        "Stable",
        sorted([a.member_id, b.member_id]),
    )


def test_new_partitions_are_assigned(broker):
    a = member(broker)
    b = member(broker)
    settle(a, b)
    epoch = a.epoch
    broker.runner.in_process("topic", "alter", TOPIC, "--partitions", 6)
    settle(a, b)
    assert a.owned | b.owned == ALL | {4, 5} and (len(a.owned), len(b.owned)) == (3, 3)
    assert a.epoch > epoch  # the group epoch went up with the topic's metadata
