"""Kafka's checkpoint files: written to ``<name>.tmp``, fsynced and renamed over, so a crash leaves the
old file or the new one, never half of one.

Log-dir checkpoints hold ``topic partition offset`` lines; ``leader-epoch-checkpoint`` holds
``epoch startOffset`` lines.  Both start with a version line ``0`` and a count line.
"""

from __future__ import annotations

import os

from kcli.errors import CorruptRecordError
from kcli.storage.fileio import read_file, write_file

RECOVERY_POINT = "recovery-point-offset-checkpoint"
LOG_START = "log-start-offset-checkpoint"
HIGH_WATERMARK = "replication-offset-checkpoint"
LEADER_EPOCH = "leader-epoch-checkpoint"
CLEANER_OFFSET = "cleaner-offset-checkpoint"  # per broker folder: where each partition's dirty part starts


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write temp + fsync + rename + fsync the directory.  ``mode`` is the new file's (a temp file left
    by a crash keeps its own: callers writing secrets remove it first)."""
    tmp = path + ".tmp"
    write_file(tmp, data, mode, sync=True)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_lines(path: str) -> list[list[str]]:
    try:
        text = read_file(path).decode("utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise CorruptRecordError(f"malformed checkpoint file {path}") from None
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != ["0"]:
        raise CorruptRecordError(f"malformed checkpoint file {path}")
    count = int(lines[1][0])
    body = lines[2:]
    if len(body) != count:
        raise CorruptRecordError(f"checkpoint file {path} says {count} entries but has {len(body)}")
    return body


def read_offsets(path: str) -> dict[tuple[str, int], int]:
    """Read a log-dir checkpoint: {(topic, partition): offset}."""
    out = {}
    for fields in _read_lines(path):
        if len(fields) != 3:
            raise CorruptRecordError(f"malformed line in checkpoint file {path}: {' '.join(fields)}")
        out[(fields[0], int(fields[1]))] = int(fields[2])
    return out


def write_offsets(path: str, offsets: dict[tuple[str, int], int]) -> None:
    lines = ["0", str(len(offsets))] + [f"{t} {p} {o}" for (t, p), o in sorted(offsets.items())]
    atomic_write(path, ("\n".join(lines) + "\n").encode())


def read_offset(path: str, key: tuple[str, int]) -> int | None:
    """One partition's entry of a log-dir checkpoint; None when it has none or the file cannot be read
    (a lost or damaged checkpoint only costs work: a longer recovery, a cleaner pass from the start)."""
    try:
        return read_offsets(path).get(key)
    except (OSError, ValueError, CorruptRecordError):
        return None


def set_offset(path: str, key: tuple[str, int], offset: int) -> None:
    """Set one partition's entry of a log-dir checkpoint, keeping the others (a damaged file starts
    afresh); the caller holds the broker folder's checkpoint lock: the file is shared."""
    try:
        offsets = read_offsets(path)
    except (OSError, ValueError, CorruptRecordError):
        offsets = {}
    offsets[key] = offset
    write_offsets(path, offsets)


def forget(log_dir: str, topic: str, partition: int) -> None:
    """Drop a deleted partition's entries from the log-dir checkpoints in ``log_dir`` (the caller holds
    their lock), so that a partition created again under the same name does not inherit its log start
    or recovery point: Kafka writes only live logs' entries."""
    for name in (RECOVERY_POINT, LOG_START, HIGH_WATERMARK):
        path = os.path.join(log_dir, name)
        try:
            offsets = read_offsets(path)
        except (OSError, ValueError, CorruptRecordError):
            continue
        if offsets.pop((topic, partition), None) is not None:
            write_offsets(path, offsets)


def read_epochs(path: str) -> list[tuple[int, int]]:
    """Read a leader-epoch-checkpoint: [(epoch, start offset)] in order."""
    return [(int(f[0]), int(f[1])) for f in _read_lines(path)]


def write_epochs(path: str, epochs: list[tuple[int, int]]) -> None:
    lines = ["0", str(len(epochs))] + [f"{e} {o}" for e, o in epochs]
    atomic_write(path, ("\n".join(lines) + "\n").encode())
