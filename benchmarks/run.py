"""Benchmarks for kcli, each figure next to its baseline from the same run, with targets.

    .venv/bin/python benchmarks/run.py [--quick] [--records N] [--out FILE]

Prints a table and writes benchmarks/results.json.  Sections (numbers as in the issue):
1 produce throughput per codec vs `cat | cat`; 2 consume throughput; 3 the same through 1 and 3 brokers;
4 batch codec vs kafka-python; 5 start-up and unneeded imports; 6 end-to-end latency at 10k msg/s;
7 many segments and many partitions; 8 max RSS of produce and consume; 9 transactions: transactional
produce vs plain, read_committed vs read_uncommitted consume; 10 log compaction: a cleaner pass over N
records with N/10 keys, 10% dirty vs 100% dirty, a small offset map; 11 produce/consume through a SASL_SSL
listener vs a PLAINTEXT one on the same broker.

Throughput figures are the best of --repeat runs: on a shared box the fastest run is the one least
disturbed by other load, and its baseline is taken the same way in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import broker  # noqa: E402
import codec  # noqa: E402
import compaction  # noqa: E402
import measure  # noqa: E402
import scale  # noqa: E402
import security  # noqa: E402
import startup  # noqa: E402
import throughput  # noqa: E402
import transactions  # noqa: E402
from inputs import write_lines  # noqa: E402
from install import regular_install  # noqa: E402
from table import Row, render, save  # noqa: E402


def kcli_command(work: str) -> list[str]:
    """``kcli`` as users run it: a regular install of this tree (see install.py), else the entry point next
    to this interpreter, else ``python -m``."""
    installed = regular_install(os.path.dirname(HERE), work)
    if installed is not None:
        return installed
    print("kcli benchmarks: no regular install could be made; measuring the development install",
          file=sys.stderr)
    script = os.path.join(os.path.dirname(sys.executable), "kcli")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "kcli.cli.main"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k lines, fewer repeats (about a minute)")
    parser.add_argument("--records", type=int, help="input lines (default 1,000,000; 100,000 with --quick)")
    parser.add_argument(
        "--repeat", type=int, help="runs per throughput figure, best kept (default 3; 2 quick)"
    )
    parser.add_argument("--startup-runs", type=int, help="runs per start-up median (default 15; 7 quick)")
    parser.add_argument("--out", default=os.path.join(HERE, "results.json"), help="where to write the JSON")
    parser.add_argument("--work-dir", help="scratch directory (default: a new temporary one, removed after)")
    parser.add_argument("--sections", default="1,2,3,4,5,6,7,8,9,10,11", help="comma-separated sections to run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    count = args.records or (100_000 if args.quick else 1_000_000)
    repeat = args.repeat or (2 if args.quick else 3)
    startup_runs = args.startup_runs or (7 if args.quick else 15)
    sections = set(args.sections.split(","))
    work = args.work_dir or tempfile.mkdtemp(prefix="kcli-bench-")
    os.makedirs(work, exist_ok=True)
    kcli = kcli_command(work)
    measure.PYCACHE_PREFIX = os.path.join(work, "pycache")
    started = time.time()
    load_before = os.getloadavg()
    rows: list[Row] = []
    try:
        lines = os.path.join(work, "lines.txt")
        size = write_lines(lines, count)
        print(f"kcli benchmarks: {count} lines ({size / 1e6:.1f} MB) in {work}", file=sys.stderr)
        if sections & {"1", "2", "8"}:
            _step("produce/consume throughput and memory")
            found, _data = throughput.measure(kcli, work, lines, count, repeat)
            rows += found
        if sections & {"3", "6"}:
            _step("through a broker")
            rows += broker.measure(
                kcli, work, lines, count, repeat, latency_seconds=2.0 if args.quick else 5.0
            )
        if "4" in sections:
            _step("record batch codec")
            rows += codec.measure(lines, min(count, 200_000), repeat)
        if "5" in sections:
            _step("start-up")
            rows += startup.measure(kcli, work, startup_runs)
        if "7" in sections:
            _step("scale")
            rows += scale.measure(kcli, work, lines, min(count, 200_000), max(3, startup_runs // 3))
        if "9" in sections:
            _step("transactions")
            rows += transactions.measure(kcli, work, lines, count, repeat)
        if "10" in sections:
            _step("log compaction")
            rows += compaction.measure(kcli, work, count, repeat)
        if "11" in sections:
            _step("SASL_SSL vs PLAINTEXT")
            rows += security.measure(kcli, work, lines, count, repeat)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    rows.sort(key=lambda r: int(r.section))
    meta = {
        "records": count,
        "quick": args.quick,
        "repeat": repeat,
        "startup_runs": startup_runs,
        "seconds": round(time.time() - started, 1),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "git": _git_revision(),
        "bytecode_cache": "PYTHONPYCACHEPREFIX in the scratch dir (PYTHONDONTWRITEBYTECODE unset for commands)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(render(rows))
    print(
        f"\n{count} records, best of {repeat}; {meta['seconds']} s; load average before/after "
        f"{load_before[0]:.1f}/{meta['loadavg_after'][0]:.1f} on {meta['cpus']} CPUs"
    )
    save(rows, args.out, meta)
    return 0


def _step(what: str) -> None:
    print(f"  ... {what}", file=sys.stderr, flush=True)


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
