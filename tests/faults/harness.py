"""What every fault test needs: processes fed through pipes and killed with SIGKILL, and the checks run
after each fault.

The contract checked after every fault (the issue's wording):

- nothing acknowledged is lost: a record is acknowledged when ``--print-offsets`` printed its offset and
  that line reached our end of the pipe before the kill, or when its producer exited 0;
- nothing is duplicated: offsets run contiguously from the log start to the log end, and each producer
  session's records are a gap-free, in-order prefix of the lines it was fed;
- every in-sync replica holds the same batches after the next write session;
- ``kcli verify`` passes after the next produce (which recovers), and the data dir opens cleanly
  (a consumer reads it with nothing on stderr).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.waits import wait_for  # noqa: F401  (the fault tests' one wait, shared with the rest)

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.storage import records
from kcli.storage.fileio import read_file
from kcli.storage.log import PartitionLog

CRASHPOINT = str(Path(__file__).with_name("crashpoint.py"))
_VALUE = re.compile(r"^r(\d+)-(\d+)(?:-x*)?$")


def kill9(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc`` and reap it; True if it was still running (the fault really hit it)."""
    alive = proc.poll() is None
    if alive:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            alive = False
    proc.wait(timeout=30)
    return alive and proc.returncode == -signal.SIGKILL


def parse_acks(stdout: bytes) -> list[tuple[str, int, int]]:
    """The ``topic partition offset`` lines of ``--print-offsets``; a line cut short by a kill was never
    printed whole, so it acknowledges nothing."""
    acks = []
    for raw in stdout.splitlines(keepends=True):
        if raw.endswith(b"\n"):
            topic, partition, offset = raw.decode().split()
            acks.append((topic, int(partition), int(offset)))
    return acks


def one_error_line(stderr: str) -> str:
    """The single ``kcli: error:`` line of a failed command (recovery warnings aside)."""
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("kcli: warning:")]
    assert len(lines) == 1 and lines[0].startswith("kcli: error: "), (
        f"expected one error line, got {stderr!r}"
    )
    return lines[0]


class Piped:
    """A kcli process fed ``lines`` through its stdin in small, randomly paced bursts (``kcli produce``), whose
    ``topic partition offset`` output lines (``--print-offsets``, or ``consume -f '%t %p %o\\n'``) are
    collected in ``acks`` as they arrive, so the pipe never fills and blocks it.

    ``sent`` only grows by lines wholly written to the pipe; ``acks`` only by whole lines read back."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        lines: list[str],
        rng: random.Random,
        pace: float = 0.004,
        preexec_fn=None,
        throttle: float = 0.0,
    ) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=preexec_fn,
        )
        self.lines = lines
        self.sent = 0
        self.acks: list[tuple[str, int, int]] = []
        self.stderr = ""
        self._rng = random.Random(rng.random())
        self._pace = pace
        self._throttle = throttle  # seconds to wait after each 1 KiB read: a slow reader downstream
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._errors = threading.Thread(target=self._read_errors, daemon=True)
        for t in (self._feeder, self._reader, self._errors):
            t.start()

    def _feed(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            i = 0
            while i < len(self.lines):
                burst = self.lines[i : i + self._rng.randint(1, 40)]
                stdin.write("".join(line + "\n" for line in burst).encode())
                stdin.flush()
                i += len(burst)
                self.sent = i
                if self._pace:
                    time.sleep(self._rng.uniform(0, self._pace))
            stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the process is gone: whatever it read is all it will ever get

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = b""
        while True:
            chunk = os.read(fd, 1024 if self._throttle else 1 << 16)
            if not chunk:
                break
            pending += chunk
            whole, _, pending = pending.rpartition(b"\n")
            if whole:
                self.acks += parse_acks(whole + b"\n")
            if self._throttle:
                time.sleep(self._throttle)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read().decode("utf-8", "replace")

    def _join(self) -> None:
        for t in (self._feeder, self._reader, self._errors):
            t.join(timeout=30)

    def kill(self) -> bool:
        """SIGKILL now; True if the process was still running."""
        hit = kill9(self.proc)
        self._join()
        return hit

    def wait(self, timeout: float = 60) -> int:
        self.proc.wait(timeout=timeout)
        self._join()
        return self.proc.returncode


@dataclass
class Ledger:
    """What was acknowledged, per single-partition topic: acknowledged offset -> value, and counters."""

    acked: dict[int, str] = field(default_factory=dict)
    faults: int = 0
    checked: int = 0
    lost: int = 0
    expired: int = 0  # acknowledged, then legitimately deleted by retention
    problems: list[str] = field(default_factory=list)

    def acknowledge(self, acks: list[tuple[str, int, int]], lines: list[str]) -> None:
        """The k-th acknowledgement of a single-partition producer is the k-th line it was fed."""
        for k, (_topic, _partition, offset) in enumerate(acks):
            assert offset not in self.acked, f"offset {offset} acknowledged twice"
            self.acked[offset] = lines[k]

    def check_stored(self, stored: dict[int, str]) -> None:
        """Count every acknowledged record against ``stored`` (offset -> value), offsets contiguous from 0."""
        assert sorted(stored) == list(range(len(stored))), "offsets are not contiguous from 0"
        for offset, value in self.acked.items():
            self.checked += 1
            if stored.get(offset) != value:
                self.lost += 1
                self.problems.append(f"acknowledged {value[:20]!r} at {offset}, found {stored.get(offset)!r}")

    def summary(self, name: str) -> str:
        return (
            f"{name}: faults injected: {self.faults}, records checked: {self.checked}, lost: {self.lost}"
            + (f", expired by retention: {self.expired}" if self.expired else "")
        )


def read_partition(kcli, topic: str, partition: int = 0) -> list[tuple[int, str]]:
    """(offset, value) of every record, through the CLI: the data dir must open cleanly."""
    res = kcli("consume", topic, "-p", partition, "-b", "-e", "-f", "%o %s\\n")
    assert res.stderr == "", f"consume after recovery complained: {res.stderr!r}"
    out = []
    for line in res.stdout.splitlines():
        offset, _, value = line.partition(" ")
        out.append((int(offset), value))
    return out


def replica_batches(directory: str) -> tuple[int, list[tuple[int, bytes]]]:
    """(log start, [(base offset, batch bytes)]) of one replica, read straight from its segment files."""
    log = PartitionLog(directory)
    batches = []
    for base in log.segment_bases:
        data = read_file(os.path.join(directory, f"{base:020d}.log"))
        for pos, header in records.iter_batches(data):
            batches.append((header.base_offset, data[pos : pos + header.size]))
    return log.log_start_offset, batches


def check_before_recovery(kcli, topic: str, ledger: Ledger) -> None:
    """Readers need no recovery: what the killed writer left must already show every acknowledged record
    (at most a torn tail past them, which readers stop at)."""
    datadir = DataDir(str(kcli.data_dir))
    meta = Metadata(datadir).load().partition(topic, 0)
    log = PartitionLog(datadir.partition_dir(meta.leader, topic, 0))
    end = log.log_end_offset
    values: dict[int, str] = {}
    offset = log.log_start_offset
    while offset < end:
        data = log.read(offset, 1 << 20)
        if not data:
            break
        for pos, header in records.iter_batches(data):
            for rec in records.decode_records(data, pos, header):
                values[rec.offset] = rec.value.decode()
            offset = header.last_offset + 1
    log.close()
    for offset, value in ledger.acked.items():
        if offset >= log.log_start_offset and values.get(offset) != value:
            ledger.lost += 1
            ledger.problems.append(
                f"before recovery: acknowledged {value!r} at offset {offset} reads as "
                f"{values.get(offset)!r} (log end offset {end})"
            )


def check_after_fault(
    kcli, topic: str, ledger: Ledger, marker: str, retention_bytes: int | None = None
) -> None:
    """Check what readers see, produce ``marker`` (the next write session, which recovers), then check the
    contract above."""
    check_before_recovery(kcli, topic, ledger)
    res = kcli("produce", topic, "--print-offsets", input=marker + "\n")
    lines = res.stdout.split()
    ledger.acked[int(lines[2])] = marker
    verify = kcli("verify", ok=False)
    assert verify.returncode == 0, f"verify failed after recovery:\n{verify.stdout}{verify.stderr}"

    datadir = DataDir(str(kcli.data_dir))
    meta = Metadata(datadir).load().partition(topic, 0)
    logs = {b: replica_batches(datadir.partition_dir(b, topic, 0)) for b in meta.isr}
    leader_start, leader_batches = logs[meta.leader]
    for broker, (start, batches) in logs.items():
        assert (start, batches) == (leader_start, leader_batches), (
            f"in-sync replica on broker {broker} differs from leader {meta.leader}"
        )

    stored = read_partition(kcli, topic)
    offsets = [o for o, _v in stored]
    start = offsets[0] if offsets else 0
    assert start == leader_start, f"consumer started at {start}, log start is {leader_start}"
    assert offsets == list(range(start, start + len(offsets))), "offsets are not unique and contiguous"
    if retention_bytes is not None:
        size = sum(len(b) for _o, b in leader_batches)
        segments = len(PartitionLog(datadir.partition_dir(meta.leader, topic, 0)).segment_bases)
        # deleting a segment never takes the total below retention.bytes (Kafka's rule), so a log that lost
        # its first segment is still at least that large
        assert size >= retention_bytes or leader_start == 0, (
            f"retention left {size} bytes in {segments} segments, less than retention.bytes={retention_bytes}"
        )

    values = dict(stored)
    for offset, value in ledger.acked.items():
        if offset < start:
            ledger.expired += 1
            continue
        ledger.checked += 1
        if values.get(offset) != value:
            ledger.lost += 1
            ledger.problems.append(f"acknowledged {value!r} at offset {offset}, found {values.get(offset)!r}")
    ledger.acked = {o: v for o, v in ledger.acked.items() if o >= start}
    _check_sessions(stored, ledger)


def _check_sessions(stored: list[tuple[int, str]], ledger: Ledger) -> None:
    """Each session's lines (``r<round>-<i>``) appear in order, once, without gaps: a killed producer
    stores a prefix of its input and nothing twice.  Only the oldest session may start past 0 (retention)."""
    last: tuple[int, int] | None = None
    first = True
    for offset, value in stored:
        m = _VALUE.match(value)
        if m is None:
            continue
        session, i = int(m.group(1)), int(m.group(2))
        if last is not None and session == last[0]:
            ok = i == last[1] + 1
        else:
            ok = (last is None or session > last[0]) and (i == 0 or first)
        if not ok:
            ledger.problems.append(f"offset {offset}: {value} follows {last}: duplicated, reordered or a gap")
        last = (session, i)
        first = False


def session_lines(session: int, count: int, pad: int = 0) -> list[str]:
    """Distinct input lines ``r<session>-<i>``, padded with ``-xxx...`` to make records bigger."""
    tail = "-" + "x" * pad if pad else ""
    return [f"r{session}-{i}{tail}" for i in range(count)]
