"""kill -9 of a process running a cleaner pass, at seeded points among its file operations (every
rename, link and unlink, before or after it): the next write session finishes or discards the pass, and the log
reads every key's latest value at its offset, as before the pass or after it; a new pass then ends
exactly where an uninterrupted one does."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys

import pytest

from kcli.inspect.verify import verify_path
from kcli.storage import records
from kcli.storage.cleaner import clean
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog

pytestmark = [pytest.mark.faults, pytest.mark.slow]

NOW = 1_700_000_000_000
CONFIG = LogConfig(segment_bytes=16 * 1024, compact=True, delete=False)

# run one pass in a process that SIGKILLs itself at the N-th rename, link or unlink (before it, or after it)
_PASS = """
import os, signal, sys
from kcli.storage.cleaner import clean
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog

n, after, directory = int(sys.argv[1]), sys.argv[2] == "after", sys.argv[3]
calls = [0]

def armed(original):
    def op(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return op

config = LogConfig(segment_bytes=16 * 1024, compact=True, delete=False)
log = PartitionLog(directory, config)
log.open_for_append(None)
os.replace, os.unlink, os.link = armed(os.replace), armed(os.unlink), armed(os.link)
clean(log, config, upper=log.log_end_offset, now_ms=int(sys.argv[4]))
log.release()
"""


def _build(directory: str) -> None:
    log = PartitionLog(directory, CONFIG)
    log.open_for_append(None)
    for v in range(5):
        for start in range(0, 1000, 50):
            rows = [(b"k%04d" % i, b"v%d-%d" % (v, i), [("v", b"%d" % v)], NOW + v) for i in range(start, start + 50)]
            log.append(records.encode_batch(rows))
    log.append(records.encode_batch([(b"k%04d" % i, None, (), NOW + 9) for i in range(100)]))
    log.roll()
    log.append(records.encode_batch([(b"k0000", b"active", (), NOW + 10)]))
    log.release()


def _read(directory: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record, in a write session (which recovers what a killed pass left)."""
    log = PartitionLog(directory, CONFIG)
    damage = log.open_for_append(None)
    assert damage == [], damage
    out = []
    offset = log.log_start_offset
    while True:
        data = log.read(offset, 1 << 20)
        if not data:
            break
        for pos, header in records.iter_batches(data):
            out += [(r.offset, r.key, r.value) for r in records.decode_records(data, pos, header)]
            offset = header.next_offset
    log.release()
    return out


def _latest(rows: list[tuple[int, bytes | None, bytes | None]]) -> dict[bytes | None, tuple[int, bytes | None]]:
    return {key: (offset, value) for offset, key, value in rows}


def test_kill_during_clean_leaves_old_or_new_segments(tmp_path) -> None:
    pristine = str(tmp_path / "pristine" / "t-0")
    _build(pristine)
    before = _read(pristine)
    done = str(tmp_path / "done" / "t-0")
    shutil.copytree(pristine, done)
    log = PartitionLog(done, CONFIG)
    log.open_for_append(None)
    clean(log, CONFIG, upper=log.log_end_offset, now_ms=NOW + 100)
    log.release()
    after = _read(done)
    assert len(after) < len(before) and _latest(after) == _latest(before)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    rng = random.Random(20)
    points = sorted(rng.sample(range(1, 90), 30))  # a pass makes about 80 of these calls
    killed = 0
    for n in points:
        for when in ("before", "after"):
            work = str(tmp_path / f"run-{n}-{when}" / "t-0")
            shutil.copytree(pristine, work)
            proc = subprocess.run([sys.executable, "-c", _PASS, str(n), when, work, str(NOW + 100)], env=env,
                                  capture_output=True, timeout=120)
            assert proc.returncode in (0, -9), proc.stderr.decode()
            killed += proc.returncode == -9
            # the killed pass's leftovers are no damage to verify, before recovery as after it
            assert verify_path(work, deep=True).problems == [], (n, when)
            rows = _read(work)
            assert verify_path(work, deep=True).problems == [], (n, when)
            offsets = {offset for offset, _k, _v in rows}
            # never a mix that loses a key's latest value; nothing but records of the pre-pass log
            assert _latest(rows) == _latest(before), (n, when)
            assert {o for o, _k, _v in after} <= offsets <= {o for o, _k, _v in before}, (n, when)
            assert not [name for name in os.listdir(work) if name.endswith((".cleaned", ".swap"))]
            # a new pass ends where an uninterrupted one did
            log = PartitionLog(work, CONFIG)
            log.open_for_append(None)
            clean(log, CONFIG, upper=log.log_end_offset, now_ms=NOW + 100)
            log.release()
            assert _read(work) == after, (n, when)
            shutil.rmtree(os.path.dirname(work))
    assert killed >= 20  # the points fell inside the pass
