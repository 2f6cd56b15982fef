"""Where a consumer group lives in the data directory.

::

    cluster/groups/<group>.lock            the group lock (DataDir.group_lock): serialises every change
    cluster/groups/<group>/group.json      {"group": name}: the real id (the folder name is escaped)
    cluster/groups/<group>/offsets.json    committed offsets (kcli.groups.offsets)
    cluster/groups/<group>/state.json      generation and member list (kcli.groups.membership)
    cluster/groups/<group>/members/<id>    one file per member, flock-held while the member lives
    cluster/groups/<group>/owners/<t>-<p>.lock   held by the member consuming that partition

The folder name is the group lock's file name without ``.lock``, so both always match.  Lock files are
never unlinked while a group may be in use: unlinking a file someone waits on would let two processes
hold "the same" lock.
"""

from __future__ import annotations

import hashlib
import json
import os

from kcli.cluster.datadir import DataDir, FileLock
from kcli.errors import KcliError, UsageError
from kcli.storage.checkpoint import atomic_write
from kcli.storage.fileio import make_dirs

MAX_NAME = 255  # bytes in a file name on common file systems


def check_group_id(group: str) -> None:
    """Kafka accepts any non-empty group id; so do we."""
    if not group:
        raise UsageError("group id is empty")


class GroupPaths:
    """Paths of one group, plus creating its folder."""

    def __init__(self, datadir: DataDir, group: str) -> None:
        check_group_id(group)
        self.datadir = datadir
        self.group = group
        lock_path = datadir.group_lock(group).path
        self.dir = lock_path[: -len(".lock")]

    def lock(self) -> FileLock:
        return self.datadir.group_lock(self.group)

    @property
    def group_file(self) -> str:
        return os.path.join(self.dir, "group.json")

    @property
    def offsets_file(self) -> str:
        return os.path.join(self.dir, "offsets.json")

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, "state.json")

    @property
    def members_dir(self) -> str:
        return os.path.join(self.dir, "members")

    @property
    def owners_dir(self) -> str:
        return os.path.join(self.dir, "owners")

    def owner_lock_path(self, topic: str, partition: int) -> str:
        name = f"{topic}-{partition}.lock"
        if len(name) > MAX_NAME:  # a topic name near Kafka's 249-character limit
            name = hashlib.sha256(name.encode()).hexdigest() + ".lock"
        return os.path.join(self.owners_dir, name)

    def exists(self) -> bool:
        return os.path.exists(self.group_file)

    def ensure(self) -> None:
        """Create the group's folders and name file (caller holds the group lock)."""
        if self.exists():
            self.check_name()
            return
        for path in (self.members_dir, self.owners_dir):
            make_dirs(path)
        atomic_write(self.group_file, json.dumps({"group": self.group}).encode())
        fsync_dir(os.path.dirname(self.dir))

    def check_name(self) -> None:
        """Refuse the (theoretical) case of two group ids escaping to the same folder name."""
        stored = read_group_name(self.dir)
        if stored is not None and stored != self.group:
            raise KcliError(
                f"group {self.group!r} would share its folder {self.dir} with group {stored!r}",
                hint="use another group id",
            )


def read_group_name(path: str) -> str | None:
    try:
        with open(os.path.join(path, "group.json"), encoding="utf-8") as fh:
            return str(json.load(fh)["group"])
    except (OSError, ValueError, KeyError):
        return None


def group_names(datadir: DataDir) -> list[str]:
    """Every group that has a folder, sorted."""
    root = os.path.join(datadir.cluster_dir, "groups")
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        path = os.path.join(root, entry)
        if os.path.isdir(path):
            name = read_group_name(path)
            if name is not None:
                names.append(name)
    return sorted(names)


def fsync_dir(path: str) -> None:
    """Make a new directory entry durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
