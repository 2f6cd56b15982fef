"""Sections 1, 2 and 8: `cat lines | kcli produce` per codec against `cat lines | cat > file`,
`kcli consume -e > /dev/null`, and the max RSS of both -- every command a real process, as users run it."""

from __future__ import annotations

import hashlib
import os
import shutil

from measure import best_of, env_with, run_pipeline
from table import Row

CODEC_GOALS = {"none": 1_000_000, "lz4": 900_000, "zstd": 900_000}


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def measure(
    kcli: list[str], work: str, lines: str, count: int, repeat: int, section: str = "1"
) -> tuple[list[Row], str]:
    """Rows for produce (per codec), consume and memory; returns them and the data dir holding topic
    ``t`` (uncompressed), which later sections may read."""
    rows: list[Row] = []
    copy = os.path.join(work, "copy.txt")
    cat, _ = best_of(repeat, lambda: run_pipeline([["cat", lines], ["cat"]], stdout_path=copy))
    cat_rate = count / cat.wall
    rss: dict[str, float] = {}
    for codec, goal in CODEC_GOALS.items():
        data = os.path.join(work, f"produce-{codec}")
        env = env_with(data)
        run, rss[codec] = best_of(
            repeat,
            lambda env=env, codec=codec: run_pipeline(
                [["cat", lines], kcli + ["produce", "t", "-z", codec]], env=env
            ),
            before=lambda data=data: shutil.rmtree(data, ignore_errors=True),
        )
        rate = count / run.wall
        rows.append(Row(section, f"produce {codec} (embedded)", rate, "rec/s", cat_rate, "cat|cat", goal))
        if codec == "none":
            rows.append(
                Row(section, "produce none vs cat|cat", rate, "rec/s", cat_rate, "cat|cat", 0.30, on="ratio")
            )
    rows.append(_flush_every_batch(kcli, work, lines, count, repeat, section, rows[0].figure))
    data = os.path.join(work, "produce-none")
    env = env_with(data)
    out = os.path.join(work, "consumed.txt")
    run_pipeline([kcli + ["consume", "t", "--from-beginning", "-e"]], stdout_path=out, env=env)
    same = _digest(out) == _digest(lines)
    os.unlink(out)
    consume, rss["consume"] = best_of(
        repeat, lambda: run_pipeline([kcli + ["consume", "t", "--from-beginning", "-e"]], env=env)
    )
    read, _ = best_of(repeat, lambda: run_pipeline([["cat", lines]]))
    rows.append(
        Row(
            "2",
            "consume -e > /dev/null (embedded)",
            count / consume.wall,
            "rec/s",
            count / read.wall,
            "cat file",
            1_000_000,
            note="" if same else "OUTPUT DIFFERS FROM INPUT",
        )
    )
    for name in ("none", "lz4", "zstd"):
        rows.append(Row("8", f"max RSS produce {name}", rss[name], "MB", goal=100, op="<"))
    rows.append(Row("8", "max RSS consume", rss["consume"], "MB", goal=100, op="<"))
    return rows, data


def _flush_every_batch(kcli: list[str], work: str, lines: str, count: int, repeat: int, section: str,
                       plain: float | None) -> Row:
    """What ``flush.messages=1`` (an fsync before each batch is acknowledged: every acknowledged record
    survives a power cut) costs a piped produce, against the same produce with the default."""
    data = os.path.join(work, "produce-flush")
    env = env_with(data)

    def fresh() -> None:
        shutil.rmtree(data, ignore_errors=True)
        run_pipeline([kcli + ["topic", "create", "t", "-c", "flush.messages=1"]], env=env)

    run, _ = best_of(repeat, lambda: run_pipeline([["cat", lines], kcli + ["produce", "t"]], env=env),
                     before=fresh)
    return Row(section, "produce none, flush.messages=1", count / run.wall, "rec/s", plain, "default flush")
