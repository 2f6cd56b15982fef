"""DeleteRecords for commands (``kcli topic delete-records``): straight on the data directory, or
through the partitions' leaders while brokers run (or at ``--bootstrap-server``).

Embedded, each partition is changed in one write session under its partition lock: the leader's replica
and every in-sync replica of a stopped broker get the new log start, checkpointed before the segments
below it are deleted (see :meth:`kcli.replica.writer.PartitionWriter.delete_records`).  Every target is
checked first (topic, partition, offset within the high watermark), so bad input changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from kcli.cluster.datadir import DataDir
from kcli.errors import OffsetOutOfRangeError, UnavailableError

Target = tuple[str, int, int]  # (topic, partition, offset: records before it go; -1: the high watermark)
DEFAULT_TIMEOUT = 30.0


def delete_records(datadir: DataDir | None, targets: Sequence[Target], bootstrap: str | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> dict[tuple[str, int], int]:
    """Delete the records before each target's offset; returns each partition's new low watermark."""
    if bootstrap is None and datadir is not None:
        from kcli.client.connect import live_brokers

        if not live_brokers(datadir):
            return _embedded(datadir, targets)
    return _remote(datadir, bootstrap, targets, timeout)


def _embedded(datadir: DataDir, targets: Sequence[Target]) -> dict[tuple[str, int], int]:
    from kcli.cluster.configs import log_config
    from kcli.cluster.metadata import Metadata
    from kcli.replica.writer import PartitionWriter
    from kcli.storage.log import PartitionLog

    state = Metadata(datadir).ensure()
    for topic, partition, offset in targets:  # all checked before any is changed
        meta = state.partition(topic, partition)
        if meta.leader < 0:
            raise UnavailableError(f"{topic}-{partition} has no leader", hint="run `kcli leader-election`")
        log = PartitionLog(datadir.partition_dir(meta.leader, topic, partition))
        try:
            end = log.log_end_offset
        finally:
            log.close()
        if offset < -1 or offset > end:
            raise OffsetOutOfRangeError(
                f"{topic}-{partition}: cannot delete records before offset {offset}: the high watermark is {end}"
            )
    out = {}
    for topic, partition, offset in targets:
        meta = Metadata(datadir).load().partition(topic, partition)
        config = log_config(state, state.topic(topic))
        writer = PartitionWriter(datadir, topic, partition, meta, config)
        try:
            out[(topic, partition)] = writer.delete_records(offset)
        finally:
            writer.close(durable=True)
    return out


def _remote(datadir: DataDir | None, bootstrap: str | None, targets: Sequence[Target],
            timeout: float) -> dict[tuple[str, int], int]:
    """One DeleteRecords per leader broker, as Kafka's admin client sends them."""
    from kcli.client.broker_pool import BrokerPool
    from kcli.client.kafka_errors import raise_for
    from kcli.errors import NotFoundError
    from kcli.protocol import ApiKey

    pool = BrokerPool(datadir, bootstrap, timeout + 5.0)
    try:
        pool.metadata(sorted({t for t, _p, _o in targets}))
        by_leader: dict[int, dict[str, list[dict[str, int]]]] = {}
        for topic, partition, offset in targets:
            if topic not in pool.counts:
                raise NotFoundError(f"topic {topic!r} does not exist", hint="see `kcli topic list`")
            if not 0 <= partition < pool.counts[topic]:
                raise NotFoundError(f"topic {topic!r} has no partition {partition}",
                                    hint=f"it has partitions 0..{pool.counts[topic] - 1}")
            leader = pool.leaders.get((topic, partition), -1)
            if leader < 0:
                raise UnavailableError(f"{topic}-{partition} has no leader", hint="run `kcli leader-election`")
            by_leader.setdefault(leader, {}).setdefault(topic, []).append(
                {"partition_index": partition, "offset": offset}
            )
        out = {}
        for leader, topics in sorted(by_leader.items()):
            body = {
                "topics": [{"name": t, "partitions": parts} for t, parts in topics.items()],
                "timeout_ms": int(timeout * 1000),
            }
            resp = pool.send(pool.node(leader), ApiKey.DELETE_RECORDS, body)
            for t in resp.topics:
                for part in t.partitions:
                    raise_for(part.error_code, None, f"deleting records of {t.name}-{part.partition_index}")
                    out[(t.name, part.partition_index)] = part.low_watermark
        return out
    finally:
        pool.close()
