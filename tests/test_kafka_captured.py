"""Record batches that real Kafka brokers wrote, from other clients' test suites (see
fixtures/kafka-captured/PROVENANCE.md): kcli decodes every field as Kafka meant it, and re-encodes the
same bytes where the encoding is deterministic. For gzip that means the same records section and the
same frame around the broker's own compressed bytes, because another gzip implementation compresses
differently."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from kcli.protocol import ApiKey, decode_response
from kcli.storage import compression, records

CAPTURED = Path(__file__).resolve().parent.parent / "fixtures" / "kafka-captured"


def _hex(name: str) -> bytes:
    return bytes.fromhex((CAPTURED / name).read_text().strip())


def _fetched(name: str) -> tuple[object, bytes]:
    """A captured Fetch v10 response: (partition 0 of its one topic, that partition's records bytes)."""
    raw = _hex(name)
    assert int.from_bytes(raw[:4], "big") == len(raw) - 4
    response = decode_response(ApiKey.FETCH, 10, raw[4:])
    assert response.correlation_id == 10 and response.body.error_code == 0
    (topic,) = response.body.responses
    (part,) = topic.partitions
    return part, bytes(part.records)


def _filler(letter: str) -> bytes:
    return b'{"count":0,"filler":"' + letter.encode() * 10 + b'"}'


# (base offset, batch length, leader epoch, crc, attributes, last offset delta, base timestamp, max timestamp,
#  records as (offset, timestamp, key, value, headers)); every batch: magic 2, no producer id/epoch/sequence
KAFKA_PYTHON_0_11 = [
    (0, 59, 1, 0x0318A270, 0, 0, 1503229838908, 1503229838908, [(0, 1503229838908, None, b"123", [])]),
    (1, 64, 2, 0xC85CBD23, 0, 1, 1503229959532, 1503229959700,
     [(1, 1503229959532, None, b"", []), (2, 1503229959700, None, b"", [])]),
    (3, 59, 2, 0x2E0B85B7, 0, 0, 1503229962141, 1503229962141, [(3, 1503229962141, None, b"123", [])]),
]
KAFKA_PYTHON_HEADER = [
    (0, 69, 0, 0x5CD8EF52, 0, 0, 1535546684353, 1535546684353,
     [(0, 1535546684353, None, b"hdr", [("hkey", b"hval")])]),
]
KAFKA_GO_V2_V2 = [
    (0, 138, 0, 0x3978FC3B, 0, 1, 1633414495929, 1633414495954,
     [(0, 1633414495929, b"alpha", _filler("a"), []), (1, 1633414495954, b"beta", _filler("b"), [])]),
    (2, 140, 0, 0xFA7514AB, 0, 1, 1633414504352, 1633414505247,
     [(2, 1633414504352, b"gamma", _filler("c"), []), (3, 1633414505247, b"delta", _filler("d"), [])]),
]
KAFKA_GO_V2C_V2C = [
    (0, 121, 0, 0x1AD503DB, 1, 1, 1633414684500, 1633414684528,
     [(0, 1633414684500, b"alpha", _filler("a"), []), (1, 1633414684528, b"beta", _filler("b"), [])]),
    (2, 123, 0, 0xD346070A, 1, 1, 1633414694417, 1633414695120,
     [(2, 1633414694417, b"gamma", _filler("c"), []), (3, 1633414695120, b"delta", _filler("d"), [])]),
]
KAFKA_GO_V2C_V2_V2C = [
    (0, 121, 0, 0x5DA9BF74, 1, 1, 1633414998643, 1633414998669,
     [(0, 1633414998643, b"alpha", _filler("a"), []), (1, 1633414998669, b"beta", _filler("b"), [])]),
    (2, 140, 0, 0xF53E2B60, 0, 1, 1633415010912, 1633415011429,
     [(2, 1633415010912, b"gamma", _filler("c"), []), (3, 1633415011429, b"delta", _filler("d"), [])]),
    (4, 125, 0, 0x68A8CA64, 1, 1, 1633415023097, 1633415024052,
     [(4, 1633415023097, b"epsilon", _filler("e"), []), (5, 1633415024052, b"zeta", _filler("f"), [])]),
]


def _captured(name: str) -> bytes:
    return _fetched(name)[1] if name.startswith("kafka-go-fetch") else _hex(name)


CASES = {
    "kafka-python-v2-broker-0.11.hex": KAFKA_PYTHON_0_11,
    "kafka-python-v2-header.hex": KAFKA_PYTHON_HEADER,
    "kafka-go-fetch-v10-v2-v2.hex": KAFKA_GO_V2_V2,
    "kafka-go-fetch-v10-v2c-v2c.hex": KAFKA_GO_V2C_V2C,
    "kafka-go-fetch-v10-v2c-v2-v2c.hex": KAFKA_GO_V2C_V2_V2C,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_field_of_every_batch_decodes(name: str) -> None:
    data, expected = _captured(name), CASES[name]
    batches = list(records.iter_batches(data))
    assert len(batches) == len(expected)
    assert sum(h.size for _p, h in batches) == len(data)
    for (pos, h), (base, length, epoch, crc, attrs, delta, first_ts, max_ts, recs) in zip(
        batches, expected, strict=True
    ):
        assert (h.base_offset, h.batch_length, h.partition_leader_epoch, h.magic, h.crc, h.attributes) == (
            base, length, epoch, 2, crc, attrs
        )
        assert (h.last_offset_delta, h.base_timestamp, h.max_timestamp, h.records_count) == (
            delta, first_ts, max_ts, len(recs)
        )
        assert (h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence) == (-1, -1, -1, -1)
        assert h.codec == (compression.GZIP if attrs & 7 == 1 else compression.NONE)
        assert h.last_offset == base + delta and h.next_offset == base + delta + 1
        assert records.crc_valid(data, pos, h)
        got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers))
               for r in records.decode_records(data, pos, h)]
        assert got == recs


@pytest.mark.parametrize("name", sorted(CASES))
def test_kcli_re_encodes_the_same_bytes(name: str) -> None:
    data, expected = _captured(name), CASES[name]
    for (pos, h), (base, _len, epoch, _crc, attrs, _d, _f, _m, recs) in zip(
        records.iter_batches(data), expected, strict=True
    ):
        original = data[pos : pos + h.size]
        as_given = [(key, value, headers, ts) for _o, ts, key, value, headers in recs]
        if attrs & 7 == compression.NONE:
            assert records.encode_batch(as_given, base, partition_leader_epoch=epoch) == original
        else:
            # the broker's gzip stream as it is: the records inside and the frame around it are kcli's own
            compressed = original[records.HEADER_SIZE :]
            section = records.record_section(as_given)
            assert gzip.decompress(compressed) == section.body
            assert records.frame(section, h.codec, compressed=compressed, base_offset=base,
                                 partition_leader_epoch=epoch) == original


def test_a_captured_fetch_response_decodes_with_its_partition_state() -> None:
    part, data = _fetched("kafka-go-fetch-v10-v2c-v2-v2c.hex")
    assert (part.partition_index, part.error_code, part.high_watermark, part.last_stable_offset,
            part.log_start_offset) == (0, 0, 6, 6, 0)
    assert [h.next_offset for _p, h in records.iter_batches(data)][-1] == part.high_watermark


def test_a_flipped_bit_in_a_captured_batch_fails_its_crc() -> None:
    data = bytearray(_hex("kafka-python-v2-broker-0.11.hex"))
    data[70] ^= 0x01  # the last byte of the first batch (its record's header count)
    (pos, h), *_ = records.iter_batches(bytes(data))
    assert not records.crc_valid(bytes(data), pos, h)
