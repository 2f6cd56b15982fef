"""Timing and memory of commands: wall clock and max RSS of the command under test.

The command runs under a tiny launcher (``python -S``, a few MB) that forks it, waits with ``os.wait4``
and reports its max RSS and its wall time from fork to exit.  Measuring from the benchmark process
itself would be wrong: Linux carries the high-water RSS of the process that forks across ``exec``, so
every child would report at least this process's own RSS.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_pid, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as fh:
    fh.write(f"{usage.ru_maxrss} {wall}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Run:
    """One measured command: wall seconds, max RSS in MB, exit code."""

    wall: float
    rss_mb: float
    code: int


def run_pipeline(
    stages: Sequence[Sequence[str]],
    stdin_path: str | None = None,
    stdout_path: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> Run:
    """Run ``stages[0] | stages[1] | ...`` (stdin from a file, stdout to a file or /dev/null) and measure
    the last stage, the command under test, from its start to its exit: earlier stages (``cat``) only
    feed it."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    fd, report = tempfile.mkstemp(prefix="kcli-bench-", suffix=".rss")
    os.close(fd)
    procs: list[subprocess.Popen] = []
    try:
        prev = stdin
        for i, argv in enumerate(stages):
            last = i == len(stages) - 1
            if last:
                argv = [sys.executable, "-S", "-c", _LAUNCHER, report, *argv]
            proc = subprocess.Popen(
                argv,
                stdin=prev,
                stdout=stdout if last else subprocess.PIPE,
                env=env,
                stderr=subprocess.PIPE if last else None,
            )
            if prev is not stdin:
                prev.close()  # the next stage owns the pipe now
            prev = proc.stdout
            procs.append(proc)
        target = procs[-1]
        _out, err = target.communicate()
        for proc in procs[:-1]:
            proc.wait()
        with open(report) as fh:
            text = fh.read().split()
        rss_kb, wall = (int(text[0]), float(text[1])) if len(text) == 2 else (0, 0.0)
    finally:
        os.unlink(report)
        for f in (stdin, stdout):
            if hasattr(f, "close"):
                f.close()
    if check and target.returncode != 0:
        raise RuntimeError(
            f"{' '.join(stages[-1])} exited {target.returncode}: {err.decode(errors='replace')}"
        )
    return Run(wall, rss_kb / 1024, target.returncode)


def best_of(
    times: int, measure: Callable[[], Run], before: Callable[[], None] | None = None
) -> tuple[Run, float]:
    """The fastest of ``times`` runs (the least disturbed by other load on the box) and the largest RSS
    seen in any of them."""
    runs = []
    for _ in range(times):
        if before is not None:
            before()
        runs.append(measure())
    return min(runs, key=lambda r: r.wall), max(r.rss_mb for r in runs)


def median_wall(times: int, measure: Callable[[], Run]) -> float:
    return statistics.median(measure().wall for _ in range(times))


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls of ``fn`` in this process."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# Where commands keep their bytecode cache (set by run.py to a folder in its scratch dir), or None.
PYCACHE_PREFIX: str | None = None


def env_with(data_dir: str, **extra: str) -> dict[str, str]:
    """This environment with KCLI_DATA_DIR set, so every command works on a scratch data dir.

    With PYCACHE_PREFIX set, bytecode caching is switched back on (PYTHONDONTWRITEBYTECODE off) into that
    folder: an installed kcli starts from .pyc files, and recompiling every module each run would
    measure the compiler, while the source tree stays free of __pycache__ folders.
    """
    env = dict(os.environ, KCLI_DATA_DIR=data_dir)
    env.pop("NO_COLOR", None)
    if PYCACHE_PREFIX is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE_PREFIX
    env.update(extra)
    return env
