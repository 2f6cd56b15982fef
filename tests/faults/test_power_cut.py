"""Durability on one disk: what a power cut keeps, simulated.

A power cut loses every write the kernel had not yet put on the disk.  To see what kcli's fsyncs really
promise, the kcli processes run with a test-only recorder (``powercut/sitecustomize.py`` on their
PYTHONPATH: kcli has no hook for it) that notes each file's size at its last fsync.  After a producer is
killed with SIGKILL, the test plays the power cut: every file is cut to its synced size and files never
synced are dropped; files as they were at the test's own ``os.sync()`` before the producer count as synced.
Then kcli opens the data dir again (recovery) and the test checks what survived:

- ``flush.messages=1``: every acknowledged record (kcli prints an offset only after the fsync);
- ``flush.ms=T``: every record acknowledged at least T (and a margin) before the cut;
- the defaults (the OS decides, as in Kafka): only what a completed produce (fsync at its end) stored --
  and the test checks that the simulated cut really loses the rest, so it can tell the settings apart.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from .harness import Ledger, Piped, read_partition, session_lines

RECORDER = str(Path(__file__).with_name("powercut"))
FLUSH_MS = 300
MARGIN = 1.5  # seconds beyond flush.ms: the next append after the deadline fsyncs; the box is busy


def _sizes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def power_cut(root: Path, journal: Path, baseline: dict[str, int]) -> None:
    """Cut every file under ``root`` to what the last fsync (per the journal) or the baseline kept."""
    synced: dict[str, int | None] = {}
    lines = journal.read_text().splitlines() if journal.exists() else []
    for line in lines:
        kind, a, b = line.split("\t")
        if kind == "fsync":
            synced[b] = int(a)
        elif kind == "truncate":
            prior = synced.get(b, baseline.get(b))
            synced[b] = None if prior is None else min(prior, int(a))
        elif kind == "replace":
            synced[b] = synced.pop(a, None)  # the new name holds what the old one had synced
    for path, size in _sizes(root).items():
        keep = synced[path] if path in synced else baseline.get(path)
        if keep is None:
            os.unlink(path)
        elif size > keep:
            os.truncate(path, keep)


@pytest.mark.faults
@pytest.mark.parametrize(
    "config, promise",
    [("flush.messages=1", "all"), (f"flush.ms={FLUSH_MS}", "old"), (None, "completed")],
    ids=["flush.messages=1", "flush.ms", "defaults"],
)
def test_power_cut_keeps_what_was_synced(kcli, tmp_path, config, promise, record_property):
    kcli("topic", "create", "t", *(["-c", config] if config else []))
    ledger = Ledger()
    first = session_lines(0, 200)
    res = kcli("produce", "t", "--print-offsets", input="".join(line + "\n" for line in first))
    ledger.acknowledge([tuple(line.split()) for line in res.stdout.splitlines()], first)
    completed = {int(o): v for o, v in ledger.acked.items()}

    os.sync()  # the test's own sync point: everything so far is on the disk
    baseline = _sizes(kcli.data_dir)
    journal = tmp_path / "sync-journal"
    env = {
        **kcli.env,
        "PYTHONPATH": os.pathsep.join([RECORDER, kcli.env.get("PYTHONPATH", "")]),
        "KCLI_TEST_SYNC_JOURNAL": str(journal),
    }
    lines = session_lines(1, 100_000, 100)
    producer = Piped(kcli.argv("produce", "t", "--print-offsets"), env, lines, random.Random(3), pace=0.05)
    deadline = time.monotonic() + 60
    while len(producer.acks) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    old = len(producer.acks)  # acknowledged before this point: older than flush.ms at the cut
    time.sleep(FLUSH_MS / 1000 + MARGIN)
    assert producer.kill(), "the producer ended before the power cut"
    acked = [(o, lines[k]) for k, (_t, _p, o) in enumerate(producer.acks)]
    assert old >= 200 and len(acked) > old, f"too few acknowledgements ({old}, {len(acked)})"

    power_cut(kcli.data_dir, journal, baseline)
    stored = dict(read_partition(kcli, "t"))  # a reader before recovery: stops at a torn tail
    kcli("produce", "t", input="after\n")  # recovery
    verify = kcli("verify", ok=False)
    assert verify.returncode == 0, f"verify failed after the power cut:\n{verify.stdout}{verify.stderr}"
    after = read_partition(kcli, "t")
    assert [o for o, _v in after] == list(range(len(after))), "offsets are not contiguous"
    assert after[-1][1] == "after"

    promised = dict(completed)
    if promise == "all":
        promised.update(acked)
    elif promise == "old":
        promised.update(acked[:old])
    for offset, value in promised.items():
        ledger.checked += 1
        if stored.get(offset) != value:
            ledger.lost += 1
            ledger.problems.append(f"acknowledged {value[:12]!r} at {offset}, found {stored.get(offset)!r}")
    kept = sum(stored.get(o) == v for o, v in acked)
    print(f"{config or 'defaults'}: {len(acked)} acknowledged in the killed session, {kept} survived the cut")
    record_property("lost", ledger.lost)
    assert not ledger.problems, "\n".join(ledger.problems[:20])
    if promise == "completed":
        # nothing fsynced the killed session's records: a cut that kept them would not be simulating one
        assert kept < len(acked), "the simulated power cut lost nothing unsynced"


def test_power_cut_keeps_every_partition_a_completed_produce_wrote(kcli, tmp_path):
    """A produce that exited 0 promises every record it took, also in partitions it let go of on the
    way (idle input ends the write sessions without an fsync): its last fsync covers them too."""
    kcli("topic", "create", "t", "--partitions", 2)
    os.sync()
    baseline = _sizes(kcli.data_dir)
    journal = tmp_path / "sync-journal"
    env = {
        **kcli.env,
        "PYTHONPATH": os.pathsep.join([RECORDER, kcli.env.get("PYTHONPATH", "")]),
        "KCLI_TEST_SYNC_JOURNAL": str(journal),
    }
    proc = subprocess.Popen(kcli.argv("produce", "t", "--json", "--print-offsets"), env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b'{"value": "first", "partition": 0}\n')
    proc.stdin.flush()
    assert proc.stdout.readline().split() == [b"t", b"0", b"0"]  # delivered on idle: session 0 ended
    proc.stdin.write(b'{"value": "second", "partition": 1}\n')
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    power_cut(kcli.data_dir, journal, baseline)
    for partition, value in ((0, "first"), (1, "second")):
        assert read_partition(kcli, "t", partition) == [(0, value)], f"partition {partition} lost its record"
