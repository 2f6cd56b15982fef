"""Section 10: log compaction.  ``kcli topic compact`` as users run it -- one cleaner pass per call, a real
process measured for wall time and max RSS -- over a log of N records with N/10 distinct keys drawn at
random, produced by ``kcli produce -K:`` (its 256 KiB batches) into 1 MiB segments before the clock starts.

- 100% dirty: one pass over the fresh log (every segment but the active one is dirty): records/s, MB/s
  of log read, max RSS, records kept and removed.
- 10% dirty, Kafka's steady state: that log once cleaned (about N/10 records left) plus N/10 new
  records, one more pass; its wall time against the 100% pass's.  The pass maps the dirty tenth and
  rewrites the clean part (about as many records again), so its cost follows the dirty part and the
  number of keys, not the history of the log.
- bounded memory: the fresh log with ``log.cleaner.dedupe.buffer.size`` holding half its keys (kcli's
  MAP_BYTES_PER_KEY plus the key per entry, at load factor 0.9), passes until nothing is dirty: how many, their records/s
  against the single pass's, and the largest RSS of any of them.
"""

from __future__ import annotations

import json
import os
import shutil

from inputs import write_keyed_lines
from measure import Run, best_of, env_with, run_pipeline
from table import Row

from kcli.storage.cleaner import MAP_BYTES_PER_KEY

SEGMENT_BYTES = 1 << 20
MIN_DEDUPE_BUFFER = (1 << 20) + 1  # log.cleaner.dedupe.buffer.size must be more than 1 MiB
MAX_PASSES = 200  # a bounded-memory run that has not finished by then is reported as such


def measure(kcli: list[str], work: str, count: int, repeat: int) -> list[Row]:
    keys = max(1, count // 10)
    fresh = os.path.join(work, "compact-fresh")
    _produce(kcli, fresh, _keyed(work, "first", count, keys, seed=1), create=True)
    data = os.path.join(work, "compact")
    full, out = _best_pass(kcli, work, fresh, data, repeat)
    records = out["records_kept"] + out["records_removed"]
    rows = [
        Row("10", "topic compact, 100% dirty", records / full.wall, "rec/s",
            note=f"{records} records cleaned in {full.wall:.2f} s: {out['records_kept']} kept, "
                 f"{out['records_removed']} removed; {out['bytes_before'] / 1e6:.1f} -> "
                 f"{out['bytes_after'] / 1e6:.1f} MB"),
        Row("10", "topic compact, 100% dirty, log read", out["bytes_before"] / 1e6 / full.wall, "MB/s"),
        Row("10", "max RSS topic compact, 100% dirty", full.rss_mb, "MB"),
    ]

    # `data` holds the log as the last pass left it: cleaned, with the active segment still dirty
    _produce(kcli, data, _keyed(work, "more", count // 10, keys, seed=2))
    tenth, out = _best_pass(kcli, work, data, os.path.join(work, "compact-10"), repeat)
    rows.append(Row("10", "topic compact, 10% dirty: wall vs 100% dirty", tenth.wall, "s", full.wall,
                    "100% dirty", 0.15, op="<", on="ratio",
                    note=f"{out['records_kept'] + out['records_removed']} records cleaned in {tenth.wall:.2f} s "
                         f"(100% dirty: {full.wall:.2f} s); max RSS {tenth.rss_mb:.0f} MB"))

    rows += _bounded(kcli, work, fresh, keys, records / full.wall, full.rss_mb)
    return rows


def _bounded(kcli: list[str], work: str, fresh: str, keys: int, one_pass_rate: float,
             one_pass_rss: float) -> list[Row]:
    """Passes with an offset map of half the keys, from the fresh log until nothing is dirty."""
    key_bytes = 1 + len(str(max(keys - 1, 0)))  # "k" and the digits write_keyed_lines gives every key
    per_key = MAP_BYTES_PER_KEY + key_bytes
    # half the keys, but never below the least buffer Kafka allows (with --quick that holds them all)
    buffer = max(-(-(keys // 2) * per_key * 10 // 9), MIN_DEDUPE_BUFFER)
    capacity = min(keys, buffer * 9 // 10 // per_key)
    config = os.path.join(work, "compact-small-map.toml")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(f'[broker]\n"log.cleaner.dedupe.buffer.size" = {buffer}\n')
    data = os.path.join(work, "compact-small")
    _restore(fresh, data)
    env = env_with(data, KCLI_CONFIG=config)
    report = os.path.join(work, "compact-small.json")
    passes, wall, rss, records = 0, 0.0, 0.0, 0
    ratio = 1.0
    while ratio > 0 and passes < MAX_PASSES:
        run = run_pipeline([kcli + ["topic", "compact", "t", "--json"]], stdout_path=report, env=env)
        out = _result(report)
        passes, wall, rss = passes + 1, wall + run.wall, max(rss, run.rss_mb)
        records += out["records_kept"] + out["records_removed"]
        ratio = out["dirty_ratio"]
    done = "" if ratio == 0 else f"; STILL DIRTY ({ratio:.2f}) AFTER {MAX_PASSES} PASSES"
    name = f"topic compact, map of {capacity} of {keys} keys"
    return [
        Row("10", name, records / wall, "rec/s", one_pass_rate, "one pass, whole map",
            note=f"{passes} passes to clean the whole log, {wall:.2f} s in all{done}"),
        Row("10", f"max RSS {name}", rss, "MB", one_pass_rss, "one pass, whole map"),
    ]


def _keyed(work: str, name: str, count: int, keys: int, seed: int) -> str:
    path = os.path.join(work, f"compact-{name}.txt")
    write_keyed_lines(path, count, keys, seed=seed)
    return path


def _produce(kcli: list[str], data: str, lines: str, create: bool = False) -> None:
    env = env_with(data)
    if create:
        shutil.rmtree(data, ignore_errors=True)
        run_pipeline([kcli + ["topic", "create", "t", "-c", "cleanup.policy=compact",
                              "-c", f"segment.bytes={SEGMENT_BYTES}"]], env=env)
    run_pipeline([["cat", lines], kcli + ["produce", "t", "-K:"]], env=env)


def _restore(source: str, data: str) -> None:
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(source, data)


def _best_pass(kcli: list[str], work: str, source: str, data: str, repeat: int) -> tuple[Run, dict]:
    """The fastest of ``repeat`` passes over copies of ``source`` in ``data`` (left as the last pass left
    it), with the largest RSS of any, and what the pass reported."""
    report = os.path.join(work, "compact-pass.json")
    best, rss = best_of(
        repeat,
        lambda: run_pipeline([kcli + ["topic", "compact", "t", "--json"]], stdout_path=report, env=env_with(data)),
        before=lambda: _restore(source, data),
    )
    return Run(best.wall, rss, best.code), _result(report)


def _result(report: str) -> dict:
    with open(report, encoding="utf-8") as fh:
        (partition,) = json.load(fh)
    return partition
