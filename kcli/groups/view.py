"""The read-only view of groups behind ``group list``, ``group describe`` and ``lag``.

Everything is derived from the same files the members use: committed offsets from the offsets store,
live members from their flock-held files, the assignment by running the group's assignor on the live
list (exactly what each member computes), and actual ownership from the partition locks.  So what
describe and lag print is what consumers did, not a separate bookkeeping that could drift.

Kafka clients in a group kept by a broker's coordinator appear through the member files that broker
holds for them (kcli.groups.membership.CoordinatedMembers): their assignment is the one their leader
chose, and the state and generation are the coordinator's (``state.json``).  A KIP-848 consumer group
(type "consumer", kcli.groups.consumer_group) adds what its coordinator stored: the group epoch (shown
as the generation), the server assignor and each member's epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kcli.cluster.datadir import DataDir
from kcli.errors import NotFoundError
from kcli.groups.assignors import get_assignor
from kcli.groups.consumer_group import read_group
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
CLASSIC, CONSUMER = "classic", "consumer"  # group types, as Kafka 4's ListGroups names them


class LogEnds(Protocol):
    """What a view needs of a client's transport: partition counts and log end offsets (the group layer
    sits beneath the client, so it names the calls instead of importing the client's Transport)."""

    def partition_count(self, topic: str, create: bool = False) -> int: ...

    def list_offset(self, topic: str, partition: int, spec: str | int) -> int: ...

    def close(self, durable: bool = True) -> None: ...


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

    def to_json(self) -> dict[str, object]:
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
    group_type: str = CLASSIC
    member_epochs: dict[str, int] = field(default_factory=dict)  # consumer groups: member id -> epoch

    @property
    def total_lag(self) -> int:
        return sum(r.lag for r in self.partitions if r.lag is not None)

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "type": self.group_type,
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
                    "member_epoch": self.member_epochs.get(m.member_id),
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


class LocalGroups:
    """The data directory's groups through this view, behind the same three calls as
    :class:`kcli.client.cluster_groups.ClusterGroups`, so ``lag`` and ``group`` need not care which."""

    def __init__(self, datadir: DataDir, transport: LogEnds) -> None:
        self.datadir = datadir
        self.transport = transport

    def names(self) -> list[str]:
        return list_groups(self.datadir)

    def describe(self, group: str, topics: Collection[str] | None = None) -> GroupView:
        return describe_group(self.datadir, self.transport, group, topics)

    def close(self) -> None:
        self.transport.close(durable=False)


def describe_group(
    datadir: DataDir, transport: LogEnds, group: str, topics: Collection[str] | None = None
) -> GroupView:
    """The whole picture of ``group``; ``topics`` limits the partition rows.  NotFoundError if unknown."""
    paths = GroupPaths(datadir, group)
    if not paths.exists():
        raise NotFoundError(f"consumer group {group!r} does not exist", hint="see `kcli group list`")
    committed = OffsetStore(datadir).fetch(group)
    members = live_members(datadir, group)
    assignor = members[0].assignor if members else None
    assignment = member_assignment(members, transport.partition_count)
    owner_of = {tp: m for m in members for tp in assignment.get(m.member_id, [])}
    view = GroupView(
        group,
        group_state(paths, members, assignment),
        read_state(paths).generation,
        assignor,
        members,
        assignment,
    )
    if members and members[0].coordinator is not None:
        view.coordinator = f"broker {members[0].coordinator}"
    modern = read_group(paths)
    if modern is not None:
        view.group_type, view.generation, view.assignor = CONSUMER, modern.epoch, modern.assignor
        view.member_epochs = {m.member_id: m.epoch for m in modern.members.values()}
        if members:
            view.state = modern.state
    view.partitions = partition_rows(transport, group, committed, owner_of, topics)
    return view


def partition_rows(
    transport: LogEnds,
    group: str,
    committed: dict[TopicPartition, int],
    owner_of: dict[TopicPartition, MemberInfo],
    topics: Collection[str] | None = None,
) -> list[PartitionRow]:
    """A row per partition the group committed or owns, with the log end and lag measured now.  Shared
    by the data dir's view and the cluster's (kcli.client.cluster_groups), so both compute lag alike."""
    rows = []
    for topic, partition in sorted(set(committed) | set(owner_of)):
        if topics is not None and topic not in topics:
            continue
        current = committed.get((topic, partition))
        end = _log_end(transport, topic, partition)
        lag = None if current is None or end is None else max(0, end - current)
        row = PartitionRow(group, topic, partition, current, end, lag)
        member = owner_of.get((topic, partition))
        if member is not None:
            row.consumer_id, row.host, row.client_id = member.member_id, member.host or None, member.client_id
        rows.append(row)
    return rows


def member_assignment(
    members: Sequence[MemberInfo], partition_count: Callable[[str], int]
) -> dict[str, list[TopicPartition]]:
    """Which partitions each live member has: for members kept by a broker's coordinator, what their
    leader assigned; for embedded members, the group's assignor over the live list (what each of them
    computes).  ``partition_count(topic)`` may raise NotFoundError for a missing topic."""
    if not members:
        return {}
    if members[0].coordinator is not None:
        return {m.member_id: list(m.assignment or ()) for m in members}
    counts = {}
    for topic in sorted({t for m in members for t in m.topics}):
        try:
            counts[topic] = partition_count(topic)
        except NotFoundError:
            pass
    return get_assignor(members[0].assignor)(counts, {m.member_id: m.topics for m in members})


def group_state(
    paths: GroupPaths, members: Sequence[MemberInfo], assignment: dict[str, list[TopicPartition]]
) -> str:
    """Kafka's state name: the coordinator's for a broker-coordinated group, else derived from the files."""
    if not members:
        return EMPTY
    recorded = read_state(paths)
    if members[0].coordinator is not None:
        return recorded.phase or STABLE
    owner_of = {tp: m for m in members for tp in assignment.get(m.member_id, [])}
    if tuple(m.member_id for m in members) != recorded.members:
        return PREPARING
    for tp, member in owner_of.items():
        if current_owner(paths, tp) != member.member_id:
            return COMPLETING
    return STABLE


def _log_end(transport: LogEnds, topic: str, partition: int) -> int | None:
    try:
        return transport.list_offset(topic, partition, "latest")
    except NotFoundError:
        return None  # the topic or partition is gone; its committed offsets linger, as in Kafka
