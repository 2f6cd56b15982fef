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
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from kcli.cluster.datadir import DataDir, FileLock, flock_holder, safe_file_name
from kcli.errors import KcliError
from kcli.groups.layout import fsync_dir
from kcli.storage.checkpoint import atomic_write
from kcli.transactions.state import TransactionMetadata, check_transactional_id

STATE_SUFFIX = ".json"
LONGEST_SUFFIX = ".json.tmp"  # atomic_write's temp file: every name of an id fits beside it


class TransactionStore:
    """The persisted state of every transactional id in one data directory."""

    def __init__(self, datadir: DataDir) -> None:
        self.datadir = datadir
        self.dir = os.path.join(datadir.cluster_dir, "transactions")

    def _base(self, transactional_id: str) -> str:
        check_transactional_id(transactional_id)  # before any file is named after it
        name = safe_file_name(transactional_id, LONGEST_SUFFIX)
        return os.path.join(self.dir, name[: -len(LONGEST_SUFFIX)])

    def path(self, transactional_id: str) -> str:
        return self._base(transactional_id) + STATE_SUFFIX

    def _ensure_dir(self) -> None:
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir, exist_ok=True)
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

    def all(self) -> Iterator[TransactionMetadata]:
        """Every id's state, in file-name order (read without locks: each file is whole).  A damaged file
        is raised about after all the others were yielded, so one cannot hold up the rest."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return
        damaged: KcliError | None = None
        for name in names:
            if name.endswith(STATE_SUFFIX):
                try:
                    meta = self._read(os.path.join(self.dir, name))
                except KcliError as exc:
                    damaged = damaged or exc
                    continue
                if meta is not None:
                    yield meta
        if damaged is not None:
            raise damaged

    @staticmethod
    def _read(path: str) -> TransactionMetadata | None:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise KcliError(f"transaction state file {path} is unreadable: {exc}") from None
        try:
            return TransactionMetadata.from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KcliError(f"transaction state file {path} is malformed: {exc!r}") from None
