"""The transaction coordinator killed with SIGKILL, then taken over by a fresh one.

A child process (forked, so it starts in microseconds) runs the coordinator over a real data dir and
dies by SIGKILL -- at every crash point in turn (before, halfway through and after each state save,
each marker and each offsets write, as tests/faults/crashpoint.py does for the CLI), or at seeded random
moments while it runs transactions in a loop.  A fresh coordinator then finish_pending()s (and aborts what
the dead producer left open), and the test checks that every transaction is complete everywhere or
nowhere: committed ones have their COMMIT marker on every partition and their offsets in the group
(written once), aborted or undecided ones have no COMMIT marker and no offsets, and no producer of an
older epoch can go on.

The marker writer is a stand-in that appends one line per partition to a file (like
PartitionWriter.write_marker, writing a marker again is harmless: the checks read sets).
The random moments are seeded (``KCLI_FAULT_SEED``), so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kcli.cluster.datadir import DataDir
from kcli.cluster.producers import ProducerIds
from kcli.errors import InvalidProducerIdMappingError, ProducerFencedError
from kcli.groups import offsets as offsets_module
from kcli.groups.layout import GroupPaths
from kcli.groups.offsets import CommittedOffset, OffsetStore
from kcli.storage.fileio import write_file
from kcli.transactions import store as store_module
from kcli.transactions.coordinator import TransactionCoordinator
from kcli.transactions.state import TxnState
from kcli.transactions.store import TransactionStore

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("KCLI_FAULT_SEED", "1877"))
FIRST = [("out", p) for p in range(3)]
SECOND = [("out2", p) for p in range(3)]
G1 = {("in", 0): CommittedOffset(10), ("in", 1): CommittedOffset(11)}
G2 = {("in", 0): CommittedOffset(20)}
FAR = 10**15  # a "now" past every timeout


class Crash:
    """Where the child dies: at the ``n``-th crash point it reaches, ``before`` the step, ``torn`` (a
    file's temp copy written, not renamed) or ``after`` it."""

    armed: Crash | None = None  # set in the child only

    def __init__(self, n: int, mode: str) -> None:
        self.n, self.mode, self.seen = n, mode, 0

    @classmethod
    def point(cls, step: Callable[[], None], torn: Callable[[], None] | None = None) -> None:
        crash = cls.armed
        if crash is None:
            step()
            return
        crash.seen += 1
        if crash.seen != crash.n:
            step()
            return
        if crash.mode == "torn" and torn is not None:
            torn()
        elif crash.mode == "after":
            step()
        os.kill(os.getpid(), signal.SIGKILL)


class World:
    """The data dir and the logs the dead child and the test share (``active``: the one the crash points
    log to)."""

    active: World | None = None

    def __init__(self, root: Path) -> None:
        self.datadir = DataDir(str(root / "data"), lock_timeout=10)
        self.marker_log = root / "markers.log"
        self.write_log = root / "offset-writes.log"
        self.progress = root / "progress.log"

    def markers(self) -> list[tuple[int, int, str, str, int]]:
        if not self.marker_log.exists():
            return []
        out = []
        for line in self.marker_log.read_text().splitlines():
            pid, epoch, kind, topic, partition = line.split()
            out.append((int(pid), int(epoch), kind, topic, int(partition)))
        return out

    def outcomes(self, topic: str) -> dict[int, set[str]]:
        """Per partition of ``topic``: the kinds of marker it got."""
        found: dict[int, set[str]] = {}
        for _, _, kind, t, p in self.markers():
            if t == topic:
                found.setdefault(p, set()).add(kind)
        return found

    def writes(self, group: str) -> int:
        path = GroupPaths(self.datadir, group).offsets_file
        if not self.write_log.exists():
            return 0
        return self.write_log.read_text().splitlines().count(path)

    def done(self) -> list[str]:
        return self.progress.read_text().split() if self.progress.exists() else []

    def note(self, step: str) -> None:
        with open(self.progress, "a") as fh:
            fh.write(step + "\n")

    def write_markers(self, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                      partitions: list[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            line = f"{producer_id} {epoch} {'C' if commit else 'A'} {topic} {partition}\n"

            def append(line: str = line) -> None:
                with open(self.marker_log, "a") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())

            Crash.point(append)

    def coordinator(self) -> TransactionCoordinator:
        return TransactionCoordinator(self.datadir, ProducerIds(self.datadir), self.write_markers)


@pytest.fixture(autouse=True)
def crash_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash points around every state save and offsets write; offsets writes are logged."""
    state_write = store_module.atomic_write
    offsets_write = offsets_module.atomic_write

    def save_state(path: str, data: bytes) -> None:
        Crash.point(lambda: state_write(path, data), lambda: write_file(path + ".tmp", data, sync=True))

    def save_offsets(path: str, data: bytes) -> None:
        def step() -> None:
            offsets_write(path, data)
            assert World.active is not None
            with open(World.active.write_log, "a") as fh:
                fh.write(path + "\n")

        Crash.point(step, lambda: write_file(path + ".tmp", data, sync=True))

    monkeypatch.setattr(store_module, "atomic_write", save_state)
    monkeypatch.setattr(offsets_module, "atomic_write", save_offsets)


def new_world(path: Path) -> World:
    path.mkdir()
    World.active = World(path)
    return World.active


def in_child(body: Callable[[], None], crash: Crash | None = None) -> int | None:
    """Run ``body`` in a forked child; the signal that ended it (None when it returned)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            Crash.armed = crash
            body()
        except BaseException:  # noqa: B036 -- anything but SIGKILL is a failure the parent must see
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    assert os.WEXITSTATUS(status) == 0, "the child failed (see its traceback)"
    return None


def two_transactions(w: World) -> None:
    """Commit a transaction with offsets of two groups, open a second, and fence it by a new producer."""
    coord = w.coordinator()
    pid, epoch = coord.init_producer_id("t", 60_000)
    w.note(f"init:{pid}:{epoch}")
    coord.add_partitions("t", pid, epoch, FIRST)
    for group in ("g1", "g2"):
        coord.add_offsets("t", pid, epoch, group)
    coord.txn_offset_commit("t", "g1", pid, epoch, G1)
    coord.txn_offset_commit("t", "g2", pid, epoch, G2)
    coord.end_txn("t", pid, epoch, True)
    w.note("committed")
    coord.add_partitions("t", pid, epoch, SECOND)
    coord.add_offsets("t", pid, epoch, "g1")
    coord.txn_offset_commit("t", "g1", pid, epoch, {("in", 0): CommittedOffset(99)})
    w.note("second-open")
    coord.init_producer_id("t", 60_000)
    w.note("fenced")


def recover(w: World) -> TransactionCoordinator:
    """What the next process does: finish what was decided, abort what the dead producer left open."""
    coord = w.coordinator()
    coord.finish_pending()
    coord.abort_timed_out(FAR)
    return coord


def check_two_transactions(w: World, decided_before: TxnState | None) -> str:
    coord = recover(w)
    done = w.done()
    info = coord.describe("t")
    if info is None:
        assert w.markers() == [] and not done
        return "nothing"
    assert not TxnState(info.state).prepared, info
    assert coord.finish_pending() == [] and coord.abort_timed_out(FAR) == []
    store = OffsetStore(w.datadir)
    first = w.outcomes("out")
    committed = "committed" in done or decided_before in (TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT)
    if committed:  # decided: complete everywhere, offsets applied once
        assert first == {p: {"C"} for p in range(3)}, first
        assert store.fetch("g1") == {tp: c.offset for tp, c in G1.items()}
        assert store.fetch("g2") == {tp: c.offset for tp, c in G2.items()}
        assert (w.writes("g1"), w.writes("g2")) == (1, 1)
    else:  # undecided: nowhere
        assert all(kinds == {"A"} for kinds in first.values()) and len(first) in (0, 3), first
        assert store.fetch("g1") == {} and store.fetch("g2") == {}
        assert (w.writes("g1"), w.writes("g2")) == (0, 0)
    second = w.outcomes("out2")
    assert all(kinds == {"A"} for kinds in second.values()), second
    assert not second or len(second) == 3, second  # aborted on every partition or on none
    # the producers the child had are fenced by the next one
    pid, epoch = (int(x) for x in done[0].split(":")[1:]) if done else (info.producer_id, info.producer_epoch)
    new_pid, new_epoch = coord.init_producer_id("t", 60_000)
    assert all(e < new_epoch for p, e, *_ in w.markers() if p == new_pid)
    with pytest.raises((ProducerFencedError, InvalidProducerIdMappingError)):
        coord.add_partitions("t", pid, epoch, FIRST)
    return "committed" if committed else "not committed"


@pytest.mark.parametrize("mode", ["before", "torn", "after"])
def test_a_coordinator_killed_at_every_point_is_completed_by_the_next(tmp_path: Path, mode: str) -> None:
    outcomes: dict[str, int] = {}
    n = 0
    while True:
        n += 1
        w = new_world(tmp_path / f"{mode}-{n}")
        sig = in_child(lambda w=w: two_transactions(w), Crash(n, mode))
        if sig is None:
            break
        assert sig == signal.SIGKILL
        before = TransactionStore(w.datadir).load("t")
        result = check_two_transactions(w, None if before is None else before.state)
        outcomes[result] = outcomes.get(result, 0) + 1
    print(f"{mode}: {n - 1} crash points; outcomes {outcomes}")
    assert n > 15 and outcomes.get("committed") and outcomes.get("not committed")


def loop_transactions(w: World, round_: int) -> None:
    """Transactions one after another until killed: every third one aborted, each with the group's offset
    (round * 10000 + i + 1) and three partitions of a topic of its own.  The first InitProducerId fences
    whatever the last round's producer left open."""
    coord = w.coordinator()
    pid, epoch = coord.init_producer_id("t", 60_000)
    for i in range(100_000):
        topic = f"r{round_}-{i}"
        coord.add_partitions("t", pid, epoch, [(topic, p) for p in range(3)])
        coord.add_offsets("t", pid, epoch, "g")
        coord.txn_offset_commit("t", "g", pid, epoch, {("in", 0): CommittedOffset(round_ * 10_000 + i + 1)})
        commit = i % 3 != 2
        coord.end_txn("t", pid, epoch, commit)
        w.note(f"{topic}:{'C' if commit else 'A'}")


def kill_later(body: Callable[[], None], delay: float) -> None:
    """Run ``body`` in a forked child and SIGKILL it from here after ``delay`` seconds."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(1)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the loop ended before the kill"


def test_seeded_kills_of_a_busy_coordinator_leave_every_transaction_whole(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    w = new_world(tmp_path / "w")
    rounds = 15
    for round_ in range(rounds):
        kill_later(lambda r=round_: loop_transactions(w, r), rng.uniform(0.01, 0.3))
        w.coordinator().finish_pending()  # what a broker's maintenance or the next request does
    coord = recover(w)
    assert coord.finish_pending() == [] and coord.abort_timed_out(FAR) == []
    requested = dict(line.split(":") for line in w.done())
    topics = {t for _, _, _, t, _ in w.markers()}
    committed = []
    for topic in topics:
        kinds = w.outcomes(topic)
        assert len(kinds) == 3 and len(set(map(frozenset, kinds.values()))) == 1, (topic, kinds)
        (kind,) = kinds[0]
        round_, i = (int(x) for x in topic[1:].split("-"))
        assert kind == requested.get(topic, kind), (topic, kind)
        assert kind == "A" or i % 3 != 2, topic  # never a commit that was not asked for
        if kind == "C":
            committed.append(round_ * 10_000 + i + 1)
    assert set(requested) <= topics
    assert OffsetStore(w.datadir).fetch("g") == {("in", 0): max(committed)}
    print(f"{rounds} kills: {len(topics)} transactions, {len(committed)} committed, "
          f"{len(topics) - len(requested)} unacknowledged")
