"""Partition assignors: pure functions from (partition counts, subscriptions) to an assignment.

They follow Kafka's ``range`` and ``roundrobin`` assignors exactly (members ordered by member id,
topics by name), so the same inputs give the same assignment whether it is computed by an embedded
member, by a kcli client acting as group leader against a broker, or by a Java client.  Being pure,
every embedded member can compute the whole assignment itself and agree with the others.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from kcli.errors import UsageError

TopicPartition = tuple[str, int]
Assignment = dict[str, list[TopicPartition]]
Assignor = Callable[[Mapping[str, int], Mapping[str, Collection[str]]], Assignment]

DEFAULT_ASSIGNOR = "range"


def _members_by_topic(subscriptions: Mapping[str, Collection[str]]) -> dict[str, list[str]]:
    by_topic: dict[str, list[str]] = {}
    for member in sorted(subscriptions):
        for topic in set(subscriptions[member]):
            by_topic.setdefault(topic, []).append(member)
    return by_topic


def range_assign(
    partition_counts: Mapping[str, int], subscriptions: Mapping[str, Collection[str]]
) -> Assignment:
    """Kafka's RangeAssignor: per topic, the sorted subscribers get consecutive ranges of partitions; the
    first ``count % members`` subscribers get one extra.  Topics missing from ``partition_counts`` (not
    created yet, or deleted) are skipped."""
    out: Assignment = {member: [] for member in subscriptions}
    for topic, members in sorted(_members_by_topic(subscriptions).items()):
        count = partition_counts.get(topic, 0)
        if count <= 0:
            continue
        per, extra = divmod(count, len(members))
        for i, member in enumerate(members):
            start = i * per + min(i, extra)
            length = per + (1 if i < extra else 0)
            out[member].extend((topic, p) for p in range(start, start + length))
    return out


def roundrobin_assign(
    partition_counts: Mapping[str, int], subscriptions: Mapping[str, Collection[str]]
) -> Assignment:
    """Kafka's RoundRobinAssignor: all subscribed partitions in (topic, partition) order are dealt out to
    the sorted members in turn, skipping members not subscribed to a partition's topic."""
    out: Assignment = {member: [] for member in subscriptions}
    members = sorted(subscriptions)
    if not members:
        return out
    topics = {member: set(subscriptions[member]) for member in members}
    turn = 0
    for topic in sorted(set().union(*topics.values())):
        for partition in range(partition_counts.get(topic, 0)):
            while topic not in topics[members[turn % len(members)]]:
                turn += 1
            out[members[turn % len(members)]].append((topic, partition))
            turn += 1
    return out


ASSIGNORS: dict[str, Assignor] = {"range": range_assign, "roundrobin": roundrobin_assign}


def get_assignor(name: str) -> Assignor:
    """The assignor registered under Kafka's protocol name ``name``."""
    try:
        return ASSIGNORS[name]
    except KeyError:
        raise UsageError(
            f"unknown assignor {name!r}", hint=f"use one of {', '.join(sorted(ASSIGNORS))}"
        ) from None
