"""An embedded group member that consumes: membership + ownership + committed offsets around a Consumer.

Delivery is at-least-once.  Offsets are committed only for records the caller has been given *and has
written out*: the stream yields ``None`` before every commit and before giving partitions up, and the
caller must flush its output when it sees ``None`` (the same signal Consumer.stream uses before a wait).
A partition changes hands only through commit -> release ownership lock -> next owner takes the lock ->
reads the committed offset, so a graceful rebalance delivers nothing twice; after a crash the next owner
starts at the dead member's last commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from kcli.client.consumer import committed_or_reset
from kcli.client.group_reader import GroupReader, MemberSettings, TopicPartition
from kcli.cluster.datadir import DataDir
from kcli.errors import NotFoundError
from kcli.groups.membership import MemberInfo, Membership
from kcli.groups.offsets import OffsetStore
from kcli.groups.ownership import Ownership
from kcli.storage.records import Record

if TYPE_CHECKING:
    from kcli.client.transport import Transport  # a Protocol: for annotations only


class GroupConsumer(GroupReader):
    """Consume ``topics`` as a member of ``group`` on a data directory (no broker)."""

    def __init__(
        self,
        transport: Transport,
        datadir: DataDir,
        group: str,
        topics: Sequence[str],
        settings: MemberSettings,
        *,
        check_interval: float = 0.2,
        poll_interval: float = 0.05,
    ) -> None:
        super().__init__(transport, group, topics, settings, poll_interval)
        self.check_interval = check_interval
        self.membership = Membership(datadir, group, topics, settings.assignor, settings.client_id)
        self.ownership = Ownership(self.membership.paths, self.membership.member_id)
        self.store = OffsetStore(datadir)
        self.ends: dict[TopicPartition, int] | None = None

    @property
    def member_id(self) -> str:
        return self.membership.member_id

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Check the topics, fix the end offsets (exit-on-eof), join and take the first assignment."""
        counts = {t: self.transport.partition_count(t) for t in self.topics}
        if self.settings.exit_on_eof:
            self.ends = {
                (t, p): self.transport.list_offset(t, p, "latest", self.settings.isolation)
                for t, n in counts.items()
                for p in range(n)
            }
        self.membership.join()
        self.rebalance()

    def close(self, commit: bool = True) -> None:
        """Commit what was delivered (if ``commit``), give up every partition and leave the group."""
        try:
            if commit:
                self._commit(self.ownership.owned)
        finally:
            self.ownership.release_all()
            self.membership.leave()

    # ------------------------------------------------------------ consuming
    def stream(self) -> Iterator[tuple[str, int, Record] | None]:
        """Records of the owned partitions; ``None`` means "flush your output now" (before commits,
        rebalances and waits).  With exit-on-eof it ends once the assignment reaches the fixed ends."""
        now = time.monotonic()
        next_check = now + self.check_interval
        next_commit = now + self.settings.commit_interval
        while not self._stop:
            now = time.monotonic()
            check_due = now >= next_check
            commit_due = self.settings.commit_offsets and now >= next_commit
            if check_due or commit_due:
                yield None
                if self._stop:
                    return
                if check_due:
                    self.rebalance()
                    next_check = time.monotonic() + self.check_interval
                if commit_due:
                    self.commit()
                    next_commit = time.monotonic() + self.settings.commit_interval
            progressed = yield from self.consumer.deliver_round(
                self.ownership.owned, self.ends, self.delivered, lambda: self._stop
            )
            if progressed is None:
                return
            if self.ends is not None and self._reached_ends():
                yield None
                return
            if not progressed:
                yield None
                time.sleep(self.consumer.poll_interval)

    def _reached_ends(self) -> bool:
        assert self.ends is not None
        owned = self.ownership.owned
        return all(tp in owned and self.consumer.positions[tp] >= self.ends[tp] for tp in self.assignment)

    # ------------------------------------------------------------ group work
    def rebalance(self) -> None:
        """Re-read membership; hand back partitions no longer ours (after committing them) and take the
        ones newly ours whose previous owner has let go, starting at their committed offsets."""
        members = self.membership.refresh()
        target = set(
            self.assign(self._partition_counts(members), {m.member_id: m.topics for m in members}).get(
                self.member_id, []
            )
        )
        revoked = self.ownership.owned - target
        if revoked:
            self._commit(revoked)
            for tp in revoked:
                self.ownership.release(tp)
                self._forget(tp)
        self.assignment = target
        taken = [tp for tp in sorted(target - self.ownership.owned) if self.ownership.try_acquire(tp)]
        if taken:
            committed = self.store.fetch(self.group)  # read only after taking ownership
            for tp in taken:
                start = committed_or_reset(self.transport, tp[0], tp[1], committed.get(tp), self.settings.reset,
                                           self.settings.isolation)
                self.consumer.positions[tp] = start
                self.delivered[tp] = start
                self.committed[tp] = committed.get(tp)

    def _partition_counts(self, members: list[MemberInfo]) -> dict[str, int]:
        if self.ends is not None:  # exit-on-eof: the partitions as they were at start
            counts: dict[str, int] = {}
            for t, p in self.ends:
                counts[t] = max(counts.get(t, 0), p + 1)
            return counts
        self.transport.refresh()
        counts = {}
        for topic in sorted({t for m in members for t in m.topics}):
            try:
                counts[topic] = self.transport.partition_count(topic)
            except NotFoundError:
                pass  # deleted, or not created yet: nothing to assign
        return counts

    def commit(self) -> None:
        """Commit the delivered positions of every owned partition (only those that moved)."""
        self._commit(self.ownership.owned)

    def _commit(self, partitions: set[TopicPartition]) -> None:
        if not self.settings.commit_offsets:
            return
        offsets = {
            tp: self.delivered[tp]
            for tp in partitions
            if tp in self.delivered and self.delivered[tp] != self.committed.get(tp)
        }
        if offsets:
            self.store.commit(self.group, offsets)
            self.committed.update(offsets)
