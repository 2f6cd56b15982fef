"""Topic configs: names, defaults (Kafka's), parsing and validation.

A topic stores only the keys a user set; ``LogConfig`` merges them over the defaults when a log opens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from kcli.errors import InvalidConfigError

ConfigValue = int | bool | str | float  # what a topic config's parser returns

_COMPRESSION_TYPES = ("producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd")


def int_range(lo: int, hi: int = 2**63 - 1) -> Callable[[str], int]:
    """A parser of integers from ``lo`` to ``hi`` (topic, broker and group configs alike)."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError("must be an integer") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def boolean(text: str) -> bool:
    """``true`` or ``false``, in any case."""
    low = str(text).strip().lower()
    if low not in ("true", "false"):
        raise ValueError("must be true or false")
    return low == "true"


def float_range(lo: float, hi: float) -> Callable[[str], float]:
    """A parser of doubles from ``lo`` to ``hi`` (Kafka's DOUBLE configs)."""

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise ValueError("must be a number") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


_POLICIES = ("compact", "delete")


def cleanup_policy(text: str) -> str:
    """Kafka's list of ``delete`` and ``compact``, in any order; a name given twice counts once (Kafka
    4.2 drops duplicates), and an empty list means neither: nothing is deleted by retention nor
    compacted (Kafka's meaning too).  Kept trimmed, in the order written."""
    stripped = str(text).strip()
    if not stripped:
        return ""
    items = [item.strip() for item in stripped.split(",")]
    if any(item not in _POLICIES for item in items):
        raise ValueError("must be a list of compact and delete (delete, compact or compact,delete; empty: neither)")
    return ",".join(dict.fromkeys(items))


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


# name -> (default, parser, one-line meaning)
TOPIC_CONFIGS: dict[str, tuple[ConfigValue, Callable[[str], ConfigValue], str]] = {
    "segment.bytes": (1 << 30, int_range(14, 2**31 - 1), "roll a new segment when the active one reaches this size"),
    "segment.ms": (7 * 24 * 3600 * 1000, int_range(1), "roll a new segment when the active one is this old"),
    "retention.ms": (7 * 24 * 3600 * 1000, int_range(-1), "delete segments whose newest record is older (-1: never)"),
    "retention.bytes": (-1, int_range(-1), "delete oldest segments while the partition is larger (-1: no limit)"),
    "index.interval.bytes": (4096, int_range(0), "bytes between offset index entries"),
    "segment.index.bytes": (10 * 1024 * 1024, int_range(4), "maximum size of an index file"),
    "max.message.bytes": (1048588, int_range(0, 2**31 - 1), "largest record batch the partition accepts"),
    "min.insync.replicas": (1, int_range(1), "in-sync replicas an acks=all produce needs"),
    "unclean.leader.election.enable": (False, boolean, "allow an out-of-sync replica to become leader"),
    "compression.type": ("producer", _choice(*_COMPRESSION_TYPES), "codec on disk (producer: keep the producer's)"),
    "cleanup.policy": ("delete", cleanup_policy, "delete old segments, compact them to the latest value per key, or both"),
    "min.cleanable.dirty.ratio": (0.5, float_range(0.0, 1.0), "clean once this share of the log is not yet cleaned"),
    "min.compaction.lag.ms": (0, int_range(0), "records younger than this are not compacted"),
    "max.compaction.lag.ms": (2**63 - 1, int_range(1), "records older than this are compacted whatever the dirty ratio"),
    "delete.retention.ms": (86_400_000, int_range(0), "how long a compacted tombstone (null value) is kept"),
    "message.timestamp.type": ("CreateTime", _choice("CreateTime", "LogAppendTime"), "which timestamp records keep"),
    "flush.messages": (2**63 - 1, int_range(1), "fsync once this many messages are unsynced (default: leave it to the OS)"),
    "flush.ms": (2**63 - 1, int_range(0), "fsync once the oldest unsynced message is this old (default: leave it to the OS)"),
}


def parse_topic_config(key: str, value: str) -> ConfigValue:
    """Validate one ``key=value`` topic config and return the typed value."""
    if key not in TOPIC_CONFIGS:
        raise InvalidConfigError(f"unknown topic config {key!r}", hint="see `kcli topic configs` for the list")
    _default, parser, _doc = TOPIC_CONFIGS[key]
    try:
        return parser(value)
    except ValueError as exc:
        raise InvalidConfigError(f"invalid value {value!r} for {key}: {exc}") from None


def parse_config_pairs(pairs: list[str] | tuple[str, ...]) -> dict[str, object]:
    """Parse repeated ``key=value`` options into typed topic configs."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidConfigError(f"config {pair!r} is not key=value")
        out[key.strip()] = parse_topic_config(key.strip(), value.strip())
    return out


def _default_int(key: str) -> int:
    """The default of a numeric config, as LogConfig's field default."""
    return int(TOPIC_CONFIGS[key][0])


@dataclass(frozen=True)
class LogConfig:
    """The effective configuration of one partition log."""

    segment_bytes: int = _default_int("segment.bytes")
    segment_ms: int = _default_int("segment.ms")
    retention_ms: int = _default_int("retention.ms")
    retention_bytes: int = _default_int("retention.bytes")
    index_interval_bytes: int = _default_int("index.interval.bytes")
    max_message_bytes: int = _default_int("max.message.bytes")
    min_insync_replicas: int = 1
    unclean_leader_election: bool = False
    compression_type: str = "producer"
    log_append_time: bool = False
    flush_messages: int = _default_int("flush.messages")
    flush_ms: int = _default_int("flush.ms")
    producer_id_expiration_ms: int = 86_400_000  # Kafka's broker-wide producer.id.expiration.ms
    compact: bool = False  # cleanup.policy holds compact: the cleaner keeps the latest record per key
    delete: bool = True  # cleanup.policy holds delete: retention.ms and retention.bytes delete segments
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = _default_int("max.compaction.lag.ms")
    delete_retention_ms: int = _default_int("delete.retention.ms")

    @classmethod
    def from_topic(cls, overrides: Mapping[str, object]) -> LogConfig:
        def get(key: str) -> ConfigValue:
            # the metadata keeps the values parse_topic_config returned
            return cast(ConfigValue, overrides.get(key, TOPIC_CONFIGS[key][0]))

        policy = str(get("cleanup.policy")).split(",")
        return cls(
            segment_bytes=int(get("segment.bytes")),
            segment_ms=int(get("segment.ms")),
            retention_ms=int(get("retention.ms")),
            retention_bytes=int(get("retention.bytes")),
            index_interval_bytes=int(get("index.interval.bytes")),
            max_message_bytes=int(get("max.message.bytes")),
            min_insync_replicas=int(get("min.insync.replicas")),
            unclean_leader_election=bool(get("unclean.leader.election.enable")),
            compression_type=str(get("compression.type")),
            log_append_time=get("message.timestamp.type") == "LogAppendTime",
            flush_messages=int(get("flush.messages")),
            flush_ms=int(get("flush.ms")),
            compact="compact" in policy,
            delete="delete" in policy,
            min_cleanable_dirty_ratio=float(get("min.cleanable.dirty.ratio")),
            min_compaction_lag_ms=int(get("min.compaction.lag.ms")),
            max_compaction_lag_ms=int(get("max.compaction.lag.ms")),
            delete_retention_ms=int(get("delete.retention.ms")),
        )
