"""Sections 3 and 6: the same produce/consume through one live broker (Kafka's protocol over its Unix
socket), and end-to-end latency measured like Kafka's EndToEndLatency tool: send one record, flush,
poll until it arrives, repeat."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager

from measure import best_of, env_with, run_pipeline
from table import Row


def broker_available(kcli: list[str]) -> bool:
    """Whether this tree has `kcli broker serve` (the brokers may land after the benchmarks)."""
    probe = subprocess.run(kcli + ["broker", "serve", "--help"], capture_output=True)
    return probe.returncode == 0


@contextmanager
def live_broker(kcli: list[str], data: str, wait: float = 30.0):
    """Run `kcli broker serve --id 0` on ``data`` until the block ends; yields once it serves."""
    from kcli.cluster.datadir import DataDir

    env = env_with(data)
    subprocess.run(kcli + ["cluster", "init"], env=env, capture_output=True)
    log = open(os.path.join(os.path.dirname(data), "broker.log"), "wb")
    proc = subprocess.Popen(
        kcli + ["broker", "serve", "--id", "0"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + wait
        sock = os.path.join(data, "broker-0", "broker.sock")
        while not (DataDir(data).live_brokers() and os.path.exists(sock)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"it did not start; see {log.name}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def end_to_end_ms(data: str, count: int, size: int = 100) -> list[float]:
    """Latency of ``count`` single-record round trips producer -> broker -> consumer, in ms."""
    from kcli.client.connect import open_transport
    from kcli.client.consumer import Consumer
    from kcli.client.producer import Producer
    from kcli.cluster.datadir import DataDir

    datadir = DataDir(data)
    sender, receiver = open_transport(datadir), open_transport(datadir, auto_create=False)
    producer = Producer(sender)
    producer.send("latency", b"warm-up")
    producer.flush()
    consumer = Consumer(receiver)
    consumer.assign({("latency", 0): receiver.list_offset("latency", 0, "latest")})
    value = b"x" * size
    out = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            producer.send("latency", value, partition=0)
            producer.flush()
            while not consumer.fetch_partition("latency", 0):
                pass
            out.append((time.perf_counter() - start) * 1000)
    finally:
        producer.close()
        receiver.close(durable=False)
    return out


def _not_measured(why: str) -> list[Row]:
    return [
        Row("3", "produce/consume through a broker", None, note=f"not measured: {why}"),
        Row("6", "end-to-end latency through a broker", None, note=f"not measured: {why}"),
    ]


def measure(kcli: list[str], work: str, lines: str, count: int, repeat: int, latency_count: int) -> list[Row]:
    if not broker_available(kcli):
        return _not_measured("no broker yet")
    try:
        return _measure(kcli, work, lines, count, repeat, latency_count)
    except Exception as exc:  # a broker that fails to start or serve must not sink the other sections
        return _not_measured(f"the broker failed ({exc})")


def _measure(
    kcli: list[str], work: str, lines: str, count: int, repeat: int, latency_count: int
) -> list[Row]:
    data = os.path.join(work, "broker-data")
    env = env_with(data)
    rows = []
    with live_broker(kcli, data):
        produce, _ = best_of(
            repeat, lambda: run_pipeline([["cat", lines], kcli + ["produce", f"b{time.time_ns()}"]], env=env)
        )
        topic = "bt"
        run_pipeline([["cat", lines], kcli + ["produce", topic]], env=env)
        consume, _ = best_of(
            repeat, lambda: run_pipeline([kcli + ["consume", topic, "--from-beginning", "-e"]], env=env)
        )
        latencies = sorted(end_to_end_ms(data, latency_count))
    rows.append(
        Row(
            "3",
            "produce none (1 broker)",
            count / produce.wall,
            "rec/s",
            note="the same pipeline as section 1, through the broker's Unix socket",
        )
    )
    rows.append(Row("3", "consume -e (1 broker)", count / consume.wall, "rec/s"))
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    rows.append(
        Row(
            "6",
            "end-to-end latency p50 (1 broker)",
            p50,
            "ms",
            note=f"send+flush, poll until received; {len(latencies)} round trips",
        )
    )
    rows.append(Row("6", "end-to-end latency p99 (1 broker)", p99, "ms"))
    return rows
