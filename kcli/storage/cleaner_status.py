"""The cleaner's progress as other processes see it: each broker folder's ``cleaner-status.json`` (the
pass running now and the last pass of each partition replica there) and the dirty part of a replica
read without a lock.

The status file is written by the process cleaning that folder's replicas (a broker's cleaner thread,
or ``kcli topic compact`` while no broker runs), twice per pass and off the produce and fetch paths, and
by topic deletion, which drops the topic's entries; each writer holds the folder's checkpoint lock.  It
is informational: a write that fails (a full disk, a lock held too long) is skipped and never fails the
pass, and a damaged or unreadable file reads as empty.  A pass marked running by a process that is gone
(kill -9) is not running.
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

from kcli.errors import CorruptRecordError, LockTimeoutError
from kcli.storage.checkpoint import atomic_write
from kcli.storage.cleaner import Cleanable, cleanable
from kcli.storage.config import LogConfig
from kcli.storage.fileio import read_file
from kcli.storage.log import PartitionLog

STATUS_FILE = "cleaner-status.json"


@dataclass(frozen=True)
class LastPass:
    """What the last finished pass over a replica did."""

    started_ms: int
    ended_ms: int
    records_kept: int
    records_removed: int
    bytes_before: int
    bytes_after: int
    first_dirty: int  # the checkpoint it left: where the next pass's dirty part starts
    latest_delete_horizon: int = -1  # CleanResult's: a broker restarted reads it back (absent in older files)


@dataclass(frozen=True)
class CleanerStatus:
    """One replica's entry of the status file."""

    running_since: int | None  # when the pass running now started (ms), None when none runs
    last: LastPass | None


def status_path(broker_dir: str) -> str:
    return os.path.join(broker_dir, STATUS_FILE)


def _key(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def _load(path: str) -> dict[str, dict[str, object]]:
    """The file's entries by "topic-partition"; {} when it is missing or damaged."""
    try:
        doc = json.loads(read_file(path))
    except (OSError, ValueError):
        return {}
    entries = doc.get("partitions") if isinstance(doc, dict) else None
    return {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _status(entry: dict[str, object]) -> CleanerStatus:
    running = entry.get("running")
    since = None
    if isinstance(running, dict) and _alive(running.get("pid")) and isinstance(running.get("started_ms"), int):
        since = running["started_ms"]
    last = entry.get("last")
    try:
        done = LastPass(**last) if isinstance(last, dict) else None
    except TypeError:
        done = None
    if done is not None and not all(type(v) is int for v in asdict(done).values()):
        done = None
    return CleanerStatus(since, done)


def read_status(broker_dir: str) -> dict[tuple[str, int], CleanerStatus]:
    """Every replica's entry of the broker folder's status file ({} when missing or damaged)."""
    out = {}
    for key, entry in _load(status_path(broker_dir)).items():
        topic, _sep, partition = key.rpartition("-")
        if topic and partition.isdigit():
            out[(topic, int(partition))] = _status(entry)
    return out


def _update(broker_dir: str, topic: str, partition: int, lock: AbstractContextManager[object],
            running: dict[str, int] | None, last: LastPass | None) -> None:
    path = status_path(broker_dir)
    try:
        with lock:
            entries = _load(path)
            entry = entries.setdefault(_key(topic, partition), {})
            entry.pop("running", None)
            if running is not None:
                entry["running"] = running
            if last is not None:
                entry["last"] = asdict(last)
            _save(path, entries)
    except (OSError, LockTimeoutError):
        pass  # informational only: a full disk or a busy lock must not stop the cleaner


def _save(path: str, entries: dict[str, dict[str, object]]) -> None:
    atomic_write(path, json.dumps({"version": 1, "partitions": entries}, sort_keys=True).encode())


def pass_started(broker_dir: str, topic: str, partition: int, now_ms: int,
                 lock: AbstractContextManager[object]) -> None:
    """Mark a pass over the replica as running in this process (``lock``: the broker folder's
    checkpoint lock, shared by the processes that may clean its replicas)."""
    _update(broker_dir, topic, partition, lock, {"started_ms": now_ms, "pid": os.getpid()}, None)


def pass_ended(broker_dir: str, topic: str, partition: int, done: LastPass | None,
               lock: AbstractContextManager[object]) -> None:
    """The pass is over: record what it did (``done``), or only that it no longer runs (None: it failed
    or had nothing to do)."""
    _update(broker_dir, topic, partition, lock, None, done)


def forget(broker_dir: str, topic: str, partition: int) -> None:
    """Drop a deleted partition's entry (the caller holds the checkpoint lock), so that a partition
    created again under the same name does not show the old one's passes."""
    path = status_path(broker_dir)
    entries = _load(path)
    if entries.pop(_key(topic, partition), None) is not None:
        try:
            _save(path, entries)
        except OSError:
            pass  # informational only: a full disk must not fail the topic's deletion


def replica_cleanable(log: PartitionLog, config: LogConfig, high_watermark: int | None,
                      now_ms: int) -> Cleanable | None:
    """What a cleaner pass over ``log`` (opened read-only) could do now: :func:`cleanable` below
    min(high watermark, last stable offset), the log end standing for the high watermark when no broker
    keeps one (None: as ``kcli topic compact``).  None when the files changed or broke under the read."""
    try:
        end = log.log_end_offset
        upper = min(end if high_watermark is None else min(high_watermark, end), log.last_stable_offset())
        return cleanable(log, config, upper=upper, now_ms=now_ms)
    except (OSError, CorruptRecordError):
        return None
