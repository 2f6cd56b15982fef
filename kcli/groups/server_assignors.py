"""The assignors a KIP-848 group coordinator runs itself (Kafka's ``group.consumer.assignors``).

Each takes the members' subscribed topics (already resolved to existing topics), the partition count of
every topic, and the current target (for stickiness), and returns each member's target partitions.
Members are taken in member-id order, so the answer depends only on its inputs.

- ``uniform`` (the default): balanced and sticky.  Every member may keep up to its share of what it
  had; the rest goes, partition by partition, to the least-loaded member that subscribes to it.  With
  identical subscriptions the counts differ by at most one, as Kafka's UniformAssignor guarantees.
- ``range``: per topic, its subscribers in member-id order get consecutive ranges, the first ones one
  partition more, as the classic range assignor does (co-partitioned topics line up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set

from kcli.errors import InvalidConfigError

TopicPartition = tuple[str, int]
Subscriptions = Mapping[str, Set[str]]  # member id -> subscribed topics
Assignment = dict[str, set[TopicPartition]]
ServerAssignor = Callable[[Subscriptions, Mapping[str, int], Mapping[str, Set[TopicPartition]]], Assignment]


def uniform(
    members: Subscriptions, counts: Mapping[str, int], current: Mapping[str, Set[TopicPartition]]
) -> Assignment:
    ids = sorted(members)
    out: Assignment = {m: set() for m in ids}
    if not ids:
        return out
    wanted = sorted({(t, p) for m in ids for t in members[m] if t in counts for p in range(counts[t])})
    valid = set(wanted)
    floor, extra = divmod(len(wanted), len(ids))
    taken: set[TopicPartition] = set()
    for m in ids:  # stickiness: keep up to the floor of the share, then one more while extras last
        keep = sorted(tp for tp in current.get(m, ()) if tp[0] in members[m] and tp in valid)
        limit = floor
        if len(keep) > floor and extra > 0:
            limit, extra = floor + 1, extra - 1
        for tp in keep[:limit]:
            if tp not in taken:
                out[m].add(tp)
                taken.add(tp)
    for tp in wanted:
        if tp in taken:
            continue
        candidates = [m for m in ids if tp[0] in members[m]]
        out[min(candidates, key=lambda m: (len(out[m]), m))].add(tp)
    return out


def range_(
    members: Subscriptions, counts: Mapping[str, int], current: Mapping[str, Set[TopicPartition]]
) -> Assignment:
    out: Assignment = {m: set() for m in members}
    for topic in sorted({t for subs in members.values() for t in subs if t in counts}):
        subscribers = sorted(m for m in members if topic in members[m])
        share, extra = divmod(counts[topic], len(subscribers))
        start = 0
        for i, m in enumerate(subscribers):
            n = share + (1 if i < extra else 0)
            out[m].update((topic, p) for p in range(start, start + n))
            start += n
    return out


SERVER_ASSIGNORS: dict[str, ServerAssignor] = {"uniform": uniform, "range": range_}
DEFAULT_ASSIGNORS = ("uniform", "range")  # Kafka's group.consumer.assignors default, first one preferred


def parse_assignors(text: str) -> tuple[str, ...]:
    """``group.consumer.assignors``: known names, comma-separated, the default first."""
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    unknown = [n for n in names if n not in SERVER_ASSIGNORS]
    if not names or unknown:
        raise InvalidConfigError(
            f"unknown assignor(s) {', '.join(unknown) or '(none given)'} in group.consumer.assignors",
            hint=f"kcli has {', '.join(SERVER_ASSIGNORS)}",
        )
    return names
