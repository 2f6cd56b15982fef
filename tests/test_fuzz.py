"""Property-based tests: the record codec round-trips anything, and random bytes never crash a decoder."""

from __future__ import annotations

import json
import struct

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcli.cli.recordio import JsonInput, record_to_json
from kcli.errors import CorruptRecordError, UsageError
from kcli.storage import compression, records

blobs = st.one_of(st.none(), st.binary(max_size=200))
headers = st.lists(st.tuples(st.text(max_size=20), blobs), max_size=4)
record = st.tuples(blobs, blobs, headers, st.integers(min_value=0, max_value=2**45))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(record, min_size=1, max_size=20), st.sampled_from(sorted(compression.CODECS.values())),
       st.integers(min_value=0, max_value=2**40))
def test_batch_round_trip(recs, codec, base):
    data = records.encode_batch(recs, base, codec)
    header = records.parse_header(data)
    assert header.size == len(data) and header.records_count == len(recs) and header.codec == codec
    decoded = records.decode_records(data)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in decoded] == [
        (k, v, list(h), ts) for k, v, h, ts in recs
    ]
    assert [r.offset for r in decoded] == list(range(base, base + len(recs)))


@FAST
@given(st.lists(record, min_size=1, max_size=20), st.sampled_from(sorted(compression.CODECS.values())), st.data())
def test_key_walk_and_splice_agree_with_a_decode(recs, codec, data):
    """walk_keys finds what decode_records does (keys, offsets, null values, timestamps); splice_records
    of any subset against any base timestamp decodes as those records, timestamps kept."""
    batch = records.encode_batch(recs, 100, codec)
    decoded = records.decode_records(batch)
    walk = records.walk_keys(batch)
    header = records.parse_header(batch)
    assert walk.keys == [r.key for r in decoded]
    assert [100 + d for d in walk.offset_deltas] == [r.offset for r in decoded]
    assert walk.nulls == [i for i, r in enumerate(decoded) if r.value is None]
    assert [header.base_timestamp + d for d in walk.timestamp_deltas] == [r.timestamp for r in decoded]
    picks = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(recs) - 1), min_size=1)))
    new_base = data.draw(st.integers(min_value=0, max_value=2**45))
    body = records.splice_records(walk, picks, [decoded[i].timestamp - new_base for i in picks])
    section = records.Section(body, len(picks), new_base, new_base)
    again = records.decode_records(records.frame(section, last_offset_delta=walk.offset_deltas[picks[-1]]))
    assert [(r.key, r.value, r.headers, r.timestamp, r.offset) for r in again] == [
        (r.key, r.value, r.headers, r.timestamp, r.offset - 100) for r in (decoded[i] for i in picks)]


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_raise_corruption_not_crash(data):
    try:
        for pos, header in records.iter_batches(data):
            records.decode_records(data, pos, header)
    except CorruptRecordError:
        pass


@FAST
@given(st.lists(record, min_size=1, max_size=5), st.data())
def test_flipped_byte_is_detected_or_harmless(recs, data):
    batch = bytearray(records.encode_batch(recs, 0, compression.NONE))
    i = data.draw(st.integers(min_value=21, max_value=len(batch) - 1))
    batch[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(CorruptRecordError):
        records.decode_records(bytes(batch))


@FAST
@given(st.lists(record, min_size=1, max_size=5), st.data())
def test_a_key_walk_of_damaged_records_raises_corruption_not_crash(recs, data):
    """Bytes of the records changed under a valid CRC (as a buggy producer could write them): the key walk
    reports a CorruptRecordError or finds as many records as the batch says, never another exception."""
    batch = bytearray(records.encode_batch(recs, 0, compression.NONE))
    i = data.draw(st.integers(min_value=records.HEADER_SIZE, max_value=len(batch) - 1))
    batch[i] = data.draw(st.integers(min_value=0, max_value=255))
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    try:
        walk = records.walk_keys(bytes(batch))
    except CorruptRecordError:
        return
    assert len(walk.keys) == len(recs) and walk.starts[-1] == len(batch) - records.HEADER_SIZE


@FAST
@given(st.binary(max_size=300), st.sampled_from([1, 2, 3, 4]))
def test_garbage_compressed_payload_is_corruption(payload, codec):
    with pytest.raises(CorruptRecordError):
        compression.decompress(codec, b"\xff\x00garbage" + payload)


@FAST
@given(record, st.text(max_size=30), st.integers(min_value=0, max_value=1000))
def test_json_lines_round_trip(rec, topic, partition):
    key, value, hdrs, ts = rec
    line = record_to_json(topic, partition, records.Record(7, ts, key, value, list(hdrs)))
    parsed = JsonInput(line, 1)
    assert (parsed.key, parsed.value, parsed.headers, parsed.timestamp) == (key, value, list(hdrs), ts)


# What stdin gives ``produce --json`` is bytes: any bytes, UTF-8 text with surrogates smuggled in, and
# JSON documents whose strings may hold lone surrogates (``\\ud800`` escapes) or whose numbers are long.
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(any_text, c, max_size=3),
    max_leaves=10,
)
record_like = st.fixed_dictionaries(
    {}, optional={"key": json_values, "value": json_values, "headers": json_values,
                  "partition": json_values, "timestamp": json_values},
)
stdin_lines = st.one_of(
    st.binary(max_size=200),
    any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    record_like.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n * 10),
    st.integers(min_value=1, max_value=6000).map(lambda n: b'{"timestamp": ' + b"9" * n + b"}"),
)


@FAST
@given(stdin_lines)
def test_json_input_refuses_any_bad_line_with_usage_error(line):
    """Whatever a line of stdin holds, it is a record or a UsageError (one line, exit 2), never a crash."""
    try:
        JsonInput(line, 1)
    except UsageError:
        pass
