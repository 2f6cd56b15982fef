"""A stateful property test of idempotent producer state: random batches from a few producers -- the next
sequence, retries of recent and old batches, gaps, epoch bumps and fenced (older) epochs, sequences that
wrap past 2**31-1 -- with write sessions ending cleanly (snapshot) or killed (state rebuilt from the log's
tail) in between.  Every batch must get exactly the answer Kafka's idempotence rules give:

- a producer the partition does not know yet: stored, whatever its sequence (Kafka accepts a first
  sequence as it comes, like for a producer whose state expired);
- an epoch older than the stored one: refused as fenced;
- a newer epoch: stored if it starts at sequence 0, else refused (out of order);
- the same epoch: a batch equal (first and last sequence) to one of the producer's last 5 is a duplicate,
  answered with that batch's offset and not stored again; the next sequence is stored; anything else is
  refused (out of order).

Producers also open transactions (transactional batches) and end them with COMMIT or ABORT markers: a
non-transactional batch of a producer with an open transaction is refused (INVALID_TXN_STATE), and the
log's last stable offset and aborted transactions -- for the writer, for a reader in another process,
and after every kind of session end -- are those of the model.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kcli.errors import SequenceError, TransactionError
from kcli.storage import records
from kcli.storage.config import LogConfig
from kcli.storage.control import control_batch
from kcli.storage.log import PartitionLog
from kcli.storage.producer_snapshot import list_snapshots
from kcli.storage.producer_state import RECENT
from kcli.storage.txnindex import AbortedTxn

SEQ_LIMIT = 2**31  # sequences are int32 and wrap to 0 after 2**31 - 1
PIDS = (1000, 1001, 1002)


@dataclasses.dataclass
class Stored:
    first: int
    last: int
    offset: int


@dataclasses.dataclass
class Producer:
    epoch: int
    batches: list[Stored]  # every batch stored in this epoch, oldest first
    txn_first: int | None = None  # first offset of its open transaction

    @property
    def next_seq(self) -> int:
        return (self.batches[-1].last + 1) % SEQ_LIMIT


class ProducerStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="kcli-producers-model-")
        self.log = PartitionLog(self.directory, LogConfig(segment_bytes=4000))
        assert self.log.open_for_append(None) == []
        self.model: dict[int, Producer] = {}
        self.aborted: list[AbortedTxn] = []
        self.values = 0  # records stored, which is also the log end offset

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # ---------------------------------------------------------------- the rules, stated once for the model

    def expected(self, pid: int, epoch: int, first: int, last: int, txn: bool) -> tuple[str, int | None]:
        known = self.model.get(pid)
        if known is None:
            return "stored", None
        if known.txn_first is not None and not txn:
            return "txn state", None
        if epoch < known.epoch:
            return "fenced", None
        if epoch > known.epoch:
            return ("stored", None) if first == 0 else ("out of order", None)
        for b in known.batches[-RECENT:]:
            if (b.first, b.last) == (first, last):
                return "duplicate", b.offset
        return ("stored", None) if first == known.next_seq else ("out of order", None)

    def send(self, pid: int, epoch: int, first: int, count: int, txn: bool = False) -> None:
        batch = records.encode_batch(
            [(None, b"v%d" % i, [], 1000 + i) for i in range(count)],
            producer_id=pid, producer_epoch=epoch, base_sequence=first, transactional=txn,
        )
        header = records.parse_header(batch)
        last = (first + count - 1) % SEQ_LIMIT
        assert header.last_sequence == last
        want, offset = self.expected(pid, epoch, first, last, txn)
        try:
            duplicate_of = self.log.producers.check(header)
        except SequenceError as exc:
            got = "fenced" if exc.fenced else "out of order"
            assert got == want, (got, want, exc)
            return
        except TransactionError:
            assert want == "txn state"
            return
        if duplicate_of is not None:
            assert (want, offset) == ("duplicate", duplicate_of)
            return
        assert want == "stored", (want, pid, epoch, first, last)
        info = self.log.append(batch)
        known = self.model.get(pid)
        if known is None or known.epoch != epoch:
            known = self.model[pid] = Producer(epoch, [])
        known.batches.append(Stored(first, last, info.base_offset))
        if txn and known.txn_first is None:
            known.txn_first = info.base_offset
        self.values += count

    # ---------------------------------------------------------------- rules

    @rule(pid=st.sampled_from(PIDS), count=st.integers(min_value=1, max_value=3),
          first=st.integers(min_value=0, max_value=5) | st.just(SEQ_LIMIT - 2))
    def a_new_producer(self, pid: int, count: int, first: int) -> None:
        """A producer id this partition has not stored (or any sequence at all from a known one's view)."""
        known = self.model.get(pid)
        self.send(pid, 0 if known is None else known.epoch, first, count)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), count=st.integers(min_value=1, max_value=3))
    def the_next_batch(self, data, count: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)), label="pid")
        self.send(pid, self.model[pid].epoch, self.model[pid].next_seq, count)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def a_retry(self, data) -> None:
        """A batch sent again: one of the last 5 (a duplicate) or an older one (out of order by then)."""
        pid = data.draw(st.sampled_from(sorted(self.model)), label="pid")
        old = data.draw(st.sampled_from(self.model[pid].batches), label="batch")
        self.send(pid, self.model[pid].epoch, old.first, (old.last - old.first) % SEQ_LIMIT + 1)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), gap=st.integers(min_value=1, max_value=3) | st.integers(min_value=-3, max_value=-1))
    def a_gap(self, data, gap: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)), label="pid")
        self.send(pid, self.model[pid].epoch, (self.model[pid].next_seq + gap) % SEQ_LIMIT, 1)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), first=st.sampled_from([0, 0, 1, 7]), step=st.sampled_from([1, 2, -1]))
    def another_epoch(self, data, first: int, step: int) -> None:
        """A bumped epoch (from 0, or wrongly not from 0) or an older, fenced one."""
        pid = data.draw(st.sampled_from(sorted(self.model)), label="pid")
        epoch = self.model[pid].epoch + step
        if epoch >= 0:
            self.send(pid, epoch, first, 1)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), count=st.integers(min_value=1, max_value=3))
    def a_transactional_batch(self, data, count: int) -> None:
        """Opens the producer's transaction, or adds to it."""
        pid = data.draw(st.sampled_from(sorted(self.model)), label="pid")
        self.send(pid, self.model[pid].epoch, self.model[pid].next_seq, count, txn=True)

    @precondition(lambda self: any(p.txn_first is not None for p in self.model.values()))
    @rule(data=st.data(), commit=st.booleans())
    def a_marker(self, data, commit: bool) -> None:
        pid = data.draw(st.sampled_from(sorted(p for p, m in self.model.items() if m.txn_first is not None)))
        known = self.model[pid]
        assert self.log.producers.check_marker(pid, known.epoch)
        offset = self.log.append(control_batch(pid, known.epoch, commit)).base_offset
        if not commit:
            others = [m.txn_first for p, m in self.model.items() if p != pid and m.txn_first is not None]
            self.aborted.append(AbortedTxn(pid, known.txn_first, offset, min(others, default=offset + 1)))
        known.txn_first = None
        assert not self.log.producers.check_marker(pid, known.epoch)  # a marker again: not needed
        self.values += 1

    @rule(clean=st.booleans())
    def a_new_write_session(self, clean: bool) -> None:
        """The session ends -- cleanly, leaving a snapshot at the log end, or killed, leaving older
        snapshots (of earlier sessions and rolls) and the batches after them -- and the next one loads the
        state."""
        if clean:
            self.log.release()
        else:
            self.log.close()
        self.log = PartitionLog(self.directory, LogConfig(segment_bytes=4000))
        assert self.log.open_for_append(None) == []

    @invariant()
    def the_log_holds_each_stored_batch_once(self) -> None:
        assert self.log.log_end_offset == self.values

    @invariant()
    def the_stable_offset_and_aborted_transactions_are_the_models(self) -> None:
        lso = min((p.txn_first for p in self.model.values() if p.txn_first is not None), default=self.values)
        assert self.log.last_stable_offset() == lso
        reader = PartitionLog(self.directory)  # a reader in another process
        try:
            assert reader.last_stable_offset() == lso
        finally:
            reader.close()
        assert self.log.aborted_transactions(0, self.values) == self.aborted


ProducerStateMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_producer_state_model = ProducerStateMachine.TestCase


def test_a_snapshot_below_the_log_end_is_continued_from_the_log(tmp_path) -> None:
    """Written by a session that then wrote more and was killed: the next session takes the snapshot and
    replays the batches after it."""
    log = PartitionLog(str(tmp_path), LogConfig())
    log.open_for_append(None)
    log.release()
    assert list_snapshots(str(tmp_path)) == [0]
    log = PartitionLog(str(tmp_path), LogConfig())
    log.open_for_append(None)
    batch = records.encode_batch([(None, b"x", [], 1)], producer_id=7, producer_epoch=0, base_sequence=0)
    log.append(batch)
    log.close()  # killed: no snapshot at 1
    assert list_snapshots(str(tmp_path)) == [0]
    log = PartitionLog(str(tmp_path), LogConfig())
    log.open_for_append(None)
    assert log.producers.check(records.parse_header(batch)) == 0  # known from the replay: a duplicate
    with pytest.raises(SequenceError):
        log.producers.check(records.parse_header(records.encode_batch(
            [(None, b"y", [], 1)], producer_id=7, producer_epoch=0, base_sequence=5)))
    log.close()
