"""Section 7: does reading stay cheap as a partition grows to many segments, and does listing topics
stay quick with many partitions?

Reading offset N looks up the segment by bisecting the sorted base offsets and the position through
the sparse offset index, so 1000 segments should cost about log(1000)/log(10) = 3 times 10 segments at
most.  Opening a partition lists its files, which is linear (Kafka loads every segment at start-up
too): shown apart, and end to end through the CLI.
"""

from __future__ import annotations

import math
import os
import statistics
import time

from inputs import head
from measure import env_with, median_wall, run_pipeline
from table import Row

RECORD_BYTES = 112  # a 99-byte value as stored: record framing plus its share of the batch header


def _segments(data: str, topic: str) -> int:
    folder = os.path.join(data, "broker-0", f"{topic}-0")
    return sum(1 for name in os.listdir(folder) if name.endswith(".log"))


def _first_record_ms(data: str, topic: str, offset: int, runs: int) -> tuple[float, float]:
    """Median in-process times (ms) to the record at ``offset``: from opening the data dir (listing the
    partition's files is linear in the segments, as Kafka's log loading is), and on a log already open
    (bisect over the segments' base offsets, then the sparse index: the O(log n) part)."""
    from kcli.client.consumer import Consumer
    from kcli.client.embedded import EmbeddedTransport
    from kcli.cluster.datadir import DataDir

    cold, warm = [], []
    for _ in range(runs):
        start = time.perf_counter()
        transport = EmbeddedTransport(DataDir(data), auto_create=False)
        consumer = Consumer(transport)
        for times in (cold, warm):
            consumer.assign({(topic, 0): offset})
            records = consumer.fetch_partition(topic, 0)
            times.append((time.perf_counter() - start) * 1000)
            if not records or records[0].offset != offset:
                raise RuntimeError(f"{topic}: expected offset {offset}, got {records[:1]}")
            start = time.perf_counter()
        transport.close(durable=False)
    return statistics.median(cold), statistics.median(warm)


def measure(kcli: list[str], work: str, lines: str, count: int, runs: int) -> list[Row]:
    rows: list[Row] = []
    data = os.path.join(work, "segments")
    env = env_with(data)
    subset = os.path.join(work, "segment-lines.txt")
    head(lines, subset, count)
    total = count * RECORD_BYTES
    seg_small = max(1024, math.ceil(total / 1000))
    batch = max(256, seg_small // 4)  # several batches per segment, same batching for both topics
    made = {}
    for wanted in (10, 1000):
        topic = f"s{wanted}"
        seg = max(1024, math.ceil(total / wanted))
        run_pipeline([kcli + ["topic", "create", topic, "-c", f"segment.bytes={seg}"]], env=env)
        run_pipeline([["cat", subset], kcli + ["produce", topic, "--batch-size", str(batch)]], env=env)
        made[wanted] = _segments(data, topic)
    offset = count - 10  # near the end: where a scan from the first segment would cost most
    inproc = {w: _first_record_ms(data, f"s{w}", offset, runs * 2) for w in (10, 1000)}
    cli = {
        w: median_wall(
            runs,
            lambda w=w: run_pipeline([kcli + ["consume", f"s{w}", "-o", str(offset), "-c", "1"]], env=env),
        )
        * 1000
        for w in (10, 1000)
    }
    rows.append(
        Row(
            "7",
            f"read @{offset} on an open log: {made[1000]} vs {made[10]} segments",
            inproc[1000][1],
            "ms",
            inproc[10][1],
            f"{made[10]} segments",
            3.0,
            op="<",
            on="ratio",
            note="goal: no worse than log(1000)/log(10) = 3x",
        )
    )
    rows.append(
        Row(
            "7",
            f"open + read @{offset} in-process: {made[1000]} vs {made[10]} segments",
            inproc[1000][0],
            "ms",
            inproc[10][0],
            f"{made[10]} segments",
            note="opening lists the partition's files: linear in the segments, like Kafka's log loading",
        )
    )
    rows.append(
        Row(
            "7",
            f"first record @{offset}: {made[1000]} vs {made[10]} segments (kcli consume)",
            cli[1000],
            "ms",
            cli[10],
            f"{made[10]} segments",
            3.0,
            op="<",
            on="ratio",
        )
    )
    wide = os.path.join(work, "partitions")
    wide_env = env_with(wide)
    run_pipeline([kcli + ["topic", "create", "one"]], env=wide_env)
    one = median_wall(runs, lambda: run_pipeline([kcli + ["topic", "list"]], env=wide_env))
    start = time.perf_counter()
    run_pipeline([kcli + ["topic", "create", "wide", "-p", "1000"]], env=wide_env)
    create = time.perf_counter() - start
    listing = median_wall(runs, lambda: run_pipeline([kcli + ["topic", "list"]], env=wide_env))
    rows.append(
        Row(
            "7",
            "topic list, 1001 partitions",
            listing,
            "s",
            one,
            "1 partition",
            1.0,
            op="<",
            note=f"creating the 1000-partition topic took {create:.2f} s",
        )
    )
    return rows
