"""Kafka's default partitioner: murmur2 for keyed records, sticky partitions for unkeyed ones."""

from __future__ import annotations

import random


def murmur2(data: bytes) -> int:
    """32-bit MurmurHash2 as Kafka's ``Utils.murmur2`` computes it (signed result)."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    end = length - length % 4
    for i in range(0, end, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class DefaultPartitioner:
    """Keys hash with murmur2; null keys stick to one partition until its batch is sent (KIP-480)."""

    def __init__(self) -> None:
        self._sticky: dict[str, int] = {}

    def partition(self, topic: str, key: bytes | None, num_partitions: int) -> int:
        if key is not None:
            return partition_for_key(key, num_partitions)
        p = self._sticky.get(topic)
        if p is None or p >= num_partitions:
            p = self._sticky[topic] = random.randrange(num_partitions)
        return p

    def batch_sent(self, topic: str, partition: int, num_partitions: int) -> None:
        """Move unkeyed records of ``topic`` to another partition once the sticky one's batch went out."""
        if self._sticky.get(topic) == partition and num_partitions > 1:
            choices = [p for p in range(num_partitions) if p != partition]
            self._sticky[topic] = random.choice(choices)
