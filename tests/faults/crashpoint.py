"""Run the kcli CLI with one crash point armed: ``python crashpoint.py NAME:N -- kcli-args...``.

Random SIGKILLs rarely land inside the few microseconds between two related writes (an index entry and
its batch, the leader and its followers, a temp file and its rename); a crash point lands there every
time.  The process kills itself with SIGKILL at the N-th time it reaches the point, so nothing (no
``finally``, no atexit, no buffered stdout) runs after it, exactly as with ``kill -9`` from outside.
If the point is reached fewer than N times the command simply completes.

Points:
  log-append     before a replica's log appends a batch (with RF 3: between the leader and followers)
  torn-write     halfway through writing a batch to a segment file
  index-entry    after an offset index entry is written, before the batch it names
  roll           after a new segment is created, before anything is appended to it
  retention      after a segment's .log is unlinked, before its indexes are
  state          after the writer-state temp file is written, before it is renamed into place
  checkpoint     after any checkpoint/atomic temp file is written and synced, before the rename
  commit         after a group's offsets temp file is written, before the rename
  marker         after a transaction marker is appended to a partition, before the next partition's
                 (an embedded producer's markers, or those of the partitions a broker leads)
  remote-markers after another leader answered a broker's WriteTxnMarkers, before the next is asked
  log-start      after a replica's new log start is checkpointed, before the segments below it are
                 deleted (DeleteRecords)
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(owner: Any, attr: str, n: int, around: Callable[..., Any]) -> None:
    """Replace ``owner.attr`` by a wrapper that calls ``around(original, *args)`` on the n-th call."""
    original = getattr(owner, attr)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            return around(original, *args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, attr, wrapper)


def _before(original, *args, **kwargs):
    _die()


def _after(original, *args, **kwargs):
    original(*args, **kwargs)
    _die()


def _torn(original, segment, *args, **kwargs):
    """Let the append run (index entries included) but cut its write to the segment file in half."""
    real_write = os.write

    def write(fd, data):
        if fd == segment._afd:
            real_write(fd, bytes(data)[: max(1, len(data) // 2)])
            _die()
        return real_write(fd, data)

    os.write = write
    return original(segment, *args, **kwargs)


def _unlink_log_only(original, segment):
    os.unlink(segment.log_path)
    _die()


def arm(spec: str) -> None:
    from kcli.broker import txn_markers
    from kcli.groups import offsets
    from kcli.replica import checkpoints, writer
    from kcli.storage import checkpoint, index, log, segment

    name, _, count = spec.partition(":")
    n = int(count or 1)
    points = {
        "log-append": (log.PartitionLog, "append", _before),
        "torn-write": (segment.LogSegment, "append", _torn),
        "index-entry": (index.OffsetIndex, "append", _after),
        "roll": (log.PartitionLog, "roll", _after),
        "retention": (segment.LogSegment, "delete", _unlink_log_only),
        "state": (log, "write_file", _after),
        "checkpoint": (checkpoint, "write_file", _after),
        "commit": (offsets, "atomic_write", _commit_torn),
        "marker": (writer.PartitionWriter, "write_marker", _after),
        "remote-markers": (txn_markers.BrokerMarkerWriter, "_remote", _after),
        "log-start": (checkpoints, "write_checkpoints", _after),
    }
    owner, attr, around = points[name]
    _arm(owner, attr, n, around)


def _commit_torn(original, path, data):
    from kcli.storage.fileio import write_file

    write_file(path + ".tmp", data, sync=True)
    _die()


def main() -> None:
    argv = sys.argv[1:]
    spec, sep, rest = argv[0], argv[1], argv[2:]
    assert sep == "--", "usage: crashpoint.py NAME:N -- kcli-args..."
    arm(spec)
    from kcli.cli.main import main as kcli_main

    kcli_main(rest)


if __name__ == "__main__":
    main()
