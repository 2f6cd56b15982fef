"""The transaction coordinator (kcli.transactions) against real files: Kafka's states, transitions and
error rules, pending offsets applied only on commit, timeouts, expiry, roll-forward, embedded ownership."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kcli.cluster.datadir import DataDir
from kcli.cluster.producers import ProducerIds
from kcli.errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    KcliError,
    LockTimeoutError,
    ProducerFencedError,
    TransactionError,
    UnavailableError,
    UsageError,
)
from kcli.groups.offsets import CommittedOffset, OffsetStore
from kcli.transactions.coordinator import TransactionCoordinator
from kcli.transactions.state import TransactionMetadata, TxnState
from kcli.transactions.store import TransactionStore

ROOT = Path(__file__).resolve().parent.parent
TPS = [("out", 0), ("out", 1), ("other", 0)]


class Markers:
    """A MarkerWriter that records its calls, and fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, bool, int, list[tuple[str, int]]]] = []
        self.failing = False

    def __call__(self, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                 partitions: list[tuple[str, int]]) -> None:
        if self.failing:
            raise UnavailableError("partition out-0 has no leader")
        self.calls.append((producer_id, epoch, commit, coordinator_epoch, list(partitions)))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def datadir(tmp_path: Path) -> DataDir:
    return DataDir(str(tmp_path / "data"), lock_timeout=5)


@pytest.fixture
def markers() -> Markers:
    return Markers()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coord(datadir: DataDir, markers: Markers, clock: Clock) -> TransactionCoordinator:
    return TransactionCoordinator(datadir, ProducerIds(datadir), markers, clock=clock)


def state(coord: TransactionCoordinator, tid: str = "t") -> str:
    info = coord.describe(tid)
    assert info is not None
    return info.state


def ongoing(coord: TransactionCoordinator, tid: str = "t", timeout_ms: int = 60_000) -> tuple[int, int]:
    pid, epoch = coord.init_producer_id(tid, timeout_ms)
    coord.add_partitions(tid, pid, epoch, TPS)
    return pid, epoch


# ---------------------------------------------------------------- InitProducerId
def test_init_creates_the_id_and_every_init_bumps_the_epoch(coord: TransactionCoordinator, datadir: DataDir) -> None:
    pid, epoch = coord.init_producer_id("t", 60_000)
    assert epoch == 0
    path = TransactionStore(datadir).path("t")
    assert os.path.dirname(path) == os.path.join(datadir.cluster_dir, "transactions")
    on_disk = json.loads(Path(path).read_text())
    assert (on_disk["transactional_id"], on_disk["producer_id"], on_disk["state"]) == ("t", pid, "Empty")
    assert coord.init_producer_id("t", 60_000) == (pid, 1)
    other, _ = coord.init_producer_id("u", 60_000)
    assert other != pid
    assert state(coord) == "Empty"


@pytest.mark.parametrize("tid", ["a/b", "..", ".", "%2e", "ü ñ", "x" * 300, "é" * 16383])
def test_any_id_kafka_allows_gets_a_file_of_its_own(coord: TransactionCoordinator, tid: str) -> None:
    pid, _ = coord.init_producer_id(tid, 1000)
    neighbour, _ = coord.init_producer_id(tid + "!", 1000)
    info = coord.describe(tid)
    assert info is not None and info.producer_id == pid and info.transactional_id == tid
    assert {i.transactional_id for i in coord.list()} == {tid, tid + "!"}
    assert neighbour != pid


@pytest.mark.parametrize("tid", ["", "x" * 32768, "é" * 16384])
def test_empty_or_too_long_ids_are_refused(coord: TransactionCoordinator, tid: str, datadir: DataDir) -> None:
    with pytest.raises(UsageError):
        coord.init_producer_id(tid, 1000)
    for call in (lambda: coord.add_partitions(tid, 0, 0, TPS), lambda: coord.end_txn(tid, 0, 0, True),
                 lambda: coord.describe(tid), lambda: coord.store.owner(tid)):
        with pytest.raises(UsageError, match="transactional id"):
            call()
    assert coord.list() == []
    assert not os.path.exists(coord.store.dir)  # not even a lock file named after it


def test_the_longest_id_kafka_allows_is_taken(coord: TransactionCoordinator) -> None:
    assert coord.init_producer_id("x" * 32767, 1000)[1] == 0


@pytest.mark.parametrize("timeout", [0, -1, 900_001])
def test_timeouts_beyond_the_maximum_are_refused(coord: TransactionCoordinator, timeout: int) -> None:
    with pytest.raises(InvalidTransactionTimeoutError, match="900000"):
        coord.init_producer_id("t", timeout)
    assert coord.describe("t") is None
    assert coord.init_producer_id("t", 900_000)[1] == 0


def test_the_maximum_timeout_is_configurable(datadir: DataDir, markers: Markers) -> None:
    coord = TransactionCoordinator(datadir, ProducerIds(datadir), markers, max_timeout_ms=5000)
    with pytest.raises(InvalidTransactionTimeoutError):
        coord.init_producer_id("t", 5001)
    coord.init_producer_id("t", 5000)


def test_a_new_producer_fences_the_old_ones_open_transaction(coord: TransactionCoordinator, markers: Markers) -> None:
    pid, epoch = ongoing(coord)
    coord.add_offsets("t", pid, epoch, "g")
    coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(7)})
    assert coord.init_producer_id("t", 60_000) == (pid, epoch + 2)
    # the old transaction aborted with the fencing epoch, so its partitions fence the zombie too
    assert markers.calls == [(pid, epoch + 1, False, 0, sorted(TPS))]
    assert OffsetStore(coord.store.datadir).fetch("g") == {}
    assert state(coord) == "Empty"
    for call in (lambda: coord.add_partitions("t", pid, epoch, TPS),
                 lambda: coord.add_offsets("t", pid, epoch, "g"),
                 lambda: coord.end_txn("t", pid, epoch, True)):
        with pytest.raises(ProducerFencedError):
            call()


def test_a_fence_whose_markers_cannot_be_written_answers_concurrent_transactions(
        coord: TransactionCoordinator, markers: Markers) -> None:
    pid, epoch = ongoing(coord)
    markers.failing = True
    with pytest.raises(ConcurrentTransactionsError):
        coord.init_producer_id("t", 60_000)
    assert state(coord) == "PrepareAbort"
    with pytest.raises(ProducerFencedError):  # the zombie is fenced already
        coord.end_txn("t", pid, epoch, True)
    markers.failing = False
    assert coord.init_producer_id("t", 60_000) == (pid, epoch + 2)
    assert markers.calls == [(pid, epoch + 1, False, 0, sorted(TPS))]


def seed(coord: TransactionCoordinator, tid: str, **fields: object) -> TransactionMetadata:
    meta = TransactionMetadata(tid, producer_id=500, producer_epoch=0, timeout_ms=1000)
    for name, value in fields.items():
        setattr(meta, name, value)
    coord.store.save(meta)
    return meta


def test_an_exhausted_epoch_gets_a_new_producer_id(coord: TransactionCoordinator) -> None:
    seed(coord, "t", producer_epoch=32765)
    assert coord.init_producer_id("t", 1000) == (500, 32766)
    pid, epoch = coord.init_producer_id("t", 1000)
    assert (pid, epoch) != (500, 32767) and pid != 500 and epoch == 0
    stored = coord.store.load("t")
    assert stored is not None and stored.last_producer_id == 500


def test_kip360_a_retried_rotation_is_answered_with_the_new_producer_id(coord: TransactionCoordinator) -> None:
    seed(coord, "t", producer_epoch=32766)
    new = coord.init_producer_id("t", 1000, 500, 32766)
    assert new[0] != 500 and new[1] == 0
    assert coord.init_producer_id("t", 1000, 500, 32766) == new  # the answer was lost; asked again
    with pytest.raises(ProducerFencedError):
        coord.init_producer_id("t", 1000, 500, 32000)  # not exhausted: some older producer


def test_kip360_bump_retry_and_fencing(coord: TransactionCoordinator) -> None:
    pid, epoch = coord.init_producer_id("t", 1000)
    assert coord.init_producer_id("t", 1000, pid, epoch) == (pid, epoch + 1)
    assert coord.init_producer_id("t", 1000, pid, epoch) == (pid, epoch + 1)  # retry: no second bump
    with pytest.raises(ProducerFencedError):
        coord.init_producer_id("t", 1000, pid + 1000, 0)
    coord.init_producer_id("t", 1000)  # another producer started since
    with pytest.raises(ProducerFencedError):
        coord.init_producer_id("t", 1000, pid, epoch + 1)


def test_a_new_id_takes_a_producer_that_names_its_old_producer_id(coord: TransactionCoordinator) -> None:
    pid, epoch = coord.init_producer_id("t", 1000, 77, 3)
    assert epoch == 0 and pid != 77


# ---------------------------------------------------------------- AddPartitions / AddOffsets
def test_add_partitions_opens_a_transaction_once(coord: TransactionCoordinator, clock: Clock) -> None:
    pid, epoch = coord.init_producer_id("t", 60_000)
    coord.add_partitions("t", pid, epoch, TPS[:1])
    start = clock.now
    clock.now += 10
    coord.add_partitions("t", pid, epoch, TPS)
    coord.add_partitions("t", pid, epoch, TPS[1:])
    info = coord.describe("t")
    assert info is not None
    assert (info.state, info.partitions, info.start_ms) == ("Ongoing", tuple(sorted(TPS)), start)
    assert coord.is_partition_in_txn("t", pid, epoch, "out", 1)
    assert not coord.is_partition_in_txn("t", pid, epoch, "out", 2)


def test_requests_of_unknown_or_stale_producers_are_refused(coord: TransactionCoordinator) -> None:
    with pytest.raises(InvalidProducerIdMappingError):
        coord.add_partitions("nobody", 1, 0, TPS)
    pid, epoch = coord.init_producer_id("t", 60_000)
    with pytest.raises(InvalidProducerIdMappingError):
        coord.add_partitions("t", pid + 1, epoch, TPS)
    with pytest.raises(InvalidProducerIdMappingError):
        coord.end_txn("t", pid + 1, epoch, True)
    with pytest.raises(InvalidProducerIdMappingError):
        coord.is_partition_in_txn("t", pid + 1, epoch, "out", 0)
    for stale in (epoch - 1, epoch + 1):
        with pytest.raises(ProducerFencedError):
            coord.add_offsets("t", pid, stale, "g")
        with pytest.raises(ProducerFencedError):
            coord.is_partition_in_txn("t", pid, stale, "out", 0)
    with pytest.raises(UsageError):
        coord.add_offsets("t", pid, epoch, "")
    with pytest.raises(UsageError):
        coord.add_partitions("t", pid, epoch, [("out", -1)])
    assert state(coord) == "Empty"


def test_add_while_the_last_transaction_is_being_completed(coord: TransactionCoordinator, markers: Markers) -> None:
    pid, epoch = ongoing(coord)
    markers.failing = True
    with pytest.raises(ConcurrentTransactionsError):
        coord.end_txn("t", pid, epoch, True)
    assert state(coord) == "PrepareCommit"
    with pytest.raises(ConcurrentTransactionsError):
        coord.add_partitions("t", pid, epoch, [("next", 0)])
    with pytest.raises(ConcurrentTransactionsError):
        coord.add_offsets("t", pid, epoch, "g")
    markers.failing = False
    coord.add_partitions("t", pid, epoch, [("next", 0)])  # finishes the last one first
    assert markers.calls == [(pid, epoch, True, 0, sorted(TPS))]
    info = coord.describe("t")
    assert info is not None and info.state == "Ongoing" and info.partitions == (("next", 0),)


# ---------------------------------------------------------------- EndTxn
def test_end_txn_without_a_transaction_is_invalid_txn_state(coord: TransactionCoordinator) -> None:
    pid, epoch = coord.init_producer_id("t", 60_000)
    for commit in (True, False):
        with pytest.raises(TransactionError, match="no transaction") as err:
            coord.end_txn("t", pid, epoch, commit)
        assert type(err.value) is TransactionError


@pytest.mark.parametrize("commit", [True, False])
def test_end_txn_retried_answers_ok_and_the_other_outcome_is_refused(
        coord: TransactionCoordinator, markers: Markers, commit: bool) -> None:
    pid, epoch = ongoing(coord)
    coord.end_txn("t", pid, epoch, commit)
    assert state(coord) == ("CompleteCommit" if commit else "CompleteAbort")
    coord.end_txn("t", pid, epoch, commit)  # a retry after a lost answer
    assert markers.calls == [(pid, epoch, commit, 0, sorted(TPS))]
    with pytest.raises(TransactionError) as err:
        coord.end_txn("t", pid, epoch, not commit)
    assert type(err.value) is TransactionError
    assert markers.calls == [(pid, epoch, commit, 0, sorted(TPS))]


def test_end_txn_while_prepared_finishes_the_same_outcome_only(coord: TransactionCoordinator, markers: Markers) -> None:
    pid, epoch = ongoing(coord)
    coord.add_offsets("t", pid, epoch, "g")
    coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(3)})
    markers.failing = True
    with pytest.raises(ConcurrentTransactionsError, match="commit decided"):
        coord.end_txn("t", pid, epoch, True)
    with pytest.raises(ConcurrentTransactionsError):
        coord.end_txn("t", pid, epoch, True)
    markers.failing = False
    with pytest.raises(TransactionError) as err:
        coord.end_txn("t", pid, epoch, False)
    assert type(err.value) is TransactionError
    assert state(coord) == "PrepareCommit" and markers.calls == []
    assert OffsetStore(coord.store.datadir).fetch("g") == {}  # not before the markers
    coord.end_txn("t", pid, epoch, True)
    assert state(coord) == "CompleteCommit"
    assert OffsetStore(coord.store.datadir).fetch("g") == {("in", 0): 3}


def test_a_transaction_of_offsets_only_writes_no_markers(coord: TransactionCoordinator, markers: Markers) -> None:
    pid, epoch = coord.init_producer_id("t", 60_000)
    coord.add_offsets("t", pid, epoch, "g")
    coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(9, "m", 5, 2)})
    coord.end_txn("t", pid, epoch, True)
    assert markers.calls == []
    assert OffsetStore(coord.store.datadir).fetch_committed("g") == {("in", 0): CommittedOffset(9, "m", 5, 2)}


# ---------------------------------------------------------------- TxnOffsetCommit
def test_offsets_are_pending_until_commit_and_applied_once_per_group(
        coord: TransactionCoordinator, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    store = OffsetStore(coord.store.datadir)
    store.commit("g1", {("in", 0): 1, ("in", 5): 50})
    pid, epoch = ongoing(coord)
    for group in ("g1", "g2"):
        coord.add_offsets("t", pid, epoch, group)
    coord.txn_offset_commit("t", "g1", pid, epoch, {("in", 0): CommittedOffset(10), ("in", 1): CommittedOffset(11)})
    coord.txn_offset_commit("t", "g1", pid, epoch, {("in", 0): CommittedOffset(12, "later")})
    coord.txn_offset_commit("t", "g2", pid, epoch, {("in", 0): CommittedOffset(20)})
    assert store.fetch("g1") == {("in", 0): 1, ("in", 5): 50} and store.fetch("g2") == {}
    commits: list[str] = []
    real = OffsetStore.commit
    monkeypatch.setattr(OffsetStore, "commit", lambda self, group, *a, **k: (commits.append(group),
                                                                             real(self, group, *a, **k))[1])
    coord.end_txn("t", pid, epoch, True)
    assert commits == ["g1", "g2"]
    assert store.fetch("g1") == {("in", 0): 12, ("in", 1): 11, ("in", 5): 50}
    assert store.fetch_committed("g1")[("in", 0)] == CommittedOffset(12, "later", clock.now)
    assert store.fetch("g2") == {("in", 0): 20}
    coord.end_txn("t", pid, epoch, True)
    assert coord.finish_pending() == []
    assert commits == ["g1", "g2"]


def test_a_group_applied_before_a_failure_is_not_applied_again(
        coord: TransactionCoordinator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit of g1 made after the transaction's offsets reached g1 (while g2's failed) stays: the
    later commit wins, as in Kafka, where offsets are materialised once."""
    store = OffsetStore(coord.store.datadir)
    pid, epoch = ongoing(coord)
    for group in ("g1", "g2"):
        coord.add_offsets("t", pid, epoch, group)
        coord.txn_offset_commit("t", group, pid, epoch, {("in", 0): CommittedOffset(10)})
    real = OffsetStore.commit

    def g2_locked(self: OffsetStore, group: str, *args: object, **kwargs: object) -> None:
        if group == "g2":
            raise LockTimeoutError("timed out waiting for the group g2 lock")
        real(self, group, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(OffsetStore, "commit", g2_locked)
    with pytest.raises(ConcurrentTransactionsError, match="g2 lock"):
        coord.end_txn("t", pid, epoch, True)
    monkeypatch.setattr(OffsetStore, "commit", real)
    store.commit("g1", {("in", 0): 50})
    assert coord.finish_pending() == ["t"]
    assert store.fetch("g1") == {("in", 0): 50} and store.fetch("g2") == {("in", 0): 10}


def test_aborted_offsets_are_never_applied(coord: TransactionCoordinator) -> None:
    pid, epoch = ongoing(coord)
    coord.add_offsets("t", pid, epoch, "g")
    coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(10)})
    coord.end_txn("t", pid, epoch, False)
    assert OffsetStore(coord.store.datadir).fetch("g") == {}
    # the next transaction starts without them
    coord.add_offsets("t", pid, epoch, "g")
    coord.end_txn("t", pid, epoch, True)
    assert OffsetStore(coord.store.datadir).fetch("g") == {}


def test_offsets_of_a_group_not_in_the_transaction_are_refused(coord: TransactionCoordinator) -> None:
    pid, epoch = coord.init_producer_id("t", 60_000)
    with pytest.raises(TransactionError, match="AddOffsetsToTxn"):
        coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(1)})
    coord.add_partitions("t", pid, epoch, TPS)
    with pytest.raises(TransactionError):
        coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(1)})
    coord.add_offsets("t", pid, epoch, "g")
    with pytest.raises(UsageError):
        coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(-1)})
    with pytest.raises(ProducerFencedError):
        coord.txn_offset_commit("t", "g", pid, epoch + 1, {("in", 0): CommittedOffset(1)})


# ---------------------------------------------------------------- timeouts, roll-forward, expiry
def test_timed_out_transactions_are_aborted_and_their_producer_fenced(
        coord: TransactionCoordinator, markers: Markers, clock: Clock) -> None:
    pid, epoch = ongoing(coord, "old", timeout_ms=1000)
    ongoing(coord, "young", timeout_ms=5000)
    clock.now += 1000
    assert coord.abort_timed_out() == []
    clock.now += 1
    assert coord.abort_timed_out() == ["old"]
    assert markers.calls == [(pid, epoch + 1, False, 0, sorted(TPS))]
    assert state(coord, "old") == "CompleteAbort" and state(coord, "young") == "Ongoing"
    with pytest.raises(ProducerFencedError):
        coord.end_txn("old", pid, epoch, True)
    assert coord.abort_timed_out(clock.now + 10_000) == ["young"]
    assert coord.abort_timed_out(clock.now + 10_000) == []


def test_a_timed_out_abort_whose_markers_fail_is_finished_later(
        coord: TransactionCoordinator, markers: Markers, clock: Clock) -> None:
    pid, epoch = ongoing(coord, timeout_ms=1000)
    markers.failing = True
    assert coord.abort_timed_out(clock.now + 2000) == ["t"]
    assert state(coord) == "PrepareAbort"
    assert coord.finish_pending() == []
    markers.failing = False
    assert coord.finish_pending() == ["t"]
    assert markers.calls == [(pid, epoch + 1, False, 0, sorted(TPS))]
    assert state(coord) == "CompleteAbort"


def test_a_fresh_coordinator_rolls_forward_what_it_finds_prepared(datadir: DataDir, markers: Markers) -> None:
    coord = TransactionCoordinator(datadir, ProducerIds(datadir), markers)
    commits = {}
    for tid, commit in (("c", True), ("a", False)):
        pid, epoch = ongoing(coord, tid)
        coord.add_offsets(tid, pid, epoch, "g-" + tid)
        coord.txn_offset_commit(tid, "g-" + tid, pid, epoch, {("in", 0): CommittedOffset(4)})
        commits[tid] = (pid, epoch, commit)
        markers.failing = True
        with pytest.raises(ConcurrentTransactionsError):
            coord.end_txn(tid, pid, epoch, commit)
        markers.failing = False
    later = Markers()
    fresh = TransactionCoordinator(datadir, ProducerIds(datadir), later)
    assert sorted(fresh.finish_pending()) == ["a", "c"]
    assert sorted(later.calls) == sorted((p, e, c, 0, sorted(TPS)) for p, e, c in commits.values())
    assert OffsetStore(datadir).fetch("g-c") == {("in", 0): 4} and OffsetStore(datadir).fetch("g-a") == {}
    assert fresh.finish_pending() == []


def test_idle_ids_expire_but_open_transactions_do_not(datadir: DataDir, markers: Markers, clock: Clock) -> None:
    coord = TransactionCoordinator(datadir, ProducerIds(datadir), markers, id_expiration_ms=10_000, clock=clock)
    idle, _ = coord.init_producer_id("idle", 60_000)
    pid, epoch = ongoing(coord, "busy")
    done, depoch = ongoing(coord, "done")
    clock.now += 5_000
    coord.end_txn("done", done, depoch, True)
    clock.now += 5_000
    assert coord.expire_idle() == ["idle"]
    assert coord.describe("idle") is None
    assert coord.expire_idle(clock.now + 5_000) == ["done"]
    assert coord.describe("busy") is not None
    assert coord.init_producer_id("idle", 60_000)[0] != idle  # a new producer id, as after Kafka's expiry


# ---------------------------------------------------------------- operators
def test_describe_and_list(coord: TransactionCoordinator, clock: Clock) -> None:
    assert coord.describe("none") is None
    pid, epoch = ongoing(coord, "a")
    coord.add_offsets("a", pid, epoch, "g")
    other, _ = coord.init_producer_id("b", 30_000)
    info = coord.describe("a")
    assert info is not None
    assert (info.transactional_id, info.producer_id, info.producer_epoch, info.state, info.timeout_ms,
            info.start_ms, info.partitions, info.groups) == ("a", pid, epoch, "Ongoing", 60_000, clock.now,
                                                             tuple(sorted(TPS)), ("g",))
    assert [i.transactional_id for i in coord.list()] == ["a", "b"]
    assert [i.transactional_id for i in coord.list(states=["ongoing"])] == ["a"]
    assert [i.transactional_id for i in coord.list(states=["Empty", "Ongoing"], producer_ids=[other])] == ["b"]
    assert coord.list(producer_ids=[12345]) == []
    with pytest.raises(UsageError, match="unknown transaction state"):
        coord.list(states=["Running"])


def test_an_unreadable_state_file_is_one_clear_error(coord: TransactionCoordinator) -> None:
    coord.init_producer_id("t", 1000)
    Path(coord.store.path("t")).write_text('{"version": 1, "state": "Ongoing"}')
    with pytest.raises(KcliError, match="malformed"):
        coord.describe("t")
    Path(coord.store.path("t")).write_text("{")
    with pytest.raises(KcliError, match="unreadable"):
        coord.init_producer_id("t", 1000)


# ---------------------------------------------------------------- concurrency and ownership
def test_concurrent_inits_in_threads_and_processes_never_share_an_epoch(datadir: DataDir, markers: Markers) -> None:
    script = (
        "import sys\n"
        "from kcli.cluster.datadir import DataDir\n"
        "from kcli.cluster.producers import ProducerIds\n"
        "from kcli.transactions.coordinator import TransactionCoordinator\n"
        "d = DataDir(sys.argv[1])\n"
        "c = TransactionCoordinator(d, ProducerIds(d), lambda *a: None)\n"
        "print(' '.join(str(c.init_producer_id('t', 1000)[1]) for _ in range(30)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, datadir.root], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    coord = TransactionCoordinator(datadir, ProducerIds(datadir), markers)
    local: list[int] = []

    def run() -> None:
        local.extend(coord.init_producer_id("t", 1000)[1] for _ in range(30))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    epochs = local + [int(e) for p in procs for e in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(epochs) == list(range(120))


HOLD_OWNER = (
    "import sys, time\n"
    "from kcli.cluster.datadir import DataDir\n"
    "from kcli.transactions.store import TransactionStore\n"
    "lock = TransactionStore(DataDir(sys.argv[1])).owner(sys.argv[2]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def test_an_owner_that_died_leaves_its_transaction_abandoned(
        coord: TransactionCoordinator, datadir: DataDir, markers: Markers, clock: Clock) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    owner = subprocess.Popen([sys.executable, "-c", HOLD_OWNER, datadir.root, "t"], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "held\n"
        pid, epoch = ongoing(coord)
        other, _ = ongoing(coord, "u")  # no owner at all: a producer whose process is gone
        assert coord.abandoned(pid) is None  # its owner lives
        assert coord.complete_abandoned(pid) is None
        assert coord.abandoned(other) == "u"
        assert coord.abandoned(12345) is None
        clock.now += 60_001
        assert coord.abandoned(pid) == "t"  # alive but past its timeout
        clock.now -= 60_001
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        assert coord.abandoned(pid) == "t"
        assert coord.complete_abandoned(pid) == "t"
        assert markers.calls == [(pid, epoch + 1, False, 0, sorted(TPS))]
        assert state(coord) == "CompleteAbort"
        assert coord.abandoned(pid) is None
        with pytest.raises(ProducerFencedError):
            coord.add_partitions("t", pid, epoch, TPS)
    finally:
        owner.kill()
        owner.wait()


def test_an_owner_in_this_process_is_alive(coord: TransactionCoordinator) -> None:
    with coord.store.owner("t"):
        pid, _ = ongoing(coord)
        assert coord.abandoned(pid) is None
    assert coord.abandoned(pid) == "t"


def test_a_decided_transaction_is_abandoned_until_finished(coord: TransactionCoordinator, markers: Markers) -> None:
    with coord.store.owner("t"):
        pid, epoch = ongoing(coord)
        markers.failing = True
        with pytest.raises(ConcurrentTransactionsError):
            coord.end_txn("t", pid, epoch, True)
        assert coord.abandoned(pid) == "t"
        with pytest.raises(ConcurrentTransactionsError):
            coord.complete_abandoned(pid)
        markers.failing = False
        assert coord.complete_abandoned(pid) == "t"
    assert markers.calls == [(pid, epoch, True, 0, sorted(TPS))]
    assert state(coord) == "CompleteCommit"


def test_transitions_follow_kafkas_table(coord: TransactionCoordinator) -> None:
    meta = seed(coord, "t", state=TxnState.EMPTY)
    with pytest.raises(KcliError, match="illegal transition Empty -> PrepareCommit"):
        meta.transit(TxnState.PREPARE_COMMIT, 0)
    meta.transit(TxnState.ONGOING, 0)
    with pytest.raises(KcliError, match="illegal transition"):
        meta.transit(TxnState.COMPLETE_ABORT, 0)


def test_long_non_ascii_names_fit_a_file_name(datadir: DataDir) -> None:
    """The shared escaping (DataDir.safe_file_name) shortens by bytes, for transactional and group ids."""
    from kcli.cluster.datadir import safe_file_name

    assert len(safe_file_name("é" * 300, ".json.tmp").encode()) <= 255
    OffsetStore(datadir).commit("é" * 200, {("in", 0): 1})
    assert OffsetStore(datadir).fetch("é" * 200) == {("in", 0): 1}


def test_a_damaged_state_file_does_not_stop_the_others_from_being_finished(
        coord: TransactionCoordinator, markers: Markers) -> None:
    pid, epoch = ongoing(coord, "b")
    markers.failing = True
    with pytest.raises(ConcurrentTransactionsError):
        coord.end_txn("b", pid, epoch, True)
    markers.failing = False
    coord.init_producer_id("a", 1000)
    Path(coord.store.path("a")).write_text("{")  # sorts first
    with pytest.raises(KcliError, match="unreadable"):
        coord.finish_pending()
    assert state(coord, "b") == "CompleteCommit"
