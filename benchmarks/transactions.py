"""Section 9: what exactly-once costs.  `kcli produce --transactional-id` against a plain produce of the
same lines (goal: at least 80%), and a read_committed consume against a read_uncommitted one of a log in
which 1% of the records belong to aborted transactions (goal: at least 90%) -- every command a real
process, as users run it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from measure import best_of, env_with, run_pipeline
from table import Row

ROUNDS = 10  # committed and aborted transactions alternate this many times in the read_committed log


def measure(kcli: list[str], work: str, lines: str, count: int, repeat: int) -> list[Row]:
    rows: list[Row] = []
    plain_dir = os.path.join(work, "txn-plain")
    txn_dir = os.path.join(work, "txn-produce")
    plain, _ = best_of(
        repeat,
        lambda: run_pipeline([["cat", lines], kcli + ["produce", "t"]], env=env_with(plain_dir)),
        before=lambda: shutil.rmtree(plain_dir, ignore_errors=True),
    )
    txn, _ = best_of(
        repeat,
        lambda: run_pipeline([["cat", lines], kcli + ["produce", "t", "--transactional-id", "bench"]],
                             env=env_with(txn_dir)),
        before=lambda: shutil.rmtree(txn_dir, ignore_errors=True),
    )
    rows.append(Row("9", "produce --transactional-id (one transaction)", count / txn.wall, "rec/s",
                    count / plain.wall, "plain produce", 0.80, on="ratio"))

    mixed = os.path.join(work, "txn-mixed")
    committed = _mixed_log(kcli, mixed, lines, count)
    env = env_with(mixed)
    uncommitted_run, _ = best_of(repeat, lambda: run_pipeline(
        [kcli + ["consume", "t", "-b", "-e", "--isolation-level", "read_uncommitted"]], env=env))
    committed_run, _ = best_of(repeat, lambda: run_pipeline(
        [kcli + ["consume", "t", "-b", "-e", "--isolation-level", "read_committed"]], env=env))
    seen = _count(kcli, env, "read_committed")
    note = "" if seen == committed else f"READ {seen} COMMITTED RECORDS, EXPECTED {committed}"
    rows.append(Row("9", "consume read_committed, 1% aborted", seen / committed_run.wall, "rec/s",
                    _count(kcli, env, "read_uncommitted") / uncommitted_run.wall, "read_uncommitted",
                    0.90, on="ratio", note=note))
    return rows


def _mixed_log(kcli: list[str], data: str, lines: str, count: int) -> int:
    """Topic ``t`` holding ``lines`` in committed transactions, with an aborted transaction of 1% as
    many records after each tenth of them; returns the committed records."""
    shutil.rmtree(data, ignore_errors=True)
    env = env_with(data)
    with open(lines, "rb") as fh:
        body = fh.readlines()
    per_round = len(body) // ROUNDS
    aborted = max(1, per_round // 100)
    committed = 0
    for i in range(ROUNDS):
        chunk = b"".join(body[i * per_round : (i + 1) * per_round])
        subprocess.run(kcli + ["produce", "t", "--transactional-id", "bench"], input=chunk, env=env, check=True)
        committed += per_round
        _aborted_transaction(kcli, env, body[:aborted])
    return committed


def _aborted_transaction(kcli: list[str], env: dict[str, str], records: list[bytes]) -> None:
    """Send ``records`` in a transaction that a SIGTERM aborts once they are in the log (the producer
    sends what it holds when its input goes idle)."""
    before = _count(kcli, env, "read_uncommitted")
    proc = subprocess.Popen(kcli + ["produce", "t", "--transactional-id", "bench"], stdin=subprocess.PIPE,
                            env=env, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(b"".join(records))
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while _count(kcli, env, "read_uncommitted") < before + len(records) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.stdin.close()
    proc.wait()


def _count(kcli: list[str], env: dict[str, str], isolation: str) -> int:
    out = subprocess.run(kcli + ["consume", "t", "-b", "-e", "--isolation-level", isolation],
                         env=env, capture_output=True, check=True).stdout
    return out.count(b"\n")
