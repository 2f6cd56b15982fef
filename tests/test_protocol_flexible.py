"""Flexible versions (KIP-482) against bytes built by hand in Kafka's layout: compact strings, arrays and
bytes (unsigned-varint length + 1, 0 for null), a tagged-field section closing every struct, request
header v2 (the client id still an int16-length string) and response header v1 -- and ApiVersions'
response header, which stays v0.  Field layouts against Kafka's JSON are checked in test_protocol.py."""

from __future__ import annotations

import struct

import pytest

from kcli.errors import ProtocolError
from kcli.protocol import (
    APIS,
    ApiKey,
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    encode_unsigned_varint,
)
from kcli.protocol.api import Api
from kcli.protocol.schema import Array, Field, Schema
from kcli.protocol.types import BYTES, INT16, INT32, RECORDS, STRING


def uvarint(n: int) -> bytes:
    """Kafka's UNSIGNED_VARINT, written out here rather than taken from the code under test."""
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def cstr(s: str | None) -> bytes:
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def carr(items: list[bytes] | None) -> bytes:
    if items is None:
        return b"\x00"
    return uvarint(len(items) + 1) + b"".join(items)


def i16(n: int) -> bytes:
    return struct.pack(">h", n)


def i32(n: int) -> bytes:
    return struct.pack(">i", n)


def i64(n: int) -> bytes:
    return struct.pack(">q", n)


TAGS = b"\x00"  # an empty tagged-field section


def framed(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def request_header_v2(key: int, version: int, correlation_id: int, client_id: str) -> bytes:
    cid = client_id.encode()
    return i16(key) + i16(version) + i32(correlation_id) + i16(len(cid)) + cid + TAGS


def test_uvarint_helper_matches_the_codecs() -> None:
    for n in (0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1):
        assert uvarint(n) == encode_unsigned_varint(n)


# --- DescribeTransactions v0 -------------------------------------------------------------------------


DESCRIBE_REQUEST_BYTES = framed(
    request_header_v2(65, 0, 7, "admin") + carr([cstr("orders-tx"), cstr("tøx")]) + TAGS
)


def test_describe_transactions_request_v0() -> None:
    header = RequestHeader(ApiKey.DESCRIBE_TRANSACTIONS, 0, 7, "admin")
    assert encode_request(header, {"transactional_ids": ["orders-tx", "tøx"]}) == DESCRIBE_REQUEST_BYTES
    req = decode_request(DESCRIBE_REQUEST_BYTES[4:])
    assert req.header == header
    assert req.body.transactional_ids == ["orders-tx", "tøx"]


def test_describe_transactions_response_v0() -> None:
    state = (
        i16(0)
        + cstr("orders-tx")
        + cstr("Ongoing")
        + i32(60000)
        + i64(1_700_000_000_000)
        + i64(4000)
        + i16(3)
        + carr([cstr("orders") + carr([i32(0), i32(2)]) + TAGS, cstr("audit") + carr([i32(1)]) + TAGS])
        + TAGS
    )
    missing = i16(105) + cstr("gone") + cstr("") + i32(0) + i64(0) + i64(0) + i16(0) + carr([]) + TAGS
    wire = framed(i32(7) + TAGS + i32(0) + carr([state, missing]) + TAGS)  # response header v1
    body = {
        "throttle_time_ms": 0,
        "transaction_states": [
            {
                "error_code": 0,
                "transactional_id": "orders-tx",
                "transaction_state": "Ongoing",
                "transaction_timeout_ms": 60000,
                "transaction_start_time_ms": 1_700_000_000_000,
                "producer_id": 4000,
                "producer_epoch": 3,
                "topics": [{"topic": "orders", "partitions": [0, 2]}, {"topic": "audit", "partitions": [1]}],
            },
            {"error_code": 105, "transactional_id": "gone"},
        ],
    }
    assert encode_response(ApiKey.DESCRIBE_TRANSACTIONS, 0, 7, body) == wire
    decoded = decode_response(ApiKey.DESCRIBE_TRANSACTIONS, 0, wire[4:])
    assert decoded.correlation_id == 7
    assert decoded.body.transaction_states[0] == body["transaction_states"][0]
    assert decoded.body.transaction_states[1].transaction_state == ""


# --- ListTransactions v0, v1 -------------------------------------------------------------------------


def test_list_transactions_request_v0_and_v1() -> None:
    filters = carr([cstr("Ongoing"), cstr("PrepareCommit")]) + carr([i64(5), i64(-1)])
    body = {"state_filters": ["Ongoing", "PrepareCommit"], "producer_id_filters": [5, -1]}
    v0 = framed(request_header_v2(66, 0, 1, "c") + filters + TAGS)
    v1 = framed(request_header_v2(66, 1, 1, "c") + filters + i64(30_000) + TAGS)
    assert encode_request(RequestHeader(66, 0, 1, "c"), body) == v0
    assert encode_request(RequestHeader(66, 1, 1, "c"), {**body, "duration_filter": 30_000}) == v1
    assert decode_request(v0[4:]).body == {**body, "duration_filter": -1}  # v0 has none: Kafka's -1
    assert decode_request(v1[4:]).body.duration_filter == 30_000


def test_list_transactions_response_v1() -> None:
    rows = [cstr("a") + i64(1) + cstr("Empty") + TAGS, cstr("b") + i64(2) + cstr("Ongoing") + TAGS]
    wire = framed(i32(3) + TAGS + i32(0) + i16(0) + carr([cstr("Nope")]) + carr(rows) + TAGS)
    body = {
        "throttle_time_ms": 0,
        "error_code": 0,
        "unknown_state_filters": ["Nope"],
        "transaction_states": [
            {"transactional_id": "a", "producer_id": 1, "transaction_state": "Empty"},
            {"transactional_id": "b", "producer_id": 2, "transaction_state": "Ongoing"},
        ],
    }
    assert encode_response(ApiKey.LIST_TRANSACTIONS, 1, 3, body) == wire
    assert decode_response(ApiKey.LIST_TRANSACTIONS, 1, wire[4:]).body == body


# --- tagged fields from a newer peer are skipped -----------------------------------------------------


def tagged(*fields: tuple[int, bytes]) -> bytes:
    return uvarint(len(fields)) + b"".join(uvarint(tag) + uvarint(len(data)) + data for tag, data in fields)


def test_unknown_tagged_fields_are_skipped_in_header_body_and_nested_structs() -> None:
    cid = b"kp"
    header = i16(66) + i16(1) + i32(9) + i16(len(cid)) + cid + tagged((0, b"\x01\x02"), (300, b"x" * 200))
    body = carr([cstr("Ongoing")]) + carr([]) + i64(-1) + tagged((5, b""))
    req = decode_request(header + body)
    assert req.header == RequestHeader(66, 1, 9, "kp")
    assert req.body == {"state_filters": ["Ongoing"], "producer_id_filters": [], "duration_filter": -1}

    row = cstr("a") + i64(1) + cstr("Empty") + tagged((1, b"\xff" * 3))
    payload = i32(4) + tagged((2, b"zz")) + i32(0) + i16(0) + carr([]) + carr([row]) + TAGS
    resp = decode_response(ApiKey.LIST_TRANSACTIONS, 0, payload)
    assert resp.correlation_id == 4
    assert resp.body.transaction_states == [
        {"transactional_id": "a", "producer_id": 1, "transaction_state": "Empty"}
    ]


@pytest.mark.parametrize(
    "bad, what",
    [
        (
            carr([cstr("x")]) + carr([]) + b"\x01\x00\x05ab",
            "truncated",
        ),  # a tagged field longer than the frame
        (carr([cstr("x")]) + carr([]), "truncated"),  # no tagged-field section at all
        (carr([cstr("x")]) + carr([]) + b"\x80", "varint"),  # a cut varint
        (uvarint(3) + uvarint(10) + b"abc", "truncated"),  # a compact string longer than the frame
        (uvarint(1000) + b"\x00", "cannot fit"),  # an array count larger than the bytes left
        (b"\x00" + carr([]) + TAGS, "invalid array length -1"),  # a null array where none may be
    ],
)
def test_malformed_flexible_requests_are_protocol_errors(bad: bytes, what: str) -> None:
    payload = request_header_v2(66, 0, 1, "c") + bad
    with pytest.raises(ProtocolError, match=what):
        decode_request(payload)


def test_truncated_header_tagged_fields_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="ListTransactions v0 request"):
        decode_request(i16(66) + i16(0) + i32(1) + i16(-1) + b"\x02\x00")


# --- the codec's rules on a schema of every shape ----------------------------------------------------

SHAPES = Schema(
    "Shapes",
    [
        Field("name", STRING, nullable="0+"),
        Field("blob", BYTES, nullable="0+"),
        Field("records", RECORDS, nullable="0+"),
        Field("ids", Array(INT32), nullable="1+"),
        Field("names", Array(STRING)),
        Field("entries", Array([Field("n", INT16), Field("label", STRING)])),
    ],
    flexible="1+",
)


def test_a_version_below_the_flexible_range_is_classic() -> None:
    value = {
        "name": "n",
        "blob": b"b",
        "records": b"r",
        "ids": [1],
        "names": ["x"],
        "entries": [{"n": 1, "label": "l"}],
    }
    classic = (
        (i16(1) + b"n" + i32(1) + b"b" + i32(1) + b"r" + i32(1) + i32(1) + i32(1) + i16(1) + b"x")
        + i32(1)
        + i16(1)
        + i16(1)
        + b"l"
    )
    assert SHAPES.encode(value, 0) == classic
    flexible = (
        cstr("n")
        + b"\x02b"
        + b"\x02r"
        + carr([i32(1)])
        + carr([cstr("x")])
        + carr([i16(1) + cstr("l") + TAGS])
    ) + TAGS
    assert SHAPES.encode(value, 1) == flexible
    assert SHAPES.decode(flexible, 1) == value | {"records": memoryview(b"r")}


def test_nulls_and_long_values_in_flexible_versions() -> None:
    nulls = {"name": None, "blob": None, "records": None, "ids": None, "names": [], "entries": []}
    wire = b"\x00" * 4 + carr([]) + carr([]) + TAGS
    assert SHAPES.encode(nulls, 1) == wire
    assert SHAPES.decode(wire, 1) == nulls
    big = bytes(range(256)) * 300  # a zero-copy records blob with a 3-byte length
    many = list(range(200))  # a count of 201 takes two varint bytes
    value = {
        "name": "é" * 100,
        "blob": big[:1000],
        "records": big,
        "ids": many,
        "names": ["a"] * 127,
        "entries": [],
    }
    encoded = SHAPES.encode(value, 1)
    assert encoded.startswith(cstr("é" * 100) + uvarint(1001) + big[:1000] + uvarint(len(big) + 1) + big)
    decoded = SHAPES.decode(encoded, 1)
    assert isinstance(decoded.records, memoryview) and bytes(decoded.records) == big
    assert decoded == value | {"records": decoded.records}


def test_api_versions_response_header_stays_v0_in_flexible_versions() -> None:
    """Kafka's rule: a client reads an ApiVersions answer before it knows what the broker speaks."""
    flexible = Api(
        ApiKey.API_VERSIONS,
        "ApiVersions",
        3,
        3,
        Schema("Req", [], flexible="3+"),
        Schema("Resp", [Field("error_code", INT16)], flexible="3+"),
    )
    assert flexible.is_flexible(3) and not flexible.response_header_flexible(3)
    assert APIS[ApiKey.DESCRIBE_TRANSACTIONS].response_header_flexible(0)
    assert not APIS[ApiKey.PRODUCE].response_header_flexible(8)
    with pytest.raises(ValueError, match="disagree"):
        Api(ApiKey.METADATA, "M", 0, 0, Schema("Req", [], flexible="0+"), Schema("Resp", []))


def test_classic_versions_keep_header_v1_and_v0() -> None:
    """Produce v8 (classic) frames have no tagged-field bytes in either header."""
    body = {"acks": 1, "timeout_ms": 5, "topic_data": []}
    frame = encode_request(RequestHeader(0, 8, 3, "c"), body)
    assert frame == framed(i16(0) + i16(8) + i32(3) + i16(1) + b"c" + i16(-1) + i16(1) + i32(5) + i32(0))
    resp = encode_response(0, 8, 3, {"responses": [], "throttle_time_ms": 0})
    assert resp == framed(i32(3) + i32(0) + i32(0))


def test_int64_arrays_and_compact_counts_at_varint_boundaries() -> None:
    for n in (0, 126, 127, 128, 16383):
        ids = list(range(n))
        wire = framed(request_header_v2(66, 0, 1, "c") + carr([]) + carr([i64(i) for i in ids]) + TAGS)
        assert encode_request(RequestHeader(66, 0, 1, "c"), {"producer_id_filters": ids}) == wire
        assert decode_request(wire[4:]).body.producer_id_filters == ids
