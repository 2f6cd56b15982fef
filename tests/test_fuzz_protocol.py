"""Property-based tests of the wire protocol codec and of the CLI's input parsing.

The broker decodes whatever a socket delivers, so the codec's one promise to it is: any bytes either
decode or raise kcli's ProtocolError, never another exception (which would take a connection thread
down with a traceback, or worse).  Hypothesis builds random and mutated requests from the same schemas
the codec is compiled from, so every field type and version range of the implemented APIs gets probed.
tests/test_protocol.py has fixed-seed variants of some of these; here hypothesis searches and shrinks.

The CLI half feeds the pure input parsers (``-H`` headers, ``--offset`` specs, ``-c`` configs, ``--format``,
the line reader behind ``produce``) random text, and runs ``produce -K``/``-H``/``--json`` end to end on a
few awkward inputs.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcli.errors import KcliError, ProtocolError, UsageError
from kcli.protocol import (
    APIS,
    ApiKey,
    RequestHeader,
    decode_assignment,
    decode_request,
    decode_response,
    decode_subscription,
    decode_unsigned_varint,
    decode_varint,
    decode_varlong,
    encode_request,
    encode_varint,
    encode_varlong,
    parse_frame,
)
from kcli.protocol.schema import Array, Nested, Schema
from kcli.protocol.types import Bytes, Fixed, String

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VERSIONS = [
    (key, v) for key, api in sorted(APIS.items()) for v in range(api.min_version, api.max_version + 1)
]
_BITS = {"b": 8, "h": 16, "i": 32, "q": 64}
# strings as clients send them: any Unicode without lone surrogates (which UTF-8 cannot carry)
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)


def _scalar(t, nullable: bool) -> st.SearchStrategy:
    if isinstance(t, Fixed) and t.name == "uuid":
        s = st.binary(min_size=16, max_size=16)
    elif isinstance(t, Fixed):
        if t.code == "?":
            s = st.booleans()
        else:
            bits = _BITS[t.code]
            s = st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    elif isinstance(t, String):
        s = _TEXT
    else:
        assert isinstance(t, Bytes)
        s = st.binary(max_size=48)
    return st.none() | s if nullable else s


def message(schema: Schema, version: int, depth: int = 0) -> st.SearchStrategy:
    """Any value with exactly the fields ``schema`` puts on the wire in ``version``."""
    fields = {}
    for f in schema.fields_for(version):
        nullable = f.nullable_in(version)
        t = f.type
        if isinstance(t, Array):
            item = (
                message(t.item, version, depth + 1) if isinstance(t.item, Schema) else _scalar(t.item, False)
            )
            s = st.lists(item, max_size=3 if depth < 2 else 1)
            fields[f.name] = st.none() | s if nullable else s
        elif isinstance(t, Nested):
            assert t.schema is not None
            s = message(t.schema, version, depth + 1)
            fields[f.name] = st.none() | s if nullable else s
        else:
            fields[f.name] = _scalar(t, nullable)
    return st.fixed_dictionaries(fields)


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


def restrict(decoded, like):
    """``decoded`` cut down to the keys ``like`` has: decoded structs also hold the fields a version lacks."""
    if isinstance(like, dict):
        return {k: restrict(decoded[k], v) for k, v in like.items()}
    if isinstance(like, list):
        return [restrict(d, v) for d, v in zip(decoded, like, strict=True)]
    return plain(decoded)


@st.composite
def valid_request(draw, keys=None):
    """(key, version, body, payload without the size prefix) of a well-formed request."""
    key, version = draw(st.sampled_from([kv for kv in VERSIONS if keys is None or kv[0] in keys]))
    body = draw(message(APIS[key].request, version))
    header = RequestHeader(key, version, draw(st.integers(-(2**31), 2**31 - 1)), draw(st.none() | _TEXT))
    frame = encode_request(header, body)
    return key, version, header, body, frame[4:]


def _decodes_or_protocol_error(payload: bytes) -> None:
    try:
        decode_request(payload)
    except ProtocolError:
        pass


# --- requests: random and mutated bytes ------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_protocol_error(data):
    _decodes_or_protocol_error(data)


@FUZZ
@given(st.sampled_from(VERSIONS), st.binary(max_size=300), st.binary(max_size=40))
def test_random_body_behind_a_valid_header_raises_only_protocol_error(kv, body, client_id):
    key, version = kv
    header = struct.pack(">hhih", key, version, 7, len(client_id)) + client_id
    _decodes_or_protocol_error(header + body)


mutation = st.tuples(
    st.sampled_from(["set", "flip", "insert", "delete", "truncate", "repeat"]),
    st.integers(0, 10_000),
    st.integers(0, 255),
)


def mutate(payload: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(payload)
    for op, where, byte in ops:
        i = where % (len(buf) + 1)
        if op == "set" and i < len(buf):
            buf[i] = byte
        elif op == "flip" and i < len(buf):
            buf[i] ^= 1 << (byte % 8)
        elif op == "insert":
            buf[i:i] = bytes([byte]) * (1 + byte % 5)
        elif op == "delete":
            del buf[i : i + 1 + byte % 8]
        elif op == "truncate":
            del buf[i:]
        elif op == "repeat":
            buf[i:i] = buf[i : i + 1 + byte % 16]
    return bytes(buf)


@FUZZ
@given(valid_request(), st.lists(mutation, min_size=1, max_size=6))
def test_mutated_requests_raise_only_protocol_error(request, ops):
    *_ignored, payload = request
    _decodes_or_protocol_error(mutate(payload, ops))


@FUZZ
@given(valid_request(), st.integers(0, 3), st.binary(min_size=4, max_size=4))
def test_lengths_and_counts_overwritten_with_extremes(request, which, extreme):
    """Length and count fields are where decoders allocate: overwrite 4 bytes anywhere with -1, 2**31-1 or
    random bytes, the classic way to make a parser allocate gigabytes or read past the end."""
    *_ignored, payload = request
    value = [b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", extreme][which]
    for at in range(8, max(9, len(payload) - 3), max(1, len(payload) // 12)):
        _decodes_or_protocol_error(payload[:at] + value + payload[at + 4 :])


@FUZZ
@given(st.sampled_from(VERSIONS), st.binary(max_size=300))
def test_random_responses_raise_only_protocol_error(kv, data):
    try:
        decode_response(kv[0], kv[1], data)
    except ProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=120))
def test_consumer_protocol_blobs_raise_only_protocol_error(data):
    for decode in (decode_subscription, decode_assignment):
        try:
            decode(data)
        except ProtocolError:
            pass


@FUZZ
@given(st.binary(max_size=12), st.integers(0, 12))
def test_varints_raise_only_protocol_error(data, pos):
    for decode in (decode_unsigned_varint, decode_varint, decode_varlong):
        try:
            decode(data, pos)
        except ProtocolError:
            pass


@FUZZ
@given(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1))
def test_varint_round_trip(i32, i64):
    assert decode_varint(encode_varint(i32)) == (i32, len(encode_varint(i32)))
    assert decode_varlong(encode_varlong(i64)) == (i64, len(encode_varlong(i64)))


# --- framing ------------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=64), st.integers(0, 64))
def test_parse_frame_takes_whole_frames_or_raises_protocol_error(buf, limit):
    try:
        payload, used = parse_frame(buf, max_frame_size=limit)
    except ProtocolError:
        size = struct.unpack(">i", buf[:4])[0]
        assert size < 0 or size > limit
        return
    if payload is None:
        assert used == 0 and (len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0])
    else:
        assert used == 4 + len(payload) and payload == buf[4:used]


@ROUND_TRIP
@given(
    st.lists(valid_request(), min_size=1, max_size=4), st.lists(st.integers(1, 50), min_size=1, max_size=8)
)
def test_back_to_back_frames_survive_any_chunking(requests, cuts):
    """A socket hands over bytes in arbitrary pieces: buffering and parse_frame must give back each frame."""
    stream = b"".join(struct.pack(">i", len(p)) + p for *_r, p in requests)
    buf, got, pos, i = b"", [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        buf += stream[pos : pos + step]
        pos += step
        i += 1
        while True:
            payload, used = parse_frame(buf)
            if payload is None:
                break
            got.append(payload)
            buf = buf[used:]
    assert got == [p for *_r, p in requests] and buf == b""


# --- round trips of generated requests ------------------------------------------------------------------

ROUND_TRIP_APIS = [
    ApiKey.PRODUCE,
    ApiKey.FETCH,
    ApiKey.METADATA,
    ApiKey.OFFSET_COMMIT,
    ApiKey.JOIN_GROUP,
    ApiKey.CREATE_TOPICS,
    ApiKey.LIST_OFFSETS,
]


@pytest.mark.parametrize("key", ROUND_TRIP_APIS, ids=lambda k: APIS[k].name)
@ROUND_TRIP
@given(data=st.data())
def test_generated_requests_round_trip(key, data):
    _key, version, header, body, payload = data.draw(valid_request(keys={key}))
    request = decode_request(payload)
    assert request.header == header
    schema = APIS[key].request
    assert restrict(request.body, body) == plain(body)
    for f in schema.fields:
        if not f.present(version):
            assert request.body[f.name] == f.default
    assert encode_request(header, request.body)[4:] == payload


# --- CLI input parsing: pure functions ------------------------------------------------------------------


@FUZZ
@given(st.lists(_TEXT, max_size=5))
def test_header_options_parse_or_refuse(pairs):
    from kcli.cli.produce import _parse_headers

    try:
        parsed = _parse_headers(tuple(pairs))
    except UsageError:
        assert any("=" not in p or p.startswith("=") for p in pairs)
        return
    # the first '=' splits: keys never hold one, values may
    assert parsed == [(p.split("=", 1)[0], p.split("=", 1)[1].encode()) for p in pairs]


class _Offsets:
    """A partition holding offsets 100..199, one record each, for --offset specs (``-N`` reads them)."""

    def list_offset(self, topic, partition, spec, isolation="read_uncommitted"):
        return {"earliest": 100, "latest": 200}.get(spec, 150)

    def fetch(self, topic, partition, offset, max_bytes=1 << 20, wait=0.0, isolation="read_uncommitted"):
        from kcli.storage.records import encode_batch

        if offset >= 200:
            return b"", offset
        batch = bytearray(encode_batch([(None, b"v", [], 0)] * 100))
        batch[0:8] = (100).to_bytes(8, "big")  # base offset 100
        return bytes(batch), 200


@FUZZ
@given(st.one_of(_TEXT, st.integers(-(10**6), 10**6).map(str), st.builds("s@{}".format, _TEXT)))
def test_offset_specs_resolve_inside_the_log_or_refuse(spec):
    from kcli.client.consumer import resolve_start

    try:
        offset = resolve_start(_Offsets(), "t", 0, spec)
    except UsageError:
        return
    assert offset >= 100


@FUZZ
@given(
    st.lists(
        st.one_of(
            _TEXT,
            st.builds(
                "{}={}".format,
                st.sampled_from(
                    [
                        "segment.bytes",
                        "retention.ms",
                        "max.message.bytes",
                        "cleanup.policy",
                        "min.insync.replicas",
                        "x",
                    ]
                ),
                _TEXT,
            ),
        ),
        max_size=4,
    )
)
def test_topic_configs_parse_or_refuse_with_a_usage_error(pairs):
    from kcli.storage.config import parse_config_pairs

    try:
        parse_config_pairs(pairs)
    except UsageError:
        pass


@FUZZ
@given(_TEXT)
def test_any_format_string_renders_bytes(fmt):
    from kcli.cli.recordio import compile_format
    from kcli.storage.records import Record

    render = compile_format(fmt)
    assert isinstance(render("t", 0, Record(5, 1, b"k", None, [("h", b"v")])), bytes)


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 64))
def test_line_reader_returns_exactly_the_input_lines(data, pipe_chunk):
    """produce's reader: lines split at \\n, one trailing CR dropped, a last line without \\n kept, and the
    same lines whatever sizes the input arrives in."""
    from kcli.cli.produce import read_lines

    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    expected = [line[:-1] if line.endswith(b"\r") else line for line in expected]
    with tempfile.TemporaryFile() as fh:
        fh.write(data)
        fh.seek(0)
        assert list(read_lines(fh.fileno(), 0, lambda: None)) == expected
    r, w = os.pipe()
    try:
        for i in range(0, len(data), pipe_chunk):
            os.write(w, data[i : i + pipe_chunk])
        os.close(w)
        w = -1
        assert list(read_lines(r, 0, lambda: None)) == expected
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


# --- CLI input parsing: end to end ----------------------------------------------------------------------


def _records(kcli, topic: str) -> list[dict]:
    return [json.loads(line) for line in kcli("consume", topic, "-b", "-e", "--json").stdout.splitlines()]


def test_key_separator_splits_at_the_first_occurrence_only(kcli):
    kcli("produce", "t", "-K", "::", input="k1::v1\nnosep\n::emptykey\nk::v::w\nk:single\n\n")
    got = [(r["key"], r["value"]) for r in _records(kcli, "t")]
    assert got == [
        ("k1", "v1"),
        (None, "nosep"),
        ("", "emptykey"),
        ("k", "v::w"),
        (None, "k:single"),
        (None, ""),
    ]


def test_header_options_end_to_end(kcli):
    kcli("produce", "t", "-H", "a=1", "-H", "b=", "-H", "c=x=y", "-H", "ü=ö", input="v\n")
    assert _records(kcli, "t")[0]["headers"] == [["a", "1"], ["b", ""], ["c", "x=y"], ["ü", "ö"]]
    for bad in ("novalue", "=x"):
        res = kcli("produce", "t", "-H", bad, input="v\n", ok=False)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "header" in res.stderr
    assert len(_records(kcli, "t")) == 1


def test_json_input_lines_end_to_end(kcli):
    lines = [
        {"key": {"base64": "AP8="}, "value": None, "headers": {"h": "1"}},
        {"value": "plain", "headers": [["x", None]], "timestamp": 1700000000000},
        {"key": "ü", "value": {"base64": ""}},
    ]
    kcli("produce", "t", "--json", input="".join(json.dumps(line) + "\n" for line in lines) + "\n")
    got = _records(kcli, "t")
    assert [(r["key"], r["value"]) for r in got] == [({"base64": "AP8="}, None), (None, "plain"), ("ü", "")]
    assert got[0]["headers"] == [["h", "1"]] and got[1]["timestamp"] == 1700000000000
    for bad, what in (
        ("[1,2]\n", "object"),
        ('{"value": 5}\n', "value"),
        ("{nope\n", "JSON"),
        ('{"value": "x", "partition": "0"}\n', "partition"),
    ):
        res = kcli("produce", "t", "--json", input='{"value": "fine"}\n' + bad, ok=False)
        assert res.returncode == 2, res.stderr
        line = res.stderr.strip()
        assert "\n" not in line and "line 2" in line and what in line, line
    # nothing of a refused line is stored; at most the good line before it went through
    extra = [r["value"] for r in _records(kcli, "t")[3:]]
    assert set(extra) <= {"fine"} and len(extra) <= 4


_JSON_FIELD = (
    st.none()
    | st.booleans()
    | st.integers()
    | _TEXT
    | st.lists(st.lists(_TEXT | st.none(), max_size=3), max_size=2)
    | st.fixed_dictionaries({"base64": _TEXT})
)


@FUZZ
@given(
    st.text(max_size=120)
    | st.builds(
        json.dumps,
        st.dictionaries(
            st.sampled_from(["key", "value", "headers", "partition", "timestamp", "other"]),
            _JSON_FIELD,
            max_size=5,
        ),
    )
)
def test_any_json_line_is_read_or_refused_with_a_usage_error(text):
    """JsonInput is what produce --json runs per line: anything else than a UsageError is a crash."""
    from kcli.cli.recordio import JsonInput

    try:
        JsonInput(text, 1)
    except KcliError as exc:
        assert isinstance(exc, UsageError)
