"""The group coordinator's state machine, driven by hand: a fake clock, callbacks collected in lists,
no sockets and no threads (kcli.broker.coordinator)."""

from __future__ import annotations

import itertools

import pytest

from kcli.broker.coordinator import (
    COMPLETING_REBALANCE,
    EMPTY,
    PREPARING_REBALANCE,
    STABLE,
    GroupCoordinator,
    JoinResult,
    NullMirror,
    SyncResult,
)
from kcli.broker.coordinator_choice import choose_coordinator
from kcli.protocol import ErrorCode

SESSION_MS = 10_000
REBALANCE_MS = 30_000
RANGE = [("range", b"meta-range")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Box:
    """Collects what a callback was given."""

    def __init__(self) -> None:
        self.results: list = []

    def __call__(self, result) -> None:
        self.results.append(result)

    @property
    def answered(self) -> bool:
        return bool(self.results)

    @property
    def last(self):
        assert self.results, "no answer yet"
        return self.results[-1]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coord(clock: Clock) -> GroupCoordinator:
    ids = itertools.count(1)
    return GroupCoordinator(
        NullMirror(),
        clock=clock,
        new_member_id=lambda client: f"{client}-{next(ids)}",
        initial_rebalance_delay_ms=0,
    )


def join(coord, member="", client="c", protocols=RANGE, group="g", v4=False, session=SESSION_MS, **kw) -> Box:
    box = Box()
    coord.join(
        group,
        member,
        client,
        "",
        session,
        kw.get("rebalance", REBALANCE_MS),
        kw.get("protocol_type", "consumer"),
        protocols,
        v4,
        box,
    )
    return box


def sync(coord, member, generation, assignments=None, group="g") -> Box:
    box = Box()
    coord.sync(group, generation, member, assignments or {}, box)
    return box


def stable_pair(coord) -> tuple[str, str, int]:
    """Members a (leader) and b in a Stable group; returns their ids and the generation."""
    a = join(coord, client="a").last
    sync(coord, a.member_id, a.generation_id, {a.member_id: b"A"})
    b_box = join(coord, client="b")
    assert not b_box.answered
    a2 = join(coord, a.member_id, client="a")
    b = b_box.last
    assert a2.last.generation_id == b.generation_id
    sync(coord, b.member_id, b.generation_id)
    sync(coord, a.member_id, b.generation_id, {a.member_id: b"A2", b.member_id: b"B2"})
    assert coord.groups["g"].state == STABLE
    return a.member_id, b.member_id, b.generation_id


# ---------------------------------------------------------------- joining


def test_a_lone_member_joins_leads_and_gets_its_assignment(coord):
    first = join(coord, client="a").last
    assert first.error == ErrorCode.NONE
    assert first.generation_id == 1 and first.leader == first.member_id == "a-1"
    assert first.protocol_name == "range" and first.members == [("a-1", b"meta-range")]
    assert coord.groups["g"].state == COMPLETING_REBALANCE
    done = sync(coord, "a-1", 1, {"a-1": b"assignment"})
    assert done.last == SyncResult(ErrorCode.NONE, b"assignment", "consumer", "range")
    assert coord.groups["g"].state == STABLE


def test_the_first_rebalance_waits_for_more_members_prolonged_while_they_come(clock):
    coord = GroupCoordinator(NullMirror(), clock=clock, initial_rebalance_delay_ms=3000)
    a = join(coord, client="a", rebalance=8000)
    clock.advance(2)
    coord.tick()
    b = join(coord, client="b")
    clock.advance(1.5)
    coord.tick()
    assert not a.answered and not b.answered  # b arrived during the delay: another 3 s
    c = join(coord, client="c")
    clock.advance(3)
    coord.tick()
    assert not a.answered  # c came too, but a's rebalance timeout (8 s) caps the waiting
    clock.advance(1.5)
    coord.tick()
    assert a.last.generation_id == b.last.generation_id == c.last.generation_id == 1
    assert len(a.last.members) == 3
    a_id = a.last.member_id
    sync(coord, a_id, 1, {})
    join(coord, client="d")  # not an empty group any more: no delay, the usual rebalance
    assert coord.groups["g"].deadline == clock.now + REBALANCE_MS / 1000


def test_v4_join_hands_out_a_member_id_first(coord):
    first = join(coord, client="a", v4=True).last
    assert first.error == ErrorCode.MEMBER_ID_REQUIRED and first.member_id == "a-1"
    assert coord.groups["g"].members == {}
    second = join(coord, "a-1", client="a", v4=True).last
    assert second.error == ErrorCode.NONE and second.member_id == "a-1" and second.generation_id == 1
    assert join(coord, "never-issued", v4=True).last.error == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_handed_out_id_holds_the_rebalance_until_it_joins_or_expires(coord, clock):
    a = join(coord, client="a").last
    sync(coord, a.member_id, 1, {})
    pending = join(coord, client="b", v4=True).last
    a_again = join(coord, a.member_id, client="a", protocols=[("range", b"new")])  # starts a rebalance
    assert not a_again.answered  # waits for the id handed to b
    clock.advance(SESSION_MS / 1000)
    coord.tick()
    assert a_again.last.error == ErrorCode.NONE and a_again.last.generation_id == 2
    assert join(coord, pending.member_id, client="b", v4=True).last.error == ErrorCode.UNKNOWN_MEMBER_ID


def test_second_member_triggers_a_rebalance_that_waits_for_the_first(coord):
    a = join(coord, client="a").last
    sync(coord, a.member_id, 1, {a.member_id: b"all"})
    b_box = join(coord, client="b")
    assert not b_box.answered and coord.groups["g"].state == PREPARING_REBALANCE
    assert coord.heartbeat("g", 1, a.member_id) == ErrorCode.REBALANCE_IN_PROGRESS
    a_box = join(coord, a.member_id, client="a")
    leader, follower = a_box.last, b_box.last
    assert leader.generation_id == follower.generation_id == 2
    assert leader.leader == follower.leader == a.member_id  # the first joiner stays leader
    assert [m for m, _ in leader.members] == [a.member_id, follower.member_id]
    assert follower.members == []
    waiting = sync(coord, follower.member_id, 2)
    assert not waiting.answered
    sync(coord, a.member_id, 2, {a.member_id: b"A", follower.member_id: b"B"})
    assert waiting.last == SyncResult(ErrorCode.NONE, b"B", "consumer", "range")
    assert coord.heartbeat("g", 2, follower.member_id) == ErrorCode.NONE


def test_members_that_do_not_rejoin_in_the_rebalance_timeout_are_dropped(coord, clock):
    a_id, b_id, generation = stable_pair(coord)
    c_box = join(coord, client="c")
    a_box = join(coord, a_id, client="a")
    clock.advance(5)
    assert coord.heartbeat("g", generation, b_id) == ErrorCode.REBALANCE_IN_PROGRESS  # alive, not rejoining
    clock.advance(REBALANCE_MS / 1000)
    coord.tick()
    assert a_box.last.generation_id == c_box.last.generation_id == generation + 1
    assert set(coord.groups["g"].members) == {a_id, c_box.last.member_id}
    assert coord.heartbeat("g", generation + 1, b_id) == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_follower_rejoining_with_the_same_metadata_gets_the_current_generation(coord):
    a_id, b_id, generation = stable_pair(coord)
    again = join(coord, b_id, client="b").last
    assert again.error == ErrorCode.NONE and again.generation_id == generation and again.members == []
    assert coord.groups["g"].state == STABLE
    changed = join(coord, b_id, client="b", protocols=[("range", b"other topics")])
    assert not changed.answered and coord.groups["g"].state == PREPARING_REBALANCE


def test_the_leader_rejoining_starts_a_rebalance(coord):
    a_id, b_id, generation = stable_pair(coord)
    join(coord, a_id, client="a")
    assert coord.groups["g"].state == PREPARING_REBALANCE


# ---------------------------------------------------------------- protocols and validation


def test_protocol_is_chosen_by_vote_among_those_all_support(coord):
    both = [("range", b"r"), ("roundrobin", b"rr")]
    a = join(coord, client="a", protocols=both).last
    sync(coord, a.member_id, 1, {})
    b = join(coord, client="b", protocols=[("roundrobin", b"rr-b"), ("range", b"r-b")])
    c = join(coord, client="c", protocols=[("roundrobin", b"rr-c")])
    leader = join(coord, a.member_id, client="a", protocols=both).last
    assert leader.protocol_name == b.last.protocol_name == c.last.protocol_name == "roundrobin"
    assert dict(leader.members)[c.last.member_id] == b"rr-c"


def test_incompatible_members_are_refused(coord):
    a = join(coord, client="a").last
    assert (
        join(coord, client="x", protocols=[("sticky", b"")]).last.error
        == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    )
    wrong_type = join(coord, client="x", protocol_type="connect").last
    assert wrong_type.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert join(coord, client="x", protocols=[]).last.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert a.error == ErrorCode.NONE


@pytest.mark.parametrize(
    ("session", "error"),
    [
        (5_999, ErrorCode.INVALID_SESSION_TIMEOUT),
        (6_000, ErrorCode.NONE),
        (1_800_001, ErrorCode.INVALID_SESSION_TIMEOUT),
    ],
)
def test_session_timeout_bounds(coord, session, error):
    assert join(coord, session=session).last.error == error


def test_an_empty_group_id_is_invalid(coord):
    assert join(coord, group="").last.error == ErrorCode.INVALID_GROUP_ID


# ---------------------------------------------------------------- heartbeats, sessions, leaving


def test_heartbeat_errors(coord):
    a_id, b_id, generation = stable_pair(coord)
    assert coord.heartbeat("g", generation, a_id) == ErrorCode.NONE
    assert coord.heartbeat("g", generation - 1, a_id) == ErrorCode.ILLEGAL_GENERATION
    assert coord.heartbeat("g", generation, "stranger") == ErrorCode.UNKNOWN_MEMBER_ID
    assert coord.heartbeat("other", 1, a_id) == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_silent_member_is_removed_after_its_session_timeout(coord, clock):
    a_id, b_id, generation = stable_pair(coord)
    for _ in range(4):
        clock.advance(3)
        assert coord.heartbeat("g", generation, a_id) == ErrorCode.NONE
        coord.tick()
    assert b_id not in coord.groups["g"].members
    assert coord.heartbeat("g", generation, a_id) == ErrorCode.REBALANCE_IN_PROGRESS
    again = join(coord, a_id, client="a").last
    assert again.generation_id == generation + 1 and [m for m, _ in again.members] == [a_id]


def test_members_parked_in_a_join_do_not_expire(coord, clock):
    a_id, b_id, generation = stable_pair(coord)
    a_box = join(coord, a_id, client="a")
    for _ in range(5):  # 25 s: over the session timeout, under the rebalance timeout
        clock.advance(5)
        assert coord.heartbeat("g", generation, b_id) == ErrorCode.REBALANCE_IN_PROGRESS
        coord.tick()
    assert not a_box.answered and a_id in coord.groups["g"].members
    join(coord, b_id, client="b")
    assert a_box.last.generation_id == generation + 1


def test_a_leader_that_dies_before_syncing_releases_the_waiting_followers(coord, clock):
    a_id, b_id, generation = stable_pair(coord)
    join(coord, b_id, client="b", protocols=[("range", b"changed")])
    join(coord, a_id, client="a")
    parked = sync(coord, b_id, generation + 1)
    clock.advance(SESSION_MS / 1000)
    coord.tick()  # the leader never synced nor heartbeated
    assert parked.last.error == ErrorCode.REBALANCE_IN_PROGRESS
    assert list(coord.groups["g"].members) == [b_id]
    assert join(coord, b_id, client="b", protocols=[("range", b"changed")]).last.leader == b_id


def test_a_leader_that_heartbeats_but_never_syncs_is_removed_at_the_rebalance_timeout(coord, clock):
    a = join(coord, client="a").last
    for _ in range(REBALANCE_MS // 5000 + 1):
        clock.advance(5)
        coord.heartbeat("g", a.generation_id, a.member_id)
        coord.tick()
    assert coord.groups["g"].members == {} and coord.groups["g"].state == EMPTY


def test_leaving(coord):
    a_id, b_id, generation = stable_pair(coord)
    assert coord.leave("g", [b_id, "stranger"]) == [
        (b_id, ErrorCode.NONE),
        ("stranger", ErrorCode.UNKNOWN_MEMBER_ID),
    ]
    assert coord.groups["g"].state == PREPARING_REBALANCE
    rejoined = join(coord, a_id, client="a").last
    assert rejoined.generation_id == generation + 1 and rejoined.leader == a_id
    assert coord.leave("unknown-group", [a_id]) == [(a_id, ErrorCode.UNKNOWN_MEMBER_ID)]


def test_the_last_member_leaving_empties_the_group_with_a_new_generation(coord):
    a = join(coord, client="a").last
    sync(coord, a.member_id, 1, {})
    coord.leave("g", [a.member_id])
    group = coord.groups["g"]
    assert group.state == EMPTY and group.generation == 2 and group.protocol_name is None
    assert group.protocol_type == "consumer"  # kept, as Kafka keeps it for an empty group


def test_leader_leaving_mid_rebalance_hands_leadership_to_a_joined_member(coord):
    a_id, b_id, generation = stable_pair(coord)
    b_box = join(coord, b_id, client="b", protocols=[("range", b"changed")])
    coord.leave("g", [a_id])
    assert b_box.last.leader == b_id and b_box.last.generation_id == generation + 1


# ---------------------------------------------------------------- offsets, describe, delete, unload


def test_commit_rules(coord):
    writes = []

    def write():
        writes.append(1)

    assert coord.commit("simple", -1, "", write) == ErrorCode.NONE  # no group management: allowed
    assert coord.commit("unknown", 3, "m", write) == ErrorCode.ILLEGAL_GENERATION
    a = join(coord, client="a").last
    assert coord.commit("g", a.generation_id, a.member_id, write) == ErrorCode.REBALANCE_IN_PROGRESS
    sync(coord, a.member_id, a.generation_id, {})
    assert coord.commit("g", a.generation_id, a.member_id, write) == ErrorCode.NONE
    assert coord.commit("g", -1, "", write) == ErrorCode.UNKNOWN_MEMBER_ID  # members are live
    assert coord.commit("g", a.generation_id + 1, a.member_id, write) == ErrorCode.ILLEGAL_GENERATION
    join(coord, client="b")
    assert coord.commit("g", a.generation_id, a.member_id, write) == ErrorCode.NONE  # before rejoining
    assert len(writes) == 3
    coord.leave("g", [a.member_id, "b-2"])
    assert coord.commit("g", -1, "", write) == ErrorCode.NONE  # empty again
    assert coord.commit("g", 7, "old", write) == ErrorCode.UNKNOWN_MEMBER_ID


def test_describe_shows_metadata_and_assignment_only_when_stable(coord):
    assert coord.describe("g") is None
    a = join(coord, client="a").last
    completing = coord.describe("g")
    assert completing.state == COMPLETING_REBALANCE and completing.protocol == ""
    assert completing.members[0].metadata == b"" and completing.members[0].client_id == "a"
    sync(coord, a.member_id, 1, {a.member_id: b"parts"})
    stable = coord.describe("g")
    assert (stable.state, stable.protocol_type, stable.protocol) == (STABLE, "consumer", "range")
    assert stable.members[0].metadata == b"meta-range" and stable.members[0].assignment == b"parts"


def test_delete_is_refused_while_members_live(coord):
    removed = []
    a = join(coord, client="a").last
    assert coord.delete("g", lambda: removed.append("g")) == ErrorCode.NON_EMPTY_GROUP
    coord.leave("g", [a.member_id])
    assert coord.delete("g", lambda: removed.append("g")) == ErrorCode.NONE
    assert removed == ["g"] and "g" not in coord.groups


def test_unloading_answers_every_waiting_member(coord):
    a_id, b_id, generation = stable_pair(coord)
    waiting_join = join(coord, a_id, client="a")
    coord.unload("g")
    assert waiting_join.last == JoinResult(ErrorCode.NOT_COORDINATOR, member_id=a_id)
    assert "g" not in coord.groups
    assert coord.heartbeat("g", generation, b_id) == ErrorCode.UNKNOWN_MEMBER_ID


def test_generation_continues_from_what_the_mirror_recorded(clock):
    class Recorded(NullMirror):
        def load(self, group_id: str) -> int:
            return 41

    coord = GroupCoordinator(Recorded(), clock=clock, initial_rebalance_delay_ms=0)
    assert join(coord).last.generation_id == 42


# ---------------------------------------------------------------- choosing the coordinator


def test_choose_coordinator_is_deterministic_and_moves_few_groups():
    groups = [f"group-{i}" for i in range(300)]
    three = {g: choose_coordinator(g, [0, 1, 2]) for g in groups}
    assert three == {g: choose_coordinator(g, [2, 1, 0]) for g in groups}
    assert set(three.values()) == {0, 1, 2}
    two = {g: choose_coordinator(g, [0, 2]) for g in groups}
    assert all(two[g] == three[g] for g in groups if three[g] != 1)  # only broker 1's groups move
    assert choose_coordinator("g", []) is None
