"""Consumer groups of a cluster reached by ``--bootstrap-server``, shown as kcli shows its own.

A Kafka cluster keeps groups at a coordinator broker, so the picture is assembled from the group APIs:
FindCoordinator, then OffsetFetch (committed offsets) and DescribeGroups (state, members and what each
was assigned) at the coordinator, ListGroups at every broker; log end offsets come from ListOffsets at
the leaders.  The result is a :class:`~kcli.groups.view.GroupView`, so ``lag`` and ``group describe``
print it with the same code as for the data dir.  A cluster that does not speak these APIs is reported
in one line by the connection's version check ("does not support OffsetFetch ...").

OffsetFetch is asked for every partition of every topic rather than with ``topics=null`` ("all the group
committed"): some Kafka-compatible brokers answer the null form with a malformed response.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from kcli.client.backoff import Backoff
from kcli.client.broker_pool import ATTEMPTS
from kcli.client.coordinators import COORDINATOR_MOVED, find_coordinator
from kcli.client.kafka_errors import raise_for
from kcli.client.remote import RemoteTransport
from kcli.errors import NotFoundError, ProtocolError
from kcli.groups.membership import MemberInfo
from kcli.groups.view import CONSUMER, GroupView, partition_rows
from kcli.protocol import ApiKey, ErrorCode, Struct, decode_assignment, decode_subscription
from kcli.protocol.apis.offsets import fetched_group, offset_fetch_body

# ListGroups' protocol type of groups that consume (empty: offsets committed without joining)
_CONSUMER_TYPES = ("consumer", "")
_UNKNOWN_GENERATION = -1  # DescribeGroups does not report the generation


class ClusterGroups:
    """``names()``, ``describe()`` and ``close()``, as :class:`kcli.groups.view.LocalGroups` offers."""

    def __init__(self, bootstrap: str) -> None:
        self.transport = RemoteTransport(bootstrap=bootstrap, auto_create=False)
        self.cluster = self.transport.cluster

    def names(self) -> list[str]:
        """Consumer groups known to any broker (each lists only the groups it coordinates)."""
        found: set[str] = set()
        for broker in self.cluster.metadata([]).brokers:
            resp = self.cluster.send(self.cluster.node(broker.node_id), ApiKey.LIST_GROUPS, {})
            raise_for(resp.error_code, None, "listing groups")
            found.update(g.group_id for g in resp.groups if g.protocol_type in _CONSUMER_TYPES)
        return sorted(found)

    def describe(self, group: str, topics: Collection[str] | None = None) -> GroupView:
        """The whole picture of ``group``; ``topics`` limits the partition rows.  NotFoundError if unknown."""
        counts = {t.name: len(t.partitions) for t in self.cluster.metadata(None).topics if not t.error_code}
        committed = self.committed(group, counts)
        desc, (node, label) = self._ask(
            group, ApiKey.DESCRIBE_GROUPS, {"groups": [group]}, lambda r: _describe_error(r, group)
        )
        g = desc.groups[0]
        if g.group_state == "Dead" and self.cluster.node(node).versions.get(ApiKey.CONSUMER_GROUP_DESCRIBE):
            view = self._describe_consumer_group(group, node, label)  # Kafka 4 answers Dead for those
        else:
            members, assignment = _members(g, node)
            view = GroupView(
                group, g.group_state, _UNKNOWN_GENERATION, g.protocol_data or None, members, assignment,
                coordinator=label,
            )
        if view.state == "Dead" or (not view.members and not committed):
            raise NotFoundError(f"consumer group {group!r} does not exist", hint="see `kcli group list`")
        owner_of = {tp: m for m in view.members for tp in view.assignment.get(m.member_id, [])}
        view.partitions = partition_rows(self.transport, group, committed, owner_of, topics)
        return view

    def close(self) -> None:
        self.transport.close(durable=False)

    def _describe_consumer_group(self, group: str, node: int, label: str) -> GroupView:
        """A KIP-848 consumer group (ConsumerGroupDescribe): its epoch as the generation, its server
        assignor, each member's epoch and assignment.  State "Dead" when it is none either."""
        resp, _ = self._ask(group, ApiKey.CONSUMER_GROUP_DESCRIBE, {"group_ids": [group]}, _consumer_describe_error)
        g = resp.groups[0]
        if g.error_code == ErrorCode.GROUP_ID_NOT_FOUND:
            return GroupView(group, "Dead", _UNKNOWN_GENERATION, None, [], {}, coordinator=label)
        members, assignment = [], {}
        for m in g.members:
            assignment[m.member_id] = sorted(
                (t.topic_name, p) for t in m.assignment.topic_partitions for p in t.partitions
            )
            members.append(
                MemberInfo(m.member_id, m.client_id, m.client_host, 0, tuple(m.subscribed_topic_names),
                           g.assignor_name, 0, coordinator=node, assignment=tuple(assignment[m.member_id]))
            )
        view = GroupView(group, g.group_state, g.group_epoch, g.assignor_name, members, assignment, coordinator=label)
        view.group_type = CONSUMER
        view.member_epochs = {m.member_id: m.member_epoch for m in g.members}
        return view

    # ------------------------------------------------------------ requests

    def committed(self, group: str, counts: Mapping[str, int]) -> dict[tuple[str, int], int]:
        """What ``group`` committed for the topics in ``counts`` (name -> partition count)."""
        if not counts:
            return {}
        topics = [{"name": t, "partition_indexes": list(range(n))} for t, n in sorted(counts.items())]
        resp, _ = self._ask(
            group, ApiKey.OFFSET_FETCH, offset_fetch_body(group, topics), lambda r: fetched_group(r, group).error_code
        )
        return {
            (t.name, p.partition_index): p.committed_offset
            for t in fetched_group(resp, group).topics
            for p in t.partitions
            if p.error_code == ErrorCode.NONE and p.committed_offset >= 0
        }

    def _ask(
        self, group: str, api_key: int, body: Mapping[str, Any], error_of: Callable[[Struct], int]
    ) -> tuple[Struct, tuple[int, str]]:
        """Send ``body`` to the group's coordinator, finding it again while it moves; returns the
        response and the coordinator (node id, ``host:port (id N)``)."""
        backoff = Backoff()
        for attempt in range(ATTEMPTS):
            node, label = self._coordinator(group)
            resp = self.cluster.send(self.cluster.node(node), api_key, body)
            code = error_of(resp)
            if code == ErrorCode.NONE:
                return resp, (node, label)
            if code not in COORDINATOR_MOVED or attempt == ATTEMPTS - 1:
                raise_for(code, None, f"group {group!r}")
            backoff.sleep()
        raise AssertionError("unreachable")  # pragma: no cover

    def _coordinator(self, group: str) -> tuple[int, str]:
        found = find_coordinator(self.cluster, group)
        return found.node_id, f"{found.host}:{found.port} (id {found.node_id})"


def _consumer_describe_error(resp: Struct) -> int:
    """GROUP_ID_NOT_FOUND is an answer here (the group is none of KIP-848's), not an error."""
    code = resp.groups[0].error_code if resp.groups else ErrorCode.UNKNOWN_SERVER_ERROR
    return ErrorCode.NONE if code == ErrorCode.GROUP_ID_NOT_FOUND else code


def _describe_error(resp: Struct, group: str) -> int:
    code = resp.groups[0].error_code if resp.groups else ErrorCode.UNKNOWN_SERVER_ERROR
    if code == ErrorCode.GROUP_ID_NOT_FOUND:
        raise NotFoundError(f"consumer group {group!r} does not exist", hint="see `kcli group list`")
    return code


def _members(g: Struct, coordinator: int) -> tuple[list[MemberInfo], dict[str, list[tuple[str, int]]]]:
    """Members and their assignments; the bytes are decoded only for the "consumer" protocol."""
    members: list[MemberInfo] = []
    assignment: dict[str, list[tuple[str, int]]] = {}
    for m in g.members:
        topics: tuple[str, ...] = ()
        parts: list[tuple[str, int]] = []
        if g.protocol_type == "consumer":
            try:
                if m.member_metadata:
                    topics = tuple(decode_subscription(m.member_metadata).topics)
                if m.member_assignment:
                    parts = [
                        (tp.topic, p)
                        for tp in decode_assignment(m.member_assignment).assigned_partitions
                        for p in tp.partitions
                    ]
            except ProtocolError:
                pass  # a client's malformed bytes cost only its topic list and assignment
        assignment[m.member_id] = sorted(parts)
        members.append(
            MemberInfo(
                m.member_id,
                m.client_id,
                m.client_host,
                0,
                topics,
                g.protocol_data,
                0,
                coordinator=coordinator,
                assignment=tuple(assignment[m.member_id]),
            )
        )
    return members, assignment
