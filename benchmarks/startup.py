"""Section 5: start-up time of `kcli --version` and a one-line produce, against the bare interpreter,
and which modules a produce imports that it does not need (from ``python -X importtime``)."""

from __future__ import annotations

import os
import subprocess
import sys

from measure import env_with, median_wall, run_pipeline
from table import Row

# Modules a plain embedded produce has no use for, and why they would be there by mistake.  (uuid and
# platform are imported by click itself, for its UUID parameter type: part of the click floor.)
UNNEEDED = {
    "rich": "tables and progress bars only (output.py imports it when drawing on a terminal)",
    "pygments": "pulled in by rich",
    "markdown_it": "pulled in by rich",
    "importlib.metadata": "crc32c's __init__ asks it for a version string",
    "email": "pulled in by importlib.metadata",
    "zipfile": "pulled in by importlib.metadata",
    "lz4": "only for -z lz4",
    "zstandard": "only for -z zstd",
    "cramjam": "only for -z snappy",
    "kcli.protocol": "only when a broker is alive",
    "kcli.broker": "only in `broker serve`",
    "kcli.groups": "only for group consumers",
    "asyncio": "not used by the CLI",
    "argparse": "click parses arguments",
    "socket": "only for the remote transport",
    "hypothesis": "test-only",
    "__editable___kcli_0_1_0_finder": "setuptools' editable-install finder (pathlib, re, ...); absent from a "
    "regular install",
}


def imported_modules(
    argv: list[str], stdin: bytes, env: dict[str, str], cwd: str
) -> list[tuple[str, int, int]]:
    """(module, self us, cumulative us) for every module ``argv`` imports, from -X importtime.  Run from
    ``cwd``, not the source tree: ``python -m`` puts the current directory first on sys.path."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, cwd=cwd)
    out = []
    for line in proc.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative, name = line[len("import time:") :].split("|")
        out.append((name.strip(), int(self_us), int(cumulative)))
    return out


def _unneeded(modules: list[tuple[str, int, int]]) -> dict[str, int]:
    """Top-level offenders with their cumulative import time (us)."""
    found: dict[str, int] = {}
    for name, _self, cumulative in modules:
        for bad in UNNEEDED:
            if name == bad or name.startswith(bad + "."):
                found[bad] = max(found.get(bad, 0), cumulative)
    return found


def _python_of(kcli: list[str]) -> str:
    """The interpreter of the install being measured (the floor and the import lists must use it)."""
    beside = os.path.join(os.path.dirname(kcli[0]), "python")
    return beside if os.access(beside, os.X_OK) else sys.executable


def measure(kcli: list[str], work: str, runs: int) -> list[Row]:
    data = os.path.join(work, "startup")
    env = env_with(data)
    one = os.path.join(work, "one-line.txt")
    with open(one, "wb") as fh:
        fh.write(b"x\n")
    run_pipeline([["echo", "x"], kcli + ["produce", "t"]], env=env)  # create the topic, warm the caches
    python = _python_of(kcli)
    floor = median_wall(runs, lambda: run_pipeline([[python, "-c", "pass"]], env=env))
    with_click = median_wall(runs, lambda: run_pipeline([[python, "-c", "import click"]], env=env))
    version = median_wall(runs, lambda: run_pipeline([kcli + ["--version"]], env=env))
    small = median_wall(runs, lambda: run_pipeline([["echo", "x"], kcli + ["produce", "t"]], env=env))
    main = [python, "-X", "importtime", "-m", "kcli.cli.main"]
    produce_mods = imported_modules(main + ["produce", "t"], b"x\n", env, work)
    version_mods = imported_modules(main + ["--version"], b"", env, work)
    bad = _unneeded(produce_mods)
    slowest = sorted(produce_mods, key=lambda m: -m[1])[:12]
    note = (
        ", ".join(f"{name} {us / 1000:.1f} ms ({UNNEEDED[name]})" for name, us in sorted(bad.items()))
        or "none"
    )
    return [
        Row(
            "5",
            "python -c 'import click' (median)",
            with_click * 1000,
            "ms",
            floor * 1000,
            "python -c pass",
            note="the floor under any click command on this box",
        ),
        Row("5", "kcli --version (median)", version * 1000, "ms", floor * 1000, "python -c pass", 80, op="<"),
        Row(
            "5",
            "echo x | kcli produce t (median)",
            small * 1000,
            "ms",
            floor * 1000,
            "python -c pass",
            80,
            op="<",
            extra={"slowest_imports_self_us": slowest},
        ),
        Row(
            "5",
            "produce: unneeded modules imported",
            float(len(bad)),
            "modules",
            goal=1,
            op="<",
            note=f"unneeded: {note}",
            extra={"unneeded_cumulative_us": bad},
        ),
        Row(
            "5",
            "produce imports rich",
            float(any(n == "rich" or n.startswith("rich.") for n, _s, _c in produce_mods)),
            "",
            goal=1,
            op="<",
        ),
        Row(
            "5",
            "modules imported: --version / produce",
            float(len(version_mods)),
            "modules",
            float(len(produce_mods)),
            "produce",
        ),
    ]
