"""``kill -9`` between a transaction's markers on different partitions: completed everywhere or nowhere.

The process writing the markers dies at a crash point (tests/faults/crashpoint.py) after the marker of
one partition and before those of the others -- ``marker`` (after the N-th marker it appends itself) or
``remote-markers`` (after the first other leader answered its WriteTxnMarkers).  Right after the kill
some partitions have the marker and some do not, and the transaction is PrepareCommit/PrepareAbort.
Then the broker is restarted (or, embedded, the next kcli command runs) and the transaction must be
finished the way it was decided: every partition has exactly one marker of that kind, read_committed
readers of all partitions see all of its records (commit) or none (abort), the group offsets sent with
it are applied exactly when the records are, and the coordinator's state is CompleteCommit/CompleteAbort.

Through brokers the producer is confluent-kafka (a subprocess, killed once the broker died, so that only
the brokers can finish the transaction): one broker leading all partitions, or three brokers leading
one each with the transaction's coordinator among them.  Embedded, ``kcli produce --transactional-id``
(commit at EOF, abort on SIGTERM) and ``kcli transform`` (its group's offsets in the transaction).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import support.brokers
from support.brokers import Brokers

from kcli.broker.coordinator_choice import choose_coordinator
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.groups.offsets import OffsetStore
from kcli.storage import control, records
from kcli.storage.log import PartitionLog
from kcli.transactions.state import TxnState
from kcli.transactions.store import TransactionStore

from .harness import CRASHPOINT, kill9

pytestmark = pytest.mark.faults

PARTITIONS = 3
PER_PARTITION = 4
TOPIC, INPUT, GROUP = "out", "in", "g"
OFFSET = 10  # the input offset the transaction commits for GROUP
COMPLETE_WAIT = 60.0  # a bound on a hang, not a goal
KIND = {True: control.COMMIT, False: control.ABORT}

# the transactional producer through brokers: records in every partition, GROUP's offset, then EndTxn
CLIENT = r"""
import sys
from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, tid, outcome, partitions, per = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:6])
producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                     "transaction.timeout.ms": 60000, "linger.ms": 5})
producer.init_transactions(30)
producer.begin_transaction()
for p in range(partitions):
    for i in range(per):
        producer.produce("out", value=f"v-{p}-{i}", partition=p)
group = Consumer({"bootstrap.servers": bootstrap, "group.id": "g"})
producer.send_offsets_to_transaction([TopicPartition("in", 0, 10)], group.consumer_group_metadata(), 30)
assert producer.flush(30) == 0
print("sent", flush=True)
if outcome == "commit":
    producer.commit_transaction(60)
else:
    producer.abort_transaction(60)
print("ended", flush=True)
"""


def _values() -> list[str]:
    return sorted(f"v-{p}-{i}" for p in range(PARTITIONS) for i in range(PER_PARTITION))


class Outcome:
    """What the data dir holds of one transaction: its state, its markers, the group's offsets."""

    def __init__(self, data_dir: Path, transactional_id: str) -> None:
        self.datadir = DataDir(str(data_dir), lock_timeout=10)
        self.transactional_id = transactional_id

    def state(self) -> TxnState | None:
        meta = TransactionStore(self.datadir).load(self.transactional_id)
        return None if meta is None else meta.state

    def leaders(self, topic: str = TOPIC) -> dict[int, int]:
        metadata = Metadata(self.datadir).load()
        return {p: metadata.partition(topic, p).leader for p in range(PARTITIONS)}

    def markers(self, topic: str = TOPIC, leaders: dict[int, int] | None = None) -> dict[int, list[int]]:
        """Per partition, the kinds of the control batches in its leader's log (by default the leader
        now; ``leaders``: the replicas that led before a crash), in order."""
        leaders = leaders or self.leaders(topic)
        out: dict[int, list[int]] = {}
        for p in range(PARTITIONS):
            leader = leaders[p]
            log = PartitionLog(self.datadir.partition_dir(leader, topic, p))
            try:
                data = log.read(0, 1 << 24)
            finally:
                log.close()
            out[p] = [control.control_type(data, pos, h) for pos, h in records.iter_batches(data) if h.is_control]
        return out

    def offsets(self) -> dict:
        return OffsetStore(self.datadir).fetch(GROUP)

    def wait_complete(self, timeout: float = COMPLETE_WAIT) -> TxnState | None:
        deadline = time.monotonic() + timeout
        while (state := self.state()) is not None and state.prepared and time.monotonic() < deadline:
            time.sleep(0.2)
        return state

    def check_cut(self, commit: bool, leaders: dict[int, int] | None = None, survivors: bool = False) -> None:
        """Right after the kill: decided, and marked in some partitions but not in all (so the crash
        really fell between two partitions' markers).  ``leaders``: the replicas that led before the
        kill (the controller may already have moved the dead broker's partitions to a follower that had
        not fetched its marker yet).  ``survivors``: other brokers run, and the one that coordinates the
        id now may have finished the transaction already (then every partition has its one marker)."""
        state = self.state()
        markers = self.markers(leaders=leaders)
        marked = {p for p, kinds in markers.items() if kinds}
        assert all(kinds == [KIND[commit]] for kinds in markers.values() if kinds), markers
        if survivors and len(marked) == PARTITIONS:
            return  # finished by the id's next coordinator before we looked; check_complete checks the rest
        assert state is (TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT), state
        assert marked and len(marked) < PARTITIONS, f"the crash was not between markers: {markers}"
        assert self.offsets() == {}, "offsets applied before the markers"

    def check_complete(self, commit: bool, committed_values: list[str], offsets: dict) -> None:
        """Complete everywhere: every partition has exactly one marker of the decided kind; the
        read_committed readers saw all of the records or none; the ``offsets`` sent with them went with
        them."""
        state = self.wait_complete()
        assert state is (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT), state
        markers = self.markers()
        assert markers == {p: [KIND[commit]] for p in range(PARTITIONS)}, markers
        assert committed_values == (_values() if commit else []), committed_values
        assert self.offsets() == (offsets if commit else {}), self.offsets()


# ---------------------------------------------------------------- through brokers


def _spawn_armed(brokers: Brokers, monkeypatch: pytest.MonkeyPatch, broker_id: int, crash: str):
    """``kcli broker serve`` with a crash point armed (crashpoint.py in place of the kcli entry point)."""
    with monkeypatch.context() as patch:
        patch.setattr(support.brokers, "KCLI", [sys.executable, CRASHPOINT, crash, "--"])
        return brokers.spawn(broker_id)


def _consume(brokers: Brokers, bootstrap: str, isolation: str) -> list[str]:
    out = brokers.kcli("--bootstrap-server", bootstrap, "consume", TOPIC, "-b", "-e",
                       "--isolation-level", isolation).stdout
    return sorted(out.split())


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
@pytest.mark.parametrize(
    "layout, crash",
    [("one-broker", "marker:2"), ("three-brokers", "marker:1"), ("three-brokers", "remote-markers:1")],
)
def test_a_broker_killed_between_markers_completes_the_transaction_after_restart(
    brokers: Brokers, monkeypatch: pytest.MonkeyPatch, layout: str, crash: str, commit: bool
) -> None:
    count = 1 if layout == "one-broker" else 3
    brokers.init(count)
    tid = next(f"tx-{i}" for i in range(100) if choose_coordinator(f"tx-{i}", range(count)) == count - 1)
    coordinator = count - 1
    procs = {b: brokers.spawn(b) for b in range(count - 1)}
    procs[coordinator] = _spawn_armed(brokers, monkeypatch, coordinator, crash)
    for proc in procs.values():
        proc.wait_ready()
    brokers.kcli("topic", "create", INPUT)
    brokers.kcli("topic", "create", TOPIC, "-p", PARTITIONS)
    outcome = Outcome(brokers.data_dir, tid)
    leaders = outcome.leaders()
    assert set(leaders.values()) == set(range(count)), f"leaders {leaders}: the layout needs one per broker"
    bootstrap = ",".join(p.bootstrap for p in procs.values())

    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, bootstrap, tid, "commit" if commit else "abort",
         str(PARTITIONS), str(PER_PARTITION)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=brokers.env,
    )
    try:
        armed = procs[coordinator].proc
        try:
            armed.wait(timeout=90)
        except subprocess.TimeoutExpired:
            kill9(client)
            assert client.stderr is not None
            raise AssertionError(f"the crash point was never reached; the client said: {client.stderr.read()!r}") from None
        assert armed.returncode == -signal.SIGKILL, procs[coordinator].log()
    finally:
        kill9(client)  # the brokers alone must finish what it began
    outcome.check_cut(commit, leaders, survivors=count > 1)

    port = procs[coordinator].port
    brokers.spawn(coordinator, listener=f"127.0.0.1:{port}").wait_ready()
    assert outcome.wait_complete() is not None
    assert _consume(brokers, bootstrap, "read_uncommitted") == _values()  # the records were all written
    outcome.check_complete(commit, _consume(brokers, bootstrap, "read_committed"), {(INPUT, 0): OFFSET})


# ---------------------------------------------------------------- embedded


def _armed(crash: str, *args: object) -> list[str]:
    return [sys.executable, CRASHPOINT, crash, "--", *map(str, args)]


def _lines() -> str:
    return "".join(
        json.dumps({"value": f"v-{p}-{i}", "partition": p}) + "\n"
        for p in range(PARTITIONS) for i in range(PER_PARTITION)
    )


def _written(data_dir: Path) -> bool:
    """Whether every partition of TOPIC holds records (read as another process reads)."""
    datadir = DataDir(str(data_dir))
    for p in range(PARTITIONS):
        log = PartitionLog(datadir.partition_dir(0, TOPIC, p))
        try:
            if log.log_end_offset == 0:
                return False
        finally:
            log.close()
    return True


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
def test_embedded_produce_killed_between_markers_is_completed_by_the_next_command(kcli, commit: bool) -> None:
    """``kcli produce --transactional-id`` dies after the marker of partition 1 (of 0, 1, 2): at EOF
    (commit) or on SIGTERM (abort); the next command (a read_committed consume) completes it."""
    kcli("topic", "create", TOPIC, "-p", PARTITIONS)
    argv = _armed("marker:2", "produce", TOPIC, "--transactional-id", "tx", "--json")
    if commit:
        proc = subprocess.run(argv, input=_lines().encode(), capture_output=True, env=kcli.env, timeout=60)
    else:
        with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=kcli.env) as running:
            assert running.stdin is not None
            running.stdin.write(_lines().encode())
            running.stdin.flush()
            deadline = time.monotonic() + 30
            while not _written(kcli.data_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            running.send_signal(signal.SIGTERM)  # aborts: the ABORT markers are being written when it dies
            running.wait(timeout=60)
        proc = running
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    outcome = Outcome(kcli.data_dir, "tx")
    outcome.check_cut(commit)
    assert outcome.markers()[2] == []  # partitions 0 and 1 were marked, 2 not

    committed = sorted(kcli("consume", TOPIC, "-b", "-e").stdout.split())
    assert outcome.state() is not None and not outcome.state().prepared, "the next command did not complete it"
    assert sorted(kcli("consume", TOPIC, "-b", "-e", "--isolation-level", "read_uncommitted").stdout.split()) == (
        _values()
    )
    outcome.check_complete(commit, committed, {})  # produce sends no offsets


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
def test_embedded_transform_killed_between_markers_is_completed_by_the_next_command(
    kcli, commit: bool
) -> None:
    """``kcli transform`` (its group's offsets in the transaction) dies after its first marker: the
    next command completes the transaction, offsets included, or aborts it without them."""
    kcli("topic", "create", INPUT)
    kcli("topic", "create", TOPIC, "-p", PARTITIONS)
    inputs = [f"in-{i}" for i in range(20)]
    kcli("produce", INPUT, input="".join(f"{v}\n" for v in inputs))
    # one record per batch: unkeyed records stick to a partition until its batch is sent, so the output
    # lands in two or three partitions (three but for a chance of 2**-18)
    cmd = ["sed", "s/^/out-/"] if commit else ["sh", "-c", "sed s/^/out-/; exit 3"]
    proc = subprocess.run(
        _armed("marker:1", "transform", INPUT, TOPIC, "--group", GROUP, "--batch-size", 1, "--", *cmd),
        capture_output=True, env=kcli.env, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    outcome = Outcome(kcli.data_dir, f"kcli-transform.{GROUP}.{INPUT}")
    outcome.check_cut(commit)

    committed = sorted(kcli("consume", TOPIC, "-b", "-e").stdout.split())
    state = outcome.wait_complete(timeout=0)
    assert state is (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT), state
    everything = sorted(kcli("consume", TOPIC, "-b", "-e", "--isolation-level", "read_uncommitted").stdout.split())
    assert everything == sorted(f"out-{v}" for v in inputs)
    assert committed == (everything if commit else [])
    markers = outcome.markers()
    used = {p for p, kinds in markers.items() if kinds}
    assert len(used) >= 2 and all(kinds == [KIND[commit]] for kinds in markers.values() if kinds), markers
    assert outcome.offsets() == ({(INPUT, 0): len(inputs)} if commit else {})
