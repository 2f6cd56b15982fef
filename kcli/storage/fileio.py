"""Opening files inside a data directory without following symbolic links.

A segment, index, checkpoint or lock file that is a symlink is refused, never followed: kcli truncates
and rewrites these files during recovery, so following a link would let a stray or planted symlink
(``00000000000000000000.log -> /etc/passwd``) make kcli cut or overwrite a file outside the data
directory.  Directories may still be links (an operator moving a whole data dir or broker folder to
another disk does so on purpose, once, at the top); only the files kcli creates itself are checked.
"""

from __future__ import annotations

import errno
import os
import weakref
from collections.abc import Callable

from kcli.errors import DataDirError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

# The modes of everything kcli creates in a data dir, decided here only.  Owner-only by default: messages,
# group offsets and credentials are often private, and other users of the same machine should neither read
# nor list them.  An operator who shares a data dir with a group on purpose says so with
# KCLI_ALLOW_SHARED_DATA_DIR=1: kcli then stops warning about the open data dir (kcli.cli.app) and creates
# files and folders as the umask allows (0666/0777 less the umask, as most tools do), so the group can read
# what is written.  Secrets (credentials, keys) are owner-only either way.
SHARED_DATA_DIR_ENV = "KCLI_ALLOW_SHARED_DATA_DIR"
SHARED = os.environ.get(SHARED_DATA_DIR_ENV) == "1"
FILE_MODE = 0o666 if SHARED else 0o600
DIR_MODE = 0o777 if SHARED else 0o700
SECRET_MODE = 0o600


def open_fd(path: str, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open`` that refuses a symlink at ``path`` with a one-line DataDirError."""
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataDirError(
                f"{path} is a symbolic link; kcli does not follow links to files in a data dir",
                hint="replace the link with the file it points to",
            ) from None
        raise


def make_dirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` for folders inside a data dir: every level it creates gets
    DIR_MODE (``os.makedirs`` gives it only to the last one)."""
    try:
        os.mkdir(path, DIR_MODE)
        return
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not parent or parent == path:
            raise
        make_dirs(parent)
    except OSError:
        if os.path.isdir(path):  # EEXIST, or EROFS on a read-only mount that has it already
            return
        raise
    try:
        os.mkdir(path, DIR_MODE)
    except OSError:
        if not os.path.isdir(path):
            raise


def read_file(path: str) -> bytes:
    """The whole file (no symlinks); FileNotFoundError if it is missing."""
    fd = open_fd(path, os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes, mode: int = FILE_MODE, sync: bool = False) -> None:
    """Create or replace the contents of ``path`` (no symlinks), optionally fsyncing it."""
    fd = open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None  # say which file (and so which disk)
    finally:
        os.close(fd)


def truncate_file(path: str, size: int) -> None:
    """Cut ``path`` to ``size`` bytes and fsync it (no symlinks)."""
    fd = open_fd(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(paths: set[str] | list[str]) -> None:
    """fsync each file and then each folder holding one (so that a file created since is found after a
    power cut too).  A file gone since (retention, truncation) needs nothing."""
    folders = set()
    for path in paths:
        try:
            fd = open_fd(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        folders.add(os.path.dirname(path))
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def takes_writes(directory: str, size: int) -> bool:
    """Whether the file system of ``directory`` takes ``size`` more bytes now (written, fsynced and
    removed again): how a replica whose disk refused writes learns that it may try again."""
    path = os.path.join(directory, ".kcli-write-probe")
    try:
        write_file(path, bytes(size), sync=True)
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def owned_fd(owner: object, path: str, flags: int, mode: int = FILE_MODE) -> tuple[int, Callable[[], object]]:
    """:func:`open_fd`, and the one way to close the descriptor: calling the returned closer, or the
    garbage collector taking ``owner`` (a reader nobody closed must not keep a file open in a broker
    that runs for months).  The closer closes once, however often it is called."""
    fd = open_fd(path, flags, mode)
    return fd, weakref.finalize(owner, os.close, fd)
