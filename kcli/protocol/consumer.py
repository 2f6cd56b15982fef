"""The "consumer" embedded protocol: the opaque bytes inside JoinGroup and SyncGroup.

A consumer's JoinGroup ``protocols[].metadata`` is a *subscription* (which topics it wants, plus the
partitions it owns, for cooperative rebalancing); the leader's SyncGroup ``assignments[].assignment``
is an *assignment* (which partitions each member gets).  Both start with an int16 version; later
versions only append fields, so we decode anything newer than we know by reading the known fields
and ignoring the rest, as Kafka's own clients do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kcli.errors import ProtocolError

from .schema import Array, Field, Schema, Struct
from .types import BYTES, I16, INT32, STRING, as_buffer

_TOPIC_PARTITIONS = [Field("topic", STRING), Field("partitions", Array(INT32))]

SUBSCRIPTION = Schema(
    "ConsumerProtocolSubscription",
    [
        Field("topics", Array(STRING)),
        Field("user_data", BYTES, nullable="0+", default=None),
        Field("owned_partitions", Array(_TOPIC_PARTITIONS), "1+"),
        Field("generation_id", INT32, "2+", default=-1),
        Field("rack_id", STRING, "3+", nullable="3+", default=None),
    ],
)
SUBSCRIPTION_MAX_VERSION = 3

ASSIGNMENT = Schema(
    "ConsumerProtocolAssignment",
    [
        Field("assigned_partitions", Array(_TOPIC_PARTITIONS)),
        Field("user_data", BYTES, nullable="0+", default=None),
    ],
)
ASSIGNMENT_MAX_VERSION = 3


def _encode(schema: Schema, max_version: int, value: Mapping[str, Any], version: int | None) -> bytes:
    if version is None:
        version = int(value.get("version", 1))
    if not 0 <= version <= max_version:
        raise ProtocolError(f"cannot encode {schema.name} v{version} (supported: v0-v{max_version})")
    if "version" in value:
        value = {k: v for k, v in value.items() if k != "version"}
    return I16.pack(version) + schema.encode(value, version)


def _decode(schema: Schema, max_version: int, data: bytes | bytearray | memoryview) -> Struct:
    buf = as_buffer(data)
    if len(buf) < 2:
        raise ProtocolError(f"{schema.name}: {len(buf)} bytes is too short for a version")
    version = I16.unpack_from(buf, 0)[0]
    if version < 0:
        raise ProtocolError(f"{schema.name}: invalid version {version}")
    body = schema.decode(buf[2:], min(version, max_version), allow_trailing=True)
    body["version"] = version
    return body


def encode_subscription(value: Mapping[str, Any], version: int | None = None) -> bytes:
    """Subscription bytes for JoinGroup ``protocols[].metadata``.

    ``value`` has ``topics`` and optionally ``user_data``, ``owned_partitions`` (list of
    ``{"topic", "partitions"}``), ``generation_id``, ``rack_id``.  ``version`` defaults to
    ``value["version"]`` if present, else 1."""
    return _encode(SUBSCRIPTION, SUBSCRIPTION_MAX_VERSION, value, version)


def decode_subscription(data: bytes | bytearray | memoryview) -> Struct:
    """A Struct with ``version`` (as sent, possibly > 3), ``topics``, ``user_data``,
    ``owned_partitions``, ``generation_id``, ``rack_id`` (defaults where the version lacks them)."""
    return _decode(SUBSCRIPTION, SUBSCRIPTION_MAX_VERSION, data)


def encode_assignment(value: Mapping[str, Any], version: int | None = None) -> bytes:
    """Assignment bytes for SyncGroup ``assignments[].assignment``: ``assigned_partitions`` (list of
    ``{"topic", "partitions"}``) and optional ``user_data``."""
    return _encode(ASSIGNMENT, ASSIGNMENT_MAX_VERSION, value, version)


def assignment_bytes(partitions: Iterable[tuple[str, int]]) -> bytes:
    """A v0 assignment of (topic, partition) pairs, grouped by topic in the order first seen (v0: what
    every client reads)."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    assigned = [{"topic": t, "partitions": ps} for t, ps in by_topic.items()]
    return encode_assignment({"assigned_partitions": assigned}, version=0)


def decode_assignment(data: bytes | bytearray | memoryview) -> Struct:
    """A Struct with ``version``, ``assigned_partitions`` and ``user_data``.

    Empty bytes decode to an empty assignment (v0): that is what a broker hands a member the leader
    left out of SyncGroup, and treating it as "nothing assigned" is the useful reading."""
    if len(data) == 0:
        return Struct(version=0, assigned_partitions=[], user_data=None)
    return _decode(ASSIGNMENT, ASSIGNMENT_MAX_VERSION, data)
