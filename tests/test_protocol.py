"""Tests for kcli.protocol.

Round trips of every API/version, framing, malformed input, the ApiVersions fallback, the consumer
protocol and varints; then checks against independent sources:

1. Kafka's own JSON message definitions (bundled with kafka-python): for every API and version kcli
   implements, the field list -- names, types, nullability, defaults -- must match.
2. kafka-python's encoder/decoder: random messages of every API/version encoded by kcli decode to the
   same values with kafka-python and re-encode to the same bytes; plus hand-built kafka-python
   messages (new-style and old-style classes) compared byte for byte in both directions.
"""

from __future__ import annotations

import random
import struct
import uuid
import warnings
from typing import Any

import pytest
from support.kafka_json import in_range, load_json, snake

from kcli.errors import ProtocolError
from kcli.protocol import (
    APIS,
    SUPPORTED,
    ApiKey,
    ErrorCode,
    RequestError,
    RequestHeader,
    Struct,
    UnsupportedVersionError,
    api_versions_response,
    decode_assignment,
    decode_frame_size,
    decode_request,
    decode_request_header,
    decode_response,
    decode_subscription,
    decode_unsigned_varint,
    decode_varint,
    decode_varlong,
    encode_assignment,
    encode_request,
    encode_response,
    encode_subscription,
    encode_unsigned_varint,
    encode_varint,
    encode_varlong,
    error_name,
    error_response,
    is_retriable,
    parse_frame,
    peek_correlation_id,
    unsupported_version_response,
)
from kcli.protocol.consumer import ASSIGNMENT, SUBSCRIPTION
from kcli.protocol.schema import Array, Field, Nested, Schema
from kcli.protocol.types import BOOL, INT8, INT16, INT32, INT64, STRING, Bytes, Fixed, Records, String

with warnings.catch_warnings():
    # kafka-python (the reference implementation) uses deprecated importlib.resources calls
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.protocol import admin as kp_admin
    from kafka.protocol import consumer as kp_consumer
    from kafka.protocol import metadata as kp_metadata
    from kafka.protocol import producer as kp_producer
    from kafka.protocol.admin import transactions as kp_txn_admin
    from kafka.protocol.old import consumer_protocol as kp_old_consumer_protocol
    from kafka.protocol.old import fetch as kp_old_fetch
    from kafka.protocol.old import metadata as kp_old_metadata
    from kafka.protocol.old import produce as kp_old_produce
    from kafka.record.util import encode_varint as kp_encode_varint

# --- sample values generated from the schemas --------------------------------------------------------

_RANGES = {"b": 7, "h": 15, "i": 31, "q": 63}
_STRINGS = ["", "a", "orders", "tøpic-ü-🦀", "x" * 40, "group.with-dots_1"]


def sample_scalar(t: Any, nullable: bool, rng: random.Random) -> Any:
    if nullable and rng.random() < 0.25:
        return None
    if isinstance(t, Fixed):
        if t.code == "?":
            return rng.random() < 0.5
        if t.name == "uuid":
            return rng.choice([bytes(16), rng.randbytes(16)])
        bits = _RANGES[t.code]
        lo, hi = -(1 << bits), (1 << bits) - 1
        return rng.choice([0, -1, 1, lo, hi, rng.randint(lo, hi)])
    if isinstance(t, String):
        return rng.choice(_STRINGS)
    assert isinstance(t, Bytes)
    return rng.randbytes(rng.choice([0, 1, 7, 64]))


def sample(schema: Schema, version: int, rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A random value with exactly the fields ``schema`` has on the wire in ``version``."""
    out: dict[str, Any] = {}
    flexible = schema.is_flexible(version) if depth == 0 else True
    tagged = schema.tagged_for(version) if flexible else []
    for f in tagged:  # each tagged field is sent half the time, else left at its default (not sent)
        out[f.name] = f.default
    for f in schema.fields_for(version) + [f for f in tagged if rng.random() < 0.5]:
        nullable = f.nullable_in(version)
        t = f.type
        if isinstance(t, Nested):
            assert t.schema is not None
            out[f.name] = None if nullable and rng.random() < 0.25 else sample(t.schema, version, rng, depth + 1)
        elif isinstance(t, Array):
            if nullable and rng.random() < 0.25:
                out[f.name] = None
                continue
            n = rng.randint(0, 3 if depth < 2 else 1)
            if isinstance(t.item, Schema):
                out[f.name] = [sample(t.item, version, rng, depth + 1) for _ in range(n)]
            else:
                out[f.name] = [sample_scalar(t.item, False, rng) for _ in range(n)]
        elif isinstance(t, Nested):
            assert t.schema is not None
            out[f.name] = None if nullable and rng.random() < 0.25 else sample(t.schema, version, rng, depth + 1)
        else:
            out[f.name] = sample_scalar(t, nullable, rng)
    return out


def plain(value: Any) -> Any:
    """Structs/memoryviews -> dicts/bytes, for comparisons with ==."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


def restrict(decoded: Any, like: Any) -> Any:
    """``decoded`` limited to the keys present in ``like`` (decoded structs also carry defaults)."""
    if isinstance(like, dict):
        return {k: restrict(decoded[k], v) for k, v in like.items()}
    if isinstance(like, list):
        return [restrict(d, v) for d, v in zip(decoded, like, strict=True)]
    return plain(decoded)


ALL_CASES = [
    (api.key, v, kind)
    for api in APIS.values()
    for v in range(api.min_version, api.max_version + 1)
    for kind in ("request", "response")
]


def case_id(case: tuple[int, int, str]) -> str:
    key, v, kind = case
    return f"{APIS[key].name}-v{v}-{kind}"


def encode_case(key: int, version: int, kind: str, value: dict[str, Any], correlation_id: int = 42) -> bytes:
    if kind == "request":
        return encode_request(RequestHeader(key, version, correlation_id, "kcli-test"), value)
    return encode_response(key, version, correlation_id, value)


def decode_case(key: int, version: int, kind: str, payload: bytes) -> Struct:
    if kind == "request":
        req = decode_request(payload)
        assert req.header == RequestHeader(key, version, 42, "kcli-test")
        return req.body
    resp = decode_response(key, version, payload)
    assert resp.correlation_id == 42
    return resp.body


# --- the version table --------------------------------------------------------------------------------


def test_supported_table_is_what_the_broker_advertises() -> None:
    assert SUPPORTED == {
        18: (0, 4),
        29: (0, 3),
        30: (0, 3),
        31: (0, 3),
        3: (0, 13),
        0: (3, 11),
        1: (4, 17),
        2: (1, 8),
        19: (0, 7),
        20: (0, 6),
        37: (0, 3),
        32: (0, 4),
        33: (0, 2),
        44: (0, 1),
        10: (0, 5),
        11: (0, 9),
        14: (0, 5),
        12: (0, 4),
        13: (0, 5),
        8: (0, 9),
        9: (0, 9),
        16: (0, 5),
        15: (0, 5),
        42: (0, 2),
        22: (0, 5),
        23: (0, 4),
        24: (0, 4),
        25: (0, 4),
        26: (0, 4),
        27: (0, 1),
        28: (0, 4),
        47: (0, 0),
        61: (0, 0),
        65: (0, 0),
        66: (0, 1),
        35: (0, 4),
        60: (0, 1),
        21: (0, 2),
        43: (0, 2),
        45: (0, 0),
        46: (0, 0),
        75: (0, 0),
        68: (0, 1),
        69: (0, 0),
        17: (0, 1),
        36: (0, 2),
        50: (0, 0),
        51: (0, 0),
    }
    assert {int(k) for k in ApiKey} == set(SUPPORTED)


# --- round trips --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_round_trip_every_api_version(case: tuple[int, int, str]) -> None:
    key, version, kind = case
    api = APIS[key]
    schema = api.request if kind == "request" else api.response
    for seed in range(4):
        rng = random.Random(f"{key}-{version}-{kind}-{seed}")
        value = sample(schema, version, rng)
        frame = encode_case(key, version, kind, value)
        payload, used = parse_frame(frame)
        assert used == len(frame) and payload is not None
        decoded = decode_case(key, version, kind, payload)
        assert restrict(decoded, value) == plain(value)
        # every field of the API is there; those absent from this version hold their defaults
        assert set(decoded) == schema.names
        for f in schema.fields:
            if not f.present(version):
                assert decoded[f.name] == f.default
        # decoded structs re-encode to the same bytes
        assert encode_case(key, version, kind, decoded) == frame

    # An empty mapping encodes (all defaults) and decodes back to the defaults.
    frame = encode_case(key, version, kind, {})
    decoded = decode_case(key, version, kind, parse_frame(frame)[0])
    assert plain(decoded) == {f.name: f.default for f in schema.fields}


def test_struct_attribute_access() -> None:
    s = Struct(a=1, topics=[Struct(name="t")])
    assert s.a == 1 and s.topics[0].name == "t"
    s.b = 2
    assert s["b"] == 2
    del s.b
    assert "b" not in s
    with pytest.raises(AttributeError):
        _ = s.missing
    assert s == {"a": 1, "topics": [{"name": "t"}]}


def test_fields_absent_from_a_version_are_ignored_on_encode() -> None:
    body = {
        "topics": [{"name": "t"}],
        "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": True,
    }
    v1 = encode_request(RequestHeader(ApiKey.METADATA, 1, 1, None), body)
    assert v1 == encode_request(RequestHeader(ApiKey.METADATA, 1, 1, None), {"topics": [{"name": "t"}]})
    v8 = decode_request(parse_frame(encode_request(RequestHeader(ApiKey.METADATA, 8, 1, None), body))[0])
    assert v8.body.allow_auto_topic_creation is False and v8.body.include_topic_authorized_operations is True
    assert v8.header.client_id is None


def test_metadata_null_topics_from_v1() -> None:
    frame = encode_request(RequestHeader(ApiKey.METADATA, 1, 1, "c"), {"topics": None})
    assert decode_request(parse_frame(frame)[0]).body.topics is None
    with pytest.raises(ProtocolError, match="null"):
        encode_request(RequestHeader(ApiKey.METADATA, 0, 1, "c"), {"topics": None})


# --- golden bytes written out by hand from the protocol guide ------------------------------------------


def test_golden_metadata_request_v0() -> None:
    frame = encode_request(RequestHeader(ApiKey.METADATA, 0, 7, "c"), {"topics": [{"name": "x"}]})
    assert frame == (
        b"\x00\x00\x00\x12"  # size 18
        b"\x00\x03\x00\x00\x00\x00\x00\x07\x00\x01c"  # key 3, v0, corr 7, client "c"
        b"\x00\x00\x00\x01\x00\x01x"  # [ "x" ]
    )


def test_golden_heartbeat_response_v1() -> None:
    frame = encode_response(
        ApiKey.HEARTBEAT, 1, 9, {"throttle_time_ms": 5, "error_code": ErrorCode.REBALANCE_IN_PROGRESS}
    )
    assert frame == b"\x00\x00\x00\x0a" + b"\x00\x00\x00\x09" + b"\x00\x00\x00\x05" + b"\x00\x1b"


# --- records are opaque, zero-copy -------------------------------------------------------------------------


def test_produce_records_blob_is_not_copied_needlessly() -> None:
    blob = random.Random(1).randbytes(1 << 20)
    body = {
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": blob}]}],
    }
    parts: list = []
    APIS[ApiKey.PRODUCE].request.encode_into(body, 8, parts)
    assert any(p is blob for p in parts), "records must be referenced, not copied, until the final join"

    frame = encode_request(RequestHeader(ApiKey.PRODUCE, 8, 1, "p"), body)
    payload, used = parse_frame(frame)
    assert payload is not None and used == len(frame)
    records = decode_request(payload).body.topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records.obj is payload  # a view, not a copy
    assert records == blob


def test_records_accept_memoryview_and_bytearray() -> None:
    data = bytearray(b"abc")
    for rec in (data, memoryview(data), memoryview(bytes(data)), None):
        body = {
            "acks": 1,
            "timeout_ms": 1,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": rec}]}],
        }
        out = decode_request(parse_frame(encode_request(RequestHeader(0, 3, 1, "x"), body))[0])
        got = out.body.topic_data[0].partition_data[0].records
        assert (got is None) if rec is None else (bytes(got) == b"abc")


# --- malformed input --------------------------------------------------------------------------------


def _valid_payloads() -> list[tuple[int, int, str, bytes]]:
    out = []
    for key, version, kind in ALL_CASES:
        schema = APIS[key].request if kind == "request" else APIS[key].response
        rng = random.Random(f"trunc-{key}-{version}-{kind}")
        value = sample(schema, version, rng)
        payload = parse_frame(encode_case(key, version, kind, value))[0]
        assert payload is not None
        out.append((key, version, kind, payload))
    return out


def _decode_payload(key: int, version: int, kind: str, payload: bytes) -> Any:
    if kind == "request":
        return decode_request(payload)
    return decode_response(key, version, payload)


def test_every_truncation_raises_protocol_error() -> None:
    for key, version, kind, payload in _valid_payloads():
        for cut in range(len(payload)):
            try:
                _decode_payload(key, version, kind, payload[:cut])
            except ProtocolError:
                continue
            if key == ApiKey.API_VERSIONS and kind == "response" and cut == len(payload) - 4:
                continue  # without throttle_time_ms it is a valid v0 body, which clients must accept
            pytest.fail(f"{APIS[key].name} v{version} {kind} cut at {cut} decoded without error")


def test_trailing_bytes_raise_protocol_error_in_responses_only() -> None:
    """A response with bytes after its body is not what we asked for; a request may have some (Kafka's
    brokers ignore them, and librdkafka sends three after Metadata v13)."""
    for key, version, kind, payload in _valid_payloads()[:10]:
        if kind == "request":
            assert _decode_payload(key, version, kind, payload + b"\x00") == _decode_payload(key, version, kind, payload)
            continue
        with pytest.raises(ProtocolError, match="trailing"):
            _decode_payload(key, version, kind, payload + b"\x00")


def test_garbage_and_mutations_only_ever_raise_protocol_error() -> None:
    rng = random.Random(7)
    payloads = _valid_payloads()
    for key, version, kind, payload in payloads:
        candidates = [rng.randbytes(rng.randint(0, 64)) for _ in range(5)]
        for _ in range(10):
            mutated = bytearray(payload)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.choice(
                    [0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)]
                )
            candidates.append(bytes(mutated))
        for data in candidates:
            if kind == "request":
                data = payload[:8] + data[8:]  # keep the api key/version so the body decoder runs
            try:
                _decode_payload(key, version, kind, data)
            except ProtocolError:
                pass


def test_huge_array_count_is_rejected_without_allocating() -> None:
    # Metadata v0 request whose topic array claims 2**31-1 entries.
    payload = b"\x00\x03\x00\x00\x00\x00\x00\x01\x00\x00" + b"\x7f\xff\xff\xff"
    with pytest.raises(ProtocolError, match="cannot fit"):
        decode_request(payload)


@pytest.mark.parametrize(
    "body, error",
    [
        (b"\xff\xfe", "string length"),  # string length -2
        (b"\xff\xff", "string length"),  # null where not nullable
        (b"\x00\x02\xc3\x28", "malformed"),  # invalid UTF-8
    ],
)
def test_bad_strings(body: bytes, error: str) -> None:
    # FindCoordinator v0 request: one string (key).
    with pytest.raises(ProtocolError, match=error):
        decode_request(b"\x00\x0a\x00\x00\x00\x00\x00\x01\x00\x00" + body)


def test_bad_bytes_length() -> None:
    # SyncGroup v0 response: error_code int16, assignment bytes (not nullable).
    with pytest.raises(ProtocolError, match="bytes length"):
        decode_response(ApiKey.SYNC_GROUP, 0, b"\x00\x00\x00\x01" + b"\x00\x00" + b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError, match="truncated"):
        decode_response(ApiKey.SYNC_GROUP, 0, b"\x00\x00\x00\x01" + b"\x00\x00" + b"\x00\x00\x00\x09abc")


def test_error_messages_name_the_field() -> None:
    payload = parse_frame(
        encode_response(
            ApiKey.FETCH,
            11,
            1,
            {"responses": [{"topic": "t", "partitions": [{"partition_index": 0, "records": b"x" * 10}]}]},
        )
    )[0]
    assert payload is not None
    with pytest.raises(ProtocolError) as exc:
        decode_response(ApiKey.FETCH, 11, payload[:-3])
    assert "Fetch v11 response: responses[0].partitions[0].records: truncated" in str(exc.value)


@pytest.mark.parametrize(
    "body, error",
    [
        ({"group_id": "g", "generation_id": 1, "member_id": "m", "bogus": 1}, "unknown field"),
        ({"group_id": 5, "generation_id": 1, "member_id": "m"}, "group_id: expected str"),
        ({"group_id": "g", "generation_id": "1", "member_id": "m"}, "generation_id: bad value"),
        ({"group_id": "g", "generation_id": 1 << 40, "member_id": "m"}, "generation_id"),
        ({"group_id": None, "generation_id": 1, "member_id": "m"}, "null is not allowed"),
        ({"group_id": "g" * 40000, "generation_id": 1, "member_id": "m"}, "longer than 32767"),
        ([("group_id", "g")], "expected a mapping"),
    ],
)
def test_bad_values_on_encode(body: Any, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        encode_request(RequestHeader(ApiKey.HEARTBEAT, 0, 1, "c"), body)


def test_bad_arrays_on_encode() -> None:
    with pytest.raises(ProtocolError, match="expected a list"):
        encode_request(RequestHeader(ApiKey.DESCRIBE_GROUPS, 0, 1, "c"), {"groups": "g1"})
    with pytest.raises(ProtocolError, match=r"groups\[1\]: expected str"):
        encode_request(RequestHeader(ApiKey.DESCRIBE_GROUPS, 0, 1, "c"), {"groups": ["a", 2]})
    with pytest.raises(ProtocolError, match=r"topics\[0\]\.partition_indexes"):
        encode_request(
            RequestHeader(ApiKey.OFFSET_FETCH, 1, 1, "c"),
            {"group_id": "g", "topics": [{"name": "t", "partition_indexes": [1, "2"]}]},
        )
    # tuples and other iterables are accepted for arrays
    frame = encode_request(RequestHeader(ApiKey.DESCRIBE_GROUPS, 0, 1, "c"), {"groups": ("a", "b")})
    assert decode_request(parse_frame(frame)[0]).body.groups == ["a", "b"]


def test_unsupported_versions_and_keys() -> None:
    with pytest.raises(UnsupportedVersionError):
        encode_request(RequestHeader(ApiKey.PRODUCE, 2, 1, "c"), {})
    with pytest.raises(ProtocolError):
        encode_response(ApiKey.FETCH, 18, 1, {})
    with pytest.raises(ProtocolError):
        decode_response(ApiKey.FETCH, 3, b"\x00\x00\x00\x01")
    with pytest.raises(ProtocolError, match="unsupported api key"):
        encode_response(99, 0, 1, {})
    unknown_key = b"\x00\x63\x00\x00\x00\x00\x00\x05\xff\xff"
    with pytest.raises(UnsupportedVersionError) as exc:
        decode_request(unknown_key)
    assert exc.value.header == RequestHeader(99, 0, 5, None)
    # no layout to answer an unknown key in: header v0 and the error code alone, the ApiVersions v0 shape
    assert unsupported_version_response(exc.value.header) == struct.pack(">iih", 6, 5, 35)


# --- framing --------------------------------------------------------------------------------------------


def test_parse_frame_incremental_and_back_to_back() -> None:
    f1 = encode_request(RequestHeader(ApiKey.LIST_GROUPS, 0, 1, "a"), {})
    f2 = encode_request(RequestHeader(ApiKey.LIST_GROUPS, 1, 2, "b"), {})
    stream = bytearray(f1 + f2)
    for cut in range(len(f1)):
        assert parse_frame(stream[:cut]) == (None, 0)
    p1, used1 = parse_frame(stream)
    assert used1 == len(f1) and isinstance(p1, bytes)
    del stream[:used1]  # the payload is a copy, so the buffer may shrink at once
    p2, used2 = parse_frame(memoryview(bytes(stream)))
    assert used2 == len(f2)
    assert decode_request(p1).header.correlation_id == 1
    assert decode_request(p2).header.correlation_id == 2


def test_oversize_and_negative_frames_are_rejected() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        parse_frame(struct.pack(">i", 1001), max_frame_size=1000)
    with pytest.raises(ProtocolError, match="exceeds"):
        parse_frame(struct.pack(">i", 200 * 1024 * 1024) + b"x")  # default limit is 100 MiB
    with pytest.raises(ProtocolError, match="negative"):
        parse_frame(b"\xff\xff\xff\xfe")
    assert parse_frame(struct.pack(">i", 1000) + b"x" * 1000, max_frame_size=1000)[1] == 1004
    assert decode_frame_size(b"\x00\x00\x01\x00") == 256
    with pytest.raises(ProtocolError):
        decode_frame_size(b"\x00\x00", 10)


def test_request_header_round_trip_and_errors() -> None:
    frame = encode_request(RequestHeader(ApiKey.API_VERSIONS, 2, -5, "ü-client"), {})
    hdr, pos = decode_request_header(parse_frame(frame)[0])  # type: ignore[arg-type]
    assert hdr == RequestHeader(18, 2, -5, "ü-client") and pos == len(frame) - 4
    for bad in (
        b"",
        b"\x00\x12\x00\x00\x00\x00",
        b"\x00\x12\x00\x00\x00\x00\x00\x01",
        b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05ab",
    ):
        with pytest.raises(ProtocolError):
            decode_request_header(bad)


def test_peek_correlation_id() -> None:
    payload = parse_frame(encode_response(ApiKey.HEARTBEAT, 0, 123, {}))[0]
    assert peek_correlation_id(payload) == 123  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        peek_correlation_id(b"\x00")


# --- ApiVersions negotiation ---------------------------------------------------------------------------


def _flexible_api_versions_request(correlation_id: int, version: int = 5) -> bytes:
    """What librdkafka/Java send first: ApiVersions v3+ (here a v5 kcli does not know yet), request
    header v2, compact body."""
    header = (
        struct.pack(">hhi", 18, version, correlation_id) + b"\x00\x07rdkafka" + b"\x00"
    )  # + empty tagged fields
    body = b"\x0blibrdkafka" + b"\x062.3.0" + b"\x00"  # compact strings (len+1) + tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def test_api_versions_v3_request_decodes_client_software() -> None:
    payload, _ = parse_frame(_flexible_api_versions_request(7, 3))
    req = decode_request(payload)  # type: ignore[arg-type]
    assert req.header == RequestHeader(18, 3, 7, "rdkafka")
    assert (req.body.client_software_name, req.body.client_software_version) == ("librdkafka", "2.3.0")


def test_api_versions_v5_falls_back_to_v0_unsupported_version() -> None:
    payload, _ = parse_frame(_flexible_api_versions_request(77))
    assert payload is not None
    with pytest.raises(UnsupportedVersionError) as exc:
        decode_request(payload)
    assert exc.value.header == RequestHeader(18, 5, 77, "rdkafka")
    answer = unsupported_version_response(exc.value.header)
    assert answer is not None
    resp = decode_response(ApiKey.API_VERSIONS, 0, parse_frame(answer)[0])  # type: ignore[arg-type]
    assert resp.correlation_id == 77
    assert resp.body.error_code == ErrorCode.UNSUPPORTED_VERSION == 35
    assert resp.body.api_keys == [{"api_key": 18, "min_version": 0, "max_version": 4}]
    # header v0 + v0 body: corr id, error code, one-element array, nothing else
    assert answer == struct.pack(">iihihhh", 16, 77, 35, 1, 18, 0, 4)


def test_client_reads_v0_error_body_for_newer_api_versions_request() -> None:
    """A broker that rejects our ApiVersions v3 answers with a v0 body; the client must read it."""
    answer = unsupported_version_response(RequestHeader(ApiKey.API_VERSIONS, 3, 5, "kcli"))
    assert answer is not None
    resp = decode_response(ApiKey.API_VERSIONS, 3, parse_frame(answer)[0])  # type: ignore[arg-type]
    assert resp.body.error_code == 35 and resp.body.api_keys[0].max_version == 4
    with pytest.raises(ProtocolError):
        decode_response(ApiKey.API_VERSIONS, 3, b"\x00\x00\x00\x05\x00")


def test_api_versions_response_advertises_supported_table() -> None:
    frame = api_versions_response(3, 2, throttle_time_ms=0)
    body = decode_response(ApiKey.API_VERSIONS, 2, parse_frame(frame)[0]).body  # type: ignore[arg-type]
    assert body.error_code == 0
    assert {e.api_key: (e.min_version, e.max_version) for e in body.api_keys} == SUPPORTED


def test_unsupported_version_of_other_apis_gets_an_error_answer() -> None:
    """Fetch v18 (not served): the body reads with kcli's schema, and the answer at v18 names each
    topic id and partition with UNSUPPORTED_VERSION, the top-level error code too."""
    tid = bytes(range(16))
    body = {
        "max_wait_ms": 1,
        "min_bytes": 1,
        "topics": [{"topic_id": tid, "partitions": [{"partition": 3, "fetch_offset": 0, "partition_max_bytes": 1}]}],
    }
    frame = APIS[ApiKey.FETCH].request.encode(body, 18)
    payload = struct.pack(">hhi", 1, 18, 9) + b"\x00\x01c\x00" + frame
    with pytest.raises(UnsupportedVersionError) as exc:
        decode_request(payload)
    answer = error_response(exc.value.header, exc.value.error_code, exc.value.body)
    assert answer is not None
    resp = APIS[ApiKey.FETCH].response.decode(parse_frame(answer)[0][5:], 18)  # type: ignore[index]
    assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert resp.responses[0].topic_id == tid
    assert [(p.partition_index, p.error_code) for p in resp.responses[0].partitions] == [(3, 35)]


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c[2] == "request"], ids=case_id)
def test_error_response_answers_every_api_version(case: tuple[int, int, str]) -> None:
    """The one generic error answer: for any request of any API and version, a response of that version
    that decodes, carries the error code wherever the response has one, and answers each topic of the
    request where the response lists topics."""
    key, version, _ = case
    api = APIS[key]
    request = api.request.decode(api.request.encode(sample(api.request, version, random.Random(key)), version), version)
    answer = error_response(RequestHeader(key, version, 3, "c"), ErrorCode.INVALID_REQUEST, request)
    assert answer is not None
    body = decode_response(key, version, parse_frame(answer)[0]).body  # type: ignore[arg-type]
    codes = _error_codes(api.response, version, body)
    assert set(codes) == ({ErrorCode.INVALID_REQUEST} if codes else set())
    if any(f.name == "error_code" for f in api.response.fields_for(version)):
        assert codes
    asked = request.get("topics") or request.get("topic_data") or []
    answered = body.get("topics") or body.get("responses") or []
    if asked and any(f.name in ("topics", "responses") for f in api.response.fields_for(version)):
        assert len(answered) == len(asked)


def _error_codes(schema: Schema, version: int, value: Any) -> list[int]:
    """Every error code on the wire in a decoded ``value`` of ``schema``."""
    out: list[int] = []
    for f in schema.fields_for(version):
        if f.name == "error_code":
            out.append(value[f.name])
        elif isinstance(f.type, Array) and isinstance(f.type.item, Schema):
            for item in value[f.name] or []:
                out += _error_codes(f.type.item, version, item)
    return out


def test_truncated_flexible_request_gets_invalid_request_answer() -> None:
    """A Metadata v12 body cut short: the header reads, so the answer is INVALID_REQUEST at v12 (top-level
    error code, no topics), which kcli's and Kafka's clients can read."""
    frame = encode_request(RequestHeader(ApiKey.METADATA, 13, 4, "c"), {"topics": [{"name": "orders"}]})
    payload = parse_frame(frame)[0][:-3]  # type: ignore[index]
    with pytest.raises(RequestError) as exc:
        decode_request(payload)
    assert exc.value.error_code == ErrorCode.INVALID_REQUEST
    answer = error_response(exc.value.header, exc.value.error_code, exc.value.body)
    resp = decode_response(ApiKey.METADATA, 13, parse_frame(answer)[0])  # type: ignore[arg-type]
    assert resp.correlation_id == 4 and resp.body.error_code == ErrorCode.INVALID_REQUEST
    assert resp.body.topics == []


# --- error codes --------------------------------------------------------------------------------------


def test_error_codes() -> None:
    expected = {
        "NONE": 0,
        "OFFSET_OUT_OF_RANGE": 1,
        "CORRUPT_MESSAGE": 2,
        "UNKNOWN_TOPIC_OR_PARTITION": 3,
        "INVALID_FETCH_SIZE": 4,
        "LEADER_NOT_AVAILABLE": 5,
        "NOT_LEADER_OR_FOLLOWER": 6,
        "REQUEST_TIMED_OUT": 7,
        "MESSAGE_TOO_LARGE": 10,
        "COORDINATOR_NOT_AVAILABLE": 15,
        "NOT_COORDINATOR": 16,
        "INVALID_TOPIC_EXCEPTION": 17,
        "RECORD_LIST_TOO_LARGE": 18,
        "NOT_ENOUGH_REPLICAS": 19,
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND": 20,
        "ILLEGAL_GENERATION": 22,
        "INCONSISTENT_GROUP_PROTOCOL": 23,
        "UNKNOWN_MEMBER_ID": 25,
        "INVALID_SESSION_TIMEOUT": 26,
        "REBALANCE_IN_PROGRESS": 27,
        "UNSUPPORTED_VERSION": 35,
        "TOPIC_ALREADY_EXISTS": 36,
        "INVALID_PARTITIONS": 37,
        "INVALID_REPLICATION_FACTOR": 38,
        "INVALID_CONFIG": 40,
        "NOT_CONTROLLER": 41,
        "INVALID_REQUEST": 42,
        "UNKNOWN_SERVER_ERROR": -1,
        "NON_EMPTY_GROUP": 68,
        "GROUP_ID_NOT_FOUND": 69,
        "FENCED_LEADER_EPOCH": 74,
        "UNKNOWN_LEADER_EPOCH": 75,
        "OFFSET_NOT_AVAILABLE": 78,
        "MEMBER_ID_REQUIRED": 79,
    }
    for name, code in expected.items():
        assert ErrorCode[name] == code
        assert error_name(code) == name
    assert error_name(9999) == "UNKNOWN_ERROR_CODE_9999"
    assert is_retriable(ErrorCode.NOT_LEADER_OR_FOLLOWER) and not is_retriable(ErrorCode.TOPIC_ALREADY_EXISTS)


# --- consumer protocol --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_subscription_round_trip(version: int) -> None:
    for seed in range(3):
        value = sample(SUBSCRIPTION, version, random.Random(seed))
        data = encode_subscription(value, version)
        decoded = decode_subscription(data)
        assert decoded.version == version
        assert restrict(decoded, value) == plain(value)
        assert encode_subscription(decoded) == data  # "version" in the struct is honoured


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_assignment_round_trip(version: int) -> None:
    value = {"assigned_partitions": [{"topic": "t", "partitions": [0, 2]}], "user_data": b"u"}
    decoded = decode_assignment(encode_assignment(value, version))
    assert decoded.version == version and plain(decoded) == {**value, "version": version}


def test_consumer_protocol_golden_v1() -> None:
    data = encode_subscription({"topics": ["a"], "owned_partitions": [{"topic": "a", "partitions": [3]}]})
    assert data == (
        b"\x00\x01"  # version 1
        b"\x00\x00\x00\x01\x00\x01a"  # topics ["a"]
        b"\xff\xff\xff\xff"  # user_data null
        b"\x00\x00\x00\x01\x00\x01a\x00\x00\x00\x01\x00\x00\x00\x03"  # owned [a: [3]]
    )


def test_consumer_protocol_tolerates_newer_versions() -> None:
    v3 = encode_subscription({"topics": ["a", "b"], "generation_id": 4, "rack_id": "r1"}, 3)
    future = b"\x00\x09" + v3[2:] + b"\x00\x00\x00\x2a new fields we do not know"
    decoded = decode_subscription(future)
    assert decoded.version == 9 and decoded.topics == ["a", "b"] and decoded.rack_id == "r1"
    a = decode_assignment(b"\x00\x07" + encode_assignment({"assigned_partitions": []}, 0)[2:] + b"extra")
    assert a.version == 7 and a.assigned_partitions == [] and a.user_data is None
    # v0 decoded: fields of later versions hold defaults
    v0 = decode_subscription(encode_subscription({"topics": ["x"]}, 0))
    assert v0.owned_partitions == [] and v0.generation_id == -1 and v0.rack_id is None


def test_consumer_protocol_errors() -> None:
    assert decode_assignment(b"") == {"version": 0, "assigned_partitions": [], "user_data": None}
    for bad in (b"", b"\x00", b"\xff\xff\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x05"):
        with pytest.raises(ProtocolError):
            decode_subscription(bad)
    with pytest.raises(ProtocolError):
        encode_subscription({"topics": []}, 4)
    with pytest.raises(ProtocolError):
        decode_assignment(b"\x00\x00\x00\x00\x00\x01\x00")


# --- schema machinery ---------------------------------------------------------------------------------


def test_schema_rejects_bad_definitions() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Schema("S", [Field("a", INT8), Field("a", INT16)])
    with pytest.raises(ValueError, match="shadow"):
        Schema("S", [Field("items", INT8)])
    with pytest.raises(ValueError, match="nullable"):
        Field("x", INT32, nullable="0+")


def test_fixed_runs_and_versions() -> None:
    s = Schema(
        "S",
        [
            Field("a", INT8),
            Field("b", INT64, "1+", default=-1),
            Field("c", BOOL, "2-3"),
            Field("d", STRING, "1", nullable="1"),
            Field("e", Array(INT16), "3+", nullable="3+"),
        ],
    )
    assert s.decode(s.encode({"a": -3}, 0), 0) == {"a": -3, "b": -1, "c": False, "d": "", "e": []}
    v1 = s.encode({"a": 1, "b": 2, "d": None}, 1)
    assert v1 == b"\x01" + b"\x00" * 7 + b"\x02" + b"\xff\xff"
    assert s.decode(s.encode({"a": 1, "c": True, "e": None}, 3), 3).e is None
    with pytest.raises(ProtocolError, match="trailing"):
        s.decode(v1 + b"\x00", 1)
    assert s.decode(v1 + b"\x00", 1, allow_trailing=True).d is None


# --- varints --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, encoded",
    [
        (0, b"\x00"),
        (-1, b"\x01"),
        (1, b"\x02"),
        (-64, b"\x7f"),
        (64, b"\x80\x01"),
        (300, b"\xd8\x04"),
        (-(1 << 31), b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_varint_known_values(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))
    assert encode_varlong(value) == encoded
    assert decode_varlong(b"xx" + encoded, 2) == (value, 2 + len(encoded))


def test_varint_boundaries_and_errors() -> None:
    for v in (0, 1, -1, 63, -64, 8191, -8192, (1 << 31) - 1, -(1 << 31)):
        assert decode_varint(encode_varint(v)) == (v, len(encode_varint(v)))
    for v in ((1 << 63) - 1, -(1 << 63), 1 << 40, -(1 << 40)):
        assert decode_varlong(encode_varlong(v))[0] == v
    assert len(encode_varlong(-(1 << 63))) == 10
    assert decode_unsigned_varint(encode_unsigned_varint(1 << 20)) == (1 << 20, 3)
    with pytest.raises(ProtocolError):
        encode_varint(1 << 31)
    with pytest.raises(ProtocolError):
        encode_varlong(1 << 63)
    with pytest.raises(ProtocolError):
        encode_unsigned_varint(-1)
    with pytest.raises(ProtocolError, match="truncated"):
        decode_varint(b"\x80\x80")
    with pytest.raises(ProtocolError, match="longer"):
        decode_varint(b"\xff\xff\xff\xff\xff\x01")
    with pytest.raises(ProtocolError, match="range"):
        decode_varint(b"\xff\xff\xff\xff\x7f")
    with pytest.raises(ProtocolError, match="longer"):
        decode_varlong(b"\xff" * 11)


# --- 1. field layouts against Kafka's JSON definitions ------------------------------------------------

# kcli names that differ from the JSON's (JSON name -> kcli name).
RENAMED = {
    ("OffsetCommitRequest", "GenerationIdOrMemberEpoch"): "generation_id",
    # the classic AddPartitionsToTxn fields lose the prefix that tells them from v4's batch
    ("AddPartitionsToTxnRequest", "V3AndBelowTransactionalId"): "transactional_id",
    ("AddPartitionsToTxnRequest", "V3AndBelowProducerId"): "producer_id",
    ("AddPartitionsToTxnRequest", "V3AndBelowProducerEpoch"): "producer_epoch",
    ("AddPartitionsToTxnRequest", "V3AndBelowTopics"): "topics",
    ("AddPartitionsToTxnResponse", "ResultsByTopicV3AndBelow"): "results_by_topic",
}

# Deliberate default differences (schema name, field) -> kcli default; each is commented at its definition.
DEFAULT_OVERRIDES = {
    ("ListOffsetsRequest", "replica_id"): -1,
    ("InitProducerIdRequest", "transactional_id"): None,
    ("CreateTopicsResponse.topics", "error_message"): None,
    ("FindCoordinatorResponse", "error_message"): None,
    ("FindCoordinatorResponse.coordinators", "error_message"): None,
}


def json_default(jf: dict[str, Any], jtype: str) -> Any:
    d = jf.get("default")
    if jtype.startswith("[]"):
        return None if d == "null" else []
    if "fields" in jf:  # a struct: null if it may be null, else the struct of its fields' defaults
        if jf.get("nullableVersions"):
            return None
        return {snake(sub["name"]): json_default(sub, sub["type"]) for sub in jf["fields"]}
    if d is None:
        return {"bool": False, "string": "", "bytes": b"", "records": None, "uuid": bytes(16)}.get(jtype, 0)
    if d == "null":
        return None
    if jtype == "bool":
        return d in ("true", True)
    if jtype == "string":
        return d
    return int(d, 0) if isinstance(d, str) else int(d)


def type_name(t: Any) -> str:
    if isinstance(t, Records):
        return "records"
    if isinstance(t, Fixed | String | Bytes):
        return t.name
    raise AssertionError(t)


def compare_fields(schema: Schema, jfields: list[dict[str, Any]], version: int, top: str) -> None:
    """Untagged fields in wire order, then the tagged ones by tag (each with its tag)."""
    present = [jf for jf in jfields if in_range(jf["versions"], version)]
    wire = [jf for jf in present if "taggedVersions" not in jf]
    tagged = sorted((jf for jf in present if "taggedVersions" in jf), key=lambda jf: int(jf["tag"]))
    ours = schema.fields_for(version)
    where = f"{schema.name} v{version}"
    assert [RENAMED.get((top, jf["name"]), snake(jf["name"])) for jf in wire] == [f.name for f in ours], where
    assert [(snake(jf["name"]), int(jf["tag"])) for jf in tagged] == [
        (f.name, f.tag) for f in schema.tagged_for(version)
    ], f"{where} tagged fields"
    for jf in tagged:
        assert jf["taggedVersions"] == jf["versions"], f"{where} {jf['name']}: tagged in only some versions"
    for jf, f in zip(wire + tagged, ours + schema.tagged_for(version), strict=True):
        jtype = jf["type"]
        assert in_range(jf.get("nullableVersions"), version) == f.nullable_in(version), (
            f"{where} {f.name} nullable"
        )
        expected_default = DEFAULT_OVERRIDES.get((schema.name, f.name), json_default(jf, jtype))
        assert f.default == expected_default, f"{where} {f.name} default"
        assert "flexibleVersions" not in jf, f"{where} {f.name}: a field-level flexible range"
        if "fields" in jf and not jtype.startswith("[]"):
            assert isinstance(f.type, Nested) and f.type.schema is not None, f"{where} {f.name}"
            compare_fields(f.type.schema, jf["fields"], version, top)
        elif jtype.startswith("[]"):
            assert isinstance(f.type, Array), f"{where} {f.name}"
            item = f.type.item
            if "fields" in jf:
                assert isinstance(item, Schema)
                compare_fields(item, jf["fields"], version, top)
            else:
                assert type_name(item) == jtype[2:], f"{where} {f.name}"
        else:
            assert type_name(f.type) == jtype, f"{where} {f.name}"


@pytest.mark.parametrize("key", list(APIS), ids=lambda k: APIS[k].name)
def test_fields_match_kafka_json_definitions(key: int) -> None:
    api = APIS[key]
    for kind, schema in (("Request", api.request), ("Response", api.response)):
        js = load_json(api.name + kind)
        assert js.get("apiKey") == key
        for v in range(api.min_version, api.max_version + 1):
            assert schema.is_flexible(v) == in_range(js["flexibleVersions"], v), f"{schema.name} v{v} flexible"
            compare_fields(schema, js["fields"], v, schema.name)


def test_headers_match_kafka_json_definitions() -> None:
    """Request header v2 / response header v1 are the flexible ones; the client id keeps its classic
    nullable string in every header version (``"flexibleVersions": "none"``), as frames.py writes it."""
    request, response = load_json("RequestHeader"), load_json("ResponseHeader")
    assert request["flexibleVersions"] == "2+" and response["flexibleVersions"] == "1+"
    assert [(f["name"], f["type"]) for f in request["fields"]] == [
        ("RequestApiKey", "int16"),
        ("RequestApiVersion", "int16"),
        ("CorrelationId", "int32"),
        ("ClientId", "string"),
    ]
    client_id = request["fields"][3]
    assert (client_id["nullableVersions"], client_id["flexibleVersions"]) == ("1+", "none")
    assert [(f["name"], f["type"]) for f in response["fields"]] == [("CorrelationId", "int32")]


def test_consumer_protocol_matches_kafka_json_definitions() -> None:
    for name, schema in (
        ("ConsumerProtocolSubscription", SUBSCRIPTION),
        ("ConsumerProtocolAssignment", ASSIGNMENT),
    ):
        js = load_json(name)
        for v in range(0, 4):
            # JSON names the owned/assigned partition entries TopicPartition{Topic, Partitions}
            compare_fields(schema, js["fields"], v, schema.name)


# --- 2. kafka-python decodes what we encode, and encodes the same bytes -------------------------------

KP_CLASSES = {
    ApiKey.PRODUCE: (kp_producer.ProduceRequest, kp_producer.ProduceResponse),
    ApiKey.FETCH: (kp_consumer.FetchRequest, kp_consumer.FetchResponse),
    ApiKey.LIST_OFFSETS: (kp_consumer.ListOffsetsRequest, kp_consumer.ListOffsetsResponse),
    ApiKey.METADATA: (kp_metadata.MetadataRequest, kp_metadata.MetadataResponse),
    ApiKey.OFFSET_COMMIT: (kp_consumer.OffsetCommitRequest, kp_consumer.OffsetCommitResponse),
    ApiKey.OFFSET_FETCH: (kp_consumer.OffsetFetchRequest, kp_consumer.OffsetFetchResponse),
    ApiKey.FIND_COORDINATOR: (kp_metadata.FindCoordinatorRequest, kp_metadata.FindCoordinatorResponse),
    ApiKey.JOIN_GROUP: (kp_consumer.JoinGroupRequest, kp_consumer.JoinGroupResponse),
    ApiKey.HEARTBEAT: (kp_consumer.HeartbeatRequest, kp_consumer.HeartbeatResponse),
    ApiKey.LEAVE_GROUP: (kp_consumer.LeaveGroupRequest, kp_consumer.LeaveGroupResponse),
    ApiKey.SYNC_GROUP: (kp_consumer.SyncGroupRequest, kp_consumer.SyncGroupResponse),
    ApiKey.DESCRIBE_GROUPS: (kp_admin.DescribeGroupsRequest, kp_admin.DescribeGroupsResponse),
    ApiKey.LIST_GROUPS: (kp_admin.ListGroupsRequest, kp_admin.ListGroupsResponse),
    ApiKey.API_VERSIONS: (kp_metadata.ApiVersionsRequest, kp_metadata.ApiVersionsResponse),
    ApiKey.CREATE_TOPICS: (kp_admin.CreateTopicsRequest, kp_admin.CreateTopicsResponse),
    ApiKey.DELETE_TOPICS: (kp_admin.DeleteTopicsRequest, kp_admin.DeleteTopicsResponse),
    ApiKey.INIT_PRODUCER_ID: (kp_producer.InitProducerIdRequest, kp_producer.InitProducerIdResponse),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (
        kp_consumer.OffsetForLeaderEpochRequest,
        kp_consumer.OffsetForLeaderEpochResponse,
    ),
    ApiKey.CREATE_PARTITIONS: (kp_admin.CreatePartitionsRequest, kp_admin.CreatePartitionsResponse),
    ApiKey.DELETE_GROUPS: (kp_admin.DeleteGroupsRequest, kp_admin.DeleteGroupsResponse),
    ApiKey.ADD_PARTITIONS_TO_TXN: (kp_producer.AddPartitionsToTxnRequest, kp_producer.AddPartitionsToTxnResponse),
    ApiKey.ADD_OFFSETS_TO_TXN: (kp_producer.AddOffsetsToTxnRequest, kp_producer.AddOffsetsToTxnResponse),
    ApiKey.END_TXN: (kp_producer.EndTxnRequest, kp_producer.EndTxnResponse),
    ApiKey.WRITE_TXN_MARKERS: (kp_producer.WriteTxnMarkersRequest, kp_producer.WriteTxnMarkersResponse),
    ApiKey.TXN_OFFSET_COMMIT: (kp_producer.TxnOffsetCommitRequest, kp_producer.TxnOffsetCommitResponse),
    ApiKey.OFFSET_DELETE: (kp_consumer.OffsetDeleteRequest, kp_consumer.OffsetDeleteResponse),
    ApiKey.DESCRIBE_PRODUCERS: (kp_txn_admin.DescribeProducersRequest, kp_txn_admin.DescribeProducersResponse),
    ApiKey.DESCRIBE_TRANSACTIONS: (kp_txn_admin.DescribeTransactionsRequest, kp_txn_admin.DescribeTransactionsResponse),
    ApiKey.LIST_TRANSACTIONS: (kp_txn_admin.ListTransactionsRequest, kp_txn_admin.ListTransactionsResponse),
    ApiKey.DESCRIBE_CLUSTER: (kp_admin.DescribeClusterRequest, kp_admin.DescribeClusterResponse),
    ApiKey.DESCRIBE_LOG_DIRS: (kp_admin.DescribeLogDirsRequest, kp_admin.DescribeLogDirsResponse),
    ApiKey.DESCRIBE_CONFIGS: (kp_admin.DescribeConfigsRequest, kp_admin.DescribeConfigsResponse),
    ApiKey.ALTER_CONFIGS: (kp_admin.AlterConfigsRequest, kp_admin.AlterConfigsResponse),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (
        kp_admin.IncrementalAlterConfigsRequest,
        kp_admin.IncrementalAlterConfigsResponse,
    ),
    ApiKey.DELETE_RECORDS: (kp_admin.DeleteRecordsRequest, kp_admin.DeleteRecordsResponse),
    ApiKey.ELECT_LEADERS: (kp_admin.ElectLeadersRequest, kp_admin.ElectLeadersResponse),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (
        kp_admin.AlterPartitionReassignmentsRequest,
        kp_admin.AlterPartitionReassignmentsResponse,
    ),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (
        kp_admin.ListPartitionReassignmentsRequest,
        kp_admin.ListPartitionReassignmentsResponse,
    ),
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: (
        kp_admin.DescribeTopicPartitionsRequest,
        kp_admin.DescribeTopicPartitionsResponse,
    ),
}

# kafka-python patches these int32 fields into "bitfield" sets (and renames two of them).
KP_RENAMES = {
    "topic_authorized_operations": "authorized_operations",
    "cluster_authorized_operations": "authorized_operations",
    "generation_id": "generation_id_or_member_epoch",
}
BITFIELDS = {"topic_authorized_operations", "cluster_authorized_operations", "authorized_operations"}


UUID_FIELDS = {"topic_id", "replica_directory_id"}
def _struct_defaults() -> dict[str, Any]:
    """Tagged struct fields that are never null, by name -> their default (Kafka's: the struct of its
    fields' defaults; kafka-python reads such a field that was not sent as None)."""
    out: dict[str, Any] = {}

    def walk(schema: Schema) -> None:
        for f in schema.fields:
            t = f.type
            if isinstance(t, Nested) and t.schema is not None:
                if f.tag is not None and f.default is not None:
                    out[f.name] = f.default
                walk(t.schema)
            elif isinstance(t, Array) and isinstance(t.item, Schema):
                walk(t.item)

    for api in APIS.values():
        walk(api.request)
        walk(api.response)
    return out


STRUCT_DEFAULTS = _struct_defaults()

KP_UNPATCHED = {ApiKey.DESCRIBE_TOPIC_PARTITIONS}  # APIs whose fields kafka-python leaves as they are


def as_kafka_python(value: Any, key: int, kind: str) -> Any:
    """Our value in the shape kafka-python's ``to_dict(json=False)`` gives."""
    schema_name = APIS[key].name + kind.capitalize()
    # kafka-python keeps the JSON's names where kcli renamed a top-level field (RENAMED)
    top = {ours: snake(js) for (name, js), ours in RENAMED.items() if name == schema_name and ours != "generation_id"}

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k in BITFIELDS and key not in KP_UNPATCHED:
                    bits = {i for i in range(32) if (x & 0xFFFFFFFF) >> i & 1}
                    x = None if bits == {31} else bits
                if k == "generation_id" and (key, kind) != (ApiKey.OFFSET_COMMIT, "request"):
                    out[k] = conv(x)
                    continue
                if k in STRUCT_DEFAULTS and x == STRUCT_DEFAULTS[k]:  # kafka-python: None for "not sent"
                    out[k] = None
                    continue
                if k in UUID_FIELDS:  # kafka-python: uuid.UUID, and None for the zero uuid
                    out[k] = uuid.UUID(bytes=x) if x != bytes(16) else None
                    continue
                out[k if key in KP_UNPATCHED else KP_RENAMES.get(k, k)] = conv(x)
            return out
        if isinstance(v, list):
            return [conv(x) for x in v]
        return plain(v)

    out = conv(value)
    return {top.get(k, k): x for k, x in out.items()}


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c[0] in KP_CLASSES], ids=case_id)
def test_kafka_python_agrees_on_every_api_version(case: tuple[int, int, str]) -> None:
    """Every API kafka-python also implements (it lacks the KIP-848 ones: golden bytes below)."""
    key, version, kind = case
    api = APIS[key]
    schema = api.request if kind == "request" else api.response
    kp_cls = KP_CLASSES[key][0 if kind == "request" else 1]
    for seed in range(3):
        value = sample(schema, version, random.Random(f"kp-{key}-{version}-{kind}-{seed}"))
        if (key, kind) == (ApiKey.API_VERSIONS, "response"):
            value["error_code"] = 0  # kafka-python reads any error response as v0 (tested separately)
        ours = schema.encode(value, version)
        theirs = kp_cls.decode(ours, version=version)
        assert theirs.to_dict(json=False) == as_kafka_python(value, key, kind)
        theirs._header = None  # decoded kafka-python messages lack it, and some encode() overrides need it
        assert bytes(theirs.encode()) == ours


# --- hand-built golden messages --------------------------------------------------------------------


TOPIC_ID = bytes(range(16))


def test_golden_consumer_group_heartbeat_v0_response() -> None:
    """The assignment is a nullable struct: an int8 -1 for null, else 1 and the struct (Kafka's
    generated code), each struct closing with its tagged-field section."""
    api = APIS[ApiKey.CONSUMER_GROUP_HEARTBEAT]
    body = {
        "error_code": 0,
        "member_id": "m",
        "member_epoch": 5,
        "heartbeat_interval_ms": 5000,
        "assignment": {"topic_partitions": [{"topic_id": TOPIC_ID, "partitions": [0, 2]}]},
    }
    expected = (
        bytes.fromhex("00000000" "0000" "00" "026d" "00000005" "00001388")
        + b"\x01\x02" + TOPIC_ID + bytes.fromhex("03" "00000000" "00000002" "00")  # a topic's entry
        + b"\x00"  # the assignment's tagged fields
        + b"\x00"  # the message's
    )
    assert api.response.encode(body, 0) == expected
    assert plain(api.response.decode(expected, 0))["assignment"] == plain(body["assignment"])
    unchanged = api.response.encode({**body, "assignment": None}, 0)
    assert unchanged == bytes.fromhex("00000000" "0000" "00" "026d" "00000005" "00001388" "ff" "00")
    assert api.response.decode(unchanged, 0).assignment is None


def test_golden_consumer_group_heartbeat_v1_request() -> None:
    """v1 adds the subscribed topic regex after the names; null strings and arrays are a 0 length."""
    api = APIS[ApiKey.CONSUMER_GROUP_HEARTBEAT]
    body = {"group_id": "g", "member_id": "", "member_epoch": 0, "rebalance_timeout_ms": 300000,
            "subscribed_topic_names": ["t"], "topic_partitions": []}
    expected = bytes.fromhex(
        "0267" "01" "00000000"  # group, empty member id, epoch 0
        "00" "00" "000493e0"  # instance and rack null, rebalance timeout
        "020274" "00"  # ["t"], regex null
        "00" "01" "00"  # assignor null, no owned partitions, tagged fields
    )
    assert api.request.encode(body, 1) == expected
    decoded = api.request.decode(expected, 1)
    assert (decoded.subscribed_topic_regex, decoded.topic_partitions, decoded.instance_id) == (None, [], None)
    assert api.request.encode(body, 0) == expected[:16] + expected[17:]  # v0 has no regex


def test_golden_consumer_group_describe_v0_response() -> None:
    """A member's assignment and target are non-nullable structs: no marker byte."""
    api = APIS[ApiKey.CONSUMER_GROUP_DESCRIBE]
    tp = {"topic_partitions": [{"topic_id": TOPIC_ID, "topic_name": "t", "partitions": [1]}]}
    member = {"member_id": "m", "member_epoch": 3, "client_id": "c", "client_host": "",
              "subscribed_topic_names": ["t"], "assignment": tp, "target_assignment": {"topic_partitions": []}}
    body = {"groups": [{"group_id": "g", "group_state": "Stable", "group_epoch": 3, "assignment_epoch": 3,
                        "assignor_name": "uniform", "members": [member]}]}
    assigned = b"\x02" + TOPIC_ID + bytes.fromhex("0274" "02" "00000001" "00") + b"\x00"
    expected = (
        bytes.fromhex("00000000" "02" "0000" "00" "0267" "07") + b"Stable"
        + bytes.fromhex("00000003" "00000003" "08") + b"uniform"
        + bytes.fromhex("02" "026d" "00" "00" "00000003" "0263" "01" "020274" "00")
        + assigned + bytes.fromhex("01" "00")  # the target: no partitions
        + b"\x00"  # the member's tagged fields
        + bytes.fromhex("80000000" "00")  # authorized operations (not requested), the group's tags
        + b"\x00"
    )
    assert api.response.encode(body, 0) == expected


def test_metadata_request_v1_against_old_and_new_kafka_python() -> None:
    old = kp_old_metadata.MetadataRequest_v1(topics=["orders", "payments"])
    old.with_header(correlation_id=11, client_id="kp")
    new = kp_metadata.MetadataRequest(
        version=1,
        topics=[kp_metadata.MetadataRequest.MetadataRequestTopic(name=n) for n in ("orders", "payments")],
    )
    new.with_header(correlation_id=11, client_id="kp")
    ours = encode_request(
        RequestHeader(ApiKey.METADATA, 1, 11, "kp"), {"topics": [{"name": "orders"}, {"name": "payments"}]}
    )
    assert ours == old.encode(header=True, framed=True) == bytes(new.encode(header=True, framed=True))
    req = decode_request(parse_frame(bytes(new.encode(header=True, framed=True)))[0])  # type: ignore[arg-type]
    assert req.header == RequestHeader(3, 1, 11, "kp")
    assert [t.name for t in req.body.topics] == ["orders", "payments"]


def test_produce_request_v7_with_large_records_against_kafka_python() -> None:
    blob = random.Random(3).randbytes(1 << 20)
    P = kp_producer.ProduceRequest
    kp = P(
        version=7,
        transactional_id=None,
        acks=-1,
        timeout_ms=1500,
        topic_data=[
            P.TopicProduceData(
                name="t", partition_data=[P.TopicProduceData.PartitionProduceData(index=2, records=blob)]
            )
        ],
    )
    kp.with_header(correlation_id=5, client_id="kp")
    theirs = bytes(kp.encode(header=True, framed=True))
    body = {
        "acks": -1,
        "timeout_ms": 1500,
        "topic_data": [{"name": "t", "partition_data": [{"index": 2, "records": blob}]}],
    }
    assert encode_request(RequestHeader(0, 7, 5, "kp"), body) == theirs
    req = decode_request(parse_frame(theirs)[0])  # type: ignore[arg-type]
    assert req.body.transactional_id is None and req.body.acks == -1
    assert req.body.topic_data[0].partition_data[0].records == blob

    old = kp_old_produce.ProduceRequest_v3(
        transactional_id=None, required_acks=-1, timeout=1500, topics=[("t", [(2, blob)])]
    )
    assert old.encode() == APIS[0].request.encode(body, 3)


def test_fetch_response_v11_from_kafka_python() -> None:
    F = kp_consumer.FetchResponse
    P = F.FetchableTopicResponse.PartitionData
    kp = F(
        version=11,
        throttle_time_ms=3,
        error_code=0,
        session_id=99,
        responses=[
            F.FetchableTopicResponse(
                topic="t",
                partitions=[
                    P(
                        partition_index=0,
                        error_code=0,
                        high_watermark=100,
                        last_stable_offset=90,
                        log_start_offset=7,
                        aborted_transactions=[P.AbortedTransaction(producer_id=4, first_offset=80)],
                        preferred_read_replica=-1,
                        records=b"\x00batches",
                    ),
                    P(
                        partition_index=1,
                        error_code=1,
                        high_watermark=5,
                        aborted_transactions=None,
                        records=None,
                    ),
                ],
            )
        ],
    )
    kp.with_header(correlation_id=8)
    theirs = bytes(kp.encode(header=True, framed=True))
    resp = decode_response(ApiKey.FETCH, 11, parse_frame(theirs)[0])  # type: ignore[arg-type]
    assert resp.correlation_id == 8 and resp.body.session_id == 99
    p0, p1 = resp.body.responses[0].partitions
    assert p0.records == b"\x00batches" and p0.aborted_transactions == [
        {"producer_id": 4, "first_offset": 80}
    ]
    assert p1.records is None and p1.aborted_transactions is None and p1.log_start_offset == -1
    assert encode_response(ApiKey.FETCH, 11, 8, resp.body) == theirs


def test_fetch_response_v4_against_old_kafka_python() -> None:
    old = kp_old_fetch.FetchResponse_v4(
        throttle_time_ms=0,
        topics=[("t", [(0, 0, 10, 9, [(1, 2)], b"recs")])],
    )
    body = {
        "responses": [
            {
                "topic": "t",
                "partitions": [
                    {
                        "partition_index": 0,
                        "high_watermark": 10,
                        "last_stable_offset": 9,
                        "aborted_transactions": [{"producer_id": 1, "first_offset": 2}],
                        "records": b"recs",
                    }
                ],
            }
        ]
    }
    assert APIS[1].response.encode(body, 4) == old.encode()


def test_api_versions_v5_request_from_kafka_python_gets_v0_error() -> None:
    kp = kp_metadata.ApiVersionsRequest(
        version=4, client_software_name="kafka-python", client_software_version="3.0"
    )

    kp.with_header(correlation_id=21, client_id="kp")
    payload = parse_frame(bytes(kp.encode(header=True, framed=True)))[0]
    assert payload is not None
    payload = payload[:2] + struct.pack(">h", 5) + payload[4:]  # a version after kcli's newest
    with pytest.raises(UnsupportedVersionError) as exc:
        decode_request(payload)
    answer = unsupported_version_response(exc.value.header)
    assert answer is not None
    decoded = kp_metadata.ApiVersionsResponse.decode(parse_frame(answer)[0][4:], version=0)  # type: ignore[index]
    assert decoded.error_code == 35
    assert [(a.api_key, a.min_version, a.max_version) for a in decoded.api_keys] == [(18, 0, 4)]


def test_consumer_protocol_against_kafka_python() -> None:
    meta = kp_old_consumer_protocol.ConsumerProtocolMemberMetadata_v0(
        version=0, topics=["a", "b"], user_data=b""
    )
    ours = encode_subscription({"topics": ["a", "b"], "user_data": b""}, 0)
    assert ours == meta.encode()
    assert decode_subscription(meta.encode()).topics == ["a", "b"]
    assign = kp_old_consumer_protocol.ConsumerProtocolMemberAssignment_v0(
        version=0, assigned_partitions=[("a", [0, 1])], user_data=b""
    )
    assert (
        encode_assignment(
            {"assigned_partitions": [{"topic": "a", "partitions": [0, 1]}], "user_data": b""}, 0
        )
        == assign.encode()
    )
    # JoinGroup carrying it, built with kafka-python
    J = kp_consumer.JoinGroupRequest
    kp = J(
        version=5,
        group_id="g",
        session_timeout_ms=10000,
        rebalance_timeout_ms=30000,
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[J.JoinGroupRequestProtocol(name="range", metadata=meta.encode())],
    )
    kp.with_header(correlation_id=1, client_id="kp")
    req = decode_request(parse_frame(bytes(kp.encode(header=True, framed=True)))[0])  # type: ignore[arg-type]
    assert decode_subscription(req.body.protocols[0].metadata).topics == ["a", "b"]


def test_varlong_against_kafka_python() -> None:
    for v in (0, 1, -1, 150, -150, 1 << 35, -(1 << 62), (1 << 63) - 1):
        buf = bytearray()
        kp_encode_varint(v, buf.append)
        assert encode_varlong(v) == bytes(buf)
