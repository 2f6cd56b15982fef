"""Group consumers killed with SIGKILL: ``consume --group G -e`` runs, long-running members reading live
data, one of two members, and a member killed inside an offset commit.

Group delivery is at-least-once, so the contract after each fault is about commits: the committed offsets
are always readable (a kill never leaves half a file), never move backwards, and never pass what a member
printed (a commit past the printed output would skip records for good).  At the end one member reads the
group to the end, and everything printed by every run together must cover every offset: lost == 0.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter, defaultdict

from kcli.cluster.datadir import DataDir
from kcli.groups.offsets import OffsetStore

from .harness import CRASHPOINT, Piped

SEED = int(os.environ.get("KCLI_FAULT_SEED", "1877"))
PARTITIONS = 3
FORMAT = "%t %p %o\\n"


def _lines(start: int, count: int) -> str:
    return "".join(f"v{i}\n" for i in range(start, start + count))


def test_group_consumers_killed_at_random_moments(kcli, record_property):
    kcli("topic", "create", "t", "-p", PARTITIONS)
    produced = 0
    rng = random.Random(f"{SEED}-consumers")
    store = OffsetStore(DataDir(str(kcli.data_dir)))
    printed: dict[int, set[int]] = defaultdict(set)
    committed_before: dict[int, int] = {}
    faults = runs = duplicates = 0
    hits: Counter[str] = Counter()

    def member(*extra: object, crash: str | None = None) -> Piped:
        args = [
            "consume",
            "t",
            "--group",
            "g",
            "--reset",
            "earliest",
            "-f",
            FORMAT,
            "--commit-interval-ms",
            rng.choice([1, 20, 200]),
            *extra,
        ]
        argv = [sys.executable, CRASHPOINT, crash, "--", *map(str, args)] if crash else kcli.argv(*args)
        # a slow reader downstream keeps the member busy (blocked writing, commits pending) for a while
        return Piped(argv, kcli.env, [], rng, throttle=0.01)

    def collect(proc: Piped) -> None:
        nonlocal duplicates, runs
        runs += 1
        for _topic, partition, offset in proc.acks:
            duplicates += offset in printed[partition]
            printed[partition].add(offset)

    for r in range(10):
        mode = ["eof", "live", "pair", "commit-crash"][r % 4]
        more = rng.randint(8_000, 16_000)  # fresh records, so that every run has work to be killed in
        kcli("produce", "t", input=_lines(produced, more))
        produced += more
        if mode == "eof":  # a cron-style run killed part way
            proc = member("-e")
            time.sleep(rng.uniform(0.1, 0.9))
            hit = proc.kill()
            collect(proc)
        elif mode == "live":  # a long-running member reading records as they arrive
            proc = member()
            time.sleep(rng.uniform(0.1, 0.4))
            more = rng.randint(500, 3000)
            kcli("produce", "t", input=_lines(produced, more))
            produced += more
            time.sleep(rng.uniform(0.0, 0.5))
            hit = proc.kill()
            collect(proc)
        elif mode == "pair":  # one of two members dies; the other takes its partitions over and finishes
            first, second = member("-e"), member("-e")
            time.sleep(rng.uniform(0.2, 0.8))
            victim, survivor = (first, second) if rng.random() < 0.5 else (second, first)
            hit = victim.kill()
            collect(victim)
            assert survivor.wait(timeout=60) == 0, survivor.stderr
            collect(survivor)
        else:  # killed between writing the new offsets file and renaming it into place
            proc = member("-e", crash=f"commit:{rng.randint(1, 2)}")
            code = proc.wait(timeout=60)
            assert code in (0, -9), proc.stderr
            hit = code == -9
            collect(proc)

        faults += hit
        hits[mode] += hit
        committed = {p: off for (_t, p), off in store.fetch("g").items()}  # parses: never half a file
        for p, offset in committed.items():
            assert offset >= committed_before.get(p, 0), f"partition {p}: commit went back to {offset}"
            top = max(printed[p], default=-1)
            if offset != committed_before.get(p):
                assert offset <= top + 1, f"partition {p}: committed {offset} but only printed up to {top}"
        committed_before = committed
        described = kcli("group", "describe", "g", ok=False)  # a member killed before joining leaves no group
        assert described.returncode == 0 or (described.returncode == 3 and not committed), described.stderr

    final = kcli("consume", "t", "--group", "g", "--reset", "earliest", "-e", "-f", FORMAT)
    for line in final.stdout.splitlines():
        _t, p, o = line.split()
        printed[int(p)].add(int(o))
    ends = [p["log_end_offset"] for p in _describe(kcli)["partitions"]]
    assert sum(ends) == produced
    lost = sum(len(set(range(end)) - printed[p]) for p, end in enumerate(ends))
    line = (
        f"group consumer kill -9: faults injected: {faults}, records checked: {produced}, lost: {lost} "
        f"({runs} killed or finished runs, {duplicates} redelivered; kills by mode {dict(hits)})"
    )
    print(line)
    record_property("faults_injected", faults)
    record_property("records_checked", produced)
    record_property("lost", lost)
    assert faults >= 5, line
    assert lost == 0, line


def _describe(kcli) -> dict:
    import json

    return json.loads(kcli("topic", "describe", "t", "--json").stdout)[0]


def test_consumer_without_group_killed(kcli):
    """A plain ``consume -e`` holds no lock the next reader or writer waits for, and changes nothing."""
    kcli("produce", "t", input=_lines(0, 20_000))
    before = sorted(p.name for p in kcli.data_dir.rglob("*"))
    rng = random.Random(f"{SEED}-plain")
    for _ in range(3):
        proc = Piped(kcli.argv("consume", "t", "-b", "-e", "-f", FORMAT), kcli.env, [], rng)
        time.sleep(rng.uniform(0.1, 0.6))
        proc.kill()
        offsets = [o for _t, _p, o in proc.acks]
        assert offsets == list(range(len(offsets))), "a reader printed out of order"
    assert sorted(p.name for p in kcli.data_dir.rglob("*")) == before
    kcli("produce", "t", input="after\n", timeout=20)
    assert kcli("consume", "t", "-o", "-1", "-e").stdout == "after\n"
