"""KIP-848 consumer groups: the coordinator computes the assignment and members reconcile towards it.

As Kafka's GroupMetadataManager and CurrentAssignmentBuilder, in kcli's words:

- The **group epoch** goes up whenever what the assignment depends on changes: a member joins or
  leaves, a subscription changes, a subscribed topic gains partitions (or appears, or goes).
- The **target assignment** is recomputed by the server assignor (kcli.groups.server_assignors) when
  the group epoch is ahead of the **assignment epoch**, which then catches up.
- Each member has a **member epoch** and reconciles on its heartbeats, one step at a time: partitions
  it must give up are revoked first (its epoch stays, the answer leaves them out); once its heartbeat
  reports them gone it moves to the assignment epoch and gets the partitions no other member still
  holds; those still held by their previous owner come in a later heartbeat, once released.
- **Classic members** (Kafka 4.x's online migration, ``group.consumer.migration.policy``): a live
  classic group a consumer-protocol member joins is converted (:func:`from_classic`); its members
  stay, speaking JoinGroup/SyncGroup/Heartbeat/LeaveGroup (:meth:`ConsumerGroups.classic_join` and
  friends): the server assignor decides their partitions too, their generation is their member epoch,
  and a heartbeat answers REBALANCE_IN_PROGRESS when they must rejoin to reconcile.  When the last
  consumer-protocol member leaves a group of classic members, ``on_downgrade`` turns it back into a
  classic group.
- Members leave with epoch -1; a static member (``group.instance.id``) leaves for a while with -2 and
  keeps its partitions until it rejoins (epoch 0, same instance id, any member id) or its session times
  out.  A member silent for the session timeout, or not revoking within its rebalance timeout, is
  removed.

No sockets: :class:`ConsumerGroups` is driven by :meth:`~ConsumerGroups.heartbeat` and
:meth:`~ConsumerGroups.tick` with a clock, and hands each changed group to ``on_change`` (the broker
persists and mirrors it, kcli.broker.consumer_group_handlers).  A group's state round-trips through
:meth:`ConsumerGroup.to_json`, so a new coordinator continues it where the old one stopped, as Kafka's
does from ``__consumer_offsets``; :func:`read_group` reads the stored form, ``consumer.json`` in the
group's folder (the broker writes it, the data dir's view reads it).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kcli.cluster.configs import CONSUMER_MIGRATION_POLICIES
from kcli.errors import KcliError, ProtocolError
from kcli.groups.layout import GroupPaths
from kcli.groups.server_assignors import DEFAULT_ASSIGNORS, SERVER_ASSIGNORS
from kcli.protocol import ErrorCode
from kcli.protocol.consumer import decode_assignment, decode_subscription, encode_assignment

TopicPartition = tuple[str, int]
TopicCounts = Mapping[str, int]  # the cluster's topics and their partition counts

JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH = 0, -1, -2
# group states (ConsumerGroupDescribe, ListGroups)
EMPTY, ASSIGNING, RECONCILING, STABLE = "Empty", "Assigning", "Reconciling", "Stable"
# member reconciliation states
MEMBER_STABLE, UNREVOKED, UNRELEASED = "stable", "unrevoked_partitions", "unreleased_partitions"

DEFAULT_SESSION_TIMEOUT_MS = 45_000  # group.consumer.session.timeout.ms
DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000  # group.consumer.heartbeat.interval.ms
# group.consumer.migration.policy: which online conversions between classic and consumer groups happen
DEFAULT_MIGRATION_POLICY = "bidirectional"
CONSUMER_PROTOCOL_TYPE = "consumer"  # the classic protocol type a group must use to be converted


class HeartbeatError(Exception):
    """A heartbeat refused with Kafka's ``code``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Heartbeat:
    """A ConsumerGroupHeartbeat with topic names instead of ids (None: unchanged since the last one)."""

    group_id: str
    member_id: str
    member_epoch: int
    client_id: str = ""
    client_host: str = ""
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: set[TopicPartition] | None = None


@dataclass
class HeartbeatAnswer:
    member_id: str
    member_epoch: int
    assignment: set[TopicPartition] | None  # None: unchanged, not sent


@dataclass
class ClassicMeta:
    """What a member speaking the classic protocol joined with (Kafka's ClassicMemberMetadata)."""

    session_timeout_ms: int
    protocols: list[tuple[str, bytes]]  # (name, subscription bytes), in the member's order of preference

    def to_json(self) -> dict[str, Any]:
        return {"session_timeout_ms": self.session_timeout_ms, "protocols": [[n, m.hex()] for n, m in self.protocols]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassicMeta:
        return cls(int(data["session_timeout_ms"]), [(str(n), bytes.fromhex(m)) for n, m in data["protocols"]])


@dataclass
class Member:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed: tuple[str, ...] = ()
    regex: str | None = None
    assignor: str | None = None
    rebalance_timeout_ms: int = 300_000
    epoch: int = 0
    previous_epoch: int = 0
    state: str = MEMBER_STABLE
    assigned: set[TopicPartition] = field(default_factory=set)
    revoking: set[TopicPartition] = field(default_factory=set)
    last_seen: float = 0.0
    revoke_deadline: float | None = None  # revoking (a classic member: rejoining) must end by then
    classic: ClassicMeta | None = None  # set while the member speaks the classic protocol

    def topics(self, counts: TopicCounts) -> set[str]:
        """The existing topics this member subscribes to, by name or by its regex."""
        out = {t for t in self.subscribed if t in counts}
        if self.regex is not None:
            pattern = re.compile(self.regex)
            out.update(t for t in counts if pattern.fullmatch(t))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "instance_id": self.instance_id,
            "rack_id": self.rack_id,
            "client_id": self.client_id,
            "client_host": self.client_host,
            "subscribed": list(self.subscribed),
            "regex": self.regex,
            "assignor": self.assignor,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "epoch": self.epoch,
            "previous_epoch": self.previous_epoch,
            "state": self.state,
            "assigned": sorted(self.assigned),
            "revoking": sorted(self.revoking),
            "classic": None if self.classic is None else self.classic.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], now: float) -> Member:
        return cls(
            str(data["member_id"]),
            data.get("instance_id"),
            data.get("rack_id"),
            str(data.get("client_id", "")),
            str(data.get("client_host", "")),
            tuple(data.get("subscribed", ())),
            data.get("regex"),
            data.get("assignor"),
            int(data.get("rebalance_timeout_ms", 300_000)),
            int(data["epoch"]),
            int(data.get("previous_epoch", 0)),
            str(data.get("state", MEMBER_STABLE)),
            {(str(t), int(p)) for t, p in data.get("assigned", ())},
            {(str(t), int(p)) for t, p in data.get("revoking", ())},
            now,
            now + int(data.get("rebalance_timeout_ms", 300_000)) / 1000 if data.get("revoking") else None,
            ClassicMeta.from_json(data["classic"]) if data.get("classic") else None,
        )


@dataclass
class ConsumerGroup:
    group_id: str
    epoch: int = 0
    assignment_epoch: int = 0
    assignor: str = DEFAULT_ASSIGNORS[0]
    members: dict[str, Member] = field(default_factory=dict)
    target: dict[str, set[TopicPartition]] = field(default_factory=dict)
    topics_seen: dict[str, int] = field(default_factory=dict)  # subscribed topics' partition counts

    @property
    def state(self) -> str:
        if not self.members:
            return EMPTY
        if self.epoch > self.assignment_epoch:
            return ASSIGNING
        if any(m.epoch != self.assignment_epoch or m.state != MEMBER_STABLE for m in self.members.values()):
            return RECONCILING
        return STABLE

    def static_member(self, instance_id: str) -> Member | None:
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def held_by_others(self, member_id: str) -> set[TopicPartition]:
        """Partitions another member still owns or has yet to revoke."""
        out: set[TopicPartition] = set()
        for m in self.members.values():
            if m.member_id != member_id:
                out |= m.assigned | m.revoking
        return out

    def supports_classic(self, protocol_type: str, names: set[str]) -> bool:
        """Whether a classic member with these protocols may join: the "consumer" type, and a protocol
        every classic member supports (Kafka's ConsumerGroup.supportsClassicProtocols)."""
        if protocol_type != CONSUMER_PROTOCOL_TYPE or not names:
            return False
        classic = [m.classic for m in self.members.values() if m.classic is not None]
        return not classic or any(all(n in {p for p, _ in c.protocols} for c in classic) for n in names)

    def to_json(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "type": "consumer",
            "epoch": self.epoch,
            "assignment_epoch": self.assignment_epoch,
            "assignor": self.assignor,
            "members": [m.to_json() for m in self.members.values()],
            "target": {m: sorted(tps) for m, tps in self.target.items()},
            "topics_seen": self.topics_seen,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], now: float) -> ConsumerGroup:
        group = cls(
            str(data["group_id"]),
            int(data["epoch"]),
            int(data["assignment_epoch"]),
            str(data.get("assignor", DEFAULT_ASSIGNORS[0])),
        )
        for m in data.get("members", ()):
            member = Member.from_json(m, now)
            group.members[member.member_id] = member
        group.target = {m: {(str(t), int(p)) for t, p in tps} for m, tps in data.get("target", {}).items()}
        group.topics_seen = {str(t): int(n) for t, n in data.get("topics_seen", {}).items()}
        return group


@dataclass
class ClassicSeed:
    """A member of a live classic group that is converted to a consumer group."""

    member_id: str
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    protocol_name: str | None  # the group's chosen protocol (None: not chosen yet)
    assignment: bytes  # its current ConsumerProtocol assignment (empty: none yet)


def from_classic(group_id: str, generation: int, seeds: list[ClassicSeed], counts: TopicCounts) -> ConsumerGroup:
    """The consumer group a live classic group becomes (Kafka's ConsumerGroup.fromClassicGroup): every
    member keeps its partitions at the classic generation, which becomes the group and member epochs
    and the target.  Raises ProtocolError for bytes that are no ConsumerProtocol subscription or
    assignment."""
    group = ConsumerGroup(group_id, generation, generation)
    for seed in seeds:
        names = [n for n, _ in seed.protocols]
        metadata = seed.protocols[names.index(seed.protocol_name) if seed.protocol_name in names else 0][1]
        subscription = decode_subscription(metadata)
        assigned = {
            (a.topic, p) for a in decode_assignment(seed.assignment).assigned_partitions for p in a.partitions
        }
        group.members[seed.member_id] = Member(
            seed.member_id,
            None,
            subscription.rack_id,
            seed.client_id,
            seed.client_host,
            tuple(sorted(set(subscription.topics))),
            rebalance_timeout_ms=seed.rebalance_timeout_ms,
            epoch=generation,
            previous_epoch=generation,
            assigned=assigned,
            classic=ClassicMeta(seed.session_timeout_ms, list(seed.protocols)),
        )
        group.target[seed.member_id] = set(assigned)
    subscribed = {t for m in group.members.values() for t in m.topics(counts)}
    group.topics_seen = {t: counts[t] for t in sorted(subscribed)}
    return group


@dataclass
class ClassicJoin:
    """A classic JoinGroup inside a consumer group: its generation is the member epoch."""

    member_id: str
    generation: int
    protocol_name: str


def partitions_by_topic(partitions: set[TopicPartition]) -> dict[str, list[int]]:
    """Partitions grouped by topic, both sorted (the shape every assignment on the wire has)."""
    out: dict[str, list[int]] = {}
    for topic, p in sorted(partitions):
        out.setdefault(topic, []).append(p)
    return out


STATE_FILE = "consumer.json"


def state_path(paths: GroupPaths) -> str:
    return os.path.join(paths.dir, STATE_FILE)


def read_group(paths: GroupPaths, now: float | None = None) -> ConsumerGroup | None:
    """The consumer group stored in ``paths`` (None: it is no KIP-848 consumer group)."""
    try:
        with open(state_path(paths), encoding="utf-8") as fh:
            return ConsumerGroup.from_json(json.load(fh), time.monotonic() if now is None else now)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KcliError(f"consumer group state {state_path(paths)} is unreadable: {exc}") from None


OnChange = Callable[[ConsumerGroup], None]
OnDowngrade = Callable[[ConsumerGroup], None]
Loader = Callable[[str], ConsumerGroup | None]


class ConsumerGroups:
    """Every KIP-848 group one coordinator keeps, under one lock."""

    def __init__(
        self,
        session_timeout_ms: int | Callable[[str], int] = DEFAULT_SESSION_TIMEOUT_MS,
        assignors: tuple[str, ...] = DEFAULT_ASSIGNORS,
        on_change: OnChange | None = None,
        load: Loader | None = None,
        clock: Callable[[], float] = time.monotonic,
        new_member_id: Callable[[], str] | None = None,
        migration_policy: str = DEFAULT_MIGRATION_POLICY,
        on_downgrade: OnDowngrade | None = None,
    ) -> None:
        """``on_downgrade`` is handed a group of classic members that becomes a classic group (it is
        no longer kept here, and ``on_change`` is not called for it)."""
        if migration_policy not in CONSUMER_MIGRATION_POLICIES:
            raise ValueError(f"unknown group.consumer.migration.policy {migration_policy!r}")
        unknown = [a for a in assignors if a not in SERVER_ASSIGNORS]
        if not assignors or unknown:
            raise ValueError(f"unknown group.consumer.assignors {unknown or assignors}")
        fixed = session_timeout_ms
        # a group's session timeout (ms): one for all, or each group's own (its consumer.session.timeout.ms)
        self.session_timeout_ms = fixed if callable(fixed) else lambda group_id: fixed
        self.assignors = assignors
        self.on_change = on_change or (lambda group: None)
        self.load = load or (lambda group_id: None)
        self.clock = clock
        self.new_member_id = new_member_id or (lambda: str(uuid.uuid4()))
        self.migration_policy = migration_policy
        self.on_downgrade = on_downgrade or (lambda group: None)
        self.lock = threading.RLock()
        self.groups: dict[str, ConsumerGroup] = {}

    def get(self, group_id: str) -> ConsumerGroup | None:
        """The kept group, loaded from storage on first use; None when there is none."""
        with self.lock:
            group = self.groups.get(group_id)
            if group is None or not group.members:  # an empty group may have been deleted or converted
                group = self.load(group_id)
                if group is None:
                    self.groups.pop(group_id, None)
                else:
                    self.groups[group_id] = group
            return group

    # ------------------------------------------------------------ heartbeat

    def heartbeat(self, hb: Heartbeat, counts: TopicCounts) -> HeartbeatAnswer:
        """One ConsumerGroupHeartbeat; raises :class:`HeartbeatError` with Kafka's code."""
        self._validate(hb)
        with self.lock:
            group = self.get(hb.group_id)
            if group is None:
                if hb.member_epoch != JOIN_EPOCH:
                    raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"group {hb.group_id} has no member {hb.member_id}")
                group = self.groups[hb.group_id] = ConsumerGroup(hb.group_id)
            with self._changes(group):
                return self._heartbeat(group, hb, counts)

    @contextmanager
    def _changes(self, group: ConsumerGroup) -> Iterator[None]:
        """Hand ``group`` to ``on_change`` after the block if it changed and is still kept here."""
        before = group.to_json()
        try:
            yield
        finally:
            if self.groups.get(group.group_id) is group and group.to_json() != before:
                self.on_change(group)

    @property
    def upgrades(self) -> bool:
        return self.migration_policy in ("upgrade", "bidirectional")

    @property
    def downgrades(self) -> bool:
        return self.migration_policy in ("downgrade", "bidirectional")

    def adopt(self, group: ConsumerGroup) -> None:
        """Keep a group converted from a classic group (:func:`from_classic`), and store it."""
        with self.lock:
            now = self.clock()
            for member in group.members.values():
                member.last_seen = now
            self.groups[group.group_id] = group
            self.on_change(group)

    def _validate(self, hb: Heartbeat) -> None:
        def invalid(why: str) -> HeartbeatError:
            return HeartbeatError(ErrorCode.INVALID_REQUEST, why)

        if not hb.group_id:
            raise invalid("GroupId can't be empty.")
        if hb.instance_id == "":
            raise invalid("InstanceId can't be empty.")
        if hb.rack_id == "":
            raise invalid("RackId can't be empty.")
        if hb.member_epoch > 0 or hb.member_epoch == LEAVE_EPOCH:
            if not hb.member_id:
                raise invalid("MemberId can't be empty.")
        elif hb.member_epoch == JOIN_EPOCH:
            if hb.rebalance_timeout_ms == -1:
                raise invalid("RebalanceTimeoutMs must be provided in first request.")
            if hb.owned is None or hb.owned:
                raise invalid("TopicPartitions must be empty when (re-)joining.")
            if not hb.subscribed_topic_names and hb.subscribed_topic_regex is None:
                raise invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
        elif hb.member_epoch == STATIC_LEAVE_EPOCH:
            if not hb.member_id:
                raise invalid("MemberId can't be empty.")
            if hb.instance_id is None:
                raise invalid("InstanceId can't be null.")
        else:
            raise invalid("MemberEpoch is invalid.")
        if hb.subscribed_topic_regex is not None:
            try:
                re.compile(hb.subscribed_topic_regex)
            except re.error as exc:
                raise invalid(f"SubscribedTopicRegex {hb.subscribed_topic_regex!r} is invalid: {exc}") from None
        if hb.server_assignor is not None and hb.server_assignor not in self.assignors:
            raise HeartbeatError(
                ErrorCode.UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {hb.server_assignor} is not supported. "
                f"Supported assignors: {', '.join(self.assignors)}.",
            )

    def _heartbeat(self, group: ConsumerGroup, hb: Heartbeat, counts: TopicCounts) -> HeartbeatAnswer:
        now = self.clock()
        if hb.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(group, hb)
        if hb.member_epoch == JOIN_EPOCH:
            member, new = self._join(group, hb, now)
        else:
            member, new = self._known(group, hb), False
        member.last_seen = now
        changed = self._update(member, hb) or new
        self._refresh_target(group, counts, changed)
        before = set(member.assigned)
        self._reconcile(group, member, hb.owned, now)
        full = hb.member_epoch == JOIN_EPOCH or (
            hb.rebalance_timeout_ms != -1 and hb.subscribed_topic_names is not None and hb.owned is not None
        )
        send = full or member.assigned != before or (hb.owned is not None and hb.owned != member.assigned)
        return HeartbeatAnswer(member.member_id, member.epoch, set(member.assigned) if send else None)

    def _leave(self, group: ConsumerGroup, hb: Heartbeat) -> HeartbeatAnswer:
        member = group.members.get(hb.member_id)
        if member is None and hb.instance_id is not None:
            member = group.static_member(hb.instance_id)
        if member is None:
            raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"member {hb.member_id} is not in group {group.group_id}")
        if hb.member_epoch == STATIC_LEAVE_EPOCH:
            member.epoch = STATIC_LEAVE_EPOCH  # it keeps its partitions until it rejoins or times out
        else:
            self._fence(group, member)
        return HeartbeatAnswer(hb.member_id, hb.member_epoch, None)

    def _join(self, group: ConsumerGroup, hb: Heartbeat, now: float) -> tuple[Member, bool]:
        """The joining member, and whether it is new to the group."""
        member_id = hb.member_id or self.new_member_id()
        if hb.instance_id is not None:
            previous = group.static_member(hb.instance_id)
            if previous is not None:
                if previous.epoch != STATIC_LEAVE_EPOCH and previous.member_id != member_id:
                    raise HeartbeatError(
                        ErrorCode.UNRELEASED_INSTANCE_ID,
                        f"instance id {hb.instance_id} is still used by member {previous.member_id}",
                    )
                # the same instance back: the new member id takes over its partitions and target
                old_id = previous.member_id
                del group.members[old_id]
                group.target[member_id] = group.target.pop(old_id, set())
                previous.member_id, previous.epoch, previous.previous_epoch = member_id, 0, 0
                previous.client_id, previous.client_host = hb.client_id, hb.client_host
                group.members[member_id] = previous
                return previous, False
        member = group.members.get(member_id)
        if member is not None:  # a known member starting over: it owns nothing now
            member.assigned, member.revoking = set(), set()
            member.epoch = member.previous_epoch = 0
            member.classic = None  # it speaks the consumer protocol now
            member.state = MEMBER_STABLE
            return member, False
        member = Member(member_id, hb.instance_id, hb.rack_id, hb.client_id, hb.client_host, last_seen=now)
        group.members[member_id] = member
        return member, True

    def _known(self, group: ConsumerGroup, hb: Heartbeat) -> Member:
        member = group.members.get(hb.member_id)
        if member is None:
            raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"member {hb.member_id} is not in group {group.group_id}")
        if hb.member_epoch > member.epoch:
            raise HeartbeatError(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"member epoch {hb.member_epoch} is ahead of the coordinator's {member.epoch}; "
                "the member must abandon its partitions and rejoin",
            )
        if hb.member_epoch < member.epoch and (
            hb.member_epoch != member.previous_epoch or hb.owned is None or not hb.owned <= member.assigned
        ):
            raise HeartbeatError(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"member epoch {hb.member_epoch} is behind the coordinator's {member.epoch}; "
                "the member must abandon its partitions and rejoin",
            )
        return member

    def _update(self, member: Member, hb: Heartbeat) -> bool:
        """Apply what the heartbeat changed; True if the assignment depends on it (subscriptions, assignor)."""
        changed = False
        if hb.subscribed_topic_names is not None and tuple(sorted(set(hb.subscribed_topic_names))) != member.subscribed:
            member.subscribed, changed = tuple(sorted(set(hb.subscribed_topic_names))), True
        if hb.subscribed_topic_regex is not None and hb.subscribed_topic_regex != member.regex:
            member.regex, changed = hb.subscribed_topic_regex, True
        if hb.server_assignor is not None and hb.server_assignor != member.assignor:
            member.assignor, changed = hb.server_assignor, True
        if hb.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms
        if hb.rack_id is not None:
            member.rack_id = hb.rack_id
        if hb.instance_id is not None:
            member.instance_id = hb.instance_id
        if hb.client_id:
            member.client_id = hb.client_id
        return changed

    def _refresh_target(self, group: ConsumerGroup, counts: TopicCounts, changed: bool) -> None:
        """Bump the group epoch (once) if the members ``changed`` or their subscribed topics changed in
        the cluster, and recompute the target assignment when the group epoch is ahead of it."""
        subscribed = {t for m in group.members.values() for t in m.topics(counts)}
        seen = {t: counts[t] for t in sorted(subscribed)}
        if changed or seen != group.topics_seen:
            group.topics_seen = seen
            group.epoch += 1
        if group.epoch <= group.assignment_epoch:
            return
        group.assignor = self._assignor_of(group)
        subscriptions = {m.member_id: m.topics(counts) for m in group.members.values()}
        group.target = SERVER_ASSIGNORS[group.assignor](subscriptions, counts, group.target)
        group.assignment_epoch = group.epoch

    def _assignor_of(self, group: ConsumerGroup) -> str:
        """The assignor most members ask for, else the first configured (Kafka's preferred assignor)."""
        votes = Counter(m.assignor for m in group.members.values() if m.assignor is not None)
        if not votes:
            return self.assignors[0]
        return max(sorted(votes), key=lambda a: votes[a])

    def _reconcile(
        self, group: ConsumerGroup, member: Member, owned: set[TopicPartition] | None, now: float
    ) -> None:
        """One step of the member towards its target (Kafka's CurrentAssignmentBuilder)."""
        if member.state == UNREVOKED:
            if owned is None or owned & member.revoking:
                return  # still revoking
            member.revoking = set()
            member.revoke_deadline = None
            member.state = MEMBER_STABLE
        target = group.target.get(member.member_id, set())
        if member.epoch == group.assignment_epoch:
            if member.state == UNRELEASED:
                free = (target - member.assigned) - group.held_by_others(member.member_id)
                member.assigned |= free
                if target <= member.assigned:
                    member.state = MEMBER_STABLE
            return
        kept = member.assigned & target
        revoke = member.assigned - target
        if revoke:
            member.assigned, member.revoking = kept, revoke
            member.state = UNREVOKED
            member.revoke_deadline = now + member.rebalance_timeout_ms / 1000
            return
        pending = target - kept
        free = pending - group.held_by_others(member.member_id)
        member.assigned = kept | free
        member.previous_epoch, member.epoch = member.epoch, group.assignment_epoch
        member.state = UNRELEASED if pending - free else MEMBER_STABLE

    def _remove(self, group: ConsumerGroup, member: Member) -> None:
        del group.members[member.member_id]
        group.target.pop(member.member_id, None)
        group.epoch += 1

    def _fence(self, group: ConsumerGroup, member: Member) -> None:
        """Remove a member; if it was the last consumer-protocol member of a group whose other members
        speak the classic protocol, the group becomes a classic group (Kafka's online downgrade, without
        bumping the epoch: the classic generation continues from it)."""
        others = [m for m in group.members.values() if m is not member]
        if self.downgrades and member.classic is None and others and all(m.classic for m in others):
            del group.members[member.member_id]
            group.target.pop(member.member_id, None)
            del self.groups[group.group_id]
            self.on_downgrade(group)
            return
        self._remove(group, member)

    # ------------------------------------------------------------ classic members (online migration)

    def classic_join(
        self,
        group_id: str,
        member_id: str,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        counts: TopicCounts,
    ) -> ClassicJoin:
        """A classic JoinGroup to this consumer group, which has members (Kafka's
        classicGroupJoinToConsumerGroup): the member is added or updated with the subscription in its
        metadata and reconciled at once, since joining it declares what it owns (the subscription's
        owned partitions: none for eager assignors, which revoke everything first).  Answered at once;
        raises :class:`HeartbeatError` with Kafka's code."""
        with self.lock:
            group = self.get(group_id)
            if group is None or not group.members:
                raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"group {group_id} is no consumer group")
            if not group.supports_classic(protocol_type, {n for n, _ in protocols}):
                raise HeartbeatError(
                    ErrorCode.INCONSISTENT_GROUP_PROTOCOL, f"Member {member_id}'s protocols are not supported."
                )
            try:
                subscription = decode_subscription(protocols[0][1])
            except ProtocolError as exc:
                raise HeartbeatError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, str(exc)) from None
            owned = {(tp.topic, p) for tp in subscription.owned_partitions for p in tp.partitions}
            now = self.clock()
            with self._changes(group):
                member = group.members.get(member_id)
                new = member is None
                if member is None:
                    member = group.members[member_id] = Member(member_id, None, None, client_id, client_host)
                member.classic = ClassicMeta(session_timeout_ms, list(protocols))
                member.last_seen = now
                hb = Heartbeat(
                    group_id,
                    member_id,
                    member.epoch,
                    client_id,
                    client_host,
                    rack_id=subscription.rack_id or None,
                    rebalance_timeout_ms=rebalance_timeout_ms,
                    subscribed_topic_names=list(subscription.topics),
                    owned=owned,
                )
                changed = self._update(member, hb) or new
                self._refresh_target(group, counts, changed)
                self._reconcile(group, member, owned, now)
                if member.state == UNREVOKED:  # it already gave them up: the next step too
                    self._reconcile(group, member, owned, now)
                if member.state != UNREVOKED:
                    member.revoke_deadline = None  # it rejoined in time
                return ClassicJoin(member_id, member.epoch, protocols[0][0])

    def _classic_member(self, group: ConsumerGroup, member_id: str, generation: int) -> Member:
        member = group.members.get(member_id)
        if member is None or member.classic is None:
            raise HeartbeatError(
                ErrorCode.UNKNOWN_MEMBER_ID, f"member {member_id} is no classic member of group {group.group_id}"
            )
        if generation != member.epoch:
            raise HeartbeatError(
                ErrorCode.ILLEGAL_GENERATION, f"generation {generation} is not member {member_id}'s {member.epoch}"
            )
        return member

    def classic_sync(
        self, group_id: str, member_id: str, generation: int, protocol_type: str | None, protocol_name: str | None
    ) -> bytes:
        """A classic SyncGroup in this consumer group: the member's current partitions, as a
        ConsumerProtocol assignment of its subscription's version (Kafka's classicGroupSyncToConsumerGroup)."""
        with self.lock:
            group = self._kept(group_id)
            member = self._classic_member(group, member_id, generation)
            assert member.classic is not None
            first, metadata = member.classic.protocols[0]
            if (protocol_type is not None and protocol_type != CONSUMER_PROTOCOL_TYPE) or (
                protocol_name is not None and protocol_name != first
            ):
                raise HeartbeatError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "protocol type or name differ")
            if group.epoch > member.epoch and member.state != UNREVOKED:
                raise HeartbeatError(
                    ErrorCode.REBALANCE_IN_PROGRESS,
                    f"A new rebalance is triggered in group {group_id} and member {member_id} should rejoin.",
                )
            member.last_seen = self.clock()
            try:
                version = min(decode_subscription(metadata).version, 3)
            except ProtocolError:
                version = 0
            assigned = [{"topic": t, "partitions": ps} for t, ps in partitions_by_topic(member.assigned).items()]
            return encode_assignment({"assigned_partitions": assigned}, version=version)

    def classic_heartbeat(self, group_id: str, member_id: str, generation: int) -> ErrorCode:
        """A classic Heartbeat in this consumer group: REBALANCE_IN_PROGRESS when the member must rejoin
        to reconcile -- a newer group epoch, partitions to revoke, or partitions it waits for that are
        free now (Kafka's classicGroupHeartbeatToConsumerGroup)."""
        with self.lock:
            group = self._kept(group_id)
            member = self._classic_member(group, member_id, generation)
            member.last_seen = self.clock()
            target = group.target.get(member_id, set())
            waiting = member.state == UNRELEASED and not (target - member.assigned) - group.held_by_others(member_id)
            if member.epoch < group.epoch or member.state == UNREVOKED or (
                member.state == UNRELEASED and not waiting
            ):
                if member.revoke_deadline is None:  # it must rejoin within its rebalance timeout
                    member.revoke_deadline = member.last_seen + member.rebalance_timeout_ms / 1000
                return ErrorCode.REBALANCE_IN_PROGRESS
            return ErrorCode.NONE

    def classic_leave(self, group_id: str, member_ids: list[str]) -> list[tuple[str, ErrorCode]]:
        """A classic LeaveGroup in this consumer group: each member's result."""
        with self.lock:
            group = self._kept(group_id)
            out = []
            with self._changes(group):
                for member_id in member_ids:
                    member = group.members.get(member_id)
                    if member is None or member.classic is None:
                        out.append((member_id, ErrorCode.UNKNOWN_MEMBER_ID))
                    else:
                        self._remove(group, member)
                        out.append((member_id, ErrorCode.NONE))
            return out

    def _kept(self, group_id: str) -> ConsumerGroup:
        group = self.get(group_id)
        if group is None:
            raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"group {group_id} is no consumer group")
        return group

    # ------------------------------------------------------------ time, offsets, admin

    def tick(self) -> None:
        """Remove members silent for the session timeout or not revoking within their rebalance timeout."""
        with self.lock:
            now = self.clock()
            for group in list(self.groups.values()):
                with self._changes(group):
                    session = self.session_timeout_ms(group.group_id) / 1000
                    for member in list(group.members.values()):
                        timeout = session if member.classic is None else member.classic.session_timeout_ms / 1000
                        if now - member.last_seen >= timeout or (
                            member.revoke_deadline is not None and now >= member.revoke_deadline
                        ):
                            self._fence(group, member)
                            if self.groups.get(group.group_id) is not group:
                                break  # downgraded

    def check_commit(self, group_id: str, member_id: str, epoch: int, api_version: int) -> ErrorCode:
        """OffsetCommit's check for a consumer group (Kafka's ConsumerGroup.validateOffsetCommit)."""
        with self.lock:
            group = self.get(group_id)
            if group is None or (epoch < 0 and not group.members):
                return ErrorCode.NONE
            member = group.members.get(member_id)
            if member is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if member.classic is not None:
                return ErrorCode.NONE if epoch == member.epoch else ErrorCode.ILLEGAL_GENERATION
            if api_version < 9:
                return ErrorCode.UNSUPPORTED_VERSION
            if epoch != member.epoch:
                return ErrorCode.STALE_MEMBER_EPOCH
            return ErrorCode.NONE

    def check_fetch(self, group_id: str, member_id: str | None, epoch: int) -> ErrorCode:
        """OffsetFetch v9's check (Kafka's ConsumerGroup.validateOffsetFetch)."""
        if member_id is None and epoch < 0:
            return ErrorCode.NONE
        with self.lock:
            group = self.get(group_id)
            member = group.members.get(member_id or "") if group is not None else None
            if member is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            return ErrorCode.NONE if epoch == member.epoch else ErrorCode.STALE_MEMBER_EPOCH

    def has_members(self, group_id: str) -> bool:
        with self.lock:
            group = self.get(group_id)
            return group is not None and bool(group.members)

    def unload(self, group_id: str) -> None:
        """Stop keeping a group (another broker coordinates it now); its stored state stays."""
        with self.lock:
            self.groups.pop(group_id, None)
