"""Whether consumer groups keep up with their topics: lag trends from successive samples, and which
groups consume a topic.

Committed offsets move in steps (a consumer commits every few seconds), so lag measured between two
commits always looks like it is growing.  A partition's trend is therefore judged at its commit points,
the samples at which its committed offset moved (as Burrow, LinkedIn's lag monitor, does): lag that
rises from commit to commit is real, a saw-tooth between commits is not (so a committing group needs
two commits in the window before it has a trend).  A partition whose committed
offset never moved in the window is judged on its lag alone (nothing is consumed, so any rise is real).

The functions over samples are pure, so they are tested on constructed numbers; ``kcli lag --watch``
takes the samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kcli.cluster.datadir import DataDir

PartitionKey = tuple[str, str, int]  # group, topic, partition
GroupTopic = tuple[str, str]

GROWING, SHRINKING, STEADY, UNKNOWN = "growing", "shrinking", "steady", "-"
# lag must rise over this many consecutive commit points (two rises) to "keep growing"
RISING_POINTS = 3


@dataclass(frozen=True)
class Snapshot:
    """One sample: at ``at`` (monotonic seconds), each partition's committed offset and log end offset
    (None when unknown), the live members of each group subscribed to each topic, and partition counts."""

    at: float
    offsets: dict[PartitionKey, tuple[int | None, int | None]]
    members: dict[GroupTopic, int]
    partition_counts: dict[str, int]


@dataclass(frozen=True)
class PartitionTrend:
    """A partition's latest figures and how they moved since the previous sample."""

    group: str
    topic: str
    partition: int
    committed: int | None
    log_end: int | None
    lag: int | None
    in_rate: float | None  # messages appended per second
    out_rate: float | None  # messages committed per second
    direction: str
    keeps_growing: bool


@dataclass(frozen=True)
class GroupTrend:
    """A group's figures on one topic; rates are over the whole sampled window (``span`` seconds)."""

    group: str
    topic: str
    members: int
    partitions: int
    lag: int
    in_rate: float | None
    out_rate: float | None
    span: float
    direction: str
    falling_behind: bool


def _lag(committed: int | None, log_end: int | None) -> int | None:
    if committed is None or log_end is None:
        return None
    return max(0, log_end - committed)


def _rate(first: int | None, last: int | None, seconds: float) -> float | None:
    if first is None or last is None or seconds <= 0:
        return None
    return (last - first) / seconds


def _commit_point_lags(series: Sequence[tuple[int | None, int | None]]) -> tuple[list[int], bool]:
    """Lag at every sample whose committed offset moved since the sample before; and whether any did.
    The first sample is not a point: it may fall anywhere between two commits."""
    points: list[int] = []
    moved = False
    for (before, _end), (committed, log_end) in zip(series, series[1:], strict=False):
        if committed is not None and committed != before:
            moved = True
            lag = _lag(committed, log_end)
            if lag is not None:
                points.append(lag)
    return points, moved


def _direction(before: int, after: int) -> str:
    return GROWING if after > before else SHRINKING if after < before else STEADY


def judge_lag(series: Sequence[tuple[int | None, int | None]]) -> tuple[str, bool]:
    """(direction, keeps growing) of one partition from its (committed, log end) samples, oldest first."""
    points, moved = _commit_point_lags(series)
    if not moved:
        lags = [lag for lag in (_lag(c, e) for c, e in series) if lag is not None]
        if len(lags) < 2:
            return UNKNOWN, False
        return _direction(lags[0], lags[-1]), False  # nothing consumed: a capacity question it is not
    if len(points) < 2:
        return UNKNOWN, False
    rising = points[-RISING_POINTS:]
    keeps = len(rising) == RISING_POINTS and all(a < b for a, b in zip(rising, rising[1:], strict=False))
    return _direction(points[-2], points[-1]), keeps


def partition_trends(history: Sequence[Snapshot]) -> list[PartitionTrend]:
    """Each partition of the latest sample, with rates since the previous sample and its trend over
    the whole history."""
    if not history:
        return []
    last = history[-1]
    previous = history[-2] if len(history) > 1 else None
    out = []
    for key in sorted(last.offsets):
        committed, log_end = last.offsets[key]
        in_rate = out_rate = None
        if previous is not None and key in previous.offsets:
            seconds = last.at - previous.at
            in_rate = _rate(previous.offsets[key][1], log_end, seconds)
            out_rate = _rate(previous.offsets[key][0], committed, seconds)
        direction, keeps = judge_lag([s.offsets[key] for s in history if key in s.offsets])
        out.append(
            PartitionTrend(
                *key, committed, log_end, _lag(committed, log_end), in_rate, out_rate, direction, keeps
            )
        )
    return out


def group_trends(history: Sequence[Snapshot], partitions: Sequence[PartitionTrend]) -> list[GroupTrend]:
    """Per group and topic: total lag, rates over the window, and whether the group is falling behind,
    meaning lag keeps growing on most of the partitions whose trend can be judged."""
    if not history:
        return []
    first, last = history[0], history[-1]
    span = last.at - first.at
    by_group: dict[GroupTopic, list[PartitionTrend]] = {}
    for p in partitions:
        by_group.setdefault((p.group, p.topic), []).append(p)
    out = []
    for (group, topic), rows in sorted(by_group.items()):
        keys = [(group, topic, p.partition) for p in rows if (group, topic, p.partition) in first.offsets]
        in_rate = _sum_rate(first, last, keys, 1, span)
        out_rate = _sum_rate(first, last, keys, 0, span)
        judged = [p for p in rows if p.direction != UNKNOWN]
        growing = sum(p.direction == GROWING for p in judged)
        shrinking = sum(p.direction == SHRINKING for p in judged)
        direction = UNKNOWN if not judged else _direction(shrinking, growing)
        falling = bool(judged) and 2 * sum(p.keeps_growing for p in judged) > len(judged)
        out.append(
            GroupTrend(
                group,
                topic,
                last.members.get((group, topic), 0),
                last.partition_counts.get(topic, len(rows)),
                sum(p.lag or 0 for p in rows),
                in_rate,
                out_rate,
                span,
                direction,
                falling,
            )
        )
    return out


def _sum_rate(
    first: Snapshot, last: Snapshot, keys: list[PartitionKey], field: int, seconds: float
) -> float | None:
    pairs = [(first.offsets[k][field], last.offsets[k][field]) for k in keys]
    known = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not known or seconds <= 0:
        return None
    return sum(b - a for a, b in known) / seconds


def consuming_groups(datadir: DataDir, topic: str) -> dict[str, int]:
    """Groups that have committed offsets for ``topic`` or have live members subscribed to it, each with
    its number of live members subscribed to it (the groups whose size partitions should follow)."""
    from kcli.groups.membership import live_members
    from kcli.groups.offsets import OffsetStore

    store = OffsetStore(datadir)
    out = {}
    for group in store.list_groups():
        subscribed = sum(topic in m.topics for m in live_members(datadir, group))
        if subscribed or any(t == topic for t, _p in store.fetch(group)):
            out[group] = subscribed
    return out
