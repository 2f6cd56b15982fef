"""Kafka's operating guidance, turned into warnings and advice (never errors).

Replication factor 1 for development, 2 where a little loss is acceptable, 3 where none is; 4 or more
costs disk for little gain.  min.insync.replicas >= replication factor makes acks=all block on the loss of
any broker.  Start with few partitions (3 to 6) and add them as consumer lag grows: a partition count can
only grow, and partitions nobody needs still cost files, memory and recovery time.  Test each compression
codec on real data before choosing one.

Everything here is a pure function of figures measured elsewhere, so the rules are tested on constructed
numbers and every command words its advice the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

# Kafka's suggested starting partition counts; above the upper one, a topic should have the consumers
# to show for it.
START_PARTITIONS = (3, 6)
PARTITIONS_PER_CONSUMER = 4
# A codec whose ratio is within this fraction of the best one is "as good on disk".
CODEC_RATIO_TOLERANCE = 0.05
OPTIMIZE_GOALS = ("balanced", "disk")


def replication_warnings(replication_factor: int, min_insync: int) -> list[str]:
    """A factor above the broker count is an error raised by the assignment, not a warning."""
    out = []
    if replication_factor >= 4:
        out.append(
            f"replication factor {replication_factor} stores every record {replication_factor} times; "
            "3 already survives the loss of two brokers (4 or more mostly costs disk)"
        )
    if min_insync >= replication_factor > 1:
        out.append(
            f"min.insync.replicas={min_insync} >= replication factor {replication_factor}: acks=all "
            "produces will fail as soon as any replica's broker is down (use replication factor - 1)"
        )
    return out


def topic_name_warnings(name: str) -> list[str]:
    """Kafka's own warning: metric names turn '.' into '_', so names using either can collide."""
    if "." in name or "_" in name:
        return [f"topic name {name!r} has a period ('.') or underscore ('_'); such names can collide in "
                "metric names, so best use one of them, not both"]
    return []


def partition_warnings(topic: str, partitions: int, consumers: Mapping[str, int]) -> list[str]:
    """Warn when ``topic`` has far more partitions than any group that reads it has consumers.

    ``consumers`` maps each group that has consumed the topic (or is subscribed to it) to its live
    members subscribed to it.  A group with none live still had at least one consumer, so it counts as
    one.  With no consuming group there is nothing to compare with, and no warning.
    """
    if not consumers or partitions <= START_PARTITIONS[1]:
        return []
    group, members = max(consumers.items(), key=lambda item: (item[1], item[0]))
    if partitions <= PARTITIONS_PER_CONSUMER * max(members, 1):
        return []
    who = (
        f"{members} live consumer{'s' if members != 1 else ''}"
        if members
        else "no live consumer, counted as one"
    )
    return [
        f"topic {topic} has {partitions} partitions, more than {PARTITIONS_PER_CONSUMER} per consumer of its "
        f"largest consumer group ({group}: {who}); Kafka's guidance is to start with "
        f"{START_PARTITIONS[0]} to {START_PARTITIONS[1]} partitions and add them as consumer lag grows "
        "(`kcli lag --watch` shows when): a partition count can only grow"
    ]


def suggested_partitions(partitions: int, in_rate: float | None, out_rate: float | None) -> int:
    """How many partitions would let consumers keep up, if each consumer keeps its current pace:
    the current count scaled by messages in / messages out; double when nothing is consumed."""
    if in_rate is None or out_rate is None or out_rate <= 0 or in_rate <= 0:
        return max(2 * partitions, partitions + 1)
    return max(partitions + 1, math.ceil(partitions * in_rate / out_rate))


def scale_out_advice(
    group: str,
    topic: str,
    members: int,
    partitions: int,
    falling_behind: bool,
    in_rate: float | None = None,
    out_rate: float | None = None,
) -> str | None:
    """The advice ``kcli lag --watch`` prints when a group cannot keep up although every partition of
    ``topic`` has its own consumer, so more consumers alone would sit idle: only more partitions help."""
    if not falling_behind or partitions <= 0 or members < partitions:
        return None
    target = suggested_partitions(partitions, in_rate, out_rate)
    return (
        f"group {group}: every partition has a consumer and lag is growing: add partitions "
        f"(`kcli topic alter {topic} --partitions {target}`) and consumers; a partition count can only grow"
    )


class CodecFigures(Protocol):
    """What the codec recommendation needs from a measurement."""

    @property
    def name(self) -> str: ...

    @property
    def ratio(self) -> float: ...

    @property
    def compress_mb_s(self) -> float: ...


F = TypeVar("F", bound=CodecFigures)


def recommend_codec(
    results: Sequence[F], optimize: str = "balanced", tolerance: float = CODEC_RATIO_TOLERANCE
) -> F:
    """The codec to use: with ``balanced``, the fastest to compress among those whose ratio is within
    ``tolerance`` of the best (CPU is spent on every produce, a few percent of disk rarely matters);
    with ``disk``, the best ratio (ties go to the faster)."""
    if not results:
        raise ValueError("no codec figures to choose from")
    if optimize not in OPTIMIZE_GOALS:
        raise ValueError(f"unknown goal {optimize!r}")
    best = max(r.ratio for r in results)
    if optimize == "disk":
        return max(results, key=lambda r: (r.ratio, r.compress_mb_s))
    close = [r for r in results if r.ratio >= best * (1 - tolerance)]
    return max(close, key=lambda r: (r.compress_mb_s, r.ratio))


def codec_recommendation(
    results: Sequence[CodecFigures], optimize: str = "balanced", tolerance: float = CODEC_RATIO_TOLERANCE
) -> str:
    """One line naming the recommended codec and why."""
    chosen = recommend_codec(results, optimize, tolerance)
    best = max(results, key=lambda r: (r.ratio, r.compress_mb_s))
    if optimize == "disk":
        why = "the best ratio"
    elif chosen is best:
        why = f"the best ratio, and the fastest to compress of the codecs within {tolerance:.0%} of it"
    else:
        why = (
            f"the fastest to compress ({chosen.compress_mb_s:.1f} MB/s) of the codecs within {tolerance:.0%} "
            f"of the best ratio ({best.name}, {best.ratio:.3f})"
        )
    return f"recommended: {chosen.name} (ratio {chosen.ratio:.3f}; {why})"
