"""The committed-offsets store: the one place group offsets live, with brokers running or not.

Each group's offsets are one JSON file, ``cluster/groups/<group>/offsets.json``, rewritten whole
(temp + fsync + rename) under the group lock, so readers never see half a commit and a crash leaves the
old offsets or the new ones.  Readers take no lock.  A group's offsets are a few lines per partition, so
rewriting them is cheaper than keeping and compacting a log (as Kafka's __consumer_offsets must).

Embedded consumers (kcli.client.embedded_group) and the broker's group coordinator both call
:class:`OffsetStore`; either may pass a ``precondition`` that runs under the group lock just before a
write (no live members for a reset, the generation for a coordinator commit) and raises to refuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kcli.cluster.datadir import DataDir
from kcli.errors import KcliError, NotFoundError, UsageError
from kcli.groups.layout import GroupPaths, fsync_dir, group_names
from kcli.storage.checkpoint import atomic_write

TopicPartition = tuple[str, int]
Precondition = Callable[[], None]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CommittedOffset:
    """What OffsetCommit stores per partition: the next offset to read, the client's metadata string,
    when it was committed (ms since the epoch) and the leader epoch of the last record read (-1 unknown)."""

    offset: int
    metadata: str = ""
    commit_timestamp: int = -1
    leader_epoch: int = -1

    def to_json(self, topic: str, partition: int) -> dict[str, object]:
        return {
            "topic": topic,
            "partition": partition,
            "offset": self.offset,
            "metadata": self.metadata,
            "commit_timestamp": self.commit_timestamp,
            "leader_epoch": self.leader_epoch,
        }


class OffsetStore:
    """Committed offsets of every group in one data directory."""

    def __init__(self, datadir: DataDir) -> None:
        self.datadir = datadir

    # ------------------------------------------------------------ reading
    def fetch_committed(self, group: str) -> dict[TopicPartition, CommittedOffset]:
        """Everything committed for ``group`` (empty for an unknown group, as OffsetFetch answers)."""
        path = GroupPaths(self.datadir, group).offsets_file
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise KcliError(f"offsets file {path} is unreadable: {exc}") from None
        out = {}
        for e in data.get("offsets", []):
            out[(e["topic"], int(e["partition"]))] = CommittedOffset(
                int(e["offset"]),
                e.get("metadata", ""),
                int(e.get("commit_timestamp", -1)),
                int(e.get("leader_epoch", -1)),
            )
        return out

    def fetch(self, group: str) -> dict[TopicPartition, int]:
        """Committed offsets of ``group`` as {(topic, partition): offset}."""
        return {tp: c.offset for tp, c in self.fetch_committed(group).items()}

    def list_groups(self) -> list[str]:
        """Groups known to the data directory (they have a folder: members joined or offsets committed)."""
        return group_names(self.datadir)

    def group_exists(self, group: str) -> bool:
        return GroupPaths(self.datadir, group).exists()

    # ------------------------------------------------------------ writing
    def commit(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int | CommittedOffset],
        metadata: str = "",
        precondition: Precondition | None = None,
    ) -> None:
        """Store ``offsets`` for ``group`` atomically (all or none); plain ints get ``metadata`` and now
        as the commit timestamp.  Partitions not mentioned keep their committed offsets."""
        now = int(time.time() * 1000)
        entries: dict[TopicPartition, CommittedOffset] = {}
        for (topic, partition), value in offsets.items():
            if not isinstance(value, CommittedOffset):
                value = CommittedOffset(int(value), metadata, now)
            if value.offset < 0:
                raise UsageError(f"cannot commit negative offset {value.offset} for {topic}-{partition}")
            entries[(topic, partition)] = value
        self._rewrite(group, lambda current: current.update(entries), precondition)

    def delete_offsets(
        self, group: str, partitions: Iterable[TopicPartition], precondition: Precondition | None = None
    ) -> None:
        """Forget the committed offsets of some partitions (Kafka's OffsetDelete)."""
        gone = set(partitions)

        def change(current: dict[TopicPartition, CommittedOffset]) -> None:
            for tp in gone:
                current.pop(tp, None)

        self._rewrite(group, change, precondition)

    def delete_group(self, group: str, precondition: Precondition | None = None) -> None:
        """Remove ``group`` with its offsets and membership folders (not its lock file, see layout)."""
        paths = GroupPaths(self.datadir, group)
        with paths.lock():
            if not paths.exists():
                raise NotFoundError(f"consumer group {group!r} does not exist")
            paths.check_name()
            if precondition is not None:
                precondition()
            shutil.rmtree(paths.dir)
            fsync_dir(os.path.dirname(paths.dir))

    def _rewrite(
        self,
        group: str,
        change: Callable[[dict[TopicPartition, CommittedOffset]], None],
        precondition: Precondition | None,
    ) -> None:
        paths = GroupPaths(self.datadir, group)
        with paths.lock():
            if precondition is not None:
                precondition()
            paths.ensure()
            current = self.fetch_committed(group)
            change(current)
            body = {
                "version": FORMAT_VERSION,
                "group": group,
                "offsets": [c.to_json(t, p) for (t, p), c in sorted(current.items())],
            }
            atomic_write(paths.offsets_file, json.dumps(body, indent=1).encode())
