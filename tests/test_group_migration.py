"""Kafka 4.x's online migration between classic and KIP-848 consumer groups
(``group.consumer.migration.policy``) against a real broker.

Request by request: a classic member (raw JoinGroup/SyncGroup/Heartbeat) inside a consumer group gets
the server assignor's partitions, REBALANCE_IN_PROGRESS when it must rejoin, and gives partitions up
before anyone else gets them (no partition is owned by two members at any step); the group goes back
to classic when its last consumer-protocol member leaves; the state survives kill -9 of the coordinator;
the policy ``disabled`` keeps both protocols apart.  Then with real confluent-kafka consumers: a classic
group whose members restart one by one with ``group.protocol=consumer`` reads every record exactly once
across both switches, and a consumer group whose consumer-protocol members leave becomes classic again.
"""

from __future__ import annotations

import json
import signal
import threading

import pytest
from support.brokers import call, connect
from support.group_members import HeartbeatMember, PollingConsumer, stop_all
from support.waits import wait_for

from kcli.groups.consumer_group import (
    ClassicSeed,
    ConsumerGroup,
    ConsumerGroups,
    Heartbeat,
    HeartbeatError,
    from_classic,
)
from kcli.protocol import ApiKey, ErrorCode, assignment_bytes, decode_assignment, encode_subscription

TOPIC = "orders"
ALL = {0, 1, 2, 3}
FLAGS = ("--group-consumer-session-timeout-ms", "10000", "--group-consumer-heartbeat-interval-ms", "500")


def start(brokers, *extra: str):
    b = brokers.start(0, *FLAGS, *extra)
    b.kcli = brokers.kcli
    b.runner = brokers.runner
    b.runner.in_process("topic", "create", TOPIC, "--partitions", 4)
    return b


@pytest.fixture
def broker(brokers):
    return start(brokers)


def consumer(broker, group: str = "g") -> HeartbeatMember:
    """A raw ConsumerGroupHeartbeat member subscribed to TOPIC."""
    return HeartbeatMember(broker, TOPIC, group)


class Classic:
    """A classic member speaking raw JoinGroup v5 / SyncGroup v5 / Heartbeat / LeaveGroup.  ``eager``:
    it gives up everything before rejoining (range, roundrobin); else it rejoins still owning its
    partitions and says so in its subscription (cooperative)."""

    def __init__(self, broker, group: str = "g", eager: bool = True) -> None:
        self.sock = connect(broker.socket_path)
        self.group, self.eager = group, eager
        self.member_id, self.generation = "", -1
        self.owned: set[int] = set()

    def join(self):
        """JoinGroup (twice for a new member: MEMBER_ID_REQUIRED first); as leader of a classic group it
        assigns everything to the members in order, round robin."""
        if self.eager:
            self.owned = set()
        subscription = encode_subscription(
            {"topics": [TOPIC], "owned_partitions": [{"topic": TOPIC, "partitions": sorted(self.owned)}]}, version=1
        )
        body = {"group_id": self.group, "session_timeout_ms": 6_000, "rebalance_timeout_ms": 10_000,
                "member_id": self.member_id, "group_instance_id": None, "protocol_type": "consumer",
                "protocols": [{"name": "range", "metadata": subscription}]}
        resp = call(self.sock, ApiKey.JOIN_GROUP, 5, body)
        if resp.error_code == ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = resp.member_id
            resp = call(self.sock, ApiKey.JOIN_GROUP, 5, {**body, "member_id": self.member_id})
        self.joined = resp
        if resp.error_code == ErrorCode.NONE:
            self.generation = resp.generation_id
        return resp

    def sync(self):
        assignments = []
        if self.joined.leader == self.member_id:
            ids = [m.member_id for m in self.joined.members]
            assignments = [
                {"member_id": m, "assignment": _assignment([p for p in sorted(ALL) if p % len(ids) == i])}
                for i, m in enumerate(ids)
            ]
        body = {"group_id": self.group, "generation_id": self.generation, "member_id": self.member_id,
                "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
                "assignments": assignments}
        resp = call(self.sock, ApiKey.SYNC_GROUP, 5, body)
        if resp.error_code == ErrorCode.NONE:
            self.owned = {p for a in decode_assignment(resp.assignment).assigned_partitions for p in a.partitions}
        return resp

    def rejoin(self) -> None:
        assert self.join().error_code == ErrorCode.NONE
        assert self.sync().error_code == ErrorCode.NONE

    def heartbeat(self) -> int:
        body = {"group_id": self.group, "generation_id": self.generation, "member_id": self.member_id,
                "group_instance_id": None}
        return call(self.sock, ApiKey.HEARTBEAT, 4, body).error_code

    def commit(self, generation: int) -> int:
        body = {"group_id": self.group, "generation_id": generation, "member_id": self.member_id,
                "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 3}]}]}
        return call(self.sock, ApiKey.OFFSET_COMMIT, 8, body).topics[0].partitions[0].error_code


def _assignment(partitions: list[int]) -> bytes:
    return assignment_bytes([(TOPIC, p) for p in partitions])


def exclusive(*members) -> None:
    """No partition is owned by two members at once."""
    seen: set[int] = set()
    for m in members:
        assert not seen & m.owned, [sorted(x.owned) for x in members]
        seen |= m.owned


def group_type(broker, group: str = "g") -> tuple[str, str]:
    with connect(broker.socket_path) as sock:
        groups = call(sock, ApiKey.LIST_GROUPS, 5, {}).groups
    return next((g.group_type, g.group_state) for g in groups if g.group_id == group)


def described(broker, group: str = "g"):
    with connect(broker.socket_path) as sock:
        [body] = call(sock, ApiKey.CONSUMER_GROUP_DESCRIBE, 0, {"group_ids": [group]}).groups
    return body


def test_a_classic_member_inside_a_consumer_group_then_back_to_classic(broker):
    c = Classic(broker)
    c.rejoin()
    assert c.owned == ALL and group_type(broker) == ("classic", "Stable")
    generation = c.generation
    # a consumer-protocol member joins: the live classic group becomes a consumer group; c keeps its
    # partitions at its generation, the newcomer waits for them
    a = consumer(broker)
    assert a.last.error_code == ErrorCode.NONE and a.epoch == generation + 1 and a.owned == set()
    assert group_type(broker) == ("consumer", "Reconciling")
    exclusive(a, c)
    assert c.commit(generation) == ErrorCode.NONE  # a classic member commits with its generation
    assert c.commit(generation + 7) == ErrorCode.ILLEGAL_GENERATION
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS
    assert a.report().error_code == ErrorCode.NONE and a.owned == set()  # still c's
    c.rejoin()  # eager: gives everything up, rejoins, gets what the server assignor decided
    assert (c.joined.generation_id, c.joined.leader, c.joined.members) == (a.epoch, "", [])
    assert len(c.owned) == 2
    exclusive(a, c)
    a.report()
    assert a.owned == ALL - c.owned
    assert c.heartbeat() == ErrorCode.NONE
    view = described(broker)
    assert (view.group_state, len(view.members)) == ("Stable", 2)
    # a second consumer-protocol member: c must rejoin, a must revoke first
    b = consumer(broker)
    exclusive(a, b, c)
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS
    c.rejoin()
    exclusive(a, b, c)
    for _ in range(4):
        for m in (a, b):
            m.report()
            exclusive(a, b, c)
        if c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS:
            c.rejoin()
            exclusive(a, b, c)
    assert a.owned | b.owned | c.owned == ALL and c.heartbeat() == ErrorCode.NONE
    # the consumer-protocol members leave: the last one hands the group back to the classic protocol
    a.leave()
    assert group_type(broker)[0] == "consumer"
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS
    c.rejoin()
    b.report()
    exclusive(b, c)
    b.leave()  # c's generation is the group epoch: the classic group continues from it
    assert group_type(broker) == ("classic", "PreparingRebalance")
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS
    c.rejoin()  # now the classic coordinator's: c leads and assigns
    assert c.joined.leader == c.member_id and c.owned == ALL
    assert group_type(broker) == ("classic", "Stable")
    assert described(broker).error_code == ErrorCode.GROUP_ID_NOT_FOUND
    rows = json.loads(broker.kcli("group", "describe", "g", "--json").stdout)[0]["partitions"]
    assert {(r["partition"], r["current_offset"]) for r in rows if r["partition"] == 0} == {(0, 3)}


def test_a_cooperative_classic_member_revokes_before_others_get_its_partitions(broker):
    c = Classic(broker, eager=False)
    c.rejoin()
    a = consumer(broker)
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS
    c.rejoin()  # still owning all four: it keeps two and must give two up before a gets them
    assert len(c.owned) == 2
    a.report()
    assert a.owned == set()  # c has not said it gave them up yet
    exclusive(a, c)
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS  # so it rejoins, owning two
    c.rejoin()
    assert len(c.owned) == 2 and c.generation == a.epoch
    a.report()
    assert a.owned == ALL - c.owned
    assert c.heartbeat() == ErrorCode.NONE


def test_classic_leave_and_session_timeout_inside_a_consumer_group(brokers):
    broker = start(brokers, "--group-initial-rebalance-delay-ms", "1000")  # c and d join one rebalance
    c, d = Classic(broker), Classic(broker)
    threads = [threading.Thread(target=m.rejoin) for m in (c, d)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.owned | d.owned == ALL and c.generation == d.generation
    a = consumer(broker)
    assert a.last.error_code == ErrorCode.NONE
    body = {"group_id": "g", "members": [{"member_id": d.member_id, "group_instance_id": None}]}
    [left] = call(d.sock, ApiKey.LEAVE_GROUP, 3, body).members
    assert left.error_code == ErrorCode.NONE
    assert {m.member_id for m in described(broker).members} == {a.member_id, c.member_id}
    # c stops heartbeating (a goes on): its session timeout (6 s, its own) removes it, a gets everything

    def only_a() -> bool:
        assert a.report().error_code == ErrorCode.NONE
        return {m.member_id for m in described(broker).members} == {a.member_id}

    wait_for("c is gone", only_a, 20.0, interval=0.5)
    for _ in range(3):
        a.report()
    assert a.owned == ALL and group_type(broker) == ("consumer", "Stable")


@pytest.mark.faults
def test_classic_members_survive_kill_9_of_the_coordinator(brokers, broker):
    c = Classic(broker)
    c.rejoin()
    a = consumer(broker)
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS
    c.rejoin()
    a.report()
    before = (c.generation, set(c.owned)), (a.epoch, set(a.owned))
    broker.stop(signal.SIGKILL)
    again = brokers.start(0, *FLAGS)
    for m in (a, c):
        m.sock.close()
        m.sock = connect(again.socket_path)
    assert c.heartbeat() == ErrorCode.NONE  # still a classic member at its generation
    assert c.sync().error_code == ErrorCode.NONE
    assert a.report().error_code == ErrorCode.NONE
    assert ((c.generation, c.owned), (a.epoch, a.owned)) == before
    a.leave()  # and the downgrade still knows c's protocols
    assert group_type(again)[0] == "classic"
    c.rejoin()
    assert c.owned == ALL


def test_policy_disabled_keeps_the_protocols_apart(brokers):
    broker = start(brokers, "--override", "group.consumer.migration.policy=disabled")
    c = Classic(broker, group="classic")
    c.rejoin()
    assert consumer(broker, group="classic").last.error_code == ErrorCode.GROUP_ID_NOT_FOUND
    assert c.heartbeat() == ErrorCode.NONE and group_type(broker, "classic") == ("classic", "Stable")
    consumer(broker, group="modern")
    assert Classic(broker, group="modern").join().error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_policy_upgrade_does_not_downgrade(brokers):
    broker = start(brokers, "--override", "group.consumer.migration.policy=upgrade")
    c = Classic(broker)
    c.rejoin()
    a = consumer(broker)
    assert a.last.error_code == ErrorCode.NONE and group_type(broker)[0] == "consumer"
    a.leave()
    assert group_type(broker)[0] == "consumer"
    assert c.heartbeat() == ErrorCode.REBALANCE_IN_PROGRESS
    c.rejoin()
    assert c.owned == ALL and c.joined.leader == ""  # the consumer group's server assignor decided


# ---------------------------------------------------------------- the state machine, with a fake clock


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def converted(clock: Clock, policy: str = "bidirectional"):
    """A classic group of one member owning everything at generation 5, converted; and what
    ``on_downgrade`` was handed."""
    downgraded: list[ConsumerGroup] = []
    groups = ConsumerGroups(10_000, clock=clock, new_member_id=lambda: "a", migration_policy=policy,
                            on_downgrade=downgraded.append)
    subscription = encode_subscription({"topics": [TOPIC]}, version=1)
    seed = ClassicSeed("c", "client", "", 6_000, 20_000, [("range", subscription)], "range",
                       _assignment(sorted(ALL)))
    groups.adopt(from_classic("g", 5, [seed], {TOPIC: 4}))
    return groups, downgraded


def consumer_join(groups: ConsumerGroups):
    hb = Heartbeat("g", "", 0, rebalance_timeout_ms=30_000, subscribed_topic_names=[TOPIC], owned=set())
    return groups.heartbeat(hb, {TOPIC: 4})


def test_unit_classic_state_round_trips_and_protocols_must_match():
    clock = Clock()
    groups, _ = converted(clock)
    group = groups.groups["g"]
    again = ConsumerGroup.from_json(group.to_json(), clock.now)
    assert again.to_json() == group.to_json() and again.members["c"].classic == group.members["c"].classic
    assert (again.epoch, again.members["c"].epoch, again.members["c"].assigned) == (5, 5, {(TOPIC, p) for p in ALL})
    other = encode_subscription({"topics": [TOPIC]}, version=1)
    with pytest.raises(HeartbeatError) as err:
        groups.classic_join("g", "d", "client", "", 6_000, 6_000, "consumer", [("roundrobin", other)], {TOPIC: 4})
    assert err.value.code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    with pytest.raises(HeartbeatError) as err:
        groups.classic_heartbeat("g", "c", 4)
    assert err.value.code == ErrorCode.ILLEGAL_GENERATION


def test_unit_a_classic_member_that_never_rejoins_is_removed_after_its_rebalance_timeout():
    clock = Clock()
    groups, _ = converted(clock)
    consumer_join(groups)
    clock.now += 1
    assert groups.classic_heartbeat("g", "c", 5) == ErrorCode.REBALANCE_IN_PROGRESS
    for _ in range(4):  # it keeps heartbeating (its session lives) but does not rejoin
        clock.now += 5
        groups.heartbeat(Heartbeat("g", "a", groups.groups["g"].members["a"].epoch), {TOPIC: 4})
        groups.classic_heartbeat("g", "c", 5)
        groups.tick()
    assert set(groups.groups["g"].members) == {"a"}  # gone after 20 s, its rebalance timeout


def test_unit_downgrade_on_session_timeout_of_the_last_consumer_member_and_policy_downgrade_only():
    clock = Clock()
    groups, downgraded = converted(clock)
    consumer_join(groups)
    for _ in range(3):  # c goes on heartbeating; the consumer member "a" falls silent
        clock.now += 4
        groups.classic_heartbeat("g", "c", 5)
        groups.tick()
    assert [set(g.members) for g in downgraded] == [{"c"}] and "g" not in groups.groups
    assert downgraded[0].epoch == 6  # not bumped by the downgrade: the classic generation goes on from it
    clock = Clock()
    groups, downgraded = converted(clock, policy="upgrade")
    consumer_join(groups)
    groups.heartbeat(Heartbeat("g", "a", groups.groups["g"].members["a"].epoch), {TOPIC: 4})
    groups.heartbeat(Heartbeat("g", "a", -1), {TOPIC: 4})
    assert downgraded == [] and set(groups.groups["g"].members) == {"c"}


# ---------------------------------------------------------------- real confluent-kafka consumers

PER_ROUND = 10  # records per partition produced in each round


def real(bootstrap: str, protocol: str, strategy: str | None = None) -> PollingConsumer:
    """A confluent-kafka member of group g reading TOPIC, retrying commits as an application does."""
    conf = {"partition.assignment.strategy": strategy} if strategy else {}
    return PollingConsumer(bootstrap, TOPIC, "g", protocol, retry_commit=True, **conf)


@pytest.fixture
def reals():
    started: list[PollingConsumer] = []
    yield started
    stop_all(started)


def produce_round(broker) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for p in sorted(ALL):
        for i in range(PER_ROUND):
            producer.produce(TOPIC, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(30) == 0


def kcli_type(broker, group: str = "g") -> str:
    return json.loads(broker.kcli("group", "describe", group, "--json").stdout)[0]["type"]


@pytest.mark.parametrize("strategy", ["range,roundrobin", "cooperative-sticky"])
def test_confluent_classic_members_switch_one_by_one_reading_everything_once(broker, reals, strategy):
    """Eager classic members give everything up when told to rejoin; cooperative ones keep what stays
    theirs and rejoin once more after revoking the rest."""
    def split(*members: PollingConsumer) -> bool:
        return all(len(m.owned) == 2 for m in members) and not members[0].owned & members[1].owned

    def everything_read(rounds: int) -> bool:
        return len({r for m in reals for r in m.read}) == rounds * PER_ROUND * len(ALL)

    x, y = real(broker.bootstrap, "classic", strategy=strategy), real(broker.bootstrap, "classic", strategy=strategy)
    reals += [x, y]
    wait_for("the classic members split the partitions", lambda: split(x, y), 60)
    # records only once the classic group settled: a commit during its first rebalance may be refused
    # (REBALANCE_IN_PROGRESS, as Kafka refuses it), which is the classic protocol, not the migration
    produce_round(broker)
    wait_for("round 1 read", lambda: everything_read(1), 60)
    assert kcli_type(broker) == "classic"
    x.close()  # x restarts with group.protocol=consumer: the live classic group (y) becomes a consumer group
    x2 = real(broker.bootstrap, "consumer")
    reals.append(x2)
    wait_for("x2 and classic y split the partitions", lambda: split(x2, y), 60)
    assert group_type(broker)[0] == "consumer" and kcli_type(broker) == "consumer"
    produce_round(broker)
    wait_for("round 2 read", lambda: everything_read(2), 60)
    y.close()  # and y too
    y2 = real(broker.bootstrap, "consumer")
    reals.append(y2)
    wait_for("x2 and y2 split the partitions", lambda: split(x2, y2), 60)
    produce_round(broker)
    wait_for("round 3 read", lambda: everything_read(3), 60)
    reads = [r for m in reals for r in m.read]
    assert len(reads) == len(set(reads)) == 3 * PER_ROUND * len(ALL)  # exactly once across both switches
    assert [e for m in reals for e in m.errors] == []
    assert {m["client_id"] for m in json.loads(broker.kcli("group", "describe", "g", "--json").stdout)[0]["members"]}


def test_confluent_consumer_members_leave_and_the_classic_one_remains(broker, reals):
    produce_round(broker)
    a, b = real(broker.bootstrap, "consumer"), real(broker.bootstrap, "consumer")
    reals += [a, b]
    wait_for("a and b split the partitions", lambda: len(a.owned) == 2 and len(b.owned) == 2, 60)
    k = real(broker.bootstrap, "classic")  # a classic member joins the consumer group
    reals.append(k)
    wait_for("k gets a share", lambda: len(k.owned) >= 1 and len(a.owned | b.owned | k.owned) == 4, 60)
    assert group_type(broker)[0] == "consumer"
    a.close()
    b.close()  # the last consumer-protocol member: the group becomes classic, k takes everything
    wait_for("k owns every partition", lambda: k.owned == ALL, 60)
    assert group_type(broker) == ("classic", "Stable") and kcli_type(broker) == "classic"
    produce_round(broker)
    wait_for("both rounds read", lambda: len({r for m in reals for r in m.read}) == 2 * PER_ROUND * len(ALL), 60)
