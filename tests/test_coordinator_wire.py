"""The group APIs on the wire against real ``kcli broker serve`` processes, request by request: which
broker coordinates a group, simple (generation -1) commits, list/describe/delete, and the refusals that
keep a group either embedded or broker-coordinated."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from support.brokers import call, connect

from kcli.cluster.datadir import DataDir
from kcli.groups.membership import Membership
from kcli.protocol import ApiKey, ErrorCode, encode_subscription

GROUP_APIS = {
    ApiKey.FIND_COORDINATOR: (0, 5),
    ApiKey.JOIN_GROUP: (0, 9),
    ApiKey.SYNC_GROUP: (0, 5),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 5),
    ApiKey.OFFSET_COMMIT: (0, 9),
    ApiKey.OFFSET_FETCH: (0, 9),
    ApiKey.LIST_GROUPS: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.DELETE_GROUPS: (0, 2),
}


@pytest.fixture
def broker(broker):
    broker.runner.in_process("topic", "create", "t", "--partitions", 2)
    return broker


def _commit(
    sock, group: str, offsets: dict[int, int], generation: int = -1, member: str = "", version: int = 7
):
    body = {
        "group_id": group,
        "generation_id": generation,
        "member_id": member,
        "topics": [
            {
                "name": "t",
                "partitions": [
                    {"partition_index": p, "committed_offset": o, "committed_metadata": "m"}
                    for p, o in offsets.items()
                ],
            }
        ],
    }
    reply = call(sock, ApiKey.OFFSET_COMMIT, version, body)
    return {p.partition_index: p.error_code for p in reply.topics[0].partitions}


def _fetch(sock, group: str, version: int = 5, topics=None):
    reply = call(sock, ApiKey.OFFSET_FETCH, version, {"group_id": group, "topics": topics})
    return reply, {
        (t.name, p.partition_index): p.committed_offset for t in reply.topics for p in t.partitions
    }


def test_api_versions_advertise_the_group_apis(broker):
    with connect(broker.socket_path) as sock:
        keys = call(sock, ApiKey.API_VERSIONS, 2, {}).api_keys
    served = {k.api_key: (k.min_version, k.max_version) for k in keys}
    assert {k: served.get(k) for k in GROUP_APIS} == GROUP_APIS


def test_simple_commits_fetch_and_show_in_describe(broker):
    with connect(broker.socket_path) as sock:
        assert _commit(sock, "simple", {0: 3, 1: 5}) == {0: ErrorCode.NONE, 1: ErrorCode.NONE}
        assert _commit(sock, "simple", {7: 1}) == {7: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        # a generation the coordinator never gave out (as Kafka answers for a group it does not know)
        assert _commit(sock, "simple", {0: 1}, generation=4, member="ghost") == {
            0: ErrorCode.ILLEGAL_GENERATION
        }
        assert _commit(sock, "simple", {0: 4}, version=0) == {0: ErrorCode.NONE}
        reply, offsets = _fetch(sock, "simple")  # v5, topics null: everything committed
        assert reply.error_code == ErrorCode.NONE and offsets == {("t", 0): 4, ("t", 1): 5}
        _reply, asked = _fetch(sock, "simple", 1, [{"name": "t", "partition_indexes": [1, 9]}])
        assert asked == {("t", 1): 5, ("t", 9): -1}
        _reply, unknown = _fetch(sock, "nobody", 1, [{"name": "t", "partition_indexes": [0]}])
        assert unknown == {("t", 0): -1}
    view = json.loads(broker.kcli("group", "describe", "simple", "--json").stdout)[0]
    assert {r["partition"]: r["current_offset"] for r in view["partitions"]} == {0: 4, 1: 5}


def test_list_describe_and_delete(broker):
    with connect(broker.socket_path) as sock:
        _commit(sock, "old", {0: 1})
        listed = call(sock, ApiKey.LIST_GROUPS, 2, {})
        assert [(g.group_id, g.protocol_type) for g in listed.groups] == [("old", "consumer")]
        described = call(sock, ApiKey.DESCRIBE_GROUPS, 4, {"groups": ["old", "never"]}).groups
        assert [(g.error_code, g.group_id, g.group_state) for g in described] == [
            (ErrorCode.NONE, "old", "Empty"),
            (ErrorCode.NONE, "never", "Dead"),
        ]
        results = call(sock, ApiKey.DELETE_GROUPS, 1, {"groups_names": ["old", "never"]}).results
        assert [(r.group_id, r.error_code) for r in results] == [
            ("old", ErrorCode.NONE),
            ("never", ErrorCode.GROUP_ID_NOT_FOUND),
        ]
        assert call(sock, ApiKey.LIST_GROUPS, 0, {}).groups == []
    assert broker.kcli("group", "list").stdout.split() == []


def test_unknown_members_and_bad_requests_get_kafkas_errors(broker):
    with connect(broker.socket_path) as sock:
        beat = call(sock, ApiKey.HEARTBEAT, 3, {"group_id": "g", "generation_id": 1, "member_id": "m"})
        assert beat.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        leave = call(
            sock,
            ApiKey.LEAVE_GROUP,
            3,
            {"group_id": "g", "members": [{"member_id": "a"}, {"member_id": "b"}]},
        )
        assert leave.error_code == ErrorCode.NONE
        assert [(m.member_id, m.error_code) for m in leave.members] == [
            ("a", ErrorCode.UNKNOWN_MEMBER_ID),
            ("b", ErrorCode.UNKNOWN_MEMBER_ID),
        ]
        assert call(sock, ApiKey.LEAVE_GROUP, 0, {"group_id": "g", "member_id": "a"}).error_code == (
            ErrorCode.UNKNOWN_MEMBER_ID
        )
        sync = call(
            sock,
            ApiKey.SYNC_GROUP,
            3,
            {"group_id": "g", "generation_id": 1, "member_id": "m", "assignments": []},
        )
        assert sync.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        join = {
            "group_id": "g",
            "session_timeout_ms": 1000,
            "rebalance_timeout_ms": 1000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": encode_subscription({"topics": ["t"]})}],
        }
        assert call(sock, ApiKey.JOIN_GROUP, 5, join).error_code == ErrorCode.INVALID_SESSION_TIMEOUT
        assert (
            call(sock, ApiKey.JOIN_GROUP, 5, {**join, "group_id": ""}).error_code
            == ErrorCode.INVALID_GROUP_ID
        )
        first = call(sock, ApiKey.JOIN_GROUP, 5, {**join, "session_timeout_ms": 6000})
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED and first.member_id
        txn = call(sock, ApiKey.FIND_COORDINATOR, 2, {"key": "tx", "key_type": 1})
        assert txn.error_code == ErrorCode.NONE and txn.node_id == 0
        assert call(sock, ApiKey.FIND_COORDINATOR, 2, {"key": "", "key_type": 1}).error_code == (
            ErrorCode.INVALID_REQUEST
        )
        assert call(sock, ApiKey.FIND_COORDINATOR, 2, {"key": "g", "key_type": 2}).error_code == (
            ErrorCode.INVALID_REQUEST
        )


def test_kafka_clients_are_refused_while_embedded_members_live(broker):
    embedded = Membership(DataDir(str(broker.data_dir)), "mixed", ["t"], "range")
    embedded.join()
    try:
        join = {
            "group_id": "mixed",
            "session_timeout_ms": 6000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": encode_subscription({"topics": ["t"]})}],
        }
        with connect(broker.socket_path) as sock:
            assert call(sock, ApiKey.JOIN_GROUP, 3, join).error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
            assert _commit(sock, "mixed", {0: 1}) == {0: ErrorCode.UNKNOWN_MEMBER_ID}  # no commits behind it
            deleted = call(sock, ApiKey.DELETE_GROUPS, 1, {"groups_names": ["mixed"]}).results[0]
            assert deleted.error_code == ErrorCode.NON_EMPTY_GROUP
            described = call(sock, ApiKey.DESCRIBE_GROUPS, 0, {"groups": ["mixed"]}).groups[0]
            assert [m.member_id for m in described.members] == [embedded.member_id]
        view = json.loads(broker.kcli("group", "describe", "mixed", "--json").stdout)[0]
        # one view: it has not taken its partitions yet, and both say so
        assert described.group_state == view["state"] == "CompletingRebalance"
        assert described.protocol_data == view["assignor"] == "range"
    finally:
        embedded.leave()


def test_describe_answers_a_group_whose_files_it_cannot_read_with_an_error(broker):
    """A live embedded member naming an assignor this broker does not know (a newer kcli's): describing
    its group fails; the group gets an error code and the rest of the request its answers, where the
    handler used to crash on the missing summary and drop the connection."""
    embedded = Membership(DataDir(str(broker.data_dir)), "newer", ["t"], "range")
    embedded.info = replace(embedded.info, assignor="cooperative-sticky")
    embedded.join()
    try:
        with connect(broker.socket_path) as sock:
            _commit(sock, "old", {0: 1})
            described = call(sock, ApiKey.DESCRIBE_GROUPS, 4, {"groups": ["newer", "old"]}).groups
            assert [(g.group_id, g.error_code) for g in described] == [
                ("newer", ErrorCode.INVALID_REQUEST),
                ("old", ErrorCode.NONE),
            ]
            assert described[0].members == [] and described[1].group_state == "Empty"
    finally:
        embedded.leave()


def test_every_broker_names_the_same_coordinator_and_the_others_refuse(brokers):
    brokers.init(2)
    b0, b1 = brokers.start(0), brokers.start(1)
    ports = {0: b0.port, 1: b1.port}
    groups = [f"group-{i}" for i in range(12)]
    answers = {}
    for b in (b0, b1):
        with connect(b.socket_path) as sock:
            for g in groups:
                found = call(sock, ApiKey.FIND_COORDINATOR, 2, {"key": g})
                assert found.error_code == ErrorCode.NONE and found.port == ports[found.node_id]
                answers.setdefault(g, set()).add(found.node_id)
    assert all(len(ids) == 1 for ids in answers.values())
    assert {next(iter(ids)) for ids in answers.values()} == {0, 1}  # both brokers coordinate some
    for g in groups:
        coordinator = next(iter(answers[g]))
        other = b1 if coordinator == 0 else b0
        with connect(other.socket_path) as sock:
            beat = call(sock, ApiKey.HEARTBEAT, 0, {"group_id": g, "generation_id": 1, "member_id": "m"})
            assert beat.error_code == ErrorCode.NOT_COORDINATOR
