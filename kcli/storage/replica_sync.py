"""Bringing one replica's log level with another's: the on-disk half of replication.

Used by embedded writers (a writer killed between replicas leaves a follower behind), by reassignment
(a new replica starts empty), and by anything else that must make a follower equal to its leader.
"""

from __future__ import annotations

from collections.abc import Callable

from kcli.storage import records
from kcli.storage.log import PartitionLog


def sync_replica(leader: PartitionLog, follower: PartitionLog, chunk: int = 1 << 20,
                 progress: Callable[[int], object] | None = None) -> int:
    """Make ``follower`` (open for append) hold exactly the leader's records: cut what the leader lacks,
    copy what the follower lacks, keeping offsets and leader epochs.  Returns the records copied.  (The
    caller moves the follower's log start up to the leader's: it may lie inside the first batch copied.)"""
    leo = leader.log_end_offset
    if follower.log_end_offset > leo:
        follower.truncate_to(leo)
    if follower.log_end_offset < leader.log_start_offset:
        follower.truncate_to(leader.log_start_offset)
    copied = 0
    while follower.log_end_offset < leo:
        data = leader.read(follower.log_end_offset, chunk)
        if not data:
            break
        for pos, header in records.iter_batches(data):
            end = follower.log_end_offset
            if header.base_offset < end < header.next_offset and follower.log_start_offset == end:
                follower.truncate_fully(header.base_offset)  # the leader's start is inside this batch
            elif header.base_offset < end:
                continue
            follower.append(data[pos : pos + header.size], header.partition_leader_epoch, validate=False,
                            keep_offsets=True)
            copied += header.records_count
            if progress is not None:
                progress(header.records_count)
    return copied
