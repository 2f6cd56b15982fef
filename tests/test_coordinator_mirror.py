"""One view of groups: the coordinator's members mirrored into the data directory (FileMirror +
kcli.groups.membership.CoordinatedMembers) are what ``kcli group describe``/``lag`` read, and they keep
embedded members and admin changes out while they live.  In-process, no sockets."""

from __future__ import annotations

import pytest

from kcli.broker.coordinator import GroupCoordinator
from kcli.broker.group_mirror import FileMirror
from kcli.cluster.datadir import DataDir
from kcli.errors import GroupNotEmptyError, NotFoundError, UsageError
from kcli.groups.membership import Membership, live_members, require_no_live_members
from kcli.groups.offsets import OffsetStore
from kcli.groups.view import describe_group
from kcli.protocol import ErrorCode, encode_assignment, encode_subscription

SESSION_MS = 10_000


class Transport:
    """What describe_group asks of a transport: partition counts and log end offsets."""

    def __init__(self, partitions: dict[str, int], end: int = 10) -> None:
        self.partitions = partitions
        self.end = end

    def partition_count(self, topic: str) -> int:
        if topic not in self.partitions:
            raise NotFoundError(topic)
        return self.partitions[topic]

    def list_offset(self, topic: str, partition: int, spec, isolation: str = "read_uncommitted") -> int:
        return self.end


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def datadir(tmp_path) -> DataDir:
    return DataDir(str(tmp_path / "data"), lock_timeout=5)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coord(datadir, clock) -> GroupCoordinator:
    return GroupCoordinator(FileMirror(datadir, broker_id=3), clock=clock, initial_rebalance_delay_ms=0)


def _join(coord, member="", client="kafka-python", topics=("t",)):
    got = []
    subscription = encode_subscription({"topics": list(topics)}, version=0)
    coord.join(
        "g",
        member,
        client,
        "",
        SESSION_MS,
        30_000,
        "consumer",
        [("roundrobin", subscription)],
        False,
        got.append,
    )
    return got


def _assignment(*partitions: int) -> bytes:
    return encode_assignment(
        {"assigned_partitions": [{"topic": "t", "partitions": list(partitions)}]}, version=0
    )


def _stable_pair(coord):
    a = _join(coord, client="a")[0]
    b_waiting = _join(coord, client="b")
    _join(coord, a.member_id, client="a")
    b = b_waiting[0]
    got: list = []
    coord.sync("g", b.generation_id, b.member_id, {}, got.append)
    coord.sync(
        "g",
        b.generation_id,
        a.member_id,
        {a.member_id: _assignment(0, 2), b.member_id: _assignment(1)},
        got.append,
    )
    assert [r.error for r in got] == [ErrorCode.NONE, ErrorCode.NONE]
    return a, b


def test_coordinated_members_appear_in_describe_with_their_leaders_assignment(coord, datadir):
    a, b = _stable_pair(coord)
    OffsetStore(datadir).commit("g", {("t", 0): 4})
    view = describe_group(datadir, Transport({"t": 3}), "g")
    assert view.state == "Stable" and view.generation == 2 and view.assignor == "roundrobin"
    assert view.coordinator == "broker 3"
    assert {m.member_id: m.client_id for m in view.members} == {a.member_id: "a", b.member_id: "b"}
    assert view.assignment == {a.member_id: [("t", 0), ("t", 2)], b.member_id: [("t", 1)]}
    rows = {r.partition: (r.current_offset, r.lag, r.consumer_id) for r in view.partitions}
    assert rows == {0: (4, 6, a.member_id), 1: (None, None, b.member_id), 2: (None, None, a.member_id)}
    assert all(m.topics == ("t",) for m in live_members(datadir, "g"))


def test_live_coordinated_members_block_reset_delete_and_embedded_joins(coord, datadir):
    a, b = _stable_pair(coord)
    with pytest.raises(GroupNotEmptyError):
        require_no_live_members(datadir, "g", "reset offsets of")()
    with pytest.raises(GroupNotEmptyError):
        OffsetStore(datadir).delete_group("g", precondition=require_no_live_members(datadir, "g", "delete"))
    with pytest.raises(UsageError, match="connected to broker 3"):
        Membership(datadir, "g", ["t"], "roundrobin").join()


def test_state_follows_rebalances_and_members_vanish_when_they_leave(coord, datadir, clock):
    a, b = _stable_pair(coord)
    coord.leave("g", [b.member_id])
    view = describe_group(datadir, Transport({"t": 3}), "g")
    assert view.state == "PreparingRebalance" and [m.member_id for m in view.members] == [a.member_id]
    clock.now += SESSION_MS / 1000
    coord.tick()  # a never rejoined nor heartbeated: its session ends, the group empties
    view = describe_group(datadir, Transport({"t": 3}), "g")
    assert view.state == "Empty" and view.members == []
    require_no_live_members(datadir, "g", "delete")()


def test_unloading_releases_the_member_files_at_once(coord, datadir):
    _stable_pair(coord)
    assert len(live_members(datadir, "g")) == 2
    coord.unload("g")
    assert live_members(datadir, "g") == []


def test_kafka_clients_are_refused_while_embedded_members_live(coord, datadir):
    embedded = Membership(datadir, "g", ["t"], "range")
    embedded.join()
    try:
        refused = _join(coord)[0]
        assert refused.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        assert [m.member_id for m in live_members(datadir, "g")] == [embedded.member_id]
    finally:
        embedded.leave()
    assert _join(coord)[0].error == ErrorCode.NONE


def test_another_brokers_members_make_this_one_answer_not_coordinator(coord, datadir, clock):
    _stable_pair(coord)
    other = GroupCoordinator(FileMirror(datadir, broker_id=4), clock=clock, initial_rebalance_delay_ms=0)
    assert _join(other)[0].error == ErrorCode.NOT_COORDINATOR
    coord.unload("g")
    assert _join(other)[0].error == ErrorCode.NONE


def test_a_new_coordinator_continues_the_recorded_generation(coord, datadir, clock):
    _stable_pair(coord)
    coord.unload("g")
    successor = GroupCoordinator(FileMirror(datadir, broker_id=4), clock=clock, initial_rebalance_delay_ms=0)
    assert _join(successor)[0].generation_id == 3
