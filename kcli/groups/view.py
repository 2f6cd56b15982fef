"""The read-only view of groups behind ``group list``, ``group describe`` and ``lag``.

Everything is derived from the same files the members use: committed offsets from the offsets store,
live members from their flock-held files, the assignment by running the group's assignor on the live
list (exactly what each member computes), and actual ownership from the partition locks.  So what
describe and lag print is what consumers did, not a separate bookkeeping that could drift.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from kcli.cluster.datadir import DataDir
from kcli.errors import NotFoundError
from kcli.groups.assignors import get_assignor
from kcli.groups.layout import GroupPaths
from kcli.groups.membership import MemberInfo, live_members, read_state
from kcli.groups.offsets import OffsetStore
from kcli.groups.ownership import current_owner

TopicPartition = tuple[str, int]

EMPTY = "Empty"
STABLE = "Stable"
PREPARING = "PreparingRebalance"  # the live member list changed; members are noticing
COMPLETING = "CompletingRebalance"  # members agree, but some partition is not yet with its assignee
COORDINATOR = "embedded"


@dataclass
class PartitionRow:
    """One line of describe-group: Kafka's columns, None where Kafka prints '-'."""

    group: str
    topic: str
    partition: int
    current_offset: int | None
    log_end_offset: int | None
    lag: int | None
    consumer_id: str | None = None
    host: str | None = None
    client_id: str | None = None

    def cells(self) -> list[object]:
        return [
            self.group,
            self.topic,
            self.partition,
            self.current_offset,
            self.log_end_offset,
            self.lag,
            self.consumer_id,
            self.host,
            self.client_id,
        ]

    def to_json(self) -> dict:
        return {
            "group": self.group,
            "topic": self.topic,
            "partition": self.partition,
            "current_offset": self.current_offset,
            "log_end_offset": self.log_end_offset,
            "lag": self.lag,
            "consumer_id": self.consumer_id,
            "host": self.host,
            "client_id": self.client_id,
        }


PARTITION_COLUMNS = [
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
]


@dataclass
class GroupView:
    group: str
    state: str
    generation: int
    assignor: str | None
    members: list[MemberInfo]
    assignment: dict[str, list[TopicPartition]]
    partitions: list[PartitionRow] = field(default_factory=list)
    coordinator: str = COORDINATOR

    @property
    def total_lag(self) -> int:
        return sum(r.lag for r in self.partitions if r.lag is not None)

    def to_json(self) -> dict:
        return {
            "group": self.group,
            "state": self.state,
            "generation": self.generation,
            "assignor": self.assignor,
            "coordinator": self.coordinator,
            "total_lag": self.total_lag,
            "members": [
                {
                    "consumer_id": m.member_id,
                    "host": m.host,
                    "client_id": m.client_id,
                    "pid": m.pid,
                    "topics": list(m.topics),
                    "assignment": [
                        {"topic": t, "partition": p} for t, p in self.assignment.get(m.member_id, [])
                    ],
                }
                for m in self.members
            ],
            "partitions": [r.to_json() for r in self.partitions],
        }


def list_groups(datadir: DataDir) -> list[str]:
    return OffsetStore(datadir).list_groups()


def describe_group(
    datadir: DataDir, transport, group: str, topics: Collection[str] | None = None
) -> GroupView:
    """The whole picture of ``group``; ``topics`` limits the partition rows.  NotFoundError if unknown."""
    paths = GroupPaths(datadir, group)
    if not paths.exists():
        raise NotFoundError(f"consumer group {group!r} does not exist", hint="see `kcli group list`")
    committed = OffsetStore(datadir).fetch(group)
    members = live_members(datadir, group)
    assignor = members[0].assignor if members else None
    assignment: dict[str, list[TopicPartition]] = {}
    if members:
        counts = {}
        for topic in sorted({t for m in members for t in m.topics}):
            try:
                counts[topic] = transport.partition_count(topic)
            except NotFoundError:
                pass
        assignment = get_assignor(assignor or "range")(counts, {m.member_id: m.topics for m in members})
    owner_of = {tp: m for m in members for tp in assignment.get(m.member_id, [])}
    view = GroupView(
        group, _state(paths, members, owner_of), read_state(paths).generation, assignor, members, assignment
    )
    for topic, partition in sorted(set(committed) | set(owner_of)):
        if topics is not None and topic not in topics:
            continue
        current = committed.get((topic, partition))
        end = _log_end(transport, topic, partition)
        lag = None if current is None or end is None else max(0, end - current)
        row = PartitionRow(group, topic, partition, current, end, lag)
        member = owner_of.get((topic, partition))
        if member is not None:
            row.consumer_id, row.host, row.client_id = member.member_id, member.host, member.client_id
        view.partitions.append(row)
    return view


def _state(paths: GroupPaths, members: list[MemberInfo], owner_of: dict[TopicPartition, MemberInfo]) -> str:
    if not members:
        return EMPTY
    if tuple(m.member_id for m in members) != read_state(paths).members:
        return PREPARING
    for tp, member in owner_of.items():
        if current_owner(paths, tp) != member.member_id:
            return COMPLETING
    return STABLE


def _log_end(transport, topic: str, partition: int) -> int | None:
    try:
        return transport.list_offset(topic, partition, "latest")
    except NotFoundError:
        return None  # the topic or partition is gone; its committed offsets linger, as in Kafka
