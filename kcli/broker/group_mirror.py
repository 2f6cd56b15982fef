"""The coordinator's groups mirrored into the data directory.

A broker's coordinator (:mod:`kcli.broker.coordinator`) keeps its members in memory; :class:`FileMirror`
writes them into the group's folder as member files the broker holds, so ``kcli group describe``,
``kcli lag`` and ``kcli group list`` show them and ``reset-offsets``/``group delete`` refuse while they
live -- one view of groups whether members are embedded or connected to a broker.  A group is never both:
the mirror refuses a Kafka client while embedded members are live (INCONSISTENT_GROUP_PROTOCOL), and
embedded members refuse to join while the broker's are.  Apart from the wire handlers because it is the
coordinator's storage, not a request's.
"""

from __future__ import annotations

import logging
import os

from kcli.broker.coordinator import Group, Member
from kcli.cluster.datadir import DataDir
from kcli.errors import KcliError, ProtocolError
from kcli.groups.membership import CoordinatedMembers, GroupState, MemberInfo
from kcli.protocol import ErrorCode, decode_assignment, decode_subscription

log = logging.getLogger("kcli.broker")

CONSUMER = "consumer"  # the protocol type whose member metadata the view can read


class FileMirror:
    """Mirrors each kept group into its folder (kcli.groups.membership.CoordinatedMembers): a member
    file per live member with its subscription and assignment, and the state in ``state.json``."""

    def __init__(self, datadir: DataDir, broker_id: int) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self._files: dict[str, CoordinatedMembers] = {}

    def _of(self, group_id: str) -> CoordinatedMembers:
        files = self._files.get(group_id)
        if files is None:
            files = self._files[group_id] = CoordinatedMembers(self.datadir, group_id, self.broker_id)
        return files

    def load(self, group_id: str) -> int:
        try:
            return self._of(group_id).recorded_generation()
        except (KcliError, OSError):
            return 0

    def admit(self, group: Group, member: Member) -> ErrorCode:
        try:
            foreign = self._of(group.group_id).admit(self.member_info(group, member))
        except (KcliError, OSError) as exc:
            log.warning("group %r: cannot record member %s: %s", group.group_id, member.member_id, exc)
            # whatever the cause, this coordinator cannot take the member now: a retriable answer, as
            # Kafka's coordinator gives when it cannot store a group's metadata
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not foreign:
            return ErrorCode.NONE
        if any(m.coordinator is not None for m in foreign):
            return ErrorCode.NOT_COORDINATOR  # the previous coordinator has not let go yet
        log.info(
            "group %r: refusing %s: the group has %d live kcli (embedded) member(s)",
            group.group_id,
            member.member_id,
            len(foreign),
        )
        return ErrorCode.INCONSISTENT_GROUP_PROTOCOL

    def publish(self, group: Group) -> bool:
        members = [self.member_info(group, m) for m in group.members.values()]
        state = GroupState(
            group.generation, tuple(sorted(group.members)), self.broker_id, group.state, group.protocol_name
        )
        try:
            self._of(group.group_id).sync(members, state)
            return True
        except (KcliError, OSError) as exc:
            log.warning("group %r: cannot mirror its members: %s", group.group_id, exc)
            return False

    def drop(self, group_id: str) -> None:
        files = self._files.pop(group_id, None)
        if files is not None:
            files.release()

    def member_info(self, group: Group, member: Member) -> MemberInfo:
        """The member as the file-based view describes members: topics from its subscription and the
        partitions its leader assigned (for the "consumer" protocol; other protocols are opaque)."""
        protocol = _protocol_of(group, member)
        topics = subscribed_topics(group, member)
        assignment: tuple[tuple[str, int], ...] = ()
        if member.protocol_type == CONSUMER:
            try:
                assigned = decode_assignment(member.assignment).assigned_partitions
                assignment = tuple(sorted((a.topic, p) for a in assigned for p in a.partitions))
            except ProtocolError:
                pass  # a client's malformed bytes are its leader's problem, not the view's
        return MemberInfo(
            member.member_id,
            member.client_id,
            member.client_host,
            os.getpid(),
            topics,
            protocol,
            member.joined_ms,
            self.broker_id,
            assignment,
        )


def _protocol_of(group: Group, member: Member) -> str:
    """The protocol the member's metadata is read in: the group's, else the member's first choice."""
    return group.protocol_name if group.protocol_name in member.protocol_names else member.protocol_names[0]


def subscribed_topics(group: Group, member: Member) -> tuple[str, ...]:
    """The topics a "consumer" protocol member subscribes to, sorted; () for other protocols and for
    metadata that does not decode (a client's malformed bytes are its leader's problem)."""
    if member.protocol_type != CONSUMER:
        return ()
    try:
        return tuple(sorted(set(decode_subscription(member.metadata(_protocol_of(group, member))).topics)))
    except ProtocolError:
        return ()
