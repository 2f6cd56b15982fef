"""Is a broker running, stopped, or lost?  Broker locks plus heartbeat files.

The broker lock says whether a broker process exists: the kernel drops a flock the moment its holder
dies, so a crash is seen at once.  It cannot see a process that exists but does nothing (stopped with
SIGSTOP, swapped out, deadlocked), so every broker also touches ``broker-N/heartbeat`` about once a
second, and one older than the session timeout marks a hung broker.  A clean shutdown removes the
heartbeat after handing its partitions over, which is how a *stopped* broker (never started, or shut
down cleanly: its replicas are complete and the leader may write them) differs from a
*lost* one (crashed or hung: the controller drops it from every ISR and moves its leaderships).

Imported by the client too, so it depends on nothing heavier than the data dir.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kcli.cluster.datadir import DataDir
from kcli.storage.fileio import write_file

HEARTBEAT_NAME = "heartbeat"
HEARTBEAT_INTERVAL = 1.0
DEFAULT_SESSION_TIMEOUT_MS = 9000  # KRaft's broker.session.timeout.ms


def heartbeat_path(datadir: DataDir, broker_id: int) -> str:
    return os.path.join(datadir.broker_dir(broker_id), HEARTBEAT_NAME)


def beat(datadir: DataDir, broker_id: int) -> None:
    """Say "still here": create the heartbeat file or move its modification time to now."""
    path = heartbeat_path(datadir, broker_id)
    try:
        os.utime(path)
    except FileNotFoundError:
        write_file(path, f"{os.getpid()}\n".encode())


def clear(datadir: DataDir, broker_id: int) -> None:
    """Remove the heartbeat: this broker stopped cleanly and its replicas are whole."""
    try:
        os.unlink(heartbeat_path(datadir, broker_id))
    except FileNotFoundError:
        pass


def heartbeat_age(datadir: DataDir, broker_id: int, now: float | None = None) -> float | None:
    """Seconds since the broker's last heartbeat; None when it has none."""
    try:
        mtime = os.stat(heartbeat_path(datadir, broker_id)).st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


def freshest_first(datadir: DataDir, brokers: Iterable[int]) -> list[int]:
    """``brokers`` by heartbeat age, the most recent first (no heartbeat yet: starting, so first too).
    A client that needs any one broker asks one that beat a moment ago before one that may hang: a
    stopped process still accepts connections, but never answers."""
    now = time.time()
    return sorted(brokers, key=lambda b: heartbeat_age(datadir, b, now) or 0.0)


def _locked(datadir: DataDir, broker_id: int) -> bool:
    return datadir.broker_lock(broker_id).is_locked()


def is_lost(datadir: DataDir, broker_id: int) -> bool:
    """Crashed: no process holds the broker lock, yet the heartbeat of a running broker is left."""
    return heartbeat_age(datadir, broker_id) is not None and not _locked(datadir, broker_id)


def still_stopped(datadir: DataDir, broker_id: int, states: BrokerStates) -> bool:
    """Whether a broker an earlier look saw stopped is stopped now.  Ask this before writing a stopped
    broker's replica: a broker that started since that look may already follow, and then its replica
    folder is its own."""
    return broker_id in states.stopped and not _locked(datadir, broker_id)


@dataclass(frozen=True)
class BrokerStates:
    """One look at every broker of the cluster."""

    running: frozenset[int]
    lost: frozenset[int]  # crashed (lock free, heartbeat left behind) or hung (heartbeat too old)
    stopped: frozenset[int]  # lock free and no heartbeat: never started, or shut down cleanly

    def describe(self, broker_id: int) -> str:
        if broker_id in self.running:
            return "running"
        return "lost" if broker_id in self.lost else "stopped"


def observe(datadir: DataDir, brokers: Iterable[int], session_timeout: float) -> BrokerStates:
    """Classify ``brokers``.  A broker that holds its lock but has not written a heartbeat yet is
    starting up: it counts as running."""
    running: set[int] = set()
    lost: set[int] = set()
    stopped: set[int] = set()
    now = time.time()
    for b in brokers:
        age = heartbeat_age(datadir, b, now)
        if _locked(datadir, b):
            (lost if age is not None and age > session_timeout else running).add(b)
        else:
            (stopped if age is None else lost).add(b)
    return BrokerStates(frozenset(running), frozenset(lost), frozenset(stopped))
