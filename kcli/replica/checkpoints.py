"""Per-replica checkpoints in a broker's folder: where recovery starts, the high watermark a new leader
starts from, and the log start; read and advanced by brokers and embedded writers alike."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from kcli.cluster.datadir import DataDir
from kcli.storage import checkpoint
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog
from kcli.storage.replica_sync import sync_replica


def follower_config(config: LogConfig) -> LogConfig:
    """The config a follower's log is written with: it stores the leader's batches byte for byte, so it
    neither stamps its own append time nor refuses a batch the leader already accepted."""
    return dataclasses.replace(config, log_append_time=False, max_message_bytes=2**31 - 1)


def recovery_point(datadir: DataDir, broker: int, topic: str, partition: int) -> int | None:
    """Where recovery of a replica starts: its broker's recovery-point checkpoint (None: recover the
    active segment whole)."""
    return checkpoint.read_offset(os.path.join(datadir.broker_dir(broker), checkpoint.RECOVERY_POINT),
                                  (topic, partition))


def checkpointed_high_watermark(datadir: DataDir, broker: int, topic: str, partition: int) -> int | None:
    """A replica's high watermark as its broker last checkpointed it (where a new leader starts)."""
    return checkpoint.read_offset(os.path.join(datadir.broker_dir(broker), checkpoint.HIGH_WATERMARK),
                                  (topic, partition))


def write_checkpoints(datadir: DataDir, broker: int, topic: str, partition: int, log: PartitionLog,
                      hw: int | None) -> None:
    """Advance one replica's entries in its broker's checkpoints (recovery point, log start, high
    watermark: None leaves it as it is); call after an fsync of the log."""
    root = datadir.broker_dir(broker)
    key = (topic, partition)
    values = {checkpoint.RECOVERY_POINT: log.log_end_offset, checkpoint.LOG_START: log.log_start_offset}
    if hw is not None:
        values[checkpoint.HIGH_WATERMARK] = min(hw, log.log_end_offset)
    with datadir.checkpoint_lock(broker):
        for name, value in values.items():
            checkpoint.set_offset(os.path.join(root, name), key, value)


def advance_log_start(datadir: DataDir, broker: int, topic: str, partition: int, log: PartitionLog,
                      offset: int, hw: int | None = None) -> bool:
    """Move one replica's log start up to ``offset`` (DeleteRecords, or a follower learning its
    leader's), crash-safely as Kafka orders it: the new start goes into the checkpoint first, then the
    whole segments below it are deleted.  A crash in between leaves the new start over segments still on
    disk, which the next retention pass deletes; a crash before leaves the old start.  True if it moved."""
    if not log.advance_start(offset):
        return False
    log.flush()
    write_checkpoints(datadir, broker, topic, partition, log, hw)
    log.delete_old_segments()
    return True



def level_replica(datadir: DataDir, broker: int, topic: str, partition: int, leader: PartitionLog,
                  follower: PartitionLog, progress: Callable[[int], object] | None = None) -> int:
    """Make ``broker``'s replica ``follower`` (open for append) hold the leader's records
    (:func:`sync_replica`), then move its log start up to the leader's, which may lie inside the first
    batch copied or past a DeleteRecords a killed writer did not finish.  Returns the records copied."""
    copied = sync_replica(leader, follower, progress=progress)
    advance_log_start(datadir, broker, topic, partition, follower, leader.log_start_offset)
    return copied
