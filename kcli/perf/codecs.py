"""The measurement behind ``kcli perf codecs``: every compression codec on a sample of the user's own
messages, in real record batches.

Kafka's advice is to test codecs on real data before choosing: ratios depend on the data far more than
on the codec (JSON logs shrink five-fold, random ids hardly at all), and a batch compresses as a whole,
so the batch size matters as much as the codec.  So the sample is cut into batches the way
``kcli produce --batch-size`` cuts its input, each batch is built by the storage layer's own
``encode_batch`` (header, CRC and all, exactly the bytes that would land in a segment), and the figures
are bytes of those batches and the time to build and to decode them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcli.errors import KcliError
from kcli.storage import compression
from kcli.storage.records import RecordTuple, decode_records, encode_batch

if TYPE_CHECKING:
    from kcli.client.transport import Transport

_MB = 1024 * 1024  # as the perf-test tools count MB
RECORD_OVERHEAD = 12  # the producer's per-record estimate when it fills a batch
DEFAULT_MIN_TIME = 0.2


@dataclass(frozen=True)
class Variant:
    """A codec and level to try; ``level`` None is the codec's default (what ``kcli produce -z`` uses)."""

    name: str
    codec: int
    level: int | None = None


VARIANTS: tuple[Variant, ...] = (
    Variant("none", compression.NONE),
    Variant("gzip", compression.GZIP),
    Variant("snappy", compression.SNAPPY),
    Variant("lz4", compression.LZ4),
    Variant("zstd-1", compression.ZSTD, 1),
    Variant("zstd-3", compression.ZSTD, 3),
    Variant("zstd-9", compression.ZSTD, 9),
    Variant("zstd-19", compression.ZSTD, 19),
)


@dataclass(frozen=True)
class CodecResult:
    """One variant measured on the sample.  Sizes are whole batches (61-byte headers included), so they
    are what the log would hold; speeds are uncompressed batch bytes per second."""

    name: str
    codec: int
    level: int | None
    messages: int
    batches: int
    uncompressed_bytes: int
    compressed_bytes: int
    compress_mb_s: float
    decompress_mb_s: float

    @property
    def ratio(self) -> float:
        return self.uncompressed_bytes / self.compressed_bytes

    @property
    def bytes_per_million(self) -> int:
        """Bytes of log a million such messages would take."""
        return round(self.compressed_bytes * 1_000_000 / self.messages)

    def to_json(self) -> dict[str, object]:
        return {
            "codec": self.name,
            "compression_type": compression.CODEC_NAMES[self.codec],
            "level": self.level,
            "messages": self.messages,
            "batches": self.batches,
            "uncompressed_bytes": self.uncompressed_bytes,
            "compressed_bytes": self.compressed_bytes,
            "ratio": self.ratio,
            "compress_mb_s": self.compress_mb_s,
            "decompress_mb_s": self.decompress_mb_s,
            "bytes_per_million": self.bytes_per_million,
        }

    def row(self) -> list[str]:
        """The table cells: CODEC, RATIO, COMPRESS-MB/S, DECOMPRESS-MB/S, BYTES-PER-1M-MSGS."""
        return [
            self.name,
            f"{self.ratio:.3f}",
            f"{self.compress_mb_s:.1f}",
            f"{self.decompress_mb_s:.1f}",
            str(self.bytes_per_million),
        ]


COLUMNS = ["CODEC", "RATIO", "COMPRESS-MB/S", "DECOMPRESS-MB/S", "BYTES-PER-1M-MSGS"]


# ---------------------------------------------------------------- the sample


def file_sample(path: str, limit: int, timestamp_ms: int | None = None) -> list[list[RecordTuple]]:
    """The first ``limit`` lines of ``path`` ('-' for stdin) as the unkeyed records ``kcli produce``
    would make of them (newline and a CR before it removed), sharing one timestamp like lines that
    arrive together; one partition's worth."""
    ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    records: list[RecordTuple] = []
    fh = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    try:
        for line in fh:
            if len(records) >= limit:
                break
            line = line[:-1] if line.endswith(b"\n") else line
            records.append((None, line[:-1] if line.endswith(b"\r") else line, (), ts))
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    return [records] if records else []


def topic_sample(transport: Transport, topic: str, limit: int) -> list[list[RecordTuple]]:
    """The newest ``limit`` records of ``topic`` (by timestamp across partitions), read through the
    consumer with their keys, headers and timestamps, grouped per partition in offset order (a producer
    batches per partition)."""
    from kcli.client.consumer import Consumer

    partitions = transport.partition_count(topic)
    ends = {(topic, p): transport.list_offset(topic, p, "latest") for p in range(partitions)}
    starts = {
        tp: max(transport.list_offset(topic, tp[1], "earliest"), end - limit) for tp, end in ends.items()
    }
    consumer = Consumer(transport)
    consumer.assign(starts)
    found: list[tuple[int, int, int, RecordTuple]] = []  # timestamp, partition, offset, record
    for item in consumer.stream(end_offsets=ends, idle_stop=0):
        if item is not None:
            _topic, partition, rec = item
            found.append(
                (rec.timestamp, partition, rec.offset, (rec.key, rec.value, rec.headers, rec.timestamp))
            )
    newest = sorted(found, key=lambda f: f[:3])[-limit:] if limit else []
    per_partition: dict[int, list[RecordTuple]] = {}
    for _ts, partition, _offset, record in sorted(newest, key=lambda f: (f[1], f[2])):
        per_partition.setdefault(partition, []).append(record)
    return [per_partition[p] for p in sorted(per_partition)]


def batch_groups(records: Sequence[RecordTuple], batch_size: int) -> list[list[RecordTuple]]:
    """Cut one partition's records into batches by the producer's rule: each record counts its key and
    value bytes plus 12, and the record that brings a batch to ``batch_size`` closes it."""
    groups: list[list[RecordTuple]] = []
    current: list[RecordTuple] = []
    size = 0
    for record in records:
        key, value = record[0], record[1]
        current.append(record)
        size += RECORD_OVERHEAD + (len(value) if value else 0) + (len(key) if key else 0)
        if size >= batch_size:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def sample_batches(sample: Sequence[Sequence[RecordTuple]], batch_size: int) -> list[list[RecordTuple]]:
    """Every partition's records of ``sample`` cut into batches (a batch never mixes partitions)."""
    return [group for records in sample for group in batch_groups(records, batch_size)]


# ---------------------------------------------------------------- measuring


def _seconds_per_run(run: Callable[[], object], min_time: float) -> float:
    """Repeat ``run`` until ``min_time`` has passed (at least once): the average of many runs of a
    small sample is steadier than one."""
    runs = 0
    start = time.perf_counter()
    while True:
        run()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / runs


def measure(
    groups: Sequence[Sequence[RecordTuple]], variant: Variant, min_time: float = DEFAULT_MIN_TIME
) -> CodecResult:
    """Build every batch of ``groups`` with ``variant``, then time building and decoding them."""
    if not groups:
        raise KcliError("nothing to measure: the sample has no messages")
    plain = sum(len(encode_batch(g)) for g in groups)

    def build() -> list[bytes]:
        return [encode_batch(g, 0, variant.codec, level=variant.level) for g in groups]

    batches = build()

    def decode() -> None:
        for batch in batches:
            decode_records(batch)

    compress_s = _seconds_per_run(build, min_time)
    decompress_s = _seconds_per_run(decode, min_time)
    return CodecResult(
        variant.name,
        variant.codec,
        variant.level,
        sum(len(g) for g in groups),
        len(batches),
        plain,
        sum(map(len, batches)),
        plain / _MB / compress_s,
        plain / _MB / decompress_s,
    )


def measure_all(
    groups: Sequence[Sequence[RecordTuple]],
    variants: Iterable[Variant] = VARIANTS,
    min_time: float = DEFAULT_MIN_TIME,
    on_done: Callable[[CodecResult], None] | None = None,
) -> list[CodecResult]:
    """``measure`` for each variant in turn; ``on_done`` after each (a progress bar)."""
    out = []
    for variant in variants:
        result = measure(groups, variant, min_time)
        out.append(result)
        if on_done is not None:
            on_done(result)
    return out


def usage_hint(result: CodecResult) -> str:
    """How to get ``result``'s codec when producing with kcli or a Kafka client."""
    name = compression.CODEC_NAMES[result.codec]
    hint = f"`kcli produce -z {name}`, or compression.type={name} in a Kafka producer"
    if result.level is not None and result.codec == compression.ZSTD and result.level != 3:
        hint += f" with compression.zstd.level={result.level} (Kafka 3.8+; kcli produce uses level 3)"
    return hint
