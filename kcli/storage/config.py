"""Topic configs: names, defaults (Kafka's), parsing and validation.

A topic stores only the keys a user set; ``LogConfig`` merges them over the defaults when a log opens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kcli.errors import InvalidConfigError

_COMPRESSION_TYPES = ("producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd")


def _int(lo: int, hi: int = 2**63 - 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _bool(text: str) -> bool:
    low = str(text).lower()
    if low not in ("true", "false"):
        raise ValueError("must be true or false")
    return low == "true"


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


# name -> (default, parser, one-line meaning)
TOPIC_CONFIGS: dict[str, tuple[object, Callable[[str], object], str]] = {
    "segment.bytes": (1 << 30, _int(14, 2**31 - 1), "roll a new segment when the active one reaches this size"),
    "segment.ms": (7 * 24 * 3600 * 1000, _int(1), "roll a new segment when the active one is this old"),
    "retention.ms": (7 * 24 * 3600 * 1000, _int(-1), "delete segments whose newest record is older (-1: never)"),
    "retention.bytes": (-1, _int(-1), "delete oldest segments while the partition is larger (-1: no limit)"),
    "index.interval.bytes": (4096, _int(0), "bytes between offset index entries"),
    "segment.index.bytes": (10 * 1024 * 1024, _int(4), "maximum size of an index file"),
    "max.message.bytes": (1048588, _int(0, 2**31 - 1), "largest record batch the partition accepts"),
    "min.insync.replicas": (1, _int(1), "in-sync replicas an acks=all produce needs"),
    "unclean.leader.election.enable": (False, _bool, "allow an out-of-sync replica to become leader"),
    "compression.type": ("producer", _choice(*_COMPRESSION_TYPES), "codec on disk (producer: keep the producer's)"),
    "cleanup.policy": ("delete", _choice("delete"), "what retention does with old segments"),
    "message.timestamp.type": ("CreateTime", _choice("CreateTime", "LogAppendTime"), "which timestamp records keep"),
    "flush.messages": (2**63 - 1, _int(1), "fsync once this many messages are unsynced (default: leave it to the OS)"),
    "flush.ms": (2**63 - 1, _int(0), "fsync once the oldest unsynced message is this old (default: leave it to the OS)"),
}


def parse_topic_config(key: str, value: str) -> object:
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


@dataclass(frozen=True)
class LogConfig:
    """The effective configuration of one partition log."""

    segment_bytes: int = TOPIC_CONFIGS["segment.bytes"][0]  # type: ignore[assignment]
    segment_ms: int = TOPIC_CONFIGS["segment.ms"][0]  # type: ignore[assignment]
    retention_ms: int = TOPIC_CONFIGS["retention.ms"][0]  # type: ignore[assignment]
    retention_bytes: int = TOPIC_CONFIGS["retention.bytes"][0]  # type: ignore[assignment]
    index_interval_bytes: int = TOPIC_CONFIGS["index.interval.bytes"][0]  # type: ignore[assignment]
    max_message_bytes: int = TOPIC_CONFIGS["max.message.bytes"][0]  # type: ignore[assignment]
    min_insync_replicas: int = 1
    unclean_leader_election: bool = False
    compression_type: str = "producer"
    log_append_time: bool = False
    flush_messages: int = TOPIC_CONFIGS["flush.messages"][0]  # type: ignore[assignment]
    flush_ms: int = TOPIC_CONFIGS["flush.ms"][0]  # type: ignore[assignment]

    @classmethod
    def from_topic(cls, overrides: Mapping[str, object]) -> LogConfig:
        def get(key: str) -> object:
            return overrides.get(key, TOPIC_CONFIGS[key][0])

        return cls(
            segment_bytes=int(get("segment.bytes")),  # type: ignore[arg-type]
            segment_ms=int(get("segment.ms")),  # type: ignore[arg-type]
            retention_ms=int(get("retention.ms")),  # type: ignore[arg-type]
            retention_bytes=int(get("retention.bytes")),  # type: ignore[arg-type]
            index_interval_bytes=int(get("index.interval.bytes")),  # type: ignore[arg-type]
            max_message_bytes=int(get("max.message.bytes")),  # type: ignore[arg-type]
            min_insync_replicas=int(get("min.insync.replicas")),  # type: ignore[arg-type]
            unclean_leader_election=bool(get("unclean.leader.election.enable")),
            compression_type=str(get("compression.type")),
            log_append_time=get("message.timestamp.type") == "LogAppendTime",
            flush_messages=int(get("flush.messages")),  # type: ignore[arg-type]
            flush_ms=int(get("flush.ms")),  # type: ignore[arg-type]
        )
