"""An exactly-once stage: what is new for a group on one topic, turned into records of another topic, with
the group's offsets committed in the same transaction as the output.

The input is read read_committed from the group's committed offsets (or the reset policy) up to the
last stable offsets as they are at the start (bounded, like ``consume -e``), after the transactional id
was initialised: that fences an older instance of the stage and completes or aborts what it left, so
the committed offsets read afterwards are final.  Killed at any point, a run leaves its output
invisible to read_committed readers and the offsets where they were; the next run reads the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kcli.client.consumer import Consumer, committed_or_reset
from kcli.client.defaults import READ_COMMITTED
from kcli.groups.offsets import CommittedOffset

if TYPE_CHECKING:
    from kcli.client.transactional import TransactionalProducer
    from kcli.client.transport import Transport
    from kcli.cluster.datadir import DataDir

TopicPartition = tuple[str, int]


def default_transactional_id(group: str, topic: str) -> str:
    """One transactional id per group and input topic: a rerun of the same stage fences the last one."""
    return f"kcli-transform.{group}.{topic}"


def committed_offsets(datadir: DataDir | None, bootstrap: str | None, group: str, topic: str,
                      count: int) -> dict[TopicPartition, int]:
    """What ``group`` committed for ``topic``: from the data dir's offset store (brokers use it too),
    or, reaching a cluster by address, from the group's coordinator (OffsetFetch)."""
    if datadir is not None:
        from kcli.groups.offsets import OffsetStore

        return {tp: o for tp, o in OffsetStore(datadir).fetch(group).items() if tp[0] == topic}
    from kcli.client.cluster_groups import ClusterGroups

    assert bootstrap is not None
    groups = ClusterGroups(bootstrap)
    try:
        return groups.committed(group, {topic: count})
    finally:
        groups.close()


def read_input(transport: Transport, topic: str, count: int, committed: dict[TopicPartition, int], reset: str,
               limit: int | None, sink: Callable[[bytes | None], object]) -> dict[TopicPartition, int]:
    """Hand ``sink`` the value of each record that is new on ``topic`` for a group that committed
    ``committed``, read_committed, up to the last stable offsets as they are now (at most ``limit``
    records); returns the offsets to commit for them (only partitions whose position moved, past aborted
    batches and markers too)."""
    consumer = Consumer(transport, isolation=READ_COMMITTED)
    partitions = [(topic, p) for p in range(count)]
    consumer.assign({tp: committed_or_reset(transport, topic, tp[1], committed.get(tp), reset, READ_COMMITTED)
                     for tp in partitions})
    starts = dict(consumer.positions)
    ends = {tp: transport.list_offset(topic, tp[1], "latest", READ_COMMITTED) for tp in partitions}
    taken = 0
    for item in consumer.stream(ends):
        if item is None:
            continue
        t, p, rec = item
        sink(rec.value)
        taken += 1
        if limit is not None and taken >= limit:
            consumer.positions[(t, p)] = rec.offset + 1  # the rest of that fetch is not taken
            break
    return {tp: position for tp, position in consumer.positions.items() if position != starts[tp]}


def commit_run(producer: TransactionalProducer, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit the run's output together with ``group``'s new offsets."""
    producer.send_offsets_to_transaction({tp: CommittedOffset(o) for tp, o in offsets.items()}, group)
    producer.commit_transaction()
