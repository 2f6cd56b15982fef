"""The broker on the wire: each API's behaviour, and bad clients that must not hurt anyone else."""

from __future__ import annotations

import struct
import threading
import time

import pytest
from support.brokers import (
    api_versions_ok,
    call,
    closed_by_peer,
    connect,
    read_frame,
)

from kcli.protocol import (
    APIS,
    ApiKey,
    ErrorCode,
    RequestHeader,
    decode_response,
    encode_request,
    encode_request_header,
    error_name,
)
from kcli.storage.records import decode_records, encode_batch, iter_batches

SERVED = {
    ApiKey.SASL_HANDSHAKE,
    ApiKey.SASL_AUTHENTICATE,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
    ApiKey.PRODUCE,
    ApiKey.FETCH,
    ApiKey.LIST_OFFSETS,
    ApiKey.OFFSET_FOR_LEADER_EPOCH,
    ApiKey.METADATA,
    ApiKey.API_VERSIONS,
    ApiKey.CREATE_TOPICS,
    ApiKey.DELETE_TOPICS,
    ApiKey.INIT_PRODUCER_ID,
    ApiKey.CREATE_PARTITIONS,
    ApiKey.DESCRIBE_CONFIGS,
    ApiKey.DESCRIBE_ACLS,
    ApiKey.CREATE_ACLS,
    ApiKey.DELETE_ACLS,
    ApiKey.ALTER_CONFIGS,
    ApiKey.INCREMENTAL_ALTER_CONFIGS,
    ApiKey.FIND_COORDINATOR,
    ApiKey.JOIN_GROUP,
    ApiKey.SYNC_GROUP,
    ApiKey.HEARTBEAT,
    ApiKey.LEAVE_GROUP,
    ApiKey.OFFSET_COMMIT,
    ApiKey.OFFSET_FETCH,
    ApiKey.LIST_GROUPS,
    ApiKey.DESCRIBE_GROUPS,
    ApiKey.DELETE_GROUPS,
    ApiKey.OFFSET_DELETE,
    ApiKey.ADD_PARTITIONS_TO_TXN,
    ApiKey.ADD_OFFSETS_TO_TXN,
    ApiKey.END_TXN,
    ApiKey.WRITE_TXN_MARKERS,
    ApiKey.TXN_OFFSET_COMMIT,
    ApiKey.DESCRIBE_PRODUCERS,
    ApiKey.DESCRIBE_TRANSACTIONS,
    ApiKey.LIST_TRANSACTIONS,
    ApiKey.DESCRIBE_CLUSTER,
    ApiKey.CONSUMER_GROUP_HEARTBEAT,
    ApiKey.CONSUMER_GROUP_DESCRIBE,
    ApiKey.DESCRIBE_LOG_DIRS,
    ApiKey.DELETE_RECORDS,
    ApiKey.ELECT_LEADERS,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS,
    ApiKey.LIST_PARTITION_REASSIGNMENTS,
    ApiKey.DESCRIBE_TOPIC_PARTITIONS,
}


def _produce(sock, topic: str, partition: int, records, acks: int = -1, correlation_id: int = 7):
    body = {
        "acks": acks,
        "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}],
    }
    if acks == 0:
        sock.sendall(encode_request(RequestHeader(ApiKey.PRODUCE, 7, correlation_id, "t"), body))
        return None
    return call(sock, ApiKey.PRODUCE, 7, body, correlation_id).responses[0].partition_responses[0]


def _fetch(sock, parts, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, partition_max_bytes=1 << 20):
    topics: dict[str, list] = {}
    for topic, partition, offset in parts:
        topics.setdefault(topic, []).append(
            {"partition": partition, "fetch_offset": offset, "partition_max_bytes": partition_max_bytes}
        )
    body = {
        "max_wait_ms": max_wait_ms,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()],
    }
    return call(sock, ApiKey.FETCH, 11, body)


def _latest(sock, topic: str, partition: int = 0, timestamp: int = -1):
    body = {
        "topics": [{"name": topic, "partitions": [{"partition_index": partition, "timestamp": timestamp}]}]
    }
    return call(sock, ApiKey.LIST_OFFSETS, 5, body).topics[0].partitions[0]


def _batch(n: int, size: int = 10, ts: int = 1_000, **kw) -> bytes:
    return encode_batch([(f"k{i}".encode(), b"x" * size, [], ts + i) for i in range(n)], 0, **kw)


# ---------------------------------------------------------------- negotiation


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_advertise_exactly_what_is_served(broker, version):
    with connect(broker.socket_path) as sock:
        body = call(sock, ApiKey.API_VERSIONS, version, {"client_software_name": "t", "client_software_version": "1"})
    assert body.error_code == 0
    assert {k.api_key for k in body.api_keys} == SERVED  # no group APIs until a coordinator exists
    produce = next(k for k in body.api_keys if k.api_key == ApiKey.PRODUCE)
    assert (produce.min_version, produce.max_version) == (3, 11)


def test_api_versions_v5_is_answered_with_a_v0_unsupported_version(broker):
    """A client opening with a flexible ApiVersions newer than kcli's (header v2 with tags)."""
    header = encode_request_header(RequestHeader(ApiKey.API_VERSIONS, 5, 42, "rdkafka")) + b"\x00"
    name, version = b"librdkafka", b"2.3.0"  # compact strings: unsigned varint length + 1, then bytes
    body = bytes([len(name) + 1]) + name + bytes([len(version) + 1]) + version + b"\x00"
    with connect(("127.0.0.1", broker.port)) as sock:
        sock.sendall(struct.pack(">i", len(header + body)) + header + body)
        resp = decode_response(ApiKey.API_VERSIONS, 0, read_frame(sock))
        assert resp.correlation_id == 42
        assert resp.body.error_code == ErrorCode.UNSUPPORTED_VERSION
        assert [(k.api_key, k.min_version, k.max_version) for k in resp.body.api_keys] == [(18, 0, 4)]
        assert api_versions_ok(sock)  # the client retries on the same connection


# ---------------------------------------------------------------- bad clients


def _valid_header(api_key: int, version: int) -> bytes:
    return encode_request_header(RequestHeader(api_key, version, 5, "bad"))


BAD_REQUESTS = {
    "oversize frame": struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 64,
    "negative size": struct.pack(">i", -5) + b"\x00" * 8,
    "http garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "empty frame": struct.pack(">i", 0),
    "truncated header": struct.pack(">i", 5) + b"\x00\x03\x00\x01\x00",
    "produce that does not decode": (lambda p: struct.pack(">i", len(p)) + p)(
        _valid_header(ApiKey.PRODUCE, 9) + b"\x00\x02"  # acks=0 or not: no telling, so no answer
    ),
}


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


# requests whose header reads: (the request, the version to read the answer at, the error code expected)
ANSWERED = {
    "unsupported version": (
        _framed(_valid_header(ApiKey.METADATA, 14) + b"\x00" * 8),
        14,
        ErrorCode.UNSUPPORTED_VERSION,
    ),
    "version below the oldest": (
        _framed(_valid_header(ApiKey.FETCH, 3) + struct.pack(">iiii", -1, 100, 1, 0)),
        3,
        ErrorCode.UNSUPPORTED_VERSION,
    ),
    "truncated body": (
        _framed(_valid_header(ApiKey.METADATA, 1) + struct.pack(">i", 5) + b"\x00\x03ab"),
        1,
        ErrorCode.INVALID_REQUEST,
    ),
    "truncated flexible body": (
        _framed(_valid_header(ApiKey.METADATA, 12) + b"\x00" + b"\x02" + bytes(16) + b"\x07abc"),
        12,
        ErrorCode.INVALID_REQUEST,
    ),
    "tagged field longer than the request": (
        # no topics, allow auto-creation, no authorized operations, then tag 5 announced as 64 bytes
        _framed(_valid_header(ApiKey.METADATA, 12) + b"\x00" + b"\x01\x01\x00" + b"\x01\x05\x40ab"),
        12,
        ErrorCode.INVALID_REQUEST,
    ),
    "malformed known tagged field": (
        # Fetch v15's replica_state (tag 1) announced as 3 bytes: too short for its int32 and int64
        _framed(
            _valid_header(ApiKey.FETCH, 15) + b"\x00" + struct.pack(">iiiibii", 100, 1, 1000, 0, 0, 0, -1)
            + b"\x01\x01\x01" + b"\x01\x03\x00\x00\x01"
        ),
        15,
        ErrorCode.INVALID_REQUEST,
    ),
}


@pytest.mark.parametrize("name", list(ANSWERED))
def test_requests_that_cannot_be_served_get_an_error_answer_and_the_connection_goes_on(broker, name):
    """Kafka's documented error code in the API's own response at the request's version (top-level
    error code where the response has one), then the next request on the same connection works."""
    data, version, code = ANSWERED[name]
    api_key = struct.unpack(">h", data[4:6])[0]
    with connect(("127.0.0.1", broker.port)) as sock:
        sock.sendall(data)
        payload = read_frame(sock)
        assert payload is not None, f"{name}: connection closed"
        api = APIS[api_key]
        pos = 5 if api.response_header_flexible(version) else 4
        assert struct.unpack(">i", payload[:4])[0] == 5
        body = api.response.decode(payload[pos:], version)
        if any(f.name == "error_code" for f in api.response.fields_for(version)):
            assert body.error_code == code, name
        else:  # nothing of the body could be read: an empty answer (Kafka's for these versions too)
            assert body.topics == [] if api_key == ApiKey.METADATA else body.responses == [], name
        assert api_versions_ok(sock), f"connection unusable after {name}"
        meta = call(sock, ApiKey.METADATA, 12, {"topics": None})
        assert meta.brokers[0].node_id == 0
    assert error_name(code) in broker.log()


def test_unsupported_fetch_version_names_each_partition(broker):
    """Fetch v18 (not served) by topic id: each partition comes back with UNSUPPORTED_VERSION, as
    Kafka's getErrorResponse mirrors the request."""
    tid = bytes(range(16))
    body = {
        "max_wait_ms": 1,
        "min_bytes": 1,
        "topics": [
            {"topic_id": tid, "partitions": [{"partition": p, "fetch_offset": 0, "partition_max_bytes": 9} for p in (0, 4)]}
        ],
    }
    payload = _valid_header(ApiKey.FETCH, 18) + b"\x00" + APIS[ApiKey.FETCH].request.encode(body, 18)
    with connect(broker.socket_path) as sock:
        sock.sendall(_framed(payload))
        answer = read_frame(sock)
        assert answer is not None
        resp = APIS[ApiKey.FETCH].response.decode(answer[5:], 18)
        assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
        assert resp.responses[0].topic_id == tid
        assert [(p.partition_index, p.error_code) for p in resp.responses[0].partitions] == [(0, 35), (4, 35)]
        assert api_versions_ok(sock)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_bad_clients_lose_only_their_own_connection(broker, transport):
    address = broker.socket_path if transport == "unix" else ("127.0.0.1", broker.port)
    bystander = connect(address)
    assert api_versions_ok(bystander)
    for name, data in BAD_REQUESTS.items():
        with connect(address) as sock:
            sock.sendall(data)
            assert closed_by_peer(sock), name
        with connect(address) as sock:
            assert api_versions_ok(sock), f"broker unusable after {name}"
    # a frame that stops half way, then the client hangs up
    with connect(address) as sock:
        sock.sendall(struct.pack(">i", 100) + b"\x00" * 10)
        sock.shutdown(2)
    assert api_versions_ok(bystander)
    meta = call(bystander, ApiKey.METADATA, 8, {"topics": None})
    assert [b.node_id for b in meta.brokers] == [0]
    bystander.close()
    assert broker.proc.poll() is None
    assert "closing connection" in broker.log()


# ---------------------------------------------------------------- Metadata and admin


def test_metadata_and_auto_creation(broker):
    with connect(broker.socket_path) as sock:
        body = call(
            sock, ApiKey.METADATA, 8, {"topics": [{"name": "nope"}], "allow_auto_topic_creation": False}
        )
        assert body.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert body.brokers[0].port == broker.port and body.brokers[0].host == "127.0.0.1"
        assert body.controller_id == 0 and body.cluster_id
        body = call(
            sock, ApiKey.METADATA, 8, {"topics": [{"name": "auto"}], "allow_auto_topic_creation": True}
        )
        part = body.topics[0].partitions[0]
        assert body.topics[0].error_code == 0 and part.leader_id == 0 and part.isr_nodes == [0]
        body = call(sock, ApiKey.METADATA, 8, {"topics": [{"name": "bad name"}]})
        assert body.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        body = call(sock, ApiKey.METADATA, 0, {"topics": []})  # v0: empty list means all topics
        assert [t.name for t in body.topics] == ["auto"]


def test_create_topics_errors_and_validate_only(broker):
    def create(topic: dict, validate_only: bool = False):
        entry = {
            "name": "t",
            "num_partitions": 1,
            "replication_factor": 1,
            "assignments": [],
            "configs": [],
            **topic,
        }
        with connect(broker.socket_path) as sock:
            body = call(
                sock,
                ApiKey.CREATE_TOPICS,
                4,
                {"topics": [entry], "timeout_ms": 1000, "validate_only": validate_only},
            )
        return body.topics[0]

    assert create({"replication_factor": 3}).error_code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert create({"num_partitions": 0}).error_code == ErrorCode.INVALID_PARTITIONS
    assert (
        create({"configs": [{"name": "retention.ms", "value": "soon"}]}).error_code
        == ErrorCode.INVALID_CONFIG
    )
    assert create({"configs": [{"name": "no.such", "value": "1"}]}).error_code == ErrorCode.INVALID_CONFIG
    assert (
        create({"assignments": [{"partition_index": 0, "broker_ids": [0]}]}).error_code
        == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    )
    assert create({"name": "a/b"}).error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert create({}, validate_only=True).error_code == 0
    assert not (broker.folder / "t-0").exists()
    result = create({"num_partitions": -1, "replication_factor": -1})  # v4: broker defaults
    assert result.error_code == 0 and result.error_message is None
    assert create({}).error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    with connect(broker.socket_path) as sock:
        grown = call(
            sock,
            ApiKey.CREATE_PARTITIONS,
            1,
            {
                "topics": [{"name": "t", "count": 1, "assignments": None}],
                "timeout_ms": 1000,
                "validate_only": False,
            },
        )
        assert grown.results[0].error_code == ErrorCode.INVALID_PARTITIONS
        deleted = call(sock, ApiKey.DELETE_TOPICS, 3, {"topic_names": ["t", "ghost"], "timeout_ms": 1000})
        assert [(r.name, r.error_code) for r in deleted.responses] == [
            ("t", 0),
            ("ghost", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ]


# ---------------------------------------------------------------- Produce


def test_produce_validates_before_storing(broker):
    broker.runner.in_process("topic", "create", "v", "-c", "max.message.bytes=2000")
    good = _batch(3)
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    magic1 = bytearray(good)
    magic1[16] = 1
    with connect(broker.socket_path) as sock:
        assert _produce(sock, "v", 0, bytes(bad_crc)).error_code == ErrorCode.CORRUPT_MESSAGE
        assert _produce(sock, "v", 0, bytes(magic1)).error_code == ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
        assert _produce(sock, "v", 0, good[:40]).error_code == ErrorCode.CORRUPT_MESSAGE
        assert _produce(sock, "v", 0, good + good[:30]).error_code == ErrorCode.CORRUPT_MESSAGE
        assert _produce(sock, "v", 0, b"").error_code == ErrorCode.INVALID_RECORD
        assert _produce(sock, "v", 0, _batch(1, size=3000)).error_code == ErrorCode.MESSAGE_TOO_LARGE
        assert _produce(sock, "v", 0, good, acks=2).error_code == ErrorCode.INVALID_REQUIRED_ACKS
        assert _produce(sock, "v", 3, good).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert _produce(sock, "v", 0, good).error_code == 0
        assert _latest(sock, "v").offset == 3  # only the good batch was stored
        # two batches in one request are both stored, offsets assigned in order
        two = _produce(sock, "v", 0, _batch(2) + _batch(4))
        assert two.error_code == 0 and two.base_offset == 3 and _latest(sock, "v").offset == 9


def test_acks_zero_gets_no_response_and_later_requests_still_match(broker):
    broker.runner.in_process("topic", "create", "z0")
    with connect(broker.socket_path) as sock:
        _produce(sock, "z0", 0, _batch(5), acks=0, correlation_id=1)
        _produce(sock, "z0", 0, _batch(5), acks=0, correlation_id=2)
        assert _latest(sock, "z0").offset == 10


def test_idempotent_producer_retries_are_not_stored_twice(broker):
    broker.runner.in_process("topic", "create", "idem")
    with connect(broker.socket_path) as sock:
        init = call(sock, ApiKey.INIT_PRODUCER_ID, 1, {"transaction_timeout_ms": 1000})
        assert init.error_code == 0 and init.producer_id >= 0
        pid = init.producer_id

        def batch(seq: int, n: int = 3, epoch: int = 0) -> bytes:
            return _batch(n, producer_id=pid, producer_epoch=epoch, base_sequence=seq)

        assert _produce(sock, "idem", 0, batch(0)).base_offset == 0
        assert _produce(sock, "idem", 0, batch(3)).base_offset == 3
        retry = _produce(sock, "idem", 0, batch(0))
        assert (retry.error_code, retry.base_offset) == (0, 0)
        assert _latest(sock, "idem").offset == 6
        assert _produce(sock, "idem", 0, batch(9)).error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert _produce(sock, "idem", 0, batch(6)).base_offset == 6
        other = call(sock, ApiKey.INIT_PRODUCER_ID, 1, {"transaction_timeout_ms": 1000}).producer_id
        assert other != pid


def test_producer_state_survives_a_broker_restart(brokers):
    """A retry that reaches the partition's leader after it restarted (or after a failover: the new
    leader holds the same batches) is still answered with the original offset, not stored again: the
    leader rebuilds producer sequences from the tail of its log."""
    broker = brokers.start(0)
    brokers.runner.in_process("topic", "create", "idem")
    with connect(broker.socket_path) as sock:
        pid = call(sock, ApiKey.INIT_PRODUCER_ID, 1, {"transaction_timeout_ms": 1000}).producer_id

        def batch(seq: int) -> bytes:
            return _batch(3, producer_id=pid, producer_epoch=0, base_sequence=seq)

        for seq in range(0, 30, 3):
            assert _produce(sock, "idem", 0, batch(seq)).error_code == 0
        _produce(sock, "idem", 0, _batch(2))  # another, non-idempotent writer in between
    assert broker.stop() == 0
    broker = brokers.start(0)
    with connect(broker.socket_path) as sock:
        retry = _produce(sock, "idem", 0, batch(27))  # the last batch, its answer lost
        assert (retry.error_code, retry.base_offset) == (0, 27)
        assert _latest(sock, "idem").offset == 32
        gap = _produce(sock, "idem", 0, batch(33))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert _produce(sock, "idem", 0, batch(30)).base_offset == 32


# ---------------------------------------------------------------- Fetch and ListOffsets


def test_fetch_long_polls_until_data_or_timeout(broker):
    broker.runner.in_process("topic", "create", "lp")
    with connect(broker.socket_path) as sock:
        started = time.monotonic()
        body = _fetch(sock, [("lp", 0, 0)], max_wait_ms=400, min_bytes=1)
        waited = time.monotonic() - started
        assert 0.35 <= waited < 5 and body.responses[0].partitions[0].records in (b"", None)

        def later() -> None:
            time.sleep(0.3)
            with connect(broker.socket_path) as other:
                _produce(other, "lp", 0, _batch(2))

        thread = threading.Thread(target=later)
        thread.start()
        started = time.monotonic()
        body = _fetch(sock, [("lp", 0, 0)], max_wait_ms=60_000, min_bytes=1)
        waited = time.monotonic() - started
        thread.join()
        part = body.responses[0].partitions[0]
        # answered when the data came, not at max_wait (a generous bound, far from either)
        assert waited < 30 and part.high_watermark == 2
        assert [r.key for r in decode_records(bytes(part.records))] == [b"k0", b"k1"]


def test_fetch_honours_byte_limits_and_ranges(broker):
    broker.runner.in_process("topic", "create", "lim", "-p", "2")
    one = _batch(10, size=90)  # ~1 KB each
    with connect(broker.socket_path) as sock:
        for p in (0, 1):
            for _ in range(3):
                assert _produce(sock, "lim", p, one).error_code == 0
        # per-partition limit below one batch: the first partition still gets one whole batch (KIP-74),
        # the second gets nothing because the response already has data
        body = _fetch(sock, [("lim", 0, 0), ("lim", 1, 0)], partition_max_bytes=10)
        p0, p1 = body.responses[0].partitions
        assert len(bytes(p0.records)) == len(one) and bytes(p1.records) == b""
        # response limit: whole batches that fit
        body = _fetch(sock, [("lim", 0, 0), ("lim", 1, 0)], max_bytes=2 * len(one) + 5)
        p0, p1 = body.responses[0].partitions
        assert len(bytes(p0.records)) == 2 * len(one) and bytes(p1.records) == b""
        # from the middle of a batch: the whole batch comes back, as stored
        body = _fetch(sock, [("lim", 1, 15)])
        data = bytes(body.responses[0].partitions[0].records)
        assert [h.base_offset for _pos, h in iter_batches(data)] == [10, 20]
        body = _fetch(sock, [("lim", 1, 31), ("nope", 0, 0)])
        assert body.responses[0].partitions[0].error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        assert body.responses[1].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        body = _fetch(sock, [("lim", 1, 30)])
        assert body.responses[0].partitions[0].error_code == 0
        assert body.responses[0].partitions[0].high_watermark == 30


def test_list_offsets(broker):
    broker.runner.in_process("topic", "create", "lo")
    with connect(broker.socket_path) as sock:
        assert _latest(sock, "lo").offset == 0
        for i in range(3):
            _produce(sock, "lo", 0, _batch(10, ts=1_000 * (i + 1)))
        assert _latest(sock, "lo", timestamp=-2).offset == 0
        assert _latest(sock, "lo").offset == 30
        found = _latest(sock, "lo", timestamp=2_005)
        assert (found.offset, found.timestamp) == (15, 2_005)
        found = _latest(sock, "lo", timestamp=99_999)
        assert (found.offset, found.timestamp) == (-1, -1)
        assert _latest(sock, "nope").error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
