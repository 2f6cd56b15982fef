"""Producers killed with SIGKILL: at random moments while fed through a pipe, and at crash points.

Random kills cover what a real ``kill -9`` (or OOM killer) does at an arbitrary instant; tiny
``segment.bytes`` and ``retention.bytes`` make rolls and segment deletion happen many times a second so
kills land in them too, and an RF 3 topic makes every append three writes.  The crash points cover the
narrow windows random kills almost never hit.  After every fault the harness checks that nothing
acknowledged is lost or duplicated, replicas agree and ``kcli verify`` passes.

The random moments are seeded (``KCLI_FAULT_SEED``), so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from .harness import CRASHPOINT, Ledger, Piped, check_after_fault, parse_acks, session_lines

SEED = int(os.environ.get("KCLI_FAULT_SEED", "1877"))

SCENARIOS = {
    # name: (brokers, replication factor, topic configs, record padding, retention.bytes checked)
    "append": (1, 1, [], 0, None),
    "roll-retention": (
        1,
        1,
        ["segment.bytes=1024", "retention.bytes=3072", "index.interval.bytes=200"],
        12,
        3072,
    ),
    "replicated": (3, 3, ["segment.bytes=2048", "retention.bytes=8192", "index.interval.bytes=300"], 8, 8192),
}


def _setup(kcli, brokers: int, rf: int, configs: list[str]) -> str:
    if brokers > 1:
        kcli("cluster", "init", "--brokers", brokers)
    args = ["topic", "create", "t", "-r", rf]
    for c in configs:
        args += ["-c", c]
    kcli(*args)
    return "t"


def _report(ledger: Ledger, name: str, record_property) -> None:
    line = ledger.summary(name)
    print(line)
    record_property("faults_injected", ledger.faults)
    record_property("records_checked", ledger.checked)
    record_property("lost", ledger.lost)
    assert not ledger.problems, "\n".join(ledger.problems[:20])
    assert ledger.lost == 0, line


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_producer_killed_at_random_moments(kcli, scenario, record_property):
    brokers, rf, configs, pad, retention = SCENARIOS[scenario]
    topic = _setup(kcli, brokers, rf, configs)
    rng = random.Random(f"{SEED}-{scenario}")
    ledger = Ledger()
    for r in range(6):
        # fed for about 3 s (bursts of 1-40 lines, up to 20 ms apart), longer than any kill delay below
        lines = session_lines(r, 6000, pad)
        producer = Piped(
            kcli.argv("produce", topic, "--print-offsets", "--linger-ms", rng.choice([0, 1, 5])),
            kcli.env,
            lines,
            rng,
            pace=0.02,
        )
        # from "still starting up" to "well into the stream"
        time.sleep(rng.uniform(0.05, 1.2))
        if producer.kill():
            ledger.faults += 1
        else:
            assert producer.proc.returncode == 0, producer.stderr
            assert len(producer.acks) == len(lines)
        ledger.acknowledge(producer.acks, lines)
        check_after_fault(kcli, topic, ledger, f"m{r}", retention)
    assert ledger.faults >= 2, ledger.summary(scenario)  # most rounds must really kill a running producer
    _report(ledger, f"producer kill -9 ({scenario})", record_property)


SMALL = ["segment.bytes=1024", "retention.bytes=4096", "index.interval.bytes=128"]

# case -> (brokers and replication factor, topic configs, highest N to draw).  N counts how often one session
# of 150+ small lines at --batch-size 300 reaches the point; on the RF 3 topic with small segments that is
# (measured) 42 log appends, 27+ index entries, 12+ rolls, 9+ checkpoint files and 3 writer-state files,
# and segment deletion once the partition outgrows retention.bytes.  "torn-write@rf1" tears batches behind
# an offset index entry (every batch but a segment's first gets one): readers used to take the torn batch's
# entry for the log end and lose sight of the records before it.
CRASH_CASES = {
    "log-append": (3, SMALL, 40),
    "torn-write": (3, SMALL, 40),
    "torn-write@rf1": (1, ["index.interval.bytes=128"], 8),
    "index-entry": (3, SMALL, 25),
    "roll": (3, SMALL, 10),
    "retention": (3, SMALL, 10),
    "state": (3, SMALL, 3),
    "checkpoint": (3, SMALL, 9),
}


@pytest.mark.parametrize("case", sorted(CRASH_CASES))
def test_producer_crash_points(kcli, tmp_path, case, record_property):
    """Small segments and batches, so every point is reached within one session.  Input comes from a
    file: batches are then cut by size alone, so the N-th time a point is reached is the same on every run."""
    brokers, configs, highest = CRASH_CASES[case]
    point = case.partition("@")[0]
    topic = _setup(kcli, brokers, brokers, configs)
    retention = 4096 if "retention.bytes=4096" in configs else None
    rng = random.Random(f"{SEED}-{case}")
    ledger = Ledger()
    for r in range(3):
        lines = session_lines(r, rng.randint(150, 300), 10)
        source = tmp_path / f"input-{r}"
        source.write_text("".join(line + "\n" for line in lines))
        n = rng.randint(1 if brokers > 1 else 2, highest)
        argv = [
            sys.executable,
            CRASHPOINT,
            f"{point}:{n}",
            "--",
            "produce",
            topic,
            "-f",
            source,
            "--print-offsets",
            "--batch-size",
            "300",
        ]
        proc = subprocess.run(argv, capture_output=True, env=kcli.env, timeout=60)
        acks = parse_acks(proc.stdout)
        if proc.returncode == -9:
            ledger.faults += 1
        else:
            assert proc.returncode == 0, proc.stderr.decode()
            assert len(acks) == len(lines)
        ledger.acknowledge(acks, lines)
        check_after_fault(kcli, topic, ledger, f"m{r}", retention)
    assert ledger.faults, f"crash point {point} was never reached"
    _report(ledger, f"producer crash point {case}", record_property)
