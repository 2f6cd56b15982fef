"""KIP-848 consumer groups' state machine driven by hand (kcli.groups.consumer_group) and the server
assignors (kcli.groups.server_assignors): epochs, incremental reconciliation, static members, timeouts,
and Kafka's error codes.  A fake clock; no sockets, no threads."""

from __future__ import annotations

import itertools

import pytest

from kcli.groups.consumer_group import (
    ASSIGNING,
    RECONCILING,
    STABLE,
    ConsumerGroup,
    ConsumerGroups,
    Heartbeat,
    HeartbeatError,
)
from kcli.groups.server_assignors import range_, uniform
from kcli.protocol import ErrorCode

T = "orders"
COUNTS = {T: 4, "other": 2}
SESSION_MS = 45_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def groups(clock: Clock) -> ConsumerGroups:
    ids = (f"m{i}" for i in itertools.count(1))
    return ConsumerGroups(SESSION_MS, clock=clock, new_member_id=lambda: next(ids))


def join(groups: ConsumerGroups, member_id: str = "", counts=COUNTS, **kw):
    hb = Heartbeat("g", member_id, 0, rebalance_timeout_ms=30_000, subscribed_topic_names=[T], owned=set(), **kw)
    return groups.heartbeat(hb, counts)


def beat(groups: ConsumerGroups, member_id: str, epoch: int, owned=None, counts=COUNTS, **kw):
    return groups.heartbeat(Heartbeat("g", member_id, epoch, owned=owned, **kw), counts)


def parts(*ps: int, topic: str = T) -> set:
    return {(topic, p) for p in ps}


def test_first_member_gets_everything_at_epoch_1(groups: ConsumerGroups) -> None:
    a = join(groups)
    assert (a.member_id, a.member_epoch, a.assignment) == ("m1", 1, parts(0, 1, 2, 3))
    group = groups.get("g")
    assert (group.epoch, group.assignment_epoch, group.state) == (1, 1, STABLE)


def test_second_member_waits_for_revocation_then_gets_half(groups: ConsumerGroups) -> None:
    join(groups)
    b = join(groups)
    assert b.member_epoch == 2 and b.assignment == set()  # everything still held by m1
    group = groups.get("g")
    assert group.state == RECONCILING
    # m1 is told to keep two: it must revoke the others; its epoch stays until it has
    a = beat(groups, "m1", 1)
    assert a.member_epoch == 1 and a.assignment == parts(0, 1)
    a = beat(groups, "m1", 1, owned=parts(0, 1, 2, 3))  # not revoked yet
    assert a.member_epoch == 1
    assert beat(groups, "m2", 2).assignment is None  # nothing free yet
    a = beat(groups, "m1", 1, owned=parts(0, 1))  # revoked: it moves to the new epoch
    assert a.member_epoch == 2
    b = beat(groups, "m2", 2)
    assert b.assignment == parts(2, 3)
    assert group.state == STABLE


def test_leave_hands_partitions_to_the_survivor(groups: ConsumerGroups) -> None:
    join(groups)
    join(groups)
    beat(groups, "m1", 1)
    beat(groups, "m1", 1, owned=parts(0, 1))
    beat(groups, "m2", 2)
    left = groups.heartbeat(Heartbeat("g", "m2", -1), COUNTS)
    assert left.member_epoch == -1
    a = beat(groups, "m1", 2, owned=parts(0, 1))
    assert (a.member_epoch, a.assignment) == (3, parts(0, 1, 2, 3))  # joins 1 and 2, the leave 3


def test_fenced_and_unknown_members(groups: ConsumerGroups) -> None:
    join(groups)
    with pytest.raises(HeartbeatError) as ahead:
        beat(groups, "m1", 7)
    assert ahead.value.code == ErrorCode.FENCED_MEMBER_EPOCH
    with pytest.raises(HeartbeatError) as unknown:
        beat(groups, "nobody", 1)
    assert unknown.value.code == ErrorCode.UNKNOWN_MEMBER_ID
    join(groups)
    beat(groups, "m1", 1)
    beat(groups, "m1", 1, owned=parts(0, 1))  # now at epoch 2, previous 1
    # the previous epoch with a subset of the assignment is a lost answer: accepted
    assert beat(groups, "m1", 1, owned=parts(0)).member_epoch == 2
    with pytest.raises(HeartbeatError) as behind:
        beat(groups, "m1", 1, owned=parts(0, 3))
    assert behind.value.code == ErrorCode.FENCED_MEMBER_EPOCH


@pytest.mark.parametrize(
    "hb, code",
    [
        (Heartbeat("", "", 0, rebalance_timeout_ms=1, subscribed_topic_names=[T], owned=set()), "INVALID_REQUEST"),
        (Heartbeat("g", "", 0, subscribed_topic_names=[T], owned=set()), "INVALID_REQUEST"),  # no timeout
        (Heartbeat("g", "", 0, rebalance_timeout_ms=1, owned=set()), "INVALID_REQUEST"),  # no subscription
        (Heartbeat("g", "", 0, rebalance_timeout_ms=1, subscribed_topic_names=[T]), "INVALID_REQUEST"),
        (Heartbeat("g", "", 5), "INVALID_REQUEST"),  # no member id
        (Heartbeat("g", "x", -3), "INVALID_REQUEST"),
        (Heartbeat("g", "x", -2), "INVALID_REQUEST"),  # a static leave without an instance id
        (
            Heartbeat("g", "", 0, rebalance_timeout_ms=1, subscribed_topic_names=[T], owned=set(), server_assignor="sticky"),
            "UNSUPPORTED_ASSIGNOR",
        ),
        (
            Heartbeat("g", "", 0, rebalance_timeout_ms=1, subscribed_topic_regex="(", owned=set()),
            "INVALID_REQUEST",
        ),
    ],
)
def test_bad_heartbeats(groups: ConsumerGroups, hb: Heartbeat, code: str) -> None:
    with pytest.raises(HeartbeatError) as err:
        groups.heartbeat(hb, COUNTS)
    assert err.value.code == ErrorCode[code]
    assert groups.get("g") is None  # nothing was created


def test_static_member_rejoins_with_its_partitions(groups: ConsumerGroups) -> None:
    join(groups, instance_id="i1")
    join(groups)
    beat(groups, "m1", 1)
    beat(groups, "m1", 1, owned=parts(0, 1))
    beat(groups, "m2", 2)
    epoch = groups.get("g").epoch
    assert groups.heartbeat(Heartbeat("g", "m1", -2, instance_id="i1"), COUNTS).member_epoch == -2
    assert groups.get("g").epoch == epoch  # a static leave changes no assignment
    assert beat(groups, "m2", 2).assignment is None  # m2 does not get m1's partitions
    back = join(groups, "new-id", instance_id="i1")
    assert (back.member_id, back.member_epoch, back.assignment) == ("new-id", 2, parts(0, 1))
    with pytest.raises(HeartbeatError) as taken:
        join(groups, "another", instance_id="i1")
    assert taken.value.code == ErrorCode.UNRELEASED_INSTANCE_ID


def test_session_timeout_and_revocation_timeout(groups: ConsumerGroups, clock: Clock) -> None:
    join(groups)
    join(groups)
    clock.now += 10
    beat(groups, "m1", 1)  # told to revoke 2 and 3 within its rebalance timeout (30 s)
    clock.now += 31
    beat(groups, "m2", 2)
    groups.tick()
    assert list(groups.get("g").members) == ["m2"]  # m1 never revoked
    clock.now += SESSION_MS / 1000
    groups.tick()
    assert not groups.has_members("g")


def test_new_partitions_bump_the_group_epoch(groups: ConsumerGroups) -> None:
    join(groups)
    more = {T: 6}
    a = beat(groups, "m1", 1, counts=more)
    assert (a.member_epoch, a.assignment) == (2, parts(0, 1, 2, 3, 4, 5))


def test_offset_commit_and_fetch_checks(groups: ConsumerGroups) -> None:
    join(groups)
    assert groups.check_commit("g", "m1", 1, 9) == ErrorCode.NONE
    assert groups.check_commit("g", "m1", 0, 9) == ErrorCode.STALE_MEMBER_EPOCH
    assert groups.check_commit("g", "nobody", 1, 9) == ErrorCode.UNKNOWN_MEMBER_ID
    assert groups.check_commit("g", "m1", 1, 8) == ErrorCode.UNSUPPORTED_VERSION
    assert groups.check_commit("g", "", -1, 9) == ErrorCode.UNKNOWN_MEMBER_ID  # members are live
    assert groups.check_fetch("g", None, -1) == ErrorCode.NONE
    assert groups.check_fetch("g", "m1", 0) == ErrorCode.STALE_MEMBER_EPOCH
    assert groups.check_fetch("g", "zz", 1) == ErrorCode.UNKNOWN_MEMBER_ID


def test_state_round_trips_through_json(groups: ConsumerGroups, clock: Clock) -> None:
    join(groups)
    join(groups)
    beat(groups, "m1", 1)
    group = groups.get("g")
    again = ConsumerGroup.from_json(group.to_json(), clock.now)
    assert again.to_json() == group.to_json()
    assert again.state == RECONCILING


def test_assignor_is_the_members_choice(groups: ConsumerGroups) -> None:
    join(groups, server_assignor="range")
    assert groups.get("g").assignor == "range"


def test_uniform_is_balanced_and_sticky() -> None:
    members = {"a": {T}, "b": {T}, "c": {T}}
    current = {"a": parts(0, 1), "b": parts(2, 3)}
    out = uniform(members, {T: 4}, current)
    assert sorted(len(v) for v in out.values()) == [1, 1, 2]
    assert out["a"] <= current["a"] and out["b"] <= current["b"]  # nobody takes another's partition
    assert set().union(*out.values()) == parts(0, 1, 2, 3)


def test_uniform_with_different_subscriptions() -> None:
    out = uniform({"a": {T}, "b": {"other"}}, COUNTS, {})
    assert out == {"a": parts(0, 1, 2, 3), "b": parts(0, 1, topic="other")}


def test_range_splits_each_topic() -> None:
    out = range_({"a": {T, "other"}, "b": {T, "other"}, "c": {T}}, COUNTS, {})
    assert out["a"] == parts(0, 1) | parts(0, topic="other")
    assert out["b"] == parts(2) | parts(1, topic="other")
    assert out["c"] == parts(3)


def test_group_states(groups: ConsumerGroups) -> None:
    join(groups)
    group = groups.get("g")
    group.epoch += 1
    assert group.state == ASSIGNING


def test_regex_subscription_follows_new_topics(groups: ConsumerGroups) -> None:
    hb = Heartbeat("g", "", 0, rebalance_timeout_ms=1, subscribed_topic_regex="ord.*", owned=set())
    a = groups.heartbeat(hb, COUNTS)
    assert a.assignment == parts(0, 1, 2, 3)  # "other" does not match
    more = {**COUNTS, "orders-eu": 1}
    again = beat(groups, a.member_id, a.member_epoch, counts=more)
    assert again.assignment == parts(0, 1, 2, 3) | parts(0, topic="orders-eu")
