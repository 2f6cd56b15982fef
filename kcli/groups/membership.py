"""Embedded group membership: who is in a group right now, through files in the data directory.

A member is a file ``members/<name>`` holding the member's description (JSON), exclusively flock-held by
the member for as long as it lives.  The file appears already locked (it is written and locked under a
temporary name, then renamed), so a file whose lock can be taken belongs to a dead member: the kernel
dropped its lock the moment the process died (even by kill -9), and whoever notices removes the file.

The group lock serialises joins with admin changes (reset-offsets, delete), so "no live members" checked
under that lock stays true until the change is written.  ``state.json`` records a generation and the
member list it was computed for; whoever first sees a different live list bumps the generation.

Every member derives the same assignment from the same sorted live list (kcli.groups.assignors), so
there is no leader and no SyncGroup; partition ownership locks (kcli.groups.ownership) keep two members
off one partition while their views differ during a rebalance.

A group whose members are Kafka clients connected to a broker is kept by that broker's coordinator, which
mirrors them here as member files it holds (:class:`CoordinatedMembers`, with the assignment the client
leader chose) plus its state in ``state.json``.  So describe, lag, reset and delete see one list of live
members in both modes, and a group is never embedded and broker-coordinated at once: each side refuses
to join while the other's live members are there, checked under the group lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from kcli.cluster.datadir import DataDir, flock_holder
from kcli.errors import GroupNotEmptyError, KcliError, UsageError
from kcli.groups.assignors import get_assignor
from kcli.groups.layout import GroupPaths, fsync_dir
from kcli.storage.checkpoint import atomic_write
from kcli.storage.fileio import FILE_MODE

JOINING_PREFIX = ".join-"
TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class MemberInfo:
    """What a member publishes about itself (describe-group's CONSUMER-ID, HOST, CLIENT-ID).

    Members kept by a broker's coordinator also say which broker (``coordinator``) and which partitions
    their group leader gave them (``assignment``); for embedded members both are None, as every member
    computes the assignment itself."""

    member_id: str
    client_id: str
    host: str
    pid: int
    topics: tuple[str, ...]
    assignor: str
    joined_ms: int
    coordinator: int | None = None
    assignment: tuple[TopicPartition, ...] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MemberInfo:
        assignment = data.get("assignment")
        coordinator = data.get("coordinator")
        return cls(
            str(data["member_id"]),
            str(data["client_id"]),
            str(data["host"]),
            int(data["pid"]),
            tuple(data["topics"]),
            str(data["assignor"]),
            int(data["joined_ms"]),
            None if coordinator is None else int(coordinator),
            None if assignment is None else tuple((str(t), int(p)) for t, p in assignment),
        )


@dataclass(frozen=True)
class GroupState:
    """The recorded generation and the member ids it was computed for; for a broker-coordinated group
    also the broker, Kafka's state name (``phase``) and the chosen protocol (assignor)."""

    generation: int
    members: tuple[str, ...]
    coordinator: int | None = None
    phase: str | None = None
    protocol: str | None = None


def read_state(paths: GroupPaths) -> GroupState:
    try:
        with open(paths.state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        coordinator = data.get("coordinator")
        return GroupState(
            int(data["generation"]),
            tuple(data["members"]),
            None if coordinator is None else int(coordinator),
            data.get("phase"),
            data.get("protocol"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return GroupState(0, ())


def _write_state(paths: GroupPaths, state: GroupState) -> None:
    body = {k: v for k, v in asdict(state).items() if v is not None}
    body["members"] = list(state.members)
    atomic_write(paths.state_file, json.dumps(body).encode())


def publish_member_file(paths: GroupPaths, name: str, info: MemberInfo, durable: bool = True) -> int:
    """Write ``members/<name>`` (replacing any file of that name) so that it appears already flock-held:
    written and locked under a temporary name, then renamed.  Returns the fd that holds the lock; the
    member lives until it is closed.  The caller holds the group lock."""
    tmp = os.path.join(paths.members_dir, JOINING_PREFIX + name)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps(asdict(info)).encode())
        if durable:
            os.fsync(fd)
        os.rename(tmp, os.path.join(paths.members_dir, name))
    except BaseException:
        os.close(fd)
        raise
    if durable:
        fsync_dir(paths.members_dir)
    return fd


def live_members(datadir: DataDir, group: str) -> list[MemberInfo]:
    """The group's live members sorted by member id; files of dead members are removed on the way."""
    return _probe(GroupPaths(datadir, group), own=None)


def _probe(paths: GroupPaths, own: tuple[str, MemberInfo] | None) -> list[MemberInfo]:
    try:
        names = os.listdir(paths.members_dir)
    except FileNotFoundError:
        names = []
    found = [own[1]] if own is not None else []
    for name in names:
        if name.startswith(".") or (own is not None and name == own[0]):
            continue
        info = _probe_one(os.path.join(paths.members_dir, name))
        if info is not None:
            found.append(info)
    return sorted(found, key=lambda m: m.member_id)


def _probe_one(path: str) -> MemberInfo | None:
    """The member described by ``path`` if its holder lives; a dead member's file is unlinked."""

    def unlink_dead() -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    data = flock_holder(path, 1 << 16, on_free=unlink_dead)
    if data is None:
        return None
    try:
        return MemberInfo.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError):
        return None


def require_no_live_members(datadir: DataDir, group: str, action: str) -> Callable[[], None]:
    """A precondition for OffsetStore writes: refuse ``action`` while the group has live members."""

    def check() -> None:
        members = live_members(datadir, group)
        if members:
            raise GroupNotEmptyError(
                f"cannot {action} consumer group {group!r}: it has {len(members)} live member(s)",
                hint="stop its consumers first (see `kcli group describe --members`)",
            )

    return check


class Membership:
    """This process's membership in one group: join, notice changes, leave."""

    def __init__(
        self,
        datadir: DataDir,
        group: str,
        topics: Sequence[str],
        assignor: str = "range",
        client_id: str = "kcli",
        host: str | None = None,
    ) -> None:
        get_assignor(assignor)
        self.paths = GroupPaths(datadir, group)
        self.group = group
        name = uuid.uuid4().hex
        self.info = MemberInfo(
            f"{client_id}-{name}",
            client_id,
            host or socket.gethostname(),
            os.getpid(),
            tuple(sorted(set(topics))),
            assignor,
            int(time.time() * 1000),
        )
        self._name = name
        self._fd: int | None = None
        self.state = GroupState(0, ())

    @property
    def member_id(self) -> str:
        return self.info.member_id

    @property
    def joined(self) -> bool:
        return self._fd is not None

    def join(self) -> list[MemberInfo]:
        """Publish this member (under the group lock) and return the live members."""
        with self.paths.lock():
            self.paths.ensure()
            self._remove_abandoned_joins()
            others = _probe(self.paths, own=None)
            coordinated = [m for m in others if m.coordinator is not None]
            if coordinated:
                raise UsageError(
                    f"consumer group {self.group!r} has members connected to broker "
                    f"{coordinated[0].coordinator} (Kafka clients)",
                    hint="use another group id, or stop those consumers first",
                )
            mismatched = [m for m in others if m.assignor != self.info.assignor]
            if mismatched:
                raise UsageError(
                    f"consumer group {self.group!r} uses the {mismatched[0].assignor} assignor",
                    hint=f"use --assignor {mismatched[0].assignor} or another group",
                )
            self._fd = publish_member_file(self.paths, self._name, self.info)
            members = _probe(self.paths, own=(self._name, self.info))
            self._record(members)
            return members

    def _remove_abandoned_joins(self) -> None:
        """Temporary files of joiners that died mid-join (safe: joins hold the group lock)."""
        for name in os.listdir(self.paths.members_dir):
            if name.startswith(JOINING_PREFIX):
                try:
                    os.unlink(os.path.join(self.paths.members_dir, name))
                except FileNotFoundError:
                    pass

    def refresh(self) -> list[MemberInfo]:
        """The live members now; bumps the generation (under the group lock) when they changed."""
        members = _probe(self.paths, own=(self._name, self.info) if self.joined else None)
        ids = tuple(m.member_id for m in members)
        recorded = read_state(self.paths)
        if ids != recorded.members:
            with self.paths.lock():
                members = _probe(self.paths, own=(self._name, self.info) if self.joined else None)
                self._record(members)
        else:
            self.state = recorded
        return members

    def _record(self, members: list[MemberInfo]) -> None:
        """Bump the generation if ``members`` differs from the recorded list (caller holds the group lock)."""
        ids = tuple(m.member_id for m in members)
        current = read_state(self.paths)
        if ids != current.members:
            current = GroupState(current.generation + 1, ids)
            _write_state(self.paths, current)
        self.state = current

    def leave(self) -> None:
        """Remove this member at once (others see it gone on their next check), then record the change."""
        if self._fd is None:
            return
        try:
            os.unlink(os.path.join(self.paths.members_dir, self._name))
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
        try:
            with self.paths.lock():
                if os.path.isdir(self.paths.members_dir):
                    self._record(_probe(self.paths, own=None))
        except KcliError:
            pass  # the next member to look records it


class CoordinatedMembers:
    """The member files a broker's group coordinator holds for one group: the Kafka clients connected to
    it, mirrored so that the file-based view (describe, lag, reset, delete) sees them as live members.

    The broker holds each file's flock, so if the broker dies its members vanish from every view at once,
    exactly as a dead embedded member's do.  Files are written without fsync: a held lock means nothing
    after a crash, and every file is rewritten whole (temp + rename), so readers never see half of one.
    """

    def __init__(self, datadir: DataDir, group: str, broker_id: int, lock_timeout: float = 2.0) -> None:
        self.paths = GroupPaths(datadir, group)
        self.broker_id = broker_id
        self.lock_timeout = lock_timeout
        self._held: dict[str, tuple[int, MemberInfo]] = {}  # file name -> (fd holding it, what it says)
        self._state: GroupState | None = None

    def file_name(self, member_id: str) -> str:
        return f"broker{self.broker_id}-{uuid.uuid5(uuid.NAMESPACE_OID, member_id).hex}"

    def recorded_generation(self) -> int:
        """The generation last recorded for the group, so a new coordinator continues the count."""
        return read_state(self.paths).generation

    def admit(self, info: MemberInfo) -> list[MemberInfo]:
        """Publish a new member unless live members not held here exist (embedded members, or another
        broker's); returns those (empty: admitted)."""
        with self._locked():
            self.paths.ensure()
            held = {info.member_id for _fd, info in self._held.values()}
            foreign = [m for m in _probe(self.paths, own=None) if m.member_id not in held]
            if not foreign:
                self._write(info)
            return foreign

    def sync(self, members: Sequence[MemberInfo], state: GroupState) -> None:
        """Make the held files say exactly ``members`` and ``state.json`` say ``state``.  With no members
        now or before, nothing of ours is in the folder, so it is left alone (it may be an embedded group's)."""
        if not members and not self._held:
            return
        wanted = {self.file_name(m.member_id): m for m in members}
        with self._locked():
            self.paths.ensure()
            for name in [n for n in self._held if n not in wanted]:
                self._remove(name)
            for name, info in wanted.items():
                if name not in self._held or self._held[name][1] != info:
                    self._write(info)
            if state != self._state:
                _write_state(self.paths, state)
                self._state = state

    def release(self) -> None:
        """Remove every held member (the coordinator no longer keeps this group).  No group lock is
        needed: under it, anyone sees each member either live or gone, and both are true."""
        for name in list(self._held):
            self._remove(name)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The group lock with a short wait: the coordinator must not stall its other groups for long."""
        lock = self.paths.lock().acquire(timeout=self.lock_timeout)
        try:
            yield
        finally:
            lock.release()

    def _write(self, info: MemberInfo) -> None:
        name = self.file_name(info.member_id)
        fd = publish_member_file(self.paths, name, info, durable=False)
        old = self._held.get(name)
        self._held[name] = (fd, info)
        if old is not None:
            os.close(old[0])  # after the rename: the name never points at an unlocked file

    def _remove(self, name: str) -> None:
        fd, _info = self._held.pop(name)
        try:
            os.unlink(os.path.join(self.paths.members_dir, name))
        except FileNotFoundError:
            pass
        os.close(fd)
