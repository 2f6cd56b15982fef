"""The transaction APIs' codecs against bytes written out by hand from Kafka's message definitions
(clients/src/main/resources/common/message/*.json): every field in order, big-endian, int16-length
strings (-1 for null), int32-counted arrays.  tests/test_protocol.py already checks the field lists
against the JSON and kafka-python's codec for every version; these pin the bytes themselves, the way a
Kafka client puts them on the wire, both directions."""

from __future__ import annotations

import struct

import pytest

from kcli.protocol import (
    ApiKey,
    RequestHeader,
    UnsupportedVersionError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from kcli.protocol.frames import parse_frame


def s(text: str | None) -> bytes:
    if text is None:
        return b"\xff\xff"
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def header(key: int, version: int, corr: int, client: str) -> bytes:
    return i16(key) + i16(version) + i32(corr) + s(client)


def framed(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def check_request(key: int, version: int, body: dict, wire_body: bytes) -> None:
    """``body`` encodes to exactly ``wire_body`` (after a v1 request header), and those bytes decode
    back to ``body``."""
    head = RequestHeader(key, version, 77, "rdkafka")
    frame = encode_request(head, body)
    assert frame == framed(header(key, version, 77, "rdkafka") + wire_body)
    payload, _ = parse_frame(frame)
    assert payload is not None
    decoded = decode_request(payload)
    assert decoded.header == head
    assert _subset(body, decoded.body)


def check_response(key: int, version: int, body: dict, wire_body: bytes) -> None:
    frame = encode_response(key, version, 77, body)
    assert frame == framed(i32(77) + wire_body)
    decoded = decode_response(key, version, frame[4:])
    assert decoded.correlation_id == 77
    assert _subset(body, decoded.body)


def _subset(expected: object, got: object) -> bool:
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(_subset(v, got[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(_subset, expected, got))
    return expected == got


def test_find_coordinator_v1_for_a_transactional_id() -> None:
    check_request(ApiKey.FIND_COORDINATOR, 1, {"key": "copier-1", "key_type": 1}, s("copier-1") + i8(1))


@pytest.mark.parametrize("version", [0, 1])
def test_init_producer_id_with_a_transactional_id(version: int) -> None:
    check_request(
        ApiKey.INIT_PRODUCER_ID,
        version,
        {"transactional_id": "copier-1", "transaction_timeout_ms": 60000},
        s("copier-1") + i32(60000),
    )
    check_response(
        ApiKey.INIT_PRODUCER_ID,
        version,
        {"throttle_time_ms": 0, "error_code": 0, "producer_id": 4000, "producer_epoch": 3},
        i32(0) + i16(0) + i64(4000) + i16(3),
    )


@pytest.mark.parametrize("version", [0, 1, 2])
def test_add_partitions_to_txn(version: int) -> None:
    body = {
        "transactional_id": "tx",
        "producer_id": 1000,
        "producer_epoch": 2,
        "topics": [{"name": "out", "partitions": [0, 2]}, {"name": "o2", "partitions": [1]}],
    }
    wire = (
        s("tx")
        + i64(1000)
        + i16(2)
        + i32(2)
        + s("out")
        + i32(2)
        + i32(0)
        + i32(2)
        + s("o2")
        + i32(1)
        + i32(1)
    )
    check_request(ApiKey.ADD_PARTITIONS_TO_TXN, version, body, wire)
    response = {
        "throttle_time_ms": 0,
        "results_by_topic": [
            {"name": "out", "results_by_partition": [{"partition_index": 2, "partition_error_code": 51}]}
        ],
    }
    check_response(
        ApiKey.ADD_PARTITIONS_TO_TXN,
        version,
        response,
        i32(0) + i32(1) + s("out") + i32(1) + i32(2) + i16(51),
    )


@pytest.mark.parametrize("version", [0, 1, 2])
def test_add_offsets_to_txn(version: int) -> None:
    body = {"transactional_id": "tx", "producer_id": 7, "producer_epoch": 0, "group_id": "g"}
    check_request(ApiKey.ADD_OFFSETS_TO_TXN, version, body, s("tx") + i64(7) + i16(0) + s("g"))
    check_response(
        ApiKey.ADD_OFFSETS_TO_TXN, version, {"throttle_time_ms": 5, "error_code": 47}, i32(5) + i16(47)
    )


@pytest.mark.parametrize("version", [0, 1, 2])
def test_end_txn(version: int) -> None:
    for committed in (True, False):
        body = {"transactional_id": "tx", "producer_id": 7, "producer_epoch": 1, "committed": committed}
        check_request(ApiKey.END_TXN, version, body, s("tx") + i64(7) + i16(1) + i8(int(committed)))
    check_response(ApiKey.END_TXN, version, {"throttle_time_ms": 0, "error_code": 48}, i32(0) + i16(48))


def test_write_txn_markers_v0() -> None:
    body = {
        "markers": [
            {
                "producer_id": 9,
                "producer_epoch": 4,
                "transaction_result": True,
                "topics": [{"name": "out", "partition_indexes": [3]}],
                "coordinator_epoch": 0,
            }
        ]
    }
    wire = i32(1) + i64(9) + i16(4) + i8(1) + i32(1) + s("out") + i32(1) + i32(3) + i32(0)
    check_request(ApiKey.WRITE_TXN_MARKERS, 0, body, wire)
    response = {
        "markers": [
            {
                "producer_id": 9,
                "topics": [{"name": "out", "partitions": [{"partition_index": 3, "error_code": 6}]}],
            }
        ]
    }
    check_response(
        ApiKey.WRITE_TXN_MARKERS, 0, response, i32(1) + i64(9) + i32(1) + s("out") + i32(1) + i32(3) + i16(6)
    )


@pytest.mark.parametrize("version", [0, 1, 2])
def test_txn_offset_commit(version: int) -> None:
    partition = {"partition_index": 0, "committed_offset": 42, "committed_metadata": None}
    if version >= 2:
        partition["committed_leader_epoch"] = 5
    body = {
        "transactional_id": "tx",
        "group_id": "g",
        "producer_id": 7,
        "producer_epoch": 1,
        "topics": [{"name": "in", "partitions": [partition]}],
    }
    epoch = i32(5) if version >= 2 else b""
    wire = s("tx") + s("g") + i64(7) + i16(1) + i32(1) + s("in") + i32(1) + i32(0) + i64(42) + epoch + s(None)
    check_request(ApiKey.TXN_OFFSET_COMMIT, version, body, wire)
    response = {
        "throttle_time_ms": 0,
        "topics": [{"name": "in", "partitions": [{"partition_index": 0, "error_code": 0}]}],
    }
    check_response(
        ApiKey.TXN_OFFSET_COMMIT, version, response, i32(0) + i32(1) + s("in") + i32(1) + i32(0) + i16(0)
    )


def test_a_v1_leader_epoch_field_is_absent_and_defaults() -> None:
    """TxnOffsetCommit v0-1 have no committed_leader_epoch: decoded, it reads -1 as Kafka's default."""
    wire = s("tx") + s("g") + i64(7) + i16(1) + i32(1) + s("in") + i32(1) + i32(0) + i64(42) + s("m")
    req = decode_request(header(ApiKey.TXN_OFFSET_COMMIT, 1, 1, "c") + wire)
    assert req.body.topics[0].partitions[0].committed_leader_epoch == -1
    assert req.body.topics[0].partitions[0].committed_metadata == "m"


def cs(text: str) -> bytes:
    """A compact string (flexible versions): unsigned-varint length + 1, then the bytes (short here)."""
    raw = text.encode()
    return bytes([len(raw) + 1]) + raw


def test_flexible_end_txn_v3_and_v5_refused() -> None:
    """EndTxn v3 is flexible (KIP-482): request header v2 (tagged fields after the client id), compact
    strings, a tagged-field section per struct.  v5 (KIP-890 part 2) is not served."""
    wire = cs("tx") + i64(7) + i16(1) + i8(1) + b"\x00"
    req = decode_request(header(ApiKey.END_TXN, 3, 1, "c") + b"\x00" + wire)
    assert (req.body.transactional_id, req.body.producer_id, req.body.producer_epoch, req.body.committed) == (
        "tx",
        7,
        1,
        True,
    )
    # response header v1 ends with its (empty) tagged fields, then the body and its own
    check_response(
        ApiKey.END_TXN, 3, {"throttle_time_ms": 0, "error_code": 0}, b"\x00" + i32(0) + i16(0) + b"\x00"
    )
    with pytest.raises(UnsupportedVersionError):
        decode_request(header(ApiKey.END_TXN, 5, 1, "c") + b"\x00" + wire)
