"""``kcli transform`` killed with SIGKILL at random moments (seeded: ``KCLI_FAULT_SEED``), then run again
until it has processed everything: the output topic, read_committed, must be exactly the function of
the input -- nothing lost, nothing twice, in order -- however many runs were killed half way (their
output aborted by the next run, their offsets never committed)."""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest

SEED = int(os.environ.get("KCLI_FAULT_SEED", "1877"))
RECORDS = 3000
MAX_RUNS = 150


def _values(kcli, topic: str, isolation: str) -> list[str]:
    proc = kcli("consume", topic, "-b", "-e", "--isolation-level", isolation, ok=False)
    assert proc.returncode in (0, 3), proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.faults
@pytest.mark.slow
def test_transform_killed_at_random_points_is_exactly_once(kcli) -> None:
    rng = random.Random(SEED)
    lines = [f"rec-{i:05d}-{rng.randrange(10**6)}" for i in range(RECORDS)]
    kcli("produce", "in", input="\n".join(lines) + "\n")
    # a line at a time (a process per line), so that a run lasts long enough to be killed anywhere in it,
    # and small batches, so that a run killed while CMD works leaves output in an open transaction
    upper = 'while IFS= read -r line; do printf "%s\\n" "$line" | tr a-z A-Z; done'
    stage = ["transform", "in", "out", "--group", "stage", "-c", "400", "--batch-size", "2000", "--", "sh", "-c", upper]
    killed = finished = 0
    span = 1.0  # how long the last complete run took: kills land anywhere in a run, most before its end
    while len(_values(kcli, "out", "read_committed")) < RECORDS:
        assert killed + finished < MAX_RUNS, f"no end after {MAX_RUNS} runs ({finished} finished)"
        started = time.monotonic()
        proc = kcli.popen(*stage, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(rng.uniform(0.0, span * 1.3))
            finished += 1
            span = time.monotonic() - started
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed += 1
            span *= 1.2  # runs got slower than the last complete one (a loaded machine): aim later
        finally:
            if proc.stderr is not None:
                proc.stderr.close()
    assert killed >= 5, f"only {killed} runs were killed: the test did not test"
    out = _values(kcli, "out", "read_committed")
    uncommitted = _values(kcli, "out", "read_uncommitted")
    print(f"seed {SEED}: {killed} runs killed, {finished} finished; "
          f"{len(out)} records committed, {len(uncommitted) - len(out)} aborted")
    assert out == [line.upper() for line in lines]
    kcli(*stage)  # nothing new: nothing more
    assert _values(kcli, "out", "read_committed") == out
