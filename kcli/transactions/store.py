"""Where transactional ids live in the data directory: one small JSON file each.

::

    cluster/transactions/<id>.json    the id's TransactionMetadata, rewritten whole (temp + fsync + rename)
    cluster/transactions/<id>.lock    the id's lock: held for every read-modify-write of its state
    cluster/transactions/<id>.owner   held (flock) by an embedded transactional producer for its life

``<id>`` is the transactional id escaped for a file name (kcli.cluster.datadir.safe_file_name); the real
id is inside the JSON, and a file holding another id is refused.  Kafka keeps the same state in the
compacted ``__transaction_state`` topic; one file per id is the compact form of it: a change touches one
file, any process can take over an id after another was killed, and a crash leaves the old state or the
new one.  Readers take no lock.  Lock files are never unlinked (see kcli.groups.layout for why).

Every OffsetFetch with require_stable (librdkafka always sets it) and every upkeep round of a broker read
every id's state, so a store keeps what it parsed, keyed by each file's (inode, mtime, size): a file is
only ever replaced by a rename, so a new state is a new inode, and a file unchanged since it was parsed
is not parsed again.  An inode freed by one rename may be reused by a later file, but a later file has a
later mtime than any file that was already :data:`SETTLED_NS` old when it was parsed (coarse file system
clocks included): only those are kept.  Callers get copies, never the kept objects.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Iterator

from kcli.cluster.datadir import DataDir, FileLock, flock_holder, safe_file_name
from kcli.errors import KcliError
from kcli.groups.layout import fsync_dir
from kcli.storage.checkpoint import atomic_write
from kcli.storage.fileio import make_dirs
from kcli.transactions.state import TransactionMetadata, check_transactional_id

STATE_SUFFIX = ".json"
LONGEST_SUFFIX = ".json.tmp"  # atomic_write's temp file: every name of an id fits beside it
SETTLED_NS = 2_000_000_000  # a state file this old is kept parsed (> the coarsest file system clock tick)

FileKey = tuple[int, int, int]  # (inode, mtime_ns, size)


class TransactionStore:
    """The persisted state of every transactional id in one data directory."""

    def __init__(self, datadir: DataDir) -> None:
        self.datadir = datadir
        self.dir = os.path.join(datadir.cluster_dir, "transactions")
        self._parsed: dict[str, tuple[FileKey, TransactionMetadata]] = {}  # path -> its settled state

    def _base(self, transactional_id: str) -> str:
        check_transactional_id(transactional_id)  # before any file is named after it
        name = safe_file_name(transactional_id, LONGEST_SUFFIX)
        return os.path.join(self.dir, name[: -len(LONGEST_SUFFIX)])

    def path(self, transactional_id: str) -> str:
        return self._base(transactional_id) + STATE_SUFFIX

    def _ensure_dir(self) -> None:
        if not os.path.isdir(self.dir):
            make_dirs(self.dir)
            fsync_dir(os.path.dirname(self.dir))  # the new folder survives a power cut too

    # ------------------------------------------------------------ locks
    def lock(self, transactional_id: str) -> FileLock:
        """The id's lock (not taken): serialises every change of its state, across processes and threads."""
        base = self._base(transactional_id)
        self._ensure_dir()
        return FileLock(base + ".lock", self.datadir.lock_timeout,
                        f"transactional id {transactional_id}")

    def owner(self, transactional_id: str) -> FileLock:
        """The id's owner lock (not taken): an embedded transactional producer holds it while it lives, so
        that others can tell its transaction from one abandoned by a process that died."""
        base = self._base(transactional_id)
        self._ensure_dir()
        return FileLock(base + ".owner", self.datadir.lock_timeout,
                        f"owner of transactional id {transactional_id}")

    def owner_alive(self, transactional_id: str) -> bool:
        """Whether some process holds the id's owner lock (a read-only probe)."""
        return flock_holder(self._base(transactional_id) + ".owner", 0) is not None

    # ------------------------------------------------------------ state
    def load(self, transactional_id: str) -> TransactionMetadata | None:
        """The id's state, or None when it has none."""
        meta = self._read(self.path(transactional_id))
        if meta is not None and meta.transactional_id != transactional_id:
            raise KcliError(f"transactional id {transactional_id!r} would share its state file "
                            f"{self.path(transactional_id)} with {meta.transactional_id!r}",
                            hint="use another transactional id")
        return meta

    def save(self, meta: TransactionMetadata) -> None:
        """Replace the id's state (caller holds its lock)."""
        self._ensure_dir()
        atomic_write(self.path(meta.transactional_id), json.dumps(meta.to_json(), indent=1).encode())

    def delete(self, transactional_id: str) -> None:
        """Forget the id (caller holds its lock); its lock files stay."""
        try:
            os.unlink(self.path(transactional_id))
        except FileNotFoundError:
            pass

    def all(self, where: Callable[[TransactionMetadata], bool] | None = None) -> Iterator[TransactionMetadata]:
        """Every id's state (those ``where``, a test that only looks, accepts), in file-name order, read
        without locks: each file is whole.  A damaged file is raised about after all the others were
        yielded, so one cannot hold up the rest."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return
        paths = [os.path.join(self.dir, name) for name in names if name.endswith(STATE_SUFFIX)]
        for gone in self._parsed.keys() - set(paths):
            self._parsed.pop(gone, None)
        damaged: KcliError | None = None
        for path in paths:
            try:
                meta = self._state(path)
            except KcliError as exc:
                damaged = damaged or exc
                continue
            if meta is not None and (where is None or where(meta)):
                yield _copy(meta)
        if damaged is not None:
            raise damaged

    def _read(self, path: str) -> TransactionMetadata | None:
        meta = self._state(path)
        return None if meta is None else _copy(meta)

    def _state(self, path: str) -> TransactionMetadata | None:
        """The state in ``path`` (None without the file): the kept object when the file did not change,
        which must not leave the store uncopied."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._parsed.pop(path, None)
            return None
        kept = self._parsed.get(path)
        if kept is not None and kept[0] == _key(st):
            return kept[1]
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())  # the key of the bytes read, whatever replaced the file since
                raw = fh.read()
        except FileNotFoundError:
            return None
        meta = _parse(path, raw)
        if time.time_ns() - st.st_mtime_ns > SETTLED_NS:
            self._parsed[path] = (_key(st), meta)
        else:
            self._parsed.pop(path, None)
        return meta


def _key(st: os.stat_result) -> FileKey:
    return st.st_ino, st.st_mtime_ns, st.st_size


def _copy(meta: TransactionMetadata) -> TransactionMetadata:
    """A copy whose changes do not reach ``meta`` (the offsets themselves are immutable)."""
    out = copy.copy(meta)  # not dataclasses.replace: twice as slow, and this runs per id per request
    out.partitions, out.groups = set(meta.partitions), set(meta.groups)
    out.pending_offsets = {g: dict(o) for g, o in meta.pending_offsets.items()}
    out.applied_groups = set(meta.applied_groups)
    return out


def _parse(path: str, raw: bytes) -> TransactionMetadata:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise KcliError(f"transaction state file {path} is unreadable: {exc}") from None
    try:
        return TransactionMetadata.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise KcliError(f"transaction state file {path} is malformed: {exc!r}") from None
