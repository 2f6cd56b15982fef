"""Consumer groups in-process: assignors, the offsets store, membership files, ownership locks, reset plans."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from kcli.cluster.datadir import DataDir
from kcli.errors import NotFoundError, UsageError
from kcli.groups import reset
from kcli.groups.assignors import get_assignor, range_assign, roundrobin_assign
from kcli.groups.layout import GroupPaths
from kcli.groups.membership import (
    GroupNotEmptyError,
    Membership,
    live_members,
    read_state,
    require_no_live_members,
)
from kcli.groups.offsets import CommittedOffset, OffsetStore
from kcli.groups.ownership import Ownership, current_owner


@pytest.fixture
def datadir(tmp_path) -> DataDir:
    return DataDir(str(tmp_path / "data"), lock_timeout=5)


# ------------------------------------------------------------------ assignors
def test_range_matches_kafka_example():
    # Kafka's RangeAssignor javadoc: two consumers, two topics of three partitions
    got = range_assign({"t0": 3, "t1": 3}, {"C1": ["t0", "t1"], "C0": ["t0", "t1"]})
    assert got == {"C0": [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)], "C1": [("t0", 2), ("t1", 2)]}


def test_range_more_members_than_partitions_leaves_the_last_idle():
    got = range_assign({"t": 3}, {m: ["t"] for m in "abcd"})
    assert got == {"a": [("t", 0)], "b": [("t", 1)], "c": [("t", 2)], "d": []}


def test_roundrobin_matches_kafka_examples():
    same = roundrobin_assign({"t0": 3, "t1": 3}, {"C0": ["t0", "t1"], "C1": ["t0", "t1"]})
    assert same == {"C0": [("t0", 0), ("t0", 2), ("t1", 1)], "C1": [("t0", 1), ("t1", 0), ("t1", 2)]}
    # RoundRobinAssignor javadoc: members with different subscriptions
    mixed = roundrobin_assign(
        {"t0": 1, "t1": 2, "t2": 3}, {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    )
    assert mixed == {"C0": [("t0", 0)], "C1": [("t1", 0)], "C2": [("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]}


@pytest.mark.parametrize("assign", [range_assign, roundrobin_assign])
def test_assignors_cover_each_partition_once_and_skip_missing_topics(assign):
    subs = {f"m{i}": ["a", "b", "gone"] for i in range(3)}
    got = assign({"a": 7, "b": 2}, subs)
    flat = [tp for parts in got.values() for tp in parts]
    assert sorted(flat) == [("a", p) for p in range(7)] + [("b", 0), ("b", 1)]
    assert assign({"a": 1}, {}) == {}


def test_unknown_assignor_is_a_usage_error():
    assert get_assignor("roundrobin") is roundrobin_assign
    with pytest.raises(UsageError):
        get_assignor("sticky")


# ------------------------------------------------------------------ offsets store
def test_offsets_commit_fetch_list_delete(datadir):
    store = OffsetStore(datadir)
    assert store.fetch("g") == {} and store.list_groups() == []
    store.commit("g", {("t", 0): 5, ("t", 1): 7}, metadata="m")
    store.commit("g", {("t", 1): 9, ("u", 0): CommittedOffset(3, "x", 1234, 2)})
    assert store.fetch("g") == {("t", 0): 5, ("t", 1): 9, ("u", 0): 3}
    full = store.fetch_committed("g")
    assert full[("t", 0)].metadata == "m" and full[("t", 0)].commit_timestamp > 0
    assert full[("u", 0)] == CommittedOffset(3, "x", 1234, 2)
    store.commit("odd/group name", {("t", 0): 1})
    assert store.list_groups() == ["g", "odd/group name"]
    store.delete_offsets("g", [("u", 0)])
    assert store.fetch("g") == {("t", 0): 5, ("t", 1): 9}
    store.delete_group("g")
    assert store.list_groups() == ["odd/group name"] and store.fetch("g") == {}
    with pytest.raises(NotFoundError):
        store.delete_group("g")


def test_offsets_file_is_replaced_whole(datadir):
    store = OffsetStore(datadir)
    store.commit("g", {("t", 0): 1})
    path = GroupPaths(datadir, "g").offsets_file
    store.commit("g", {("t", 0): 2})
    with open(path, encoding="utf-8") as fh:
        assert json.load(fh)["offsets"][0]["offset"] == 2
    assert not os.path.exists(path + ".tmp")


def test_offsets_precondition_refuses_the_write(datadir):
    store = OffsetStore(datadir)
    store.commit("g", {("t", 0): 1})

    def refuse() -> None:
        raise UsageError("no")

    with pytest.raises(UsageError):
        store.commit("g", {("t", 0): 2}, precondition=refuse)
    with pytest.raises(UsageError):
        store.commit("g", {("t", 0): -1})
    assert store.fetch("g") == {("t", 0): 1}


# ------------------------------------------------------------------ membership and ownership
def test_membership_join_leave_and_generation(datadir):
    a = Membership(datadir, "g", ["t"], client_id="a")
    b = Membership(datadir, "g", ["t"], client_id="b")
    a.join()
    members = b.join()
    assert [m.member_id for m in members] == sorted([a.member_id, b.member_id])
    assert {m.client_id for m in live_members(datadir, "g")} == {"a", "b"}
    assert read_state(GroupPaths(datadir, "g")).generation == 2
    with pytest.raises(GroupNotEmptyError):
        require_no_live_members(datadir, "g", "delete")()
    b.leave()
    assert [m.member_id for m in a.refresh()] == [a.member_id]
    assert a.state.generation == 3
    a.leave()
    require_no_live_members(datadir, "g", "delete")()


def test_a_dead_members_file_is_noticed_and_removed(datadir):
    a = Membership(datadir, "g", ["t"])
    b = Membership(datadir, "g", ["t"])
    a.join()
    b.join()
    os.close(b._fd)  # what the kernel does when b's process dies
    b._fd = None
    assert [m.member_id for m in a.refresh()] == [a.member_id]
    assert os.listdir(GroupPaths(datadir, "g").members_dir) == [a._name]
    a.leave()


def test_joining_with_another_assignor_is_refused(datadir):
    a = Membership(datadir, "g", ["t"], assignor="range")
    a.join()
    with pytest.raises(UsageError, match="range"):
        Membership(datadir, "g", ["t"], assignor="roundrobin").join()
    a.leave()


def test_ownership_is_exclusive(datadir):
    paths = GroupPaths(datadir, "g")
    one, two = Ownership(paths, "m1"), Ownership(paths, "m2")
    assert one.try_acquire(("t", 0))
    assert not two.try_acquire(("t", 0))
    assert current_owner(paths, ("t", 0)) == "m1"
    one.release(("t", 0))
    assert current_owner(paths, ("t", 0)) is None
    assert two.try_acquire(("t", 0)) and current_owner(paths, ("t", 0)) == "m2"
    two.release_all()


# ------------------------------------------------------------------ reset-offsets planning
def test_parse_duration_and_datetime():
    assert reset.parse_duration("P1D") == 86_400_000
    assert reset.parse_duration("PT2H30M") == 9_000_000
    assert reset.parse_duration("P1DT1H1M1.5S") == 90_061_500
    for bad in ("P", "PT", "1D", "P1H", "PT1X"):
        with pytest.raises(UsageError):
            reset.parse_duration(bad)
    assert reset.parse_datetime("2024-05-01T12:00:00Z") == int(
        datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp() * 1000
    )
    with pytest.raises(UsageError):
        reset.parse_datetime("yesterday")
    assert reset.duration_spec("PT1M", now_ms=100_000) == reset.ResetSpec("timestamp", 40_000)


class _FakeTransport:
    """Partitions with (log start, log end); timestamps map to offsets by the ``times`` table."""

    def __init__(self) -> None:
        self.logs = {("t", 0): (2, 10), ("t", 1): (0, 4)}

    def partition_count(self, topic: str) -> int:
        if topic != "t":
            raise NotFoundError(topic)
        return 2

    def list_offset(self, topic: str, partition: int, spec, isolation: str = "read_uncommitted"):
        start, end = self.logs[(topic, partition)]
        if spec == "earliest":
            return start
        if spec == "latest":
            return end
        return min(end, spec)


def test_plan_clamps_and_shifts():
    tr = _FakeTransport()
    parts = reset.parse_scope(tr, ["t"], {}, False)
    assert parts == [("t", 0), ("t", 1)]
    assert reset.parse_scope(tr, ["t:1"], {}, False) == [("t", 1)]
    assert reset.plan(tr, parts, {}, reset.ResetSpec("earliest")) == {("t", 0): 2, ("t", 1): 0}
    assert reset.plan(tr, parts, {}, reset.ResetSpec("latest")) == {("t", 0): 10, ("t", 1): 4}
    assert reset.plan(tr, parts, {}, reset.ResetSpec("offset", 3)) == {("t", 0): 3, ("t", 1): 3}
    assert reset.plan(tr, parts, {}, reset.ResetSpec("offset", 0)) == {("t", 0): 2, ("t", 1): 0}
    committed = {("t", 0): 9, ("t", 1): 1}
    assert reset.plan(tr, parts, committed, reset.ResetSpec("shift", 5)) == {("t", 0): 10, ("t", 1): 4}
    assert reset.plan(tr, parts, committed, reset.ResetSpec("shift", -3)) == {("t", 0): 6, ("t", 1): 0}
    assert reset.plan(tr, parts, {}, reset.ResetSpec("timestamp", 5)) == {("t", 0): 5, ("t", 1): 4}
    with pytest.raises(UsageError):
        reset.plan(tr, parts, {("t", 0): 9}, reset.ResetSpec("shift", 1))
    with pytest.raises(UsageError):
        reset.parse_scope(tr, [], {}, False)
    with pytest.raises(NotFoundError):
        reset.parse_scope(tr, ["t:5"], {}, False)
    assert reset.parse_scope(tr, [], committed, True) == parts


def test_owner_lock_names_fit_in_a_file_name(datadir):
    paths = GroupPaths(datadir, "g")
    assert os.path.basename(paths.owner_lock_path("t", 3)) == "t-3.lock"
    longest = os.path.basename(paths.owner_lock_path("n" * 249, 99999))
    assert len(longest) <= 255 and longest != os.path.basename(paths.owner_lock_path("n" * 249, 99998))
    own = Ownership(paths, "m")
    assert own.try_acquire(("n" * 249, 1))
    own.release_all()
