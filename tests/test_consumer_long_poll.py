"""The consumer's idle rounds: following one partition through a broker, the next fetch waits at the
broker (Kafka's long poll) instead of the consumer sleeping and asking again every poll interval; a
broker that answers a held fetch at once must not make it spin."""

from __future__ import annotations

import time

from kcli.client.consumer import Consumer
from kcli.storage.records import encode_batch


class FakeBroker:
    """Answers fetches from a list of batches, at once (it ignores the wait it is asked for)."""

    def __init__(self, long_polls: bool, batches: int = 1) -> None:
        self.long_polls = long_polls
        self.batches = [encode_batch([(None, b"v%d" % i, [], 1)], i) for i in range(batches)]
        self.calls: list[tuple[int, float | None]] = []  # (partition, wait or None)

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int, wait: float = 0.0,
              isolation: str = "read_uncommitted") -> tuple[bytes, int]:
        self.calls.append((partition, wait if wait > 0 else None))
        return (self.batches[offset] if partition == 0 and offset < len(self.batches) else b""), offset


def _follow(transport: FakeBroker, partitions: int, idle_stop: float) -> list:
    consumer = Consumer(transport, poll_interval=0.05)
    consumer.assign({("t", p): 0 for p in range(partitions)})
    started = time.monotonic()
    got = [item for item in consumer.stream(idle_stop=idle_stop) if item is not None]
    return [got, time.monotonic() - started]


def test_one_partition_through_a_broker_waits_at_the_broker_without_spinning() -> None:
    transport = FakeBroker(long_polls=True, batches=2)
    got, took = _follow(transport, 1, idle_stop=0.6)
    assert [rec.value for _t, _p, rec in got] == [b"v0", b"v1"]
    waits = [w for _p, w in transport.calls]
    assert waits[:3] == [None, None, None]  # data, data, the first empty round: no wait yet
    # every later round waits, at most LONG_POLL and never past the idle limit (the last may have none left)
    assert all(w is not None and 0 < w <= Consumer.LONG_POLL for w in waits[3:-1]) and len(waits) > 5
    # the fake answers at once: the poll interval still paces the rounds (0.6 s / 0.05 s, not thousands)
    assert 3 < len(transport.calls) <= 20 and took >= 0.6


def test_several_partitions_or_embedded_sleep_between_rounds() -> None:
    for transport, partitions in ((FakeBroker(long_polls=True), 2), (FakeBroker(long_polls=False), 1)):
        _follow(transport, partitions, idle_stop=0.3)
        assert {w for _p, w in transport.calls} == {None}
        assert len(transport.calls) <= 2 * 10


def test_fetches_outside_the_stream_never_wait() -> None:
    transport = FakeBroker(long_polls=True)
    consumer = Consumer(transport, poll_interval=0.01)
    consumer.assign({("t", 0): 1})
    for _ in consumer.stream(idle_stop=0.1):
        pass
    consumer.fetch_partition("t", 0)
    assert transport.calls[-1] == (0, None)
