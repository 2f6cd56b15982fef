"""The data directory: where things live, and the file locks that coordinate processes.

Layout (see docs/design.md)::

    <root>/cluster/        metadata.log, metadata.snapshot, metadata.lock, locks/
    <root>/broker-<id>/    meta.properties, checkpoints, broker.lock, locks/, <topic>-<partition>/

Who may write a replica folder ``broker-<id>/<topic>-<p>/`` is decided by its replica lock
(``broker-<id>/locks/<topic>-<p>.lock``): whoever holds it is the folder's only writer -- its own broker
while that broker runs, else the leader or the embedded writer that writes it in the broker's stead.  The
partition lock (``cluster/locks/<topic>-<p>.lock``) only queues embedded writers and offline tools; brokers
never take it, so a hung broker holds nothing a new leader needs (leadership itself is fenced by leader
epoch, see kcli.broker.partitions).  Lock order: partition lock, then replica locks; a broker only ever
tries a replica lock (never waits for one), so no cycle can form.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kcli.errors import DataDirError, LockTimeoutError
from kcli.storage.fileio import DIR_MODE, make_dirs, open_fd

DEFAULT_LOCK_TIMEOUT = 30.0
# set to 1 to use a data dir owned by another user anyway (see DataDir.check_owner)
ALLOW_OTHER_OWNER_ENV = "KCLI_ALLOW_OTHER_OWNER"


def default_data_dir() -> str:
    """``$KCLI_DATA_DIR``, else ``${XDG_DATA_HOME:-~/.local/share}/kcli`` (never the current directory,
    because cron jobs run from wherever they are started)."""
    env = os.environ.get("KCLI_DATA_DIR")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "kcli")


def user_name(uid: int) -> str:
    """The login name of ``uid`` for a message ("uid N" when it has none)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def try_flock(fd: int, holder: str, *, record_required: bool = True) -> bool:
    """Take an exclusive flock on ``fd`` without waiting and record ``holder`` in the file (what
    :func:`flock_holder` reads back); when another process holds it, close ``fd`` and return False.

    Recording can fail (a full disk).  Where the record only names the holder in messages
    (``record_required=False``) the lock is kept without it; otherwise ``fd`` is closed, dropping the
    lock, and the error raised.  Either way a failed record never leaves a lock held by nobody's code."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}\n".encode(), 0)
    except OSError:
        if record_required:
            os.close(fd)
            raise
    return True


def flock_holder(path: str, max_bytes: int = 4096, on_free: Callable[[], None] | None = None) -> bytes | None:
    """What the live holder of the flock on ``path`` recorded in it (up to ``max_bytes``; b"" for 0), or
    None when no process holds it or there is no file.  A shared probe on a read-only descriptor: it
    works on a read-only data dir and writes nothing.  ``on_free`` runs when nobody holds the lock,
    while the probe still does (to remove a dead holder's file before anyone can take it)."""
    import fcntl

    try:
        fd = open_fd(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, max_bytes) if max_bytes else b""
        if on_free is not None:
            on_free()
        return None
    finally:
        os.close(fd)  # also drops the probe's shared lock


class FileLock:
    """An exclusive advisory lock (flock) on ``path`` that records its holder's pid for error messages.

    flock is released by the kernel when the holder dies, so a crashed process never leaves a stale lock.
    """

    def __init__(self, path: str, timeout: float = DEFAULT_LOCK_TIMEOUT, what: str = "") -> None:
        self.path = path
        self.timeout = timeout
        self.what = what or os.path.basename(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        try:
            fd = open_fd(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise _not_writable(exc, f"the {self.what} lock") from None
        if not try_flock(fd, str(os.getpid()), record_required=False):
            return False
        self._fd = fd
        return True

    def acquire(self, timeout: float | None = None) -> FileLock:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"timed out after {timeout:g}s waiting for the {self.what} lock held by {self.holder()}",
                    hint="wait for that process or stop it",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def holder(self) -> str:
        try:
            with open(self.path, encoding="ascii") as fh:
                pid = fh.read().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid else "another process"

    def is_locked(self) -> bool:
        """Whether some process (maybe this one) holds the lock right now."""
        return self._fd is not None or flock_holder(self.path, 0) is not None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class DataDir:
    """Paths and locks of one data directory."""

    def __init__(self, root: str | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.root = os.path.abspath(root or default_data_dir())
        self.lock_timeout = lock_timeout

    # ------------------------------------------------------------ paths
    @property
    def cluster_dir(self) -> str:
        return os.path.join(self.root, "cluster")

    def broker_dir(self, broker_id: int) -> str:
        return os.path.join(self.root, f"broker-{broker_id}")

    def partition_dir(self, broker_id: int, topic: str, partition: int) -> str:
        return os.path.join(self.broker_dir(broker_id), f"{topic}-{partition}")

    def broker_ids_on_disk(self) -> list[int]:
        try:
            names = os.listdir(self.root)
        except (FileNotFoundError, NotADirectoryError):
            return []
        ids = []
        for name in names:
            prefix, _, num = name.partition("-")
            if prefix == "broker" and num.isdigit():
                ids.append(int(num))
        return sorted(ids)

    def exists(self) -> bool:
        return os.path.isdir(self.cluster_dir)

    def check_usable(self) -> None:
        """Refuse a root that is not a directory of ours, or that is missing and cannot be created, with a
        one-line reason.

        An existing root that is not writable (a read-only mount of a snapshot or backup) is not refused
        here: reading, dumping and verifying it need no writes, and a command that does write stops at its
        first lock with a one-line DataDirError (see FileLock.try_acquire).
        """
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise DataDirError(f"data dir {self.root} is not a directory")
        self.check_owner()
        if os.path.exists(self.root):
            return
        probe = os.path.dirname(self.root)
        while probe and not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if probe and not os.access(probe, os.W_OK | os.X_OK):
            raise DataDirError(f"data dir {self.root} is not writable by this user",
                               hint="use --data-dir or fix its permissions")

    def check_owner(self) -> None:
        """Refuse a data dir owned by another user (root included) unless KCLI_ALLOW_OTHER_OWNER=1.

        Working in someone else's data dir leaves files they cannot rewrite (``sudo kcli produce`` on a
        user's data dir makes root-owned segments and locks that break the user's next run), and it means
        trusting whatever that user put there.  Sharing on purpose is still possible with the variable.
        """
        try:
            owner = os.stat(self.root).st_uid
        except FileNotFoundError:
            return
        if owner == os.geteuid() or os.environ.get(ALLOW_OTHER_OWNER_ENV) == "1":
            return
        name = user_name(owner)
        raise DataDirError(f"data dir {self.root} is owned by {name}, not by the user running kcli",
                           hint=f"run kcli as {name}, or set {ALLOW_OTHER_OWNER_ENV}=1 to use it anyway")

    def create(self) -> None:
        """Create the root (DIR_MODE: 0700 unless shared on purpose, less whatever the umask removes) if
        it is missing.

        Messages are often private, and the broker socket inside is already 0600: a data dir readable by
        every local user would undo that.  An existing root keeps the mode its owner gave it, so sharing
        with a group stays a deliberate ``chmod`` (which every command then names: :meth:`open_folders`).
        """
        if not os.path.isdir(self.root):
            os.makedirs(os.path.dirname(self.root), exist_ok=True)
            try:
                os.mkdir(self.root, DIR_MODE)
            except FileExistsError:
                pass

    def open_folders(self) -> list[tuple[str, int]]:
        """The root and broker folders that let users other than the owner in (any group or other bit),
        with their modes.  A root kcli creates is 0700, but one that already existed keeps its owner's
        mode (see :meth:`create`), and a broker folder may be a link to another disk: a 0755 one shows
        every topic, and the messages of files an older kcli made 0644, to every local user.  One stat
        per folder (through links), so every command can afford it."""
        found = []
        for path in (self.root, *(self.broker_dir(b) for b in self.broker_ids_on_disk())):
            try:
                mode = os.stat(path).st_mode & 0o777
            except OSError:
                continue
            if mode & 0o077:
                found.append((path, mode))
        return found

    # ------------------------------------------------------------ locks
    def _lock(self, path: str, what: str, timeout: float | None = None) -> FileLock:
        try:
            make_dirs(os.path.dirname(path))
        except OSError as exc:
            raise _not_writable(exc, f"the {what} lock") from None
        return FileLock(path, self.lock_timeout if timeout is None else timeout, what)

    def metadata_lock(self) -> FileLock:
        return self._lock(os.path.join(self.cluster_dir, "metadata.lock"), "cluster metadata")

    def partition_lock(self, topic: str, partition: int, timeout: float | None = None) -> FileLock:
        return self._lock(os.path.join(self.cluster_dir, "locks", _file_name(f"{topic}-{partition}", ".lock")),
                          f"partition {topic}-{partition}", timeout)

    def replica_lock(self, broker_id: int, topic: str, partition: int, timeout: float | None = None) -> FileLock:
        """The lock of one replica folder (see the module docstring); kept outside the folder, so that
        deleting the folder never unlinks a lock file another process holds or waits on."""
        return self._lock(os.path.join(self.broker_dir(broker_id), "locks", _file_name(f"{topic}-{partition}", ".lock")),
                          f"replica of partition {topic}-{partition} on broker {broker_id}", timeout)

    def checkpoint_lock(self, broker_id: int) -> FileLock:
        return self._lock(os.path.join(self.broker_dir(broker_id), "checkpoints.lock"),
                          f"broker {broker_id} checkpoints")

    def broker_lock(self, broker_id: int) -> FileLock:
        return self._lock(os.path.join(self.broker_dir(broker_id), "broker.lock"), f"broker {broker_id}")

    def group_lock(self, group: str) -> FileLock:
        return self._lock(os.path.join(self.cluster_dir, "groups", safe_file_name(group, ".lock")), f"group {group}")

    def live_brokers(self) -> list[int]:
        """Brokers whose daemon holds its broker lock right now."""
        return [b for b in self.broker_ids_on_disk()
                if FileLock(os.path.join(self.broker_dir(b), "broker.lock")).is_locked()]

    @contextmanager
    def locked(self, lock: FileLock) -> Iterator[FileLock]:
        lock.acquire()
        try:
            yield lock
        finally:
            lock.release()


def _not_writable(exc: OSError, what: str) -> Exception:
    """A lock that cannot be created because the data dir is read-only or not ours to write: say so in one
    line (exit 9) instead of a bare OS error.  Anything else is returned as it was."""
    if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
        return exc
    reason = "is on a read-only file system" if exc.errno == errno.EROFS else "is not writable by this user"
    return DataDirError(f"cannot create {what} in {os.path.dirname(exc.filename or '') or 'the data dir'}: "
                        f"the data dir {reason}", hint="reading works; for writes remount it read-write or "
                        "use --data-dir")


def safe_file_name(name: str, suffix: str) -> str:
    """The file name (``suffix`` included) under which an id of any characters and length -- a group id, a
    transactional id -- is kept: escaped (see :func:`_safe`) and shortened when too long."""
    return _file_name(_safe(name), suffix)


def _file_name(stem: str, suffix: str) -> str:
    """``stem + suffix``, or, when that is longer than a file name may be (255 bytes: a 249-character topic
    plus a partition number and ``.lock`` is), a shortened stem made unique by a hash of the whole."""
    name = stem + suffix
    if len(name.encode()) <= 255:
        return name
    import hashlib

    head = stem.encode()[:200].decode(errors="ignore")  # 200 bytes, not characters: "é" is two
    return f"{head}~{hashlib.sha256(stem.encode()).hexdigest()[:16]}{suffix}"


def _safe(name: str) -> str:
    """A file-name-safe spelling of a group id (which may hold any characters).  The ids ``.`` and ``..``
    are spelt ``%2e`` and ``%2e%2e``: as folder names they would be the groups folder or the cluster
    folder itself, and deleting such a group would delete those."""
    if name in (".", ".."):
        return "%2e" * len(name)
    return "".join(c if c.isalnum() or c in "._-" else f"%{ord(c):02x}" for c in name) or "%"
