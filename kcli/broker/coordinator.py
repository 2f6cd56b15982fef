"""The group coordinator's state machine: Kafka's classic group membership protocol, without sockets.

It follows Kafka's GroupCoordinator.  A group is Empty, PreparingRebalance (members (re)join; the join
completes once every known member has rejoined, or when the rebalance timeout ends and the missing ones
are dropped; the first rebalance of an empty group waits ``group.initial.rebalance.delay.ms`` more for
others to come, prolonged while they keep coming), CompletingRebalance (the leader -- the first joiner -- got every member's metadata and
computes the assignment; the others wait in SyncGroup), then Stable once the leader's SyncGroup hands out
the assignments.  Each completed join bumps the generation.  Members that stop heartbeating for their
session timeout are removed, which starts a rebalance; heartbeats tell the others REBALANCE_IN_PROGRESS.
The assignment is the client leader's business, as in Kafka: the coordinator never looks inside the
protocol bytes.

Why callbacks: JoinGroup and SyncGroup answers are due only when *other* members act (or a timeout
passes), so :meth:`GroupCoordinator.join` and :meth:`GroupCoordinator.sync` take a callback that fires
when the answer is known, and time moves only through :meth:`GroupCoordinator.tick`.  The broker's
handlers block on the callback; unit tests drive a fake clock and need no threads or sockets.

Everything runs under one lock; callbacks are called with it held, so they must only record the result.
A :class:`Mirror` is told about every change (the broker mirrors live members into the data directory,
so that ``kcli group describe`` and friends see them); it may refuse a new member.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from kcli.protocol import ErrorCode

log = logging.getLogger("kcli.broker")
EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

# Kafka's broker defaults group.min.session.timeout.ms and group.max.session.timeout.ms
MIN_SESSION_TIMEOUT_MS = 6_000
MAX_SESSION_TIMEOUT_MS = 1_800_000
# and group.initial.rebalance.delay.ms: consumers starting together share one first rebalance, and a
# client has its topic metadata before the leader first assigns
INITIAL_REBALANCE_DELAY_MS = 3_000


@dataclass
class JoinResult:
    """A JoinGroup answer; ``members`` (id, metadata of the chosen protocol) goes to the leader only."""

    error: ErrorCode
    generation_id: int = -1
    protocol_name: str = ""
    leader: str = ""
    member_id: str = ""
    members: list[tuple[str, bytes]] = field(default_factory=list)
    protocol_type: str | None = None  # the group's, on success (JoinGroup v7+ answers it)


@dataclass
class SyncResult:
    """A SyncGroup answer; on success also the group's protocol type and name (SyncGroup v5+)."""

    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


JoinCallback = Callable[[JoinResult], None]
SyncCallback = Callable[[SyncResult], None]


@dataclass
class Member:
    member_id: str
    client_id: str
    client_host: str
    session_timeout: float  # seconds
    rebalance_timeout: float
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata) in the member's order of preference
    joined_ms: int
    last_heartbeat: float = 0.0
    assignment: bytes = b""
    join_callback: JoinCallback | None = None
    sync_callback: SyncCallback | None = None
    synced: bool = False  # sent SyncGroup for the current generation

    @property
    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol: str) -> bytes:
        return next(data for name, data in self.protocols if name == protocol)

    def keeps_alive(self) -> bool:
        """Members parked in JoinGroup or SyncGroup cannot heartbeat; their wait has its own deadline."""
        return self.join_callback is not None or self.sync_callback is not None


@dataclass
class Group:
    group_id: str
    generation: int = 0
    state: str = EMPTY
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)  # in joining order
    pending: dict[str, float] = field(default_factory=dict)  # ids handed out (MEMBER_ID_REQUIRED) -> expiry
    deadline: float | None = None  # end of the current join (Preparing) or sync (Completing) phase
    initial_delay_limit: float | None = None  # set while the first join waits for more members
    new_member_added: bool = False  # during that wait
    unpublished: bool = False  # the mirror failed; retried on the next tick

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        names = [set(m.protocol_names) for m in self.members.values()]
        return set.intersection(*names) if names else set()

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        candidates = self.candidate_protocols()
        return protocol_type == self.protocol_type and any(name in candidates for name, _ in protocols)

    def select_protocol(self) -> str:
        """Kafka's vote: each member votes for its most preferred protocol that all support; most votes
        wins, ties going to the leader's preference."""
        candidates = self.candidate_protocols()
        votes = Counter(next(n for n in m.protocol_names if n in candidates) for m in self.members.values())
        leader = self.members.get(self.leader_id or "") or next(iter(self.members.values()))
        order = [n for n in leader.protocol_names if n in candidates]
        return max(order, key=lambda n: (votes[n], -order.index(n)))


@dataclass
class MemberSummary:
    member_id: str
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass
class GroupSummary:
    """DescribeGroups' view: metadata and assignments only while Stable, as Kafka answers."""

    state: str
    protocol_type: str
    protocol: str
    members: list[MemberSummary]


class Mirror(Protocol):
    """Where the coordinator's groups are made visible (the data directory, for the broker)."""

    def load(self, group_id: str) -> int:
        """The generation to continue from for a group the coordinator starts keeping."""
        ...

    def admit(self, group: Group, member: Member) -> ErrorCode:
        """Whether ``member`` may join (NONE), else the error to answer it with."""
        ...

    def publish(self, group: Group) -> bool:
        """Show the group as it is now; False if that failed (it is retried)."""
        ...

    def drop(self, group_id: str) -> None:
        """The coordinator no longer keeps this group."""
        ...


class NullMirror:
    def load(self, group_id: str) -> int:
        return 0

    def admit(self, group: Group, member: Member) -> ErrorCode:
        return ErrorCode.NONE

    def publish(self, group: Group) -> bool:
        return True

    def drop(self, group_id: str) -> None:
        pass


class GroupCoordinator:
    """Every group one coordinator keeps, and Kafka's rules for changing them."""

    def __init__(
        self,
        mirror: Mirror | None = None,
        clock: Callable[[], float] = time.monotonic,
        new_member_id: Callable[[str], str] | None = None,
        min_session_timeout_ms: int = MIN_SESSION_TIMEOUT_MS,
        max_session_timeout_ms: int = MAX_SESSION_TIMEOUT_MS,
        initial_rebalance_delay_ms: int = INITIAL_REBALANCE_DELAY_MS,
    ) -> None:
        self.mirror = mirror or NullMirror()
        self.clock = clock
        self.new_member_id = new_member_id or (lambda client_id: f"{client_id}-{uuid.uuid4()}")
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.initial_delay = initial_rebalance_delay_ms / 1000
        self.lock = threading.RLock()
        self.groups: dict[str, Group] = {}

    # ------------------------------------------------------------ JoinGroup

    def join(
        self,
        group_id: str,
        member_id: str,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
        callback: JoinCallback,
    ) -> None:
        """JoinGroup; ``callback`` gets the answer now or when the rebalance completes.
        ``require_known_member_id`` is JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED with
        its id and must join again with it (so a retried request cannot create a second member)."""
        with self.lock:
            if not group_id:
                return callback(JoinResult(ErrorCode.INVALID_GROUP_ID, member_id=member_id))
            if not self.min_session_timeout_ms <= session_timeout_ms <= self.max_session_timeout_ms:
                return callback(JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id=member_id))
            group = self.groups.get(group_id)
            if not member_id:
                group = group or self._load(group_id)
                if not group.supports(protocol_type, protocols):
                    return callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
                new_id = self.new_member_id(client_id)
                if require_known_member_id:
                    group.pending[new_id] = self.clock() + session_timeout_ms / 1000
                    return callback(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_id))
                member_id = new_id
            elif group is None or (member_id not in group.members and member_id not in group.pending):
                return callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id))
            elif not group.supports(protocol_type, protocols):
                return callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            rebalance_timeout_ms = session_timeout_ms if rebalance_timeout_ms < 0 else rebalance_timeout_ms
            member = group.members.get(member_id)
            if member is None:
                group.pending.pop(member_id, None)
                member = Member(
                    member_id,
                    client_id,
                    client_host,
                    session_timeout_ms / 1000,
                    rebalance_timeout_ms / 1000,
                    protocol_type,
                    list(protocols),
                    int(time.time() * 1000),
                    self.clock(),
                )
                self._add_member(group, member, callback)
            else:
                self._rejoin(group, member, protocols, session_timeout_ms, rebalance_timeout_ms, callback)
            self._publish(group)

    def _load(self, group_id: str) -> Group:
        group = Group(group_id, generation=self.mirror.load(group_id))
        self.groups[group_id] = group
        return group

    def _add_member(self, group: Group, member: Member, callback: JoinCallback) -> None:
        error = self.mirror.admit(group, member)
        if error != ErrorCode.NONE:
            callback(JoinResult(error, member_id=member.member_id))
            return
        was_empty = group.state == EMPTY
        if not group.members:
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if group.leader_id is None:
            group.leader_id = member.member_id
        member.join_callback = callback
        group.new_member_added = True
        self._prepare_rebalance(group)
        if was_empty and self.initial_delay > 0:
            now = self.clock()
            group.initial_delay_limit = now + member.rebalance_timeout
            group.deadline = min(now + self.initial_delay, group.initial_delay_limit)
            group.new_member_added = False
        self._maybe_complete_join(group)

    def _rejoin(
        self,
        group: Group,
        member: Member,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        callback: JoinCallback,
    ) -> None:
        """A known member joins again: part of a rebalance, or a lost answer to repeat, or a change of
        subscription (or the leader asking for one) that starts a rebalance."""
        member.last_heartbeat = self.clock()
        same = list(protocols) == member.protocols
        if group.state == COMPLETING_REBALANCE and same:
            callback(self._join_result(group, member))  # it lost the answer; repeat it
            return
        if group.state == STABLE and same and member.member_id != group.leader_id:
            callback(self._join_result(group, member))
            return
        member.protocols = list(protocols)
        member.session_timeout = session_timeout_ms / 1000
        member.rebalance_timeout = rebalance_timeout_ms / 1000
        if member.join_callback is not None:  # a retry while parked: only the latest gets the answer
            member.join_callback(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id))
        member.join_callback = callback
        if group.state != PREPARING_REBALANCE:
            self._prepare_rebalance(group)
        self._maybe_complete_join(group)

    def _prepare_rebalance(self, group: Group) -> None:
        if group.state == PREPARING_REBALANCE:
            return
        if group.state == COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = b""
                if member.sync_callback is not None:
                    member.sync_callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
                    member.sync_callback = None
                    member.last_heartbeat = self.clock()  # its session restarts once it is answered
        group.state = PREPARING_REBALANCE
        timeout = max((m.rebalance_timeout for m in group.members.values()), default=0.0)
        group.deadline = self.clock() + timeout

    def _maybe_complete_join(self, group: Group) -> None:
        """Finish the join phase once every known member (and every member id handed out) has joined,
        or once the rebalance timeout is over."""
        if group.state != PREPARING_REBALANCE:
            return
        now = self.clock()
        if group.initial_delay_limit is not None and group.members:
            if now < (group.deadline or 0.0):
                return  # the first join waits its delay even when everyone is there
            if group.new_member_added and now < group.initial_delay_limit:
                group.new_member_added = False
                group.deadline = min(now + self.initial_delay, group.initial_delay_limit)
                return
        everyone = not group.pending and all(m.join_callback for m in group.members.values())
        if not everyone and now < (group.deadline or 0.0):
            return
        group.initial_delay_limit = None
        for member in [m for m in group.members.values() if m.join_callback is None]:
            del group.members[member.member_id]  # did not rejoin in time
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
        group.generation += 1
        for member in group.members.values():
            member.synced = False
            member.last_heartbeat = self.clock()
        if not group.members:
            group.state, group.protocol_name, group.deadline = EMPTY, None, None
            return
        group.protocol_name = group.select_protocol()
        log.info(
            "group %r generation %d: %d member(s), protocol %s, leader %s",
            group.group_id,
            group.generation,
            len(group.members),
            group.protocol_name,
            group.leader_id,
        )
        group.state = COMPLETING_REBALANCE
        group.deadline = self.clock() + max(m.rebalance_timeout for m in group.members.values())
        for member in group.members.values():
            callback, member.join_callback = member.join_callback, None
            assert callback is not None
            callback(self._join_result(group, member))

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        protocol = group.protocol_name or ""
        members = []
        if member.member_id == group.leader_id:
            members = [(m.member_id, m.metadata(protocol)) for m in group.members.values()]
        return JoinResult(
            ErrorCode.NONE,
            group.generation,
            protocol,
            group.leader_id or "",
            member.member_id,
            members,
            group.protocol_type,
        )

    # ------------------------------------------------------------ SyncGroup

    def sync(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        assignments: dict[str, bytes],
        callback: SyncCallback,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> None:
        """SyncGroup: the leader's ``assignments`` are handed to every member; the others wait for it.
        ``protocol_type``/``protocol_name`` (SyncGroup v5+, KIP-559), when given, must be the group's
        (INCONSISTENT_GROUP_PROTOCOL otherwise, as Kafka checks them)."""
        with self.lock:
            group = self.groups.get(group_id)
            error = self._check_member(group, generation, member_id)
            if error != ErrorCode.NONE:
                return callback(SyncResult(error))
            assert group is not None
            if (protocol_type is not None and protocol_type != group.protocol_type) or (
                protocol_name is not None and protocol_name != group.protocol_name
            ):
                return callback(SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            member = group.members[member_id]
            member.last_heartbeat = self.clock()
            if group.state == PREPARING_REBALANCE:
                return callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            if group.state == STABLE:
                return callback(_synced(group, member))
            if member.sync_callback is not None:
                member.sync_callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            member.sync_callback = callback
            member.synced = True
            if member_id == group.leader_id:
                for m in group.members.values():
                    m.assignment = assignments.get(m.member_id, b"")
                group.state = STABLE
                group.deadline = None
                for m in group.members.values():
                    if m.sync_callback is not None:
                        m.sync_callback(_synced(group, m))
                        m.sync_callback = None
                        m.last_heartbeat = self.clock()
                self._publish(group)

    # ------------------------------------------------------------ Heartbeat, LeaveGroup

    def heartbeat(self, group_id: str, generation: int, member_id: str) -> ErrorCode:
        with self.lock:
            group = self.groups.get(group_id)
            error = self._check_member(group, generation, member_id)
            if error != ErrorCode.NONE:
                return error
            assert group is not None
            group.members[member_id].last_heartbeat = self.clock()
            if group.state == PREPARING_REBALANCE:
                return ErrorCode.REBALANCE_IN_PROGRESS
            return ErrorCode.NONE

    def check_txn_commit(self, group_id: str, generation: int, member_id: str) -> ErrorCode:
        """TxnOffsetCommit v3+'s group check (KIP-447), as Kafka's: a member id, when given, must be a
        member; a generation, when given (>= 0), must be the group's."""
        with self.lock:
            group = self.groups.get(group_id)
            if member_id and (group is None or member_id not in group.members):
                return ErrorCode.UNKNOWN_MEMBER_ID
            if generation >= 0 and generation != (group.generation if group is not None else 0):
                return ErrorCode.ILLEGAL_GENERATION
            return ErrorCode.NONE

    def _check_member(self, group: Group | None, generation: int, member_id: str) -> ErrorCode:
        if group is None or member_id not in group.members or group.state == EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def leave(self, group_id: str, member_ids: Iterable[str]) -> list[tuple[str, ErrorCode]]:
        """LeaveGroup: each member's result."""
        with self.lock:
            group = self.groups.get(group_id)
            out = []
            for member_id in member_ids:
                if group is not None and group.pending.pop(member_id, None) is not None:
                    out.append((member_id, ErrorCode.NONE))
                    self._maybe_complete_join(group)
                elif group is None or member_id not in group.members:
                    out.append((member_id, ErrorCode.UNKNOWN_MEMBER_ID))
                else:
                    self._remove_member(group, group.members[member_id])
                    out.append((member_id, ErrorCode.NONE))
            if group is not None:
                self._publish(group)
            return out

    def _remove_member(self, group: Group, member: Member) -> None:
        if member.join_callback is not None:
            member.join_callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member.member_id))
        if member.sync_callback is not None:
            member.sync_callback(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        del group.members[member.member_id]
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)
        if group.state in (STABLE, COMPLETING_REBALANCE):
            self._prepare_rebalance(group)
        self._maybe_complete_join(group)

    # ------------------------------------------------------------ time

    def tick(self) -> None:
        """Apply every timeout due by now: sessions, handed-out member ids, join and sync phases."""
        with self.lock:
            now = self.clock()
            for group in list(self.groups.values()):
                before = (group.state, group.generation, tuple(group.members))
                for member_id, expiry in list(group.pending.items()):
                    if now >= expiry:
                        del group.pending[member_id]
                for member in list(group.members.values()):
                    if not member.keeps_alive() and now - member.last_heartbeat >= member.session_timeout:
                        log.info("group %r: member %s timed out", group.group_id, member.member_id)
                        self._remove_member(group, member)
                if (
                    group.state == COMPLETING_REBALANCE
                    and group.deadline is not None
                    and now >= group.deadline
                ):
                    for member in [m for m in group.members.values() if not m.synced]:
                        self._remove_member(group, member)  # never sent SyncGroup: the leader is stuck
                self._maybe_complete_join(group)
                if group.unpublished or before != (group.state, group.generation, tuple(group.members)):
                    self._publish(group)

    # ------------------------------------------------------------ offsets and admin

    def commit(self, group_id: str, generation: int, member_id: str, write: Callable[[], None]) -> ErrorCode:
        """OffsetCommit's group check, then ``write`` (under the lock, so no rebalance slips in between).
        Members commit with their generation; a client outside group management commits with
        generation -1, accepted only while the group has no members."""
        with self.lock:
            group = self.groups.get(group_id)
            if group is None or not group.members:
                if generation < 0:
                    write()
                    return ErrorCode.NONE
                return ErrorCode.ILLEGAL_GENERATION if group is None else ErrorCode.UNKNOWN_MEMBER_ID
            if group.state == COMPLETING_REBALANCE:
                return ErrorCode.REBALANCE_IN_PROGRESS
            if member_id not in group.members:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if generation != group.generation:
                return ErrorCode.ILLEGAL_GENERATION
            group.members[member_id].last_heartbeat = self.clock()
            write()
            return ErrorCode.NONE

    def describe(self, group_id: str) -> GroupSummary | None:
        """The group as DescribeGroups shows it, or None when this coordinator does not keep it."""
        with self.lock:
            group = self.groups.get(group_id)
            if group is None:
                return None
            stable = group.state == STABLE
            protocol = group.protocol_name or ""
            members = [
                MemberSummary(
                    m.member_id,
                    m.client_id,
                    m.client_host,
                    m.metadata(protocol) if stable else b"",
                    m.assignment if stable else b"",
                )
                for m in group.members.values()
            ]
            return GroupSummary(group.state, group.protocol_type or "", protocol if stable else "", members)

    def delete_offsets(self, group_id: str, remove: Callable[[Group | None], ErrorCode]) -> ErrorCode:
        """OffsetDelete: ``remove`` is given the kept group (None when not kept here) and decides and
        deletes under the lock, so no member joins with a new subscription in between."""
        with self.lock:
            return remove(self.groups.get(group_id))

    def listing(self) -> dict[str, str]:
        """Kept groups with their protocol type (ListGroups)."""
        with self.lock:
            return {g.group_id: g.protocol_type or "" for g in self.groups.values()}

    def delete(self, group_id: str, remove: Callable[[], None]) -> ErrorCode:
        """DeleteGroups: refused while the group has members; ``remove`` deletes what is stored."""
        with self.lock:
            group = self.groups.get(group_id)
            if group is not None and (group.members or group.pending):
                return ErrorCode.NON_EMPTY_GROUP
            remove()
            if self.groups.pop(group_id, None) is not None:
                self.mirror.drop(group_id)
            return ErrorCode.NONE

    def unload(self, group_id: str, error: ErrorCode = ErrorCode.NOT_COORDINATOR) -> None:
        """Stop keeping a group (another broker coordinates it now, or this one stops): waiting
        members are told ``error`` and find the coordinator again."""
        with self.lock:
            group = self.groups.pop(group_id, None)
            if group is None:
                return
            group.state = DEAD
            for member in group.members.values():
                if member.join_callback is not None:
                    member.join_callback(JoinResult(error, member_id=member.member_id))
                if member.sync_callback is not None:
                    member.sync_callback(SyncResult(error))
                member.join_callback = member.sync_callback = None
            self.mirror.drop(group_id)

    def adopt(self, group: Group) -> None:
        """Keep a group converted from a consumer group (Kafka's online downgrade): its members are
        the classic members it had, at its epoch as generation; a rebalance starts at once, so their
        heartbeats tell them to rejoin and the leader assigns."""
        with self.lock:
            self.groups[group.group_id] = group
            now = self.clock()
            for member in group.members.values():
                member.last_heartbeat = now
            group.leader_id = next(iter(group.members), None)
            group.protocol_name = group.select_protocol()
            self._prepare_rebalance(group)
            self._publish(group)

    def close(self) -> None:
        with self.lock:
            for group_id in list(self.groups):
                self.unload(group_id)

    def _publish(self, group: Group) -> None:
        group.unpublished = not self.mirror.publish(group)


def _synced(group: Group, member: Member) -> SyncResult:
    """A successful SyncGroup answer for ``member``."""
    return SyncResult(ErrorCode.NONE, member.assignment, group.protocol_type, group.protocol_name)
