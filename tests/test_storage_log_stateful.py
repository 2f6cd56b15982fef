"""A stateful property test of the partition log: random sequences of appends, rolls, truncations, clean
and crashed reopens, torn tails and retention, checked after every step against a plain model (the list
of batches that should be there) and against the files read independently (support.segments).

Kept fast and repeatable for CI: derandomized, no example database, a bounded number of short runs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from support.segments import check_segments, segment_files

from kcli.storage import compression, records
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog

T0 = 1_600_000_000_000
TICK = 1000  # ms between batches: time retention has something to choose from
CONFIG = LogConfig(segment_bytes=700, index_interval_bytes=150, retention_ms=-1, retention_bytes=-1)

record_count = st.integers(min_value=1, max_value=4)
value_size = st.integers(min_value=0, max_value=90)
header_lists = st.lists(st.tuples(st.sampled_from(["h", "trace", "ü"]), st.none() | st.binary(max_size=6)),
                        max_size=2)
codecs = st.sampled_from([compression.NONE, compression.NONE, compression.GZIP, compression.LZ4])


@dataclasses.dataclass
class Batch:
    base: int
    records: list[tuple]  # (key, value, headers, timestamp) as appended
    size: int

    @property
    def end(self) -> int:
        return self.base + len(self.records)

    @property
    def max_timestamp(self) -> int:
        return max(r[3] for r in self.records)


class PartitionLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="kcli-log-model-")
        self.log = self._open()
        self.batches: list[Batch] = []  # the model: what the log must hold, oldest first
        self.start = 0
        self.end = 0
        self.clock = T0
        self.serial = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _open(self, expect_clean: bool = True) -> PartitionLog:
        log = PartitionLog(self.directory, CONFIG)
        problems = log.open_for_append(None)
        if expect_clean:
            assert not [p for p in problems if "truncated" in p or "deleted" in p], problems
        self.problems = problems
        return log

    def _drop_from(self, offset: int) -> None:
        """Model a cut at batch granularity: the batch holding ``offset`` and all after it go."""
        kept = [b for b in self.batches if b.end <= offset]
        if len(kept) < len(self.batches):
            self.end = self.batches[len(kept)].base
        self.batches = kept

    # ---------------------------------------------------------------- rules

    @rule(n=record_count, size=value_size, headers=header_lists, keyed=st.booleans(), codec=codecs)
    def append(self, n, size, headers, keyed, codec) -> None:
        self.serial += 1
        recs = [
            (f"k{self.serial}".encode() if keyed else None,
             f"{self.serial}.{i}:".encode().ljust(size, b"v"), list(headers), self.clock + i)
            for i in range(n)
        ]
        self.clock += TICK
        data = records.encode_batch(recs, 0, codec)
        info = self.log.append(data)
        assert (info.base_offset, info.last_offset) == (self.end, self.end + n - 1)
        self.batches.append(Batch(self.end, recs, len(data)))
        self.end += n

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(data=st.data())
    def truncate_to(self, data) -> None:
        offset = data.draw(st.integers(min_value=self.start, max_value=self.end + 2), label="offset")
        self.log.truncate_to(offset)
        if offset > self.end:  # past the end: emptied and restarted there
            self.batches, self.start, self.end = [], offset, offset
        else:
            self._drop_from(offset)

    @rule(clean=st.booleans())
    def reopen(self, clean: bool) -> None:
        if clean:
            self.log.release()
        else:
            self.log.close()  # as a kill -9 leaves it: no state file, nothing flushed on purpose
        self.log = self._open()

    @rule(data=st.data())
    def torn_tail(self, data) -> None:
        """A crash mid-write: the last segment file loses some of its tail bytes, then the log reopens."""
        self.log.close()
        last = segment_files(self.directory)[-1]
        size = os.path.getsize(last)
        cut = data.draw(st.integers(min_value=1, max_value=max(1, size)), label="cut")
        new_size = max(0, size - cut)
        os.truncate(last, new_size)
        base = int(os.path.basename(last)[:20])
        position, boundaries = 0, {0}
        for b in [b for b in self.batches if b.base >= base]:
            if position + b.size > new_size:
                self._drop_from(b.base)
                break
            position += b.size
            boundaries.add(position)
        self.log = self._open(expect_clean=False)
        # a cut inside a batch is found and reported; a cut between batches leaves nothing to report
        truncated = any("truncated" in p.reason for p in self.problems)
        assert truncated == (new_size not in boundaries), (new_size, boundaries, self.problems)

    @rule(by_time=st.booleans(), data=st.data())
    def retention(self, by_time: bool, data) -> None:
        bases = self.log.segment_bases
        sizes = [os.path.getsize(p) for p in segment_files(self.directory)]
        assert len(sizes) == len(bases)
        if by_time:
            limit = data.draw(st.integers(min_value=0, max_value=self.clock - T0 + TICK), label="retention.ms")
            config = dataclasses.replace(CONFIG, retention_ms=limit)
        else:
            limit = data.draw(st.integers(min_value=0, max_value=sum(sizes) + 1), label="retention.bytes")
            config = dataclasses.replace(CONFIG, retention_bytes=limit)
        # what should go, from the model: whole segments, oldest first, never the active one
        expected, total = [], sum(sizes)
        for i, base in enumerate(bases[:-1]):
            held = [b for b in self.batches if base <= b.base < bases[i + 1]]
            newest = max((b.max_timestamp for b in held), default=-1)
            too_old = by_time and self.clock - newest > limit
            too_big = not by_time and total - sizes[i] >= limit
            if not (too_old or too_big):
                break
            expected.append(base)
            total -= sizes[i]
        self.log.config = config
        try:
            deleted = self.log.delete_old_segments(now=self.clock)
        finally:
            self.log.config = CONFIG
        assert deleted == expected
        if deleted:
            self.start = self.log.segment_bases[0]
            self.batches = [b for b in self.batches if b.base >= self.start]

    # ---------------------------------------------------------------- invariants

    @invariant()
    def offsets_match_the_model(self) -> None:
        assert self.log.log_start_offset == self.start
        assert self.log.log_end_offset == self.end
        assert self.batches == [] or self.batches[0].base == self.start
        assert all(a.end == b.base for a, b in zip(self.batches, self.batches[1:], strict=False))

    @invariant()
    def what_is_read_back_is_what_was_appended(self) -> None:
        got, offset = [], self.start
        while offset < self.end:
            data = self.log.read(offset, 1 << 16)
            assert data, f"nothing to read at {offset}, below the log end {self.end}"
            for pos, header in records.iter_batches(data):
                for r in records.decode_records(data, pos, header):
                    got.append((r.offset, r.key, r.value, list(r.headers), r.timestamp))
                offset = header.next_offset
        expected = [(b.base + i, *rec) for b in self.batches for i, rec in enumerate(b.records)]
        assert [g for g in got if g[0] >= self.start] == expected

    @invariant()
    def files_agree_with_themselves(self) -> None:
        """Segments named after their first offsets, batches contiguous with valid CRCs, and index and time
        index entries pointing at the right batches -- read from the files, not through the log."""
        end = check_segments(self.directory)  # 0 when no segment holds a batch
        assert end == (self.end if self.batches else 0)
        bases = self.log.segment_bases
        assert bases == sorted(set(bases)) and bases[0] == self.start


PartitionLogMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_partition_log_model = PartitionLogMachine.TestCase
