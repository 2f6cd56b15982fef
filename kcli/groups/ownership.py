"""Partition ownership: at most one member of a group consumes a partition at a time.

Members may briefly disagree about the assignment while a rebalance is under way (each notices the change
on its own check).  So a member takes ``owners/<topic>-<partition>.lock`` (flock) before it reads the
committed offset and consumes, and lets it go only after committing what it consumed.  The next owner
therefore starts exactly where the previous one stopped, and a member that dies drops its locks at once
(the kernel releases flocks), leaving the last committed offset as the restart point.
"""

from __future__ import annotations

import os

from kcli.cluster.datadir import flock_holder, try_flock
from kcli.groups.layout import GroupPaths
from kcli.storage.fileio import make_dirs, open_fd

TopicPartition = tuple[str, int]


class Ownership:
    """The ownership locks one member holds."""

    def __init__(self, paths: GroupPaths, member_id: str) -> None:
        self.paths = paths
        self.member_id = member_id
        self._fds: dict[TopicPartition, int] = {}

    @property
    def owned(self) -> set[TopicPartition]:
        return set(self._fds)

    def try_acquire(self, tp: TopicPartition) -> bool:
        """Take the partition if no one holds it; never waits (the holder may be mid-rebalance)."""
        if tp in self._fds:
            return True
        make_dirs(self.paths.owners_dir)
        fd = open_fd(self.paths.owner_lock_path(*tp), os.O_RDWR | os.O_CREAT)
        if not try_flock(fd, self.member_id):
            return False
        self._fds[tp] = fd
        return True

    def release(self, tp: TopicPartition) -> None:
        fd = self._fds.pop(tp, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for tp in list(self._fds):
            self.release(tp)


def current_owner(paths: GroupPaths, tp: TopicPartition) -> str | None:
    """The member id holding ``tp`` right now, or None when no live member holds it."""
    held = flock_holder(paths.owner_lock_path(*tp))
    return None if held is None else held.decode("utf-8", "replace").strip() or None
