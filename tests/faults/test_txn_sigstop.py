"""Transactional producers stopped with SIGSTOP past their transaction timeout, while a read_committed
``kcli consume --group`` runs (the issue's "survives SIGSTOP" for transactions).

Two ``kcli produce --transactional-id`` processes commit a first transaction, open a second (its records
reach the log), and are stopped with SIGSTOP.  Their transactions time out and are aborted -- by the
read_committed consumer held back by them (embedded) or by the broker's upkeep -- while a third producer
goes on committing.  Then more input is written to the stopped producers and they get SIGCONT: their
late batches must be refused (their epoch was fenced by the abort) and they must exit 1 (aborted).
No record of an aborted transaction ever reaches the running consumer or a later read_committed read;
the committed ones all do.  Embedded and through a broker.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from kcli.cluster.datadir import DataDir
from kcli.transactions.state import TxnState
from kcli.transactions.store import TransactionStore

from .harness import kill9

pytestmark = pytest.mark.faults

TOPIC, GROUP = "t", "g"
PARTITIONS = 3
PER_TXN = 5  # --transaction-max-records: the first PER_TXN lines of each producer are one transaction
TIMEOUT_MS = 3000  # --transaction-timeout-ms of the producers that get stopped
WAIT = 30.0  # a bound on a hang, not a goal


class Producer:
    """A ``kcli produce --transactional-id`` process fed line by line by the test."""

    def __init__(self, runner, prefix: list[str], tid: str, timeout_ms: int) -> None:
        self.tid = tid
        self.proc = subprocess.Popen(
            runner.argv(*prefix, "produce", TOPIC, "--transactional-id", tid, "--transaction-max-records",
                        PER_TXN, "--transaction-timeout-ms", timeout_ms),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=runner.env,
        )

    def write(self, values: list[str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(f"{v}\n" for v in values).encode())
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str]:
        """Close its input and wait: exit code and stderr."""
        _, err = self.proc.communicate(timeout=WAIT)
        return self.proc.returncode, err.decode(errors="replace")


def _values(tid: str, kind: str, n: int = PER_TXN) -> list[str]:
    return [f"{tid}-{kind}-{i}" for i in range(n)]


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("mode", ["embedded", "broker"])
def test_stopped_transactional_producers_are_aborted_and_their_late_batches_refused(
    brokers, tmp_path: Path, mode: str
) -> None:
    runner = brokers.runner
    prefix: list[str] = []
    if mode == "broker":
        prefix = ["--bootstrap-server", brokers.start(0).bootstrap]
    runner(*prefix, "topic", "create", TOPIC, "-p", PARTITIONS)
    store = TransactionStore(DataDir(str(brokers.data_dir)))

    def read(isolation: str) -> list[str]:
        return sorted(runner(*prefix, "consume", TOPIC, "-b", "-e", "--isolation-level", isolation).stdout.split())

    seen_path = tmp_path / "consumer.out"
    with open(seen_path, "wb") as seen_file:
        consumer = subprocess.Popen(
            runner.argv(*prefix, "consume", TOPIC, "--group", GROUP, "--reset", "earliest"),
            stdout=seen_file, stderr=subprocess.PIPE, env=runner.env,
        )
    stopped = [Producer(runner, prefix, f"stopped{i}", TIMEOUT_MS) for i in range(2)]
    steady = Producer(runner, prefix, "steady", 60_000)
    try:
        for p in stopped:
            p.write(_values(p.tid, "committed") + _values(p.tid, "late", 3))  # a transaction, then one open
        steady.write(_values("steady", "first"))
        late = {v for p in stopped for v in _values(p.tid, "late", 3)}
        _wait(lambda: late <= set(read("read_uncommitted")), "the open transactions' records are in the log")
        for p in stopped:
            p.proc.send_signal(signal.SIGSTOP)
        states = {p.tid: store.load(p.tid).state for p in stopped}  # type: ignore[union-attr]
        assert set(states.values()) == {TxnState.ONGOING}, f"aborted before they were stopped: {states}"

        # the stopped producers' transactions time out and are aborted while the others go on
        steady.write(_values("steady", "second"))

        def aborted() -> bool:
            return all((m := store.load(p.tid)) is not None and m.state is TxnState.COMPLETE_ABORT for p in stopped)

        _wait(aborted, "the stopped producers' transactions were aborted")

        for p in stopped:
            p.write(_values(p.tid, "after-stop"))  # waits in the pipe until SIGCONT
            p.proc.send_signal(signal.SIGCONT)
        results = {p.tid: p.finish() for p in stopped}
        code, err = steady.finish()
        assert code == 0, err
        for tid, (code, err) in results.items():
            print(f"{mode} {tid}: exit {code}: {err.strip()}")
            assert code == 1, f"{tid}: exit {code}: {err}"
            assert "fenced" in err or "abort" in err, f"{tid}: {err}"
            assert "the abort failed" not in err and "--no-idempotence" not in err, f"{tid}: {err}"

        committed = sorted(
            [v for p in stopped for v in _values(p.tid, "committed")]
            + _values("steady", "first") + _values("steady", "second")
        )
        refused = {v for p in stopped for v in _values(p.tid, "after-stop")}
        _wait(lambda: set(committed) <= set(seen_path.read_text().split()), "the group consumer saw all")
        assert read("read_committed") == committed
        everything = set(read("read_uncommitted"))
        assert late <= everything and not refused & everything, "late batches of fenced producers were stored"
    finally:
        for p in [*stopped, steady]:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGCONT)
            kill9(p.proc)
        consumer.send_signal(signal.SIGTERM)
        try:
            consumer.wait(timeout=WAIT)
        finally:
            kill9(consumer)
    seen = seen_path.read_text().split()
    assert not (late | refused) & set(seen), "the read_committed group consumer saw aborted records"
    assert sorted(set(seen)) == committed
