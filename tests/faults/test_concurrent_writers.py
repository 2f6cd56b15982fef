"""Any number of embedded writers to any number of partitions finish (issue 16, case 2).

Before the fix an embedded producer kept a partition's lock while it waited for the next partition's,
so two pipelines writing one multi-partition topic could each hold the lock the other waited for:
12 of 20 writers exited 5 (lock timeout) in the report.
"""

from __future__ import annotations

import subprocess

import pytest

WRITERS = 4
LINES = 20_000


@pytest.mark.parametrize("batch_size", [1024, 65536])
def test_concurrent_embedded_writers_all_finish(kcli, batch_size):
    kcli("topic", "create", "shared", "--partitions", 3, "--replication-factor", 1)
    procs = []
    for w in range(WRITERS):
        lines = "".join(f"w{w}-{i}\n" for i in range(LINES)).encode()
        proc = kcli.popen("--lock-timeout", 8, "produce", "shared", "--batch-size", batch_size,
                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append((proc, lines))
    for proc, lines in procs:  # write everything before waiting, so the writers overlap
        proc.stdin.write(lines)
        proc.stdin.close()
    results = [(proc.wait(timeout=300), proc.stderr.read().decode()) for proc, _ in procs]
    assert [code for code, _ in results] == [0] * WRITERS, results
    values = kcli("consume", "shared", "--from-beginning", "-e").stdout.split()
    assert len(values) == WRITERS * LINES
    for w in range(WRITERS):  # each writer's lines, each once
        mine = [v for v in values if v.startswith(f"w{w}-")]
        assert sorted(mine, key=lambda v: int(v.split("-")[1])) == [f"w{w}-{i}" for i in range(LINES)]
    kcli("verify")
