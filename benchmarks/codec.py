"""Section 4: kcli's record batch codec against kafka-python's pure-Python one, on the same records cut
into the same ~16 KB batches.  Both sides build every field (kafka-python's DefaultRecord objects, our
Record objects); ``decode_values`` (what `consume` prints from) is shown as an extra row."""

from __future__ import annotations

from measure import timed
from table import Row

BATCH_RECORDS = 160  # ~16 KB of 100-byte records, the producer's default batch.size


def _load(lines: str, count: int) -> list[bytes]:
    with open(lines, "rb") as fh:
        return [line.rstrip(b"\n") for _, line in zip(range(count), fh, strict=False)]


def measure(lines: str, count: int, repeat: int) -> list[Row]:
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

    from kcli.storage import records
    from kcli.storage.records import decode_records, encode_batch

    decode_values = getattr(records, "decode_values", None)  # absent before the optimisations

    values = _load(lines, count)
    base = 1_700_000_000_000
    chunks = [
        [
            (None, v, [], base + (start + i) // 1000)
            for i, v in enumerate(values[start : start + BATCH_RECORDS])
        ]
        for start in range(0, len(values), BATCH_RECORDS)
    ]

    def ours_encode() -> list[bytes]:
        return [encode_batch(chunk) for chunk in chunks]

    def theirs_encode() -> list[bytes]:
        out = []
        for chunk in chunks:
            builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 30)
            for i, (key, value, headers, ts) in enumerate(chunk):
                builder.append(i, timestamp=ts, key=key, value=value, headers=headers)
            out.append(bytes(builder.build()))
        return out

    ours, theirs = ours_encode(), theirs_encode()
    # the CRC and everything it covers must agree (the leader epoch before it is ours to set)
    same_bytes = all(a[17:] == b[17:] for a, b in zip(ours, theirs, strict=True))

    def ours_decode() -> int:
        return sum(len(decode_records(batch)) for batch in ours)

    def ours_values() -> int:
        return sum(len(decode_values(batch)) for batch in ours)

    def theirs_decode() -> int:
        return sum(1 for batch in ours for _record in DefaultRecordBatch(batch))

    same_values = [r.value for b in ours for r in decode_records(b)] == [
        r.value for b in ours for r in DefaultRecordBatch(b)
    ]
    enc_ours, enc_theirs = timed(ours_encode, repeat), timed(theirs_encode, repeat)
    dec_ours, dec_theirs = timed(ours_decode, repeat), timed(theirs_decode, repeat)
    dec_values = timed(ours_values, repeat) if decode_values is not None else None
    n = len(values)
    note = "" if same_bytes and same_values else "CODECS DISAGREE"
    return [
        Row(
            "4",
            "encode batches vs kafka-python",
            n / enc_ours,
            "rec/s",
            n / enc_theirs,
            "kafka-python",
            2.0,
            on="ratio",
            note=note,
        ),
        Row(
            "4",
            "decode batches vs kafka-python",
            n / dec_ours,
            "rec/s",
            n / dec_theirs,
            "kafka-python",
            2.5,
            on="ratio",
        ),
        Row(
            "4",
            "decode values only (consume's path)",
            n / dec_values if dec_values else None,
            "rec/s",
            n / dec_theirs,
            "kafka-python",
        ),
    ]
