"""Sections 3 and 6: produce/consume through live brokers (Kafka's protocol over their Unix sockets), and
end-to-end latency from producer to consumer through one broker at a steady 10,000 msg/s.

Section 3 measures its own embedded baseline (the same commands on a data dir no broker serves) right
before the broker figures, so it stands alone (``--sections 3``) and a busy machine moves both alike.

Run as a script, this module is the consumer process of the latency measurement (see
:func:`end_to_end_at_rate`): a separate process, as in production, so the producer's and the consumer's
Python work do not wait for each other's GIL.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from contextlib import nullcontext

from cluster import broker_available, live_brokers
from measure import best_of, env_with, run_pipeline
from table import Row

RATE = 10_000  # msg/s of the latency figure (the issue's)
RECORD_SIZE = 100
IDLE_STOP = 5.0  # the latency consumer gives up after this long without a record
# a record's scheduled send time at the head of its value: time.time_ns(), as the producer and the
# consumer are two processes and must read the same clock
_STAMP = struct.Struct(">q")
THROUGHPUT = "produce/consume through brokers"
LATENCY = "end-to-end latency at 10k msg/s (1 broker)"


# ---------------------------------------------------------------- section 3: throughput


def _kcli(kcli: list[str], env: dict[str, str], *args: str) -> None:
    """Run a set-up command, failing with its error message."""
    proc = subprocess.run(kcli + list(args), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kcli {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")


def produce_rate(
    kcli: list[str],
    data: str,
    lines: str,
    count: int,
    repeat: int,
    create: Sequence[str] = (),
    options: Sequence[str] = (),
    prefix: str = "p",
) -> tuple[float, str]:
    """Best rate of `cat lines | kcli produce T` on ``data``; each run writes a new topic T (``prefix``
    and a number) created just before (`kcli topic create T` + ``create``) so runs measure producing
    alone, not topic creation.  Returns the rate and the last topic, which then holds the lines."""
    env = env_with(data)
    topics: list[str] = []

    def new_topic() -> None:
        topics.append(f"{prefix}{len(topics)}")
        _kcli(kcli, env, "topic", "create", topics[-1], *create)

    run, _ = best_of(
        repeat,
        lambda: run_pipeline([["cat", lines], kcli + ["produce", topics[-1], *options]], env=env),
        before=new_topic,
    )
    return count / run.wall, topics[-1]


def consume_rate(kcli: list[str], data: str, topic: str, count: int, repeat: int) -> float:
    """Best rate of `kcli consume T --from-beginning -e > /dev/null` on ``data``."""
    env = env_with(data)
    run, _ = best_of(
        repeat, lambda: run_pipeline([kcli + ["consume", topic, "--from-beginning", "-e"]], env=env)
    )
    return count / run.wall


def throughput_pair(
    kcli: list[str],
    data: str,
    lines: str,
    count: int,
    repeat: int,
    brokers: int = 0,
    create: Sequence[str] = (),
    options: Sequence[str] = (),
) -> tuple[float, float]:
    """(produce, consume) rates on ``data``: embedded, or with ``brokers`` live brokers serving it;
    ``create`` goes to `kcli topic create`, ``options`` to `kcli produce`."""
    with live_brokers(kcli, data, brokers) if brokers else nullcontext():
        produced, topic = produce_rate(kcli, data, lines, count, repeat, create, options)
        return produced, consume_rate(kcli, data, topic, count, repeat)


def section_3(kcli: list[str], work: str, lines: str, count: int, repeat: int) -> list[Row]:
    """Embedded, then 1 broker, then 3 brokers, one right after the other: each figure is compared with
    the one before it, measured moments earlier.  A failing 3-broker cluster costs only its own rows."""
    embedded = throughput_pair(kcli, os.path.join(work, "embedded-data"), lines, count, repeat)
    single = throughput_pair(
        kcli, os.path.join(work, "brokers-1"), lines, count, repeat, 1, options=("--acks", "1")
    )
    rows = [
        Row(
            "3",
            "produce none (1 broker, acks=1)",
            single[0],
            "rec/s",
            embedded[0],
            "embedded",
            0.70,
            on="ratio",
            note="`cat lines | kcli produce T --acks 1` through the broker's Unix socket; the baseline is "
            "the same command on a data dir no broker serves, measured right before in this section",
        ),
        Row("3", "consume -e (1 broker)", single[1], "rec/s", embedded[1], "embedded", 0.70, on="ratio"),
    ]
    try:
        replicated = throughput_pair(
            kcli,
            os.path.join(work, "brokers-3"),
            lines,
            count,
            repeat,
            3,
            ("-r", "3", "-c", "min.insync.replicas=2"),
            ("--acks", "all"),
        )
    except Exception as exc:  # reported in the table; the 1-broker rows stand
        return rows + [_not_measured("3", "produce/consume (3 brokers)", f"the brokers failed ({exc})")]
    return rows + [
        Row(
            "3",
            "produce none (3 brokers, RF 3, acks=all)",
            replicated[0],
            "rec/s",
            single[0],
            "1 broker",
            0.40,
            on="ratio",
            note="topic created with -r 3 -c min.insync.replicas=2, so every write waits for both followers "
            "(all three replicas are in sync); the baseline is the 1-broker figure above",
        ),
        Row(
            "3",
            "consume -e (3 brokers, RF 3)",
            replicated[1],
            "rec/s",
            single[1],
            "1 broker",
            note="from the leader; the issue sets no target",
        ),
    ]


# ---------------------------------------------------------------- section 6: end-to-end latency


def paced_send(producer, topic: str, count: int, rate: float = RATE, size: int = RECORD_SIZE) -> float:
    """Send ``count`` records on a schedule of ``rate`` per second with linger 0, as Kafka's producer
    does with linger.ms=0: each turn sends every record whose time has come in one request and waits
    for it, so records falling due meanwhile go in the next request.  Each value starts with its
    scheduled time, so time spent waiting behind an earlier request counts as latency (no coordinated
    omission).  Returns the seconds from the first scheduled time to the last answer."""
    interval = 1e9 / rate
    padding = bytes(size - _STAMP.size)
    start = time.time_ns()
    sent = 0
    while sent < count:
        now = time.time_ns()
        due = min(count, int((now - start) / interval) + 1)
        if due == sent:
            time.sleep((start + sent * interval - now) / 1e9)
            continue
        stamps = (start + int(i * interval) for i in range(sent, due))
        producer.send_many(topic, [_STAMP.pack(stamp) + padding for stamp in stamps], partition=0)
        producer.flush()
        sent = due
    return (time.time_ns() - start) / 1e9


def end_to_end_at_rate(data: str, count: int) -> tuple[list[float], float]:
    """Producer -> broker -> consumer latencies in ms (sorted) of ``count`` records sent at RATE, and the
    send rate achieved.  The consumer is this module run as a separate process; it connects before the
    first record is sent and stamps each record with the time its fetch returned."""
    from kcli.client.connect import open_transport
    from kcli.client.producer import Producer
    from kcli.cluster.datadir import DataDir

    topic = "latency"
    out = f"{data}-latencies.bin"
    producer = Producer(open_transport(DataDir(data)))
    producer.send(topic, b"warm-up", partition=0)  # creates the topic and connects
    producer.flush()
    command = [sys.executable, os.path.abspath(__file__), data, topic, str(count), out]
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as consumer:
            try:
                if consumer.stdout.readline() != "ready\n":  # type: ignore[union-attr]
                    raise RuntimeError("the latency consumer did not start")
                seconds = paced_send(producer, topic, count)
                if consumer.wait(timeout=IDLE_STOP + 60) != 0:
                    raise RuntimeError(f"the latency consumer exited {consumer.returncode}")
            finally:
                if consumer.poll() is None:
                    consumer.kill()
    finally:
        producer.close()
    latencies = array("q")
    with open(out, "rb") as fh:
        latencies.frombytes(fh.read())
    return sorted(ns / 1e6 for ns in latencies), count / seconds


def consume_stamped(data: str, topic: str, count: int, out: str) -> None:
    """The latency consumer: from the end of ``topic`` partition 0, take ``count`` records (or stop after
    IDLE_STOP seconds without one) and write receive time - scheduled send time per record, in ns, to
    ``out``.  Says "ready" on stdout once connected."""
    from kcli.client.connect import open_transport
    from kcli.client.consumer import Consumer
    from kcli.cluster.datadir import DataDir

    transport = open_transport(DataDir(data), auto_create=False)
    consumer = Consumer(transport)  # following one partition, it long-polls the broker
    consumer.assign({(topic, 0): transport.list_offset(topic, 0, "latest")})
    consumer.fetch_values(topic, 0)
    print("ready", flush=True)
    latencies = array("q")
    for item in consumer.stream_values(idle_stop=IDLE_STOP):
        if item is None:
            continue
        now = time.time_ns()
        latencies.extend(now - _STAMP.unpack_from(value)[0] for value in item[2])  # type: ignore[arg-type]
        if len(latencies) >= count:
            break
    transport.close(durable=False)
    with open(out, "wb") as fh:
        latencies.tofile(fh)


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def section_6(kcli: list[str], work: str, seconds: float) -> list[Row]:
    """p50 and p99 end-to-end latency at RATE through one broker, and the rate the producer reached."""
    count = int(seconds * RATE)
    data = os.path.join(work, "latency-data")
    with live_brokers(kcli, data):
        latencies, rate = end_to_end_at_rate(data, count)
    if not latencies:
        return [_not_measured("6", LATENCY, "no record reached the consumer")]
    caveats = "".join(
        [
            f"; the producer reached only {rate:,.0f} msg/s" if rate < 0.99 * RATE else "",
            f"; only {len(latencies)} of {count} records arrived" if len(latencies) < count else "",
        ]
    )
    return [
        Row(
            "6",
            "end-to-end p50 at 10k msg/s (1 broker)",
            _percentile(latencies, 0.50),
            "ms",
            note=f"{count} records of {RECORD_SIZE} bytes over {seconds:g} s, linger 0; producer and consumer "
            "are kcli's library in two processes; latency = fetch returned - scheduled send time; the "
            f"consumer long-polls the broker, as `kcli consume` does{caveats}",
        ),
        Row(
            "6", "end-to-end p99 at 10k msg/s (1 broker)", _percentile(latencies, 0.99), "ms", goal=10, op="<"
        ),
        Row("6", "send rate of the latency run", rate, "msg/s", RATE, "asked", 0.99, on="ratio"),
    ]


# ---------------------------------------------------------------- the runner's entry


def _not_measured(section: str, name: str, why: str) -> Row:
    return Row(section, name, None, note=f"not measured: {why}")


def measure(
    kcli: list[str], work: str, lines: str, count: int, repeat: int, latency_seconds: float
) -> list[Row]:
    """Sections 3 and 6.  A broker that fails to start or serve costs only the rows of its part, not the
    other sections."""
    parts: list[tuple[str, str, Callable[[], list[Row]]]] = [
        ("3", THROUGHPUT, lambda: section_3(kcli, work, lines, count, repeat)),
        ("6", LATENCY, lambda: section_6(kcli, work, latency_seconds)),
    ]
    if not broker_available(kcli):
        return [_not_measured(section, name, "no broker yet") for section, name, _ in parts]
    rows: list[Row] = []
    for section, name, part in parts:
        try:
            rows += part()
        except Exception as exc:
            rows.append(_not_measured(section, name, f"the broker failed ({exc})"))
    return rows


if __name__ == "__main__":
    consume_stamped(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
