"""Golden bytes: every request and response of every API and version kcli implements, against a reference
codec written from Kafka's own JSON message definitions (tests/support/kafka_json.py).

For each (API, version, request|response) and several deterministic samples -- every field present in
the version set to a non-default value, nulls wherever the version allows them, empty and multi-item
arrays, every field at its default -- kcli and the reference must write the same bytes (size, header v1/v2 or v0/v1, body), and each
must read the other's bytes back to the same value.  The cases come from ``kcli.protocol.APIS`` and the
broker's advertised table, so a new API or version is covered as soon as it is registered, and one the
JSON cannot describe fails loudly.

Kafka's tagged fields that kcli does not implement stay at their defaults in the byte comparison (Kafka
writes a tagged field only when it differs from its default); a separate check sends kcli every known
tagged field with a value, plus unknown tags, and kcli must read the rest of the message unchanged.

The reference itself is checked against bytes written independently of it (by hand from Kafka's
protocol rules, and captured from librdkafka), and against kafka-python's own JSON-driven codec on every
message and version kafka-python has.
"""

from __future__ import annotations

import base64
import random
import struct
import uuid
import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from support.kafka_json import (
    MODES,
    UNKNOWN_TAGS,
    Api,
    Message,
    api_message_names,
    default,
    field_type,
    json_path,
    load_json,
    sample,
    snake,
    tagged_fields,
    wire_fields,
)

from kcli.broker.dispatch import advertised
from kcli.protocol import (
    APIS,
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from kcli.protocol.schema import Schema

CORRELATION_ID = 0x5EED
CLIENT_ID = "golden-ü"

CASES = [
    (api.key, v, kind)
    for api in APIS.values()
    for v in range(api.min_version, api.max_version + 1)
    for kind in ("request", "response")
]


def case_id(case: tuple[int, int, str]) -> str:
    key, v, kind = case
    return f"{APIS[key].name}-v{v}-{kind}"


# --- reference values <-> kcli values ------------------------------------------------------------------
# The reference names fields as Kafka's JSON does (snake_case); kcli renames a few.  Fields are matched
# by position among the fields of the version (test_protocol.py checks the names and types), tagged fields
# by name, so a renamed field still lines up.


def _nested(schema_field: Any) -> Schema | None:
    """The struct schema of a kcli field (an array of structs, or a struct), duck-typed."""
    t = schema_field.type
    for candidate in (t, getattr(t, "item", None), getattr(t, "schema", None)):
        if hasattr(candidate, "fields_for"):
            return candidate  # type: ignore[no-any-return]
    return None


def kcli_tagged(schema: Schema, version: int) -> dict[str, Any]:
    """kcli's tagged fields of ``version`` by name (``Schema.tagged_for``, or fields carrying a ``tag``)."""
    tagged_for = getattr(schema, "tagged_for", None)
    fields = tagged_for(version) if tagged_for else schema.fields_for(version)
    return {f.name: f for f in fields if getattr(f, "tag", None) is not None}


def pairs(
    jfields: list[dict[str, Any]], schema: Schema, version: int
) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(json name, kcli field, json field)`` for every field of ``version`` kcli has."""
    ours = [f for f in schema.fields_for(version) if getattr(f, "tag", None) is None]
    wire = wire_fields(jfields, version)
    assert len(ours) == len(wire), (
        f"{schema.name} v{version}: kcli has {[f.name for f in ours]}, Kafka's JSON {[_json_name(jf) for jf in wire]}"
    )
    out = [(_json_name(jf), f, jf) for jf, f in zip(wire, ours, strict=True)]
    theirs = {_json_name(jf): jf for jf in tagged_fields(jfields, version)}
    for name, f in kcli_tagged(schema, version).items():
        assert name in theirs, (
            f"{schema.name} v{version}: kcli's tagged field {name} is no tagged field of Kafka's"
        )
        assert f.tag == theirs[name]["tag"], (
            f"{schema.name} v{version} {name}: tag {f.tag}, Kafka's {theirs[name]['tag']}"
        )
        out.append((name, f, theirs[name]))
    return out


def _json_name(jf: dict[str, Any]) -> str:
    return snake(jf["name"])


def kcli_unknown_tags(
    jfields: list[dict[str, Any]], schema: Schema, version: int, value: dict[str, Any]
) -> dict[str, Any]:
    """``value`` with the tagged fields kcli does not declare set to their defaults (recursively)."""
    out = dict(value)
    known = {name for name, _f, _jf in pairs(jfields, schema, version)}
    for jf in tagged_fields(jfields, version):
        if _json_name(jf) not in known:
            out[_json_name(jf)] = default(jf, version)
    for name, f, jf in pairs(jfields, schema, version):
        sub = _nested(f)
        v = out.get(name)
        if sub is None or v is None:
            continue
        if isinstance(v, list):
            out[name] = [kcli_unknown_tags(jf["fields"], sub, version, x) for x in v]
        else:
            out[name] = kcli_unknown_tags(jf["fields"], sub, version, v)
    return out


def to_kcli(
    jfields: list[dict[str, Any]], schema: Schema, version: int, value: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f, jf in pairs(jfields, schema, version):
        out[f.name] = _convert(value[name], f, jf, version, to_kcli)
    return out


def from_kcli(
    jfields: list[dict[str, Any]], schema: Schema, version: int, value: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f, jf in pairs(jfields, schema, version):
        out[name] = _convert(value[f.name], f, jf, version, from_kcli)
    return out


def _convert(v: Any, f: Any, jf: dict[str, Any], version: int, direction: Any) -> Any:
    if v is None:
        return None
    array, base = field_type(jf)
    sub = _nested(f)
    if sub is not None:
        if array:
            return [direction(jf["fields"], sub, version, x) for x in v]
        return direction(jf["fields"], sub, version, v)
    if array:
        return [_scalar(x, base, f, direction) for x in v]
    return _scalar(v, base, f, direction)


def _scalar(v: Any, base: str, f: Any, direction: Any) -> Any:
    if base == "uuid":
        return _uuid_for_kcli(v, f.default) if direction is to_kcli else _uuid_from_kcli(v)
    if isinstance(v, memoryview | bytearray):
        return bytes(v)
    return v


def _uuid_for_kcli(u: uuid.UUID, like: Any) -> Any:
    """A UUID in the form kcli's field uses (its default shows which)."""
    if isinstance(like, bytes | bytearray):
        return u.bytes
    if isinstance(like, str):  # Kafka's Uuid.toString(): URL-safe base64 without padding
        return base64.urlsafe_b64encode(u.bytes).rstrip(b"=").decode() if len(like) == 22 else str(u)
    return u


def _uuid_from_kcli(v: Any) -> uuid.UUID:
    if isinstance(v, uuid.UUID):
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return uuid.UUID(bytes=bytes(v))
    if isinstance(v, str) and len(v) == 22:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(v + "=="))
    return uuid.UUID(str(v))


# --- encoding both ways ----------------------------------------------------------------------------------


def kcli_schema(key: int, kind: str) -> Schema:
    api = APIS[key]
    return api.request if kind == "request" else api.response


def kcli_frame(key: int, version: int, kind: str, value: dict[str, Any]) -> bytes:
    if kind == "request":
        return encode_request(RequestHeader(key, version, CORRELATION_ID, CLIENT_ID), value)
    return encode_response(key, version, CORRELATION_ID, value)


def kcli_read(key: int, version: int, kind: str, payload: bytes) -> dict[str, Any]:
    if kind == "request":
        req = decode_request(payload)
        assert req.header == RequestHeader(key, version, CORRELATION_ID, CLIENT_ID)
        return req.body
    resp = decode_response(key, version, payload)
    assert resp.correlation_id == CORRELATION_ID
    return resp.body


def ref_frame(
    ref: Api, version: int, kind: str, value: dict[str, Any], header_tags: tuple[tuple[int, bytes], ...] = ()
) -> bytes:
    if kind == "request":
        return ref.encode_request(version, CORRELATION_ID, CLIENT_ID, value, header_tags=header_tags)
    return ref.encode_response(version, CORRELATION_ID, value)


def ref_read(ref: Api, version: int, kind: str, payload: bytes) -> dict[str, Any]:
    if kind == "request":
        header, body = ref.decode_request(payload)
        assert (header["correlation_id"], header["client_id"]) == (CORRELATION_ID, CLIENT_ID)
        return body
    header, body = ref.decode_response(version, payload)
    assert header["correlation_id"] == CORRELATION_ID
    return body


def first_difference(a: bytes, b: bytes) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"lengths {len(a)}/{len(b)}, first difference at byte {i}: kcli {a[i : i + 16].hex()} ref {b[i : i + 16].hex()}"


# --- the cases -------------------------------------------------------------------------------------------


def test_every_advertised_version_has_a_case() -> None:
    """What the broker advertises is what kcli's codec implements, so the cases below cover it all."""
    cases = set(CASES)
    for key, (lo, hi) in advertised().items():
        for v in range(lo, hi + 1):
            assert (key, v, "request") in cases and (key, v, "response") in cases, (key, v)


@pytest.mark.parametrize("key", sorted(APIS), ids=lambda k: APIS[k].name)
def test_kafka_json_defines_every_api_and_version(key: int) -> None:
    """The reference can only vouch for versions Kafka's JSON describes: vendor a newer definition under
    fixtures/kafka-messages/ when kcli goes past what kafka-python ships."""
    api = APIS[key]
    names = api_message_names()
    for kind in ("request", "response"):
        assert (key, kind) in names, f"no Kafka JSON for api key {key} ({api.name}): vendor it"
        name = names[(key, kind)]
        assert name == api.name + kind.capitalize()
        js = load_json(name, api.max_version)
        hi = js["validVersions"].rpartition("-")[2]
        assert api.max_version <= int(hi), (
            f"{json_path(name, api.max_version)} stops at v{hi}, kcli implements v{api.max_version}"
        )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_golden_bytes_against_kafka_json(case: tuple[int, int, str]) -> None:
    key, version, kind = case
    ref = Api.of(key, version)
    msg = ref.message(kind)
    schema = kcli_schema(key, kind)
    assert msg.flexible(version) == schema.is_flexible(version)
    seeds = [(mode, 0) for mode in MODES] + [("random", s) for s in (1, 2, 3)]
    for mode, seed in seeds:
        rng = random.Random(f"golden-{key}-{version}-{kind}-{mode}-{seed}")
        full = sample(msg.fields, version, rng, mode)
        value = kcli_unknown_tags(msg.fields, schema, version, full)
        where = f"{case_id(case)} {mode}/{seed}"

        ours = kcli_frame(key, version, kind, to_kcli(msg.fields, schema, version, value))
        theirs = ref_frame(ref, version, kind, value)
        assert ours == theirs, f"{where}: {first_difference(ours, theirs)}"
        assert ref_read(ref, version, kind, ours[4:]) == value, where
        got = kcli_read(key, version, kind, theirs[4:])
        assert from_kcli(msg.fields, schema, version, got) == from_kcli(
            msg.fields, schema, version, to_kcli(msg.fields, schema, version, value)
        ), where

        if msg.flexible(version):
            # Every tagged field Kafka knows, with a value, and tags nobody knows (in the header too):
            # kcli reads the rest of the message unchanged.
            noisy = {**full, UNKNOWN_TAGS: [(1000 + seed, b"\x01\x02\x03"), (40000, b"")]}
            frame = ref_frame(ref, version, kind, noisy, header_tags=((7, b"\xff"),))
            got = kcli_read(key, version, kind, frame[4:])
            assert from_kcli(msg.fields, schema, version, got) == from_kcli(
                msg.fields, schema, version, to_kcli(msg.fields, schema, version, value)
            ), where


# --- the reference against bytes written without it -------------------------------------------------------


def _hex(text: str) -> bytes:
    """Hex digits, spaces and ``#`` comments to the end of a line."""
    return bytes.fromhex("".join(line.partition("#")[0] for line in text.splitlines()).replace(" ", ""))


class Golden(NamedTuple):
    """A whole frame laid out field by field from Kafka's protocol rules (https://kafka.apache.org/protocol),
    or captured from a real client, and the body it holds."""

    what: str
    key: int
    version: int
    kind: str
    frame: bytes
    body: dict[str, Any]

    @property
    def correlation_id(self) -> int:
        at = 8 if self.kind == "request" else 4  # after the size (and the api key and version)
        return int(struct.unpack(">i", self.frame[at : at + 4])[0])


GOLDENS = [
    Golden(
        "classic Metadata v4 request, header v1",
        3,
        4,
        "request",
        _hex("""
            0000001b                                # size 27
            0003 0004 0000002a                      # api key 3, version 4, correlation id 42
            0004 6b636c69                           # client id "kcli" (int16 length)
            00000001                                # topics: int32 count 1
            0006 6f7264657273                       # name "orders"
            01                                      # allow_auto_topic_creation true
        """),
        {"topics": [{"name": "orders"}], "allow_auto_topic_creation": True},
    ),
    Golden(
        "classic Heartbeat v1 response, header v0",
        12,
        1,
        "response",
        _hex("0000000a 0000002a 00000064 0019"),  # size, correlation id, throttle 100 ms, error 25
        {"throttle_time_ms": 100, "error_code": 25},
    ),
    Golden(
        # confluent-kafka 2.16.2 (librdkafka 2.16.0), client.id "golden", captured from its first
        # frame to a listening socket: header v2 (classic client id, empty tag section), compact strings.
        "flexible ApiVersions v3 request from librdkafka",
        18,
        3,
        "request",
        _hex("""
            0000003f 0012 0003 00000001 0006 676f6c64656e 00
            17 636f6e666c75656e742d6b61666b612d707974686f6e
            16 322e31362e322d72646b61666b612d322e31362e30
            00
        """),
        {
            "client_software_name": "confluent-kafka-python",
            "client_software_version": "2.16.2-rdkafka-2.16.0",
        },
    ),
    Golden(
        "flexible Fetch v12 request, header v2, a known tagged field",
        1,
        12,
        "request",
        _hex("""
            0000005d                                # size 93
            0001 000c 00000009 0006 676f6c64656e 00 # Fetch v12, correlation id 9, "golden", header tags
            ffffffff 000001f4 00000001 00100000     # replica -1, max wait 500, min bytes 1, max bytes 1 MiB
            00 00000000 ffffffff                    # read uncommitted, session 0, session epoch -1
            02 02 74                                # topics: 1; topic "t"
            02 00000000 ffffffff                    # partitions: 1; partition 0, current leader epoch -1
            0000000000000005 ffffffff               # fetch offset 5, last fetched epoch -1
            ffffffffffffffff 00010000 00            # log start offset -1, partition max bytes 64 KiB; tags
            00                                      # topic tags
            01 01                                   # forgotten topics: none; rack id ""
            01 00 08 08 61626364656667              # tags: 1; tag 0 ClusterId (8 bytes) = "abcdefg"
        """),
        {
            "cluster_id": "abcdefg",
            "replica_id": -1,
            "max_wait_ms": 500,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {
                    "topic": "t",
                    "partitions": [
                        {
                            "partition": 0,
                            "current_leader_epoch": -1,
                            "fetch_offset": 5,
                            "last_fetched_epoch": -1,
                            "log_start_offset": -1,
                            "partition_max_bytes": 1 << 16,
                        }
                    ],
                }
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        },
    ),
    Golden(
        "flexible ApiVersions v3 response with tagged fields, header v0",
        18,
        3,
        "response",
        _hex("""
            00000036 0000002a                       # size 54, correlation id 42 (header v0 even when flexible)
            0000                                    # error code
            02 0012 0000 0004 00                    # api_keys: compact count 1+1; ApiVersions 0-4, no tags
            00000000                                # throttle
            03                                      # tagged fields: 3
            00 14 02 0e 6b726166742e76657273696f6e 0000 0001 00  # tag 0 SupportedFeatures (20 bytes):
                                                                  # [kraft.version 0-1]
            01 08 0000000000000007                  # tag 1 FinalizedFeaturesEpoch = 7
            03 01 01                                # tag 3 ZkMigrationReady = true
        """),
        {
            "error_code": 0,
            "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 4}],
            "throttle_time_ms": 0,
            "supported_features": [{"name": "kraft.version", "min_version": 0, "max_version": 1}],
            "finalized_features_epoch": 7,
            "finalized_features": [],
            "zk_migration_ready": True,
        },
    ),
    Golden(
        "flexible ConsumerGroupHeartbeat v0 response, header v1, a nullable struct and a uuid",
        68,
        0,
        "response",
        _hex("""
            00000034 0000002a 00                    # size 52, correlation id 42, header tags
            00000000 0000 00                        # throttle, error, error message null
            02 6d 00000003 00001388                 # member id "m", epoch 3, heartbeat interval 5000
            01                                      # assignment: present (int8 1; -1 is null)
            02 00112233445566778899aabbccddeeff     # topic partitions: 1; topic id
            03 00000000 00000001 00                 # partitions [0, 1]; tags
            00                                      # assignment tags
            00                                      # top-level tags
        """),
        {
            "throttle_time_ms": 0,
            "error_code": 0,
            "error_message": None,
            "member_id": "m",
            "member_epoch": 3,
            "heartbeat_interval_ms": 5000,
            "assignment": {
                "topic_partitions": [
                    {"topic_id": uuid.UUID("00112233-4455-6677-8899-aabbccddeeff"), "partitions": [0, 1]}
                ]
            },
        },
    ),
    Golden(
        "flexible Fetch v12 response, header v1, a struct in a tagged field",
        1,
        12,
        "response",
        _hex("""
            00000049 00000007 00                    # size 73, correlation id 7, header tags
            00000000 0000 00000000                  # throttle, error, session id
            02 02 74                                # responses: 1; topic "t"
            02                                      # partitions: 1
            00000000 0000                           # index 0, error 0
            000000000000000a 000000000000000a 0000000000000000  # hw 10, lso 10, log start 0
            00                                      # aborted_transactions null
            ffffffff                                # preferred read replica -1
            00                                      # records null
            01 00 0d 00000005 0000000000000008 00   # tag 0 DivergingEpoch {epoch 5, end offset 8}
            00                                      # topic tags
            00                                      # top-level tags
        """),
        {
            "throttle_time_ms": 0,
            "error_code": 0,
            "session_id": 0,
            "responses": [
                {
                    "topic": "t",
                    "partitions": [
                        {
                            "partition_index": 0,
                            "error_code": 0,
                            "high_watermark": 10,
                            "last_stable_offset": 10,
                            "log_start_offset": 0,
                            "diverging_epoch": {"epoch": 5, "end_offset": 8},
                            "current_leader": {"leader_id": -1, "leader_epoch": -1},
                            "snapshot_id": {"end_offset": -1, "epoch": -1},
                            "aborted_transactions": None,
                            "preferred_read_replica": -1,
                            "records": None,
                        }
                    ],
                }
            ],
        },
    ),
]


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.what)
def test_reference_against_independent_bytes(golden: Golden) -> None:
    _what, key, version, kind, frame, body = golden
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    ref = Api.of(key, version)
    correlation_id = golden.correlation_id
    if kind == "request":
        header, got = ref.decode_request(frame[4:])
        assert got == body
        assert ref.encode_request(version, correlation_id, header["client_id"], body) == frame
    else:
        header, got = ref.decode_response(version, frame[4:])
        assert header["correlation_id"] == correlation_id and got == body
        assert ref.encode_response(version, correlation_id, body) == frame


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.what)
def test_kcli_against_the_goldens(golden: Golden) -> None:
    """Where kcli implements the golden's version it reads the same body, and writes the same bytes
    unless the golden holds a tagged field kcli does not declare."""
    _what, key, version, kind, frame, body = golden
    if key not in APIS or not APIS[key].supports(version):
        pytest.skip(f"kcli does not implement api key {key} v{version}")
    fields, schema = Api.of(key, version).message(kind).fields, kcli_schema(key, kind)
    correlation_id = golden.correlation_id
    if kind == "request":
        req = decode_request(frame[4:])
        assert req.header.correlation_id == correlation_id
        got = req.body
    else:
        resp = decode_response(key, version, frame[4:])
        assert resp.correlation_id == correlation_id
        got = resp.body
    expected = from_kcli(fields, schema, version, to_kcli(fields, schema, version, body))
    assert from_kcli(fields, schema, version, got) == expected
    if kcli_unknown_tags(fields, schema, version, body) == body:
        ours = to_kcli(fields, schema, version, body)
        if kind == "request":
            assert encode_request(req.header, ours) == frame
        else:
            assert encode_response(key, version, correlation_id, ours) == frame


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.what)
def test_kafka_python_reads_the_goldens(golden: Golden) -> None:
    """A third implementation agrees that the hand-written bytes say what the goldens claim."""
    _what, key, version, kind, frame, body = golden
    cls = _kafka_python_class(key, kind)
    if cls is None:
        pytest.skip("kafka-python has no class for this message")
    start = len(frame) - len(Api.of(key, version).message(kind).encode(body, version))
    decoded = cls.decode(frame[start:], version=version).to_dict(json=False)
    assert decoded == _kafka_python_view(body, decoded)


def _kafka_python_class(key: int, kind: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.protocol import consumer, metadata  # type: ignore[import-untyped]
    classes = {
        (3, "request"): metadata.MetadataRequest,
        (12, "response"): consumer.HeartbeatResponse,
        (1, "request"): consumer.FetchRequest,
        (18, "request"): metadata.ApiVersionsRequest,
        (18, "response"): metadata.ApiVersionsResponse,
        (1, "response"): consumer.FetchResponse,
    }
    return classes.get((key, kind))


def _kafka_python_view(ours: Any, kp: Any) -> Any:
    """``ours`` as kafka-python shows it: a tagged struct left at its default is None there."""
    if isinstance(ours, dict):
        return {
            k: None if isinstance(v, dict) and kp.get(k) is None else _kafka_python_view(v, kp.get(k))
            for k, v in ours.items()
        }
    if isinstance(ours, list):
        return [_kafka_python_view(x, y) for x, y in zip(ours, kp, strict=True)]
    return ours


def test_reference_rejects_what_kafka_would() -> None:
    """The reference is strict where the golden comparison relies on it: trailing bytes, truncation,
    nulls where the version allows none, fields that do not exist."""
    meta = Message("MetadataRequest")
    good = meta.encode({"topics": [{"name": "t"}], "allow_auto_topic_creation": True}, 4)
    with pytest.raises(ValueError, match="trailing"):
        meta.decode(good + b"\x00", 4)
    with pytest.raises(ValueError, match="truncated"):
        meta.decode(good[:-1], 4)
    with pytest.raises(ValueError, match="null"):
        meta.encode({"topics": None}, 0)  # nullable from v1 only
    with pytest.raises(KeyError):
        meta.encode({"topicz": []}, 4)
    assert meta.encode({"topics": None}, 1) == b"\xff\xff\xff\xff"


def _kafka_python_messages() -> dict[str, Any]:
    """kafka-python's message classes by name; it builds each from the same JSON file, with its own code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # importing the modules defines the classes
        import kafka.protocol.admin  # type: ignore[import-untyped]  # noqa: F401
        import kafka.protocol.consumer  # type: ignore[import-untyped]  # noqa: F401
        import kafka.protocol.metadata  # type: ignore[import-untyped]  # noqa: F401
        import kafka.protocol.producer  # type: ignore[import-untyped]  # noqa: F401
        from kafka.protocol.api_message import ApiMessage  # type: ignore[import-untyped]

    def below(cls: Any) -> Iterator[Any]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return {c.__name__: c for c in below(ApiMessage) if c._class_version is None}


@pytest.mark.parametrize("name", sorted(_kafka_python_messages()))
def test_reference_agrees_with_kafka_python_on_every_kafka_message(name: str) -> None:
    """Every message kafka-python has, every version: what the reference writes, kafka-python reads and
    writes back to the same bytes (requests with their header v1/v2, responses as bodies).  This covers
    the types kcli's APIs do not use yet (float64, uint16, ...), across all of Kafka's messages."""
    cls = _kafka_python_messages()[name]
    msg = Message(name)
    api = Api.of(msg.api_key) if msg.api_key is not None else None
    for version in range(0, cls._valid_versions[1] + 1):
        for mode in MODES:
            value = sample(msg.fields, version, random.Random(f"kp-{name}-{version}-{mode}"), mode)
            if name == "ApiVersionsResponse":
                value["error_code"] = 0  # kafka-python reads any error answer as v0 (see test_protocol.py)
            if msg.js["type"] == "request" and api is not None:
                data = api.encode_request(version, 77, "kp", value)
                obj = cls.decode(data, version=version, header=True, framed=True)
                again = obj.encode(version=version, header=True, framed=True)
            else:
                data = msg.encode(value, version)
                obj = cls.decode(data, version=version)
                obj._header = None
                again = obj.encode(version=version)
            assert bytes(again) == data, f"{name} v{version} {mode}"
