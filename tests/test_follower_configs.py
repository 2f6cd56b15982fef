"""A follower replica follows dynamic config changes as its leader does, without a restart or a
leadership change: a lowered segment.bytes (the topic's) and log.retention.bytes (the cluster-wide
broker default) roll and delete the follower's own segments too."""

from __future__ import annotations

import json
import os
import time

TOPIC = "t"


def _leader(kcli) -> int:
    rows = json.loads(kcli("topic", "describe", TOPIC, "--json").stdout)
    return int(rows[0]["partitions"][0]["leader"])


def _segments(data_dir, broker: int) -> list[int]:
    path = os.path.join(str(data_dir), f"broker-{broker}", f"{TOPIC}-0")
    return sorted(int(n[:-4]) for n in os.listdir(path) if n.endswith(".log"))


def _produce(kcli, batches: int, first: int = 0) -> None:
    for b in range(first, first + batches):  # a batch each
        kcli("produce", TOPIC, "--acks", "all", input="".join(f"{b}{i:0100d}\n" for i in range(10)))


def test_follower_rolls_and_deletes_after_dynamic_segment_and_retention_changes(brokers) -> None:
    brokers.init(2)
    for b in range(2):
        brokers.start(b, "--override", "log.retention.check.interval.ms=300")
    kcli = brokers.kcli
    kcli("topic", "create", TOPIC, "--replication-factor", "2")
    leader = _leader(kcli)
    follower = 1 - leader
    _produce(kcli, 4)
    assert _segments(brokers.data_dir, follower) == [0]  # 1 GiB segments: all in one

    kcli("config", "alter", "--topic", TOPIC, "--set", "segment.bytes=1024")
    kcli("config", "alter", "--broker-defaults", "--set", "log.retention.bytes=3000")
    _produce(kcli, 8, first=4)

    def settled(broker: int) -> bool:
        segments = _segments(brokers.data_dir, broker)
        return len(segments) > 1 and segments[0] > 0  # rolled at 1 KiB, and the oldest ones deleted

    deadline = time.monotonic() + 60
    while not (settled(leader) and settled(follower)):
        assert time.monotonic() < deadline, (
            f"leader {leader}: {_segments(brokers.data_dir, leader)}, "
            f"follower {follower}: {_segments(brokers.data_dir, follower)}"
        )
        time.sleep(0.3)
    assert _leader(kcli) == leader  # no leadership change brought it
