"""Topic admin on the data directory itself: the metadata change and the replica folders it implies.

A broker runs topic requests with this directly (it holds the replica locks they need); commands go
through :class:`kcli.client.admin.Admin`, which sends the change to a running broker instead.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata, TopicMeta
from kcli.storage import partition_metadata
from kcli.storage.fileio import make_dirs

if TYPE_CHECKING:
    from kcli.storage.cleaner import Cleanable

Offsets = tuple[int | None, int | None, int | None]  # (log start, log end, last stable offset)


class TopicAdmin:
    """Create, grow and delete topics, and read their end offsets, straight on ``datadir``."""

    def __init__(self, datadir: DataDir) -> None:
        self.datadir = datadir
        self.metadata = Metadata(datadir)

    def state(self) -> ClusterState:
        return self.metadata.ensure()

    def create_topic(self, name: str, partitions: int | None = None, replication_factor: int | None = None,
                     configs: dict[str, object] | None = None, if_not_exists: bool = False) -> TopicMeta:
        """Create topic ``name``; a count or factor left out (None) is the broker config's
        (num.partitions, default.replication.factor)."""
        from kcli.cluster.configs import check_topic_configs, new_topic_shape

        if partitions is None or replication_factor is None:
            # load(), not state(): bad input is refused before the data dir is made
            partitions, replication_factor = new_topic_shape(self.metadata.load(), partitions, replication_factor)
        meta = self.metadata.create_topic(name, partitions, replication_factor, configs, if_not_exists,
                                          check=lambda state: check_topic_configs(state, configs or {}))
        self.make_partition_dirs(meta)
        return meta

    def add_partitions(self, name: str, total: int) -> TopicMeta:
        meta = self.metadata.add_partitions(name, total)
        self.make_partition_dirs(meta)
        return meta

    def make_partition_dirs(self, topic: TopicMeta, first: int = 0) -> None:
        """Create replica folders up front, as Kafka does, so empty partitions show in log-dirs, each
        with Kafka's ``partition.metadata`` naming the topic id."""
        for p, meta in enumerate(topic.partitions[first:], first):
            for broker in meta.replicas:
                directory = self.datadir.partition_dir(broker, topic.name, p)
                make_dirs(directory)
                partition_metadata.ensure(directory, topic.topic_id)

    def delete_topic(self, name: str) -> None:
        """Remove the topic from the metadata, then its replica folders (each under its partition and
        replica locks), and their entries in the brokers' checkpoints."""
        from kcli.storage import checkpoint, cleaner_status

        topic = self.metadata.delete_topic(name)
        for p, meta in enumerate(topic.partitions):
            # the lock files stay: unlinking a file another process waits on would give two holders
            with self.datadir.partition_lock(name, p):
                for broker in meta.replicas:
                    with self.datadir.replica_lock(broker, name, p):  # brokers let go once they see it gone
                        shutil.rmtree(self.datadir.partition_dir(broker, name, p), ignore_errors=True)
                    with self.datadir.checkpoint_lock(broker):
                        checkpoint.forget(self.datadir.broker_dir(broker), name, p)
                        cleaner_status.forget(self.datadir.broker_dir(broker), name, p)

    def end_offsets(self, name: str) -> list[Offsets]:
        """(log start, log end, last stable offset) of each partition's leader replica; Nones while it has
        no leader."""
        return self.leader_offsets(name, None)[0]

    def leader_offsets(self, name: str, now_ms: int | None) -> tuple[list[Offsets], list[Cleanable | None]]:
        """:meth:`end_offsets`, and what a cleaner pass over each partition's leader replica could do at
        ``now_ms`` (None: not asked; [] when the topic is not compacted, None in it for a partition with no
        leader or whose files changed under the read), from one opening of each leader log, read without
        a lock.  While the leader's broker runs, its checkpointed high watermark bounds the pass as it
        bounds the broker's cleaner; otherwise the log end does, as for `kcli topic compact`."""
        from kcli.cluster.configs import log_config  # the log code is not needed to create or list topics
        from kcli.storage.cleaner_status import replica_cleanable
        from kcli.storage.log import PartitionLog

        state = self.state()
        topic = state.topic(name)
        cfg = log_config(state, topic)
        compact = now_ms is not None and cfg.compact
        live = set(self.datadir.live_brokers()) if compact else set()
        hws: dict[int, dict[tuple[str, int], int]] = {}  # a live leader's checkpointed high watermarks
        offsets: list[Offsets] = []
        cleanables: list[Cleanable | None] = []
        for p, meta in enumerate(topic.partitions):
            if meta.leader < 0:
                offsets.append((None, None, None))
                cleanables.append(None)
                continue
            log = PartitionLog(self.datadir.partition_dir(meta.leader, name, p), cfg)
            try:
                offsets.append((log.log_start_offset, log.log_end_offset, log.last_stable_offset()))
                if compact:
                    if meta.leader in live and meta.leader not in hws:
                        hws[meta.leader] = self._checkpointed_hws(meta.leader)
                    hw = hws[meta.leader].get((name, p)) if meta.leader in live else None
                    cleanables.append(replica_cleanable(log, cfg, hw, now_ms))  # type: ignore[arg-type]
            finally:
                log.close()
        return offsets, cleanables if compact else []

    def _checkpointed_hws(self, broker: int) -> dict[tuple[str, int], int]:
        """Broker ``broker``'s high-watermark checkpoint, read once for all the partitions it leads ({}
        when it cannot be read: the log end then bounds the pass)."""
        from kcli.errors import CorruptRecordError
        from kcli.storage import checkpoint

        try:
            return checkpoint.read_offsets(os.path.join(self.datadir.broker_dir(broker), checkpoint.HIGH_WATERMARK))
        except (OSError, ValueError, CorruptRecordError):
            return {}
