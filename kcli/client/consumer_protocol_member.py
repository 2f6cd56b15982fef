"""A consumer-group member over the KIP-848 "consumer" protocol: ``consume --group --group-protocol
consumer`` with ``--bootstrap-server``, against kcli's brokers or any Kafka 4.x cluster.

The coordinator computes the assignment; the member only heartbeats (ConsumerGroupHeartbeat) and
reconciles: when an answer carries a new assignment, it commits what it delivered of the partitions it
loses, lets them go, starts the new ones at their committed offsets, and reports what it owns in the
next heartbeat, sent at once -- so a partition moves to its next owner as soon as this one is done with
it, with no group-wide stop.  Commits carry the member epoch (OffsetCommit v9).  A member the
coordinator fenced (FENCED_MEMBER_EPOCH) or forgot (UNKNOWN_MEMBER_ID) drops its partitions without
committing and joins again, as in the classic protocol.

Heartbeats run on the caller's thread, between rounds of delivery (the stream yields often), which keeps
all group work on one thread; the coordinator's session timeout (45 s by default) is far longer than a
round.  Assignments name topics by id; the ids are learnt from ConsumerGroupDescribe, which names them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from kcli.client.coordinators import COORDINATOR_MOVED
from kcli.client.group_member import COMMIT_REFUSED, JOIN_DEADLINE, REBALANCE_TIMEOUT_MS, GroupMember
from kcli.client.group_reader import MemberSettings, TopicPartition
from kcli.client.kafka_errors import raise_for
from kcli.client.remote import RemoteTransport
from kcli.errors import BrokerError, ProtocolError
from kcli.net.connection import UnreachableError
from kcli.protocol import ApiKey, ErrorCode, Struct
from kcli.storage.records import Record

LEAVE_EPOCH = -1
FIRST_INTERVAL = 0.2  # until the coordinator says how often to heartbeat
# with exit-on-eof, an assignment that stays empty for this many heartbeats ends the run: the group has
# more members than partitions for us (a partition still being released comes within a heartbeat or two)
IDLE_BEATS = 3
# the coordinator does not know this member (any more) at its epoch: rejoin with epoch 0
FENCED = {ErrorCode.FENCED_MEMBER_EPOCH, ErrorCode.UNKNOWN_MEMBER_ID}


class ConsumerProtocolMember(GroupMember):
    """Consume ``topics`` as a KIP-848 member of ``group``; ``generation`` holds the member epoch."""

    commit_refused = COMMIT_REFUSED | FENCED | {ErrorCode.STALE_MEMBER_EPOCH}

    def __init__(self, transport: RemoteTransport, group: str, topics: Sequence[str], settings: MemberSettings) -> None:
        super().__init__(transport, group, topics, settings)
        self.member_id = str(uuid.uuid4())  # KIP-1082: the member names itself
        self.generation = 0
        self.interval = FIRST_INTERVAL
        self.next_beat = 0.0
        self.names: dict[bytes, str] = {}  # topic id -> name
        self.ids: dict[str, bytes] = {}
        self.report = False  # owned partitions changed: tell the coordinator in the next heartbeat
        self.idle_beats = 0  # heartbeats in a row that left us with no partitions

    def start(self) -> None:
        """Join: heartbeat until the coordinator gives a member epoch."""
        deadline = time.monotonic() + JOIN_DEADLINE
        while self.generation <= 0:
            self._heartbeat()
            if time.monotonic() >= deadline:
                raise_for(ErrorCode.REBALANCE_IN_PROGRESS, None, f"joining group {self.group!r}")
            if self.generation <= 0:
                time.sleep(FIRST_INTERVAL)

    def close(self, commit: bool = True) -> None:
        try:
            if commit:
                self.commit()
        finally:
            try:
                if self.generation > 0:
                    self.coordinator.send(ApiKey.CONSUMER_GROUP_HEARTBEAT, self._body(LEAVE_EPOCH))
            except (BrokerError, ProtocolError):
                pass  # the coordinator drops us after the session timeout anyway
            finally:
                self.generation = -1
                self.coordinator.forget()

    def stream(self) -> Iterator[tuple[str, int, Record] | None]:
        next_commit = time.monotonic() + self.settings.commit_interval
        while not self._stop:
            beat_due = self.report or time.monotonic() >= self.next_beat
            commit_due = self.settings.commit_offsets and time.monotonic() >= next_commit
            if beat_due or commit_due:
                yield None
                if self._stop:
                    return
                if commit_due:
                    self.commit()
                    next_commit = time.monotonic() + self.settings.commit_interval
                self._heartbeat()
            progressed = yield from self.consumer.deliver_round(
                self.assignment, self.ends if self.settings.exit_on_eof else None, self.delivered, lambda: self._stop
            )
            if progressed is None or (yield from self._after_round(progressed)):
                return

    def _at_ends(self) -> bool:
        """An empty assignment is at its end only after a few heartbeats left it empty."""
        return super()._at_ends() if self.assignment else self.idle_beats >= IDLE_BEATS

    def commit(self) -> None:
        """As the classic member commits, with the member epoch; a refusal means our epoch moved on
        (the next heartbeat tells us how)."""
        if self.generation > 0:
            super().commit()

    # ------------------------------------------------------------ heartbeats

    def _body(self, epoch: int) -> dict[str, Any]:
        body: dict[str, Any] = {"group_id": self.group, "member_id": self.member_id, "member_epoch": epoch}
        if epoch == 0:  # a join says everything
            body.update(rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, subscribed_topic_names=self.topics, topic_partitions=[])
        elif self.report:
            owned: dict[str, list[int]] = {}
            for topic, p in sorted(self.assignment):
                owned.setdefault(topic, []).append(p)
            body["topic_partitions"] = [{"topic_id": self.ids[t], "partitions": ps} for t, ps in owned.items()]
        return body

    def _heartbeat(self) -> None:
        reporting = self.report
        try:
            resp = self.coordinator.send(ApiKey.CONSUMER_GROUP_HEARTBEAT, self._body(self.generation))
        except UnreachableError:
            resp = Struct(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, error_message=None)
        code = resp.error_code
        self.next_beat = time.monotonic() + self.interval
        if code in COORDINATOR_MOVED:
            self.coordinator.forget()
            self.next_beat = time.monotonic() + FIRST_INTERVAL
            return
        if code in FENCED:
            self._revoke(set(self.assignment))  # someone else may own them now: no commit
            self.generation, self.report = 0, False
            self.next_beat = 0.0
            return
        raise_for(code, resp.error_message, f"group {self.group!r}")
        self.generation = resp.member_epoch
        self.interval = resp.heartbeat_interval_ms / 1000 or FIRST_INTERVAL
        self.next_beat = time.monotonic() + self.interval
        if reporting:
            self.report = False
        if resp.assignment is not None:
            self._reconcile(resp.assignment.topic_partitions)
        self.idle_beats = 0 if self.assignment else self.idle_beats + 1

    def _reconcile(self, given: list[Struct]) -> None:
        """Move to the assignment the coordinator gave: commit and let go of lost partitions, start new
        ones; then report what we own."""
        if any(t.topic_id not in self.names for t in given):
            self._learn_topic_ids()
        target: set[TopicPartition] = {
            (self.names[t.topic_id], p) for t in given if t.topic_id in self.names for p in t.partitions
        }
        target = {tp for tp in target if tp[0] in self.topics}
        if target == self.assignment:
            return
        if self.assignment - target:
            self.commit()
        self._take(target)
        self.report = True

    def _learn_topic_ids(self) -> None:
        """Topic ids and names from ConsumerGroupDescribe of our own group (its assignments name both)."""
        resp = self.coordinator.send(ApiKey.CONSUMER_GROUP_DESCRIBE, {"group_ids": [self.group]})
        for g in resp.groups:
            raise_for(g.error_code, g.error_message, f"group {self.group!r}")
            for m in g.members:
                for t in m.assignment.topic_partitions + m.target_assignment.topic_partitions:
                    self.names[t.topic_id] = t.topic_name
                    self.ids[t.topic_name] = t.topic_id
