"""Planning ``reset-offsets``: which partitions, and which new offset for each (Kafka's
kafka-consumer-groups --reset-offsets rules: targets are clamped into [log start, log end]; --shift-by
needs a committed offset; times with no later record go to the log end)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from kcli.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from kcli.groups.view import LogEnds

TopicPartition = tuple[str, int]

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ResetSpec:
    """One of: earliest, latest, offset (value N), shift (value N), timestamp (value ms)."""

    kind: str
    value: int = 0


def parse_datetime(text: str) -> int:
    """ISO 8601 date-time to ms since the epoch; without a zone it is local time (as Kafka does)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"bad date-time {text!r}", hint="use ISO 8601, e.g. 2024-05-01T12:00:00 or ...Z"
        ) from None
    return int(when.timestamp() * 1000)


def parse_duration(text: str) -> int:
    """An ISO 8601 duration PnDTnHnMn.nS (java.time.Duration's form) in ms."""
    m = _DURATION.match(text.strip())
    if not m or not any(m.groupdict().values()):
        raise UsageError(f"bad duration {text!r}", hint="use PnDTnHnM, e.g. P1D, PT2H30M, P1DT12H")
    days, hours, minutes = (int(m.group(k) or 0) for k in "dhm")
    seconds = float(m.group("s") or 0)
    return int(((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000)


def parse_scope(
    transport: LogEnds, topics: Sequence[str], committed: Mapping[TopicPartition, int], all_topics: bool
) -> list[TopicPartition]:
    """Partitions named by ``--topic T`` / ``--topic T:0,2`` options, or by --all-topics (the topics the
    group has committed offsets for)."""
    if all_topics == bool(topics):
        raise UsageError("name the partitions with --topic (repeatable) or --all-topics, one of the two")
    if all_topics:
        names = sorted({t for t, _p in committed})
        if not names:
            raise UsageError("the group has no committed offsets", hint="name the topics with --topic")
        return [(t, p) for t in names for p in range(transport.partition_count(t))]
    out: list[TopicPartition] = []
    for item in topics:
        name, _, parts = item.partition(":")
        count = transport.partition_count(name)
        if not parts:
            out += [(name, p) for p in range(count)]
            continue
        for piece in parts.split(","):
            try:
                p = int(piece)
            except ValueError:
                raise UsageError(
                    f"bad partition {piece!r} in {item!r}", hint="use TOPIC or TOPIC:0,1,2"
                ) from None
            if not 0 <= p < count:
                raise NotFoundError(
                    f"topic {name!r} has no partition {p}", hint=f"it has partitions 0..{count - 1}"
                )
            out.append((name, p))
    return sorted(set(out))


def plan(
    transport: LogEnds, partitions: Sequence[TopicPartition], committed: Mapping[TopicPartition, int], spec: ResetSpec
) -> dict[TopicPartition, int]:
    """The new offset of each partition."""
    out = {}
    for topic, partition in partitions:
        start = transport.list_offset(topic, partition, "earliest")
        end = transport.list_offset(topic, partition, "latest")
        if spec.kind == "earliest":
            target = start
        elif spec.kind == "latest":
            target = end
        elif spec.kind == "offset":
            target = spec.value
        elif spec.kind == "shift":
            current = committed.get((topic, partition))
            if current is None:
                raise UsageError(
                    f"cannot shift {topic}-{partition}: the group has no committed offset for it",
                    hint="use --to-earliest, --to-latest or --to-offset for it",
                )
            target = current + spec.value
        elif spec.kind == "timestamp":
            target = transport.list_offset(topic, partition, spec.value)
        else:  # pragma: no cover - the CLI only builds the kinds above
            raise UsageError(f"unknown reset {spec.kind!r}")
        out[(topic, partition)] = min(max(target, start), end)
    return out


def duration_spec(text: str, now_ms: int | None = None) -> ResetSpec:
    """--by-duration D: the offsets as of D ago."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return ResetSpec("timestamp", now - parse_duration(text))
