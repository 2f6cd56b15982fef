"""A consumer-group member over Kafka's classic group protocol: ``consume --group`` with
``--bootstrap-server``, against kcli's brokers or any Kafka cluster.

It offers what the CLI drives on the embedded :class:`~kcli.client.embedded_group.GroupConsumer` (start,
stream, stop, close) with the same delivery contract: at least once, offsets committed only for records
the caller was given before the stream yielded ``None`` (the caller flushes its output then).  The
coordinator broker runs the membership (JoinGroup, SyncGroup); when this member is the leader it
computes the assignment with kcli's assignors, as a Java client would.  Rebalances are eager: on
REBALANCE_IN_PROGRESS the member commits what was delivered and rejoins, so the next owner of a
partition starts where this one stopped.  A member that fell out of the group (UNKNOWN_MEMBER_ID,
ILLEGAL_GENERATION) cannot commit any more; it forgets its positions and rejoins, and what it delivered
since its last commit is delivered again elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence

from kcli.client.backoff import Backoff
from kcli.client.consumer import committed_or_reset
from kcli.client.coordinators import COORDINATOR_MOVED
from kcli.client.group_reader import GroupReader, MemberSettings, TopicPartition
from kcli.client.group_session import Coordinator, Heartbeats
from kcli.client.kafka_errors import raise_for
from kcli.client.remote import RemoteTransport
from kcli.errors import BrokerError, NotFoundError, ProtocolError
from kcli.net.connection import UnreachableError
from kcli.protocol import (
    ApiKey,
    ErrorCode,
    Struct,
    assignment_bytes,
    decode_assignment,
    decode_subscription,
    encode_subscription,
)
from kcli.protocol.apis.offsets import fetched_group, offset_fetch_body
from kcli.storage.records import Record

SESSION_TIMEOUT_MS = 10_000  # kafka-python's default; Kafka's brokers accept 6000..1800000
REBALANCE_TIMEOUT_MS = 30_000  # how long the coordinator waits for members to rejoin
HEARTBEAT_INTERVAL = 3.0  # a third of the session timeout, as Kafka's clients do
JOIN_DEADLINE = 120.0  # how long one (re)join may keep meeting retriable errors
# the generation went on without us: our positions may be stale and our commits are refused
LOST = {ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION}
_JOIN_RETRY = LOST | COORDINATOR_MOVED | {ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.MEMBER_ID_REQUIRED}
COMMIT_REFUSED = LOST | {ErrorCode.REBALANCE_IN_PROGRESS}


class GroupMember(GroupReader):
    """Consume ``topics`` as a member of ``group`` at the cluster behind ``transport``."""

    commit_refused = COMMIT_REFUSED  # commit errors that mean "the group went on": rejoin, do not fail

    def __init__(
        self,
        transport: RemoteTransport,
        group: str,
        topics: Sequence[str],
        settings: MemberSettings,
        *,
        poll_interval: float = 0.1,  # between idle rounds; each round is a Fetch per partition
    ) -> None:
        super().__init__(transport, group, topics, settings, poll_interval)
        self.coordinator = Coordinator(transport.cluster, group, REBALANCE_TIMEOUT_MS / 1000 + 60, settings.client_id)
        self.heartbeats: Heartbeats | None = None
        self.member_id = ""
        self.generation = -1
        self.ends: dict[TopicPartition, int] = {}  # exit-on-eof: fixed when a partition is first assigned

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Join the group and take the first assignment."""
        self.heartbeats = Heartbeats(self.group, HEARTBEAT_INTERVAL, SESSION_TIMEOUT_MS / 1000, self.settings.client_id)
        self._join(lost=True)

    def close(self, commit: bool = True) -> None:
        """Commit what was delivered (if ``commit``), then leave the group so the others rebalance now
        rather than after our session timeout."""
        try:
            if commit:
                self.commit()
        finally:
            if self.heartbeats is not None:
                self.heartbeats.close()
            try:
                if self.member_id:
                    self._leave()
            except (BrokerError, ProtocolError):
                pass  # the coordinator drops us after the session timeout anyway
            finally:
                self.coordinator.forget()

    # ------------------------------------------------------------ consuming
    def stream(self) -> Iterator[tuple[str, int, Record] | None]:
        """Records of the assigned partitions; ``None`` means "flush your output now" (before commits,
        rejoins and waits).  With exit-on-eof it ends once the assignment reaches its fixed ends."""
        assert self.heartbeats is not None, "start() first"
        next_commit = time.monotonic() + self.settings.commit_interval
        while not self._stop:
            rejoin = self.heartbeats.needs_rejoin
            commit_due = self.settings.commit_offsets and time.monotonic() >= next_commit
            if rejoin is not None or commit_due:
                yield None
                if self._stop:
                    return
                self.commit()
                next_commit = time.monotonic() + self.settings.commit_interval
                rejoin = self.heartbeats.needs_rejoin  # the commit may have learnt that we were dropped
                if rejoin is not None:
                    self._rejoin(rejoin)
            progressed = yield from self.consumer.deliver_round(
                self.assignment, self.ends if self.settings.exit_on_eof else None, self.delivered, lambda: self._stop
            )
            if progressed is None or (yield from self._after_round(progressed)):
                return

    def _after_round(self, progressed: bool) -> Generator[None, None, bool]:
        """The end of one delivery round of :meth:`stream` (per round, never per record): returns True
        when the stream is over (exit-on-eof at the ends); a round that delivered nothing flushes and
        waits a poll interval."""
        if self.settings.exit_on_eof and self._at_ends():
            yield None
            return True
        if not progressed:
            yield None
            time.sleep(self.consumer.poll_interval)
        return False

    def _at_ends(self) -> bool:
        """Whether the assignment reached its fixed ends (exit-on-eof)."""
        return all(self.consumer.positions[tp] >= self.ends[tp] for tp in self.assignment)

    def commit(self) -> None:
        """Commit the delivered positions that moved.  A commit the group refuses (it is rebalancing
        without us, or went on without us) flags a rejoin instead of failing: those records are
        delivered again to the next owner, as at-least-once allows."""
        if not self.settings.commit_offsets or self.generation < 0:
            return
        offsets = {
            tp: self.delivered[tp]
            for tp in self.assignment
            if tp in self.delivered and self.delivered[tp] != self.committed.get(tp)
        }
        if not offsets:
            return
        by_topic: dict[str, list[dict[str, object]]] = {}
        for (topic, partition), offset in sorted(offsets.items()):
            by_topic.setdefault(topic, []).append(
                {"partition_index": partition, "committed_offset": offset, "committed_metadata": ""}
            )
        body = {
            "group_id": self.group,
            "generation_id": self.generation,
            "member_id": self.member_id,
            "topics": [{"name": t, "partitions": parts} for t, parts in by_topic.items()],
        }
        resp = self.coordinator.ask(
            ApiKey.OFFSET_COMMIT, body, lambda r: _commit_error(r, self.commit_refused), f"group {self.group!r}"
        )
        refused = {p.error_code for t in resp.topics for p in t.partitions} & self.commit_refused
        if refused:
            if self.heartbeats is not None:
                self.heartbeats.flag(min(refused))
            return
        self.committed.update(offsets)

    # ------------------------------------------------------------ membership
    def _rejoin(self, reason: int) -> None:
        if reason in COORDINATOR_MOVED:
            self.coordinator.forget()
        self._join(lost=reason not in (ErrorCode.REBALANCE_IN_PROGRESS,))

    def _join(self, lost: bool) -> None:
        """JoinGroup + SyncGroup until an assignment is in hand.  ``lost``: our positions may be stale
        (someone else may have consumed meanwhile), so every partition starts at its committed offset."""
        assert self.heartbeats is not None
        self.heartbeats.pause()
        if lost:
            self._revoke(set(self.assignment))
        deadline = time.monotonic() + JOIN_DEADLINE
        backoff = Backoff()
        while True:
            code, assignment = self._join_once()
            if code == ErrorCode.NONE:
                break
            if code not in _JOIN_RETRY or time.monotonic() >= deadline:
                raise_for(code, None, f"joining group {self.group!r}")
            if code in LOST:
                self.member_id = ""
            if code in COORDINATOR_MOVED:
                self.coordinator.forget()
            if code != ErrorCode.MEMBER_ID_REQUIRED:  # that one only hands us our id: join again at once
                backoff.sleep()
        self._take(assignment)
        self.heartbeats.follow(self.coordinator.address, self.generation, self.member_id)

    def _join_once(self) -> tuple[int, set[TopicPartition]]:
        """One JoinGroup and SyncGroup: (error code, our partitions)."""
        subscription = encode_subscription({"topics": self.topics}, version=0)
        try:
            joined = self.coordinator.send(
                ApiKey.JOIN_GROUP,
                {
                    "group_id": self.group,
                    "session_timeout_ms": SESSION_TIMEOUT_MS,
                    "rebalance_timeout_ms": REBALANCE_TIMEOUT_MS,
                    "member_id": self.member_id,
                    "protocol_type": "consumer",
                    "protocols": [{"name": self.settings.assignor, "metadata": subscription}],
                },
            )
            if joined.error_code == ErrorCode.MEMBER_ID_REQUIRED:
                self.member_id = joined.member_id
            if joined.error_code != ErrorCode.NONE:
                return joined.error_code, set()
            self.member_id, self.generation = joined.member_id, joined.generation_id
            plan = self._plan(joined.members) if joined.leader == joined.member_id else []
            synced = self.coordinator.send(
                ApiKey.SYNC_GROUP,
                {
                    "group_id": self.group,
                    "generation_id": self.generation,
                    "member_id": self.member_id,
                    "protocol_type": "consumer",  # v5+: the coordinator checks them against the group's
                    "protocol_name": joined.protocol_name,
                    "assignments": plan,
                },
            )
        except UnreachableError:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, set()
        if synced.error_code != ErrorCode.NONE:
            return synced.error_code, set()
        try:
            given = decode_assignment(synced.assignment).assigned_partitions
        except ProtocolError as exc:
            raise ProtocolError(f"group {self.group!r}: the leader's assignment is malformed: {exc}") from None
        return ErrorCode.NONE, {(tp.topic, p) for tp in given if tp.topic in self.topics for p in tp.partitions}

    def _plan(self, members: list[Struct]) -> list[dict[str, object]]:
        """As the leader: every member's partitions, from their subscriptions and the partition counts."""
        subscriptions: dict[str, list[str]] = {}
        for m in members:
            try:
                subscriptions[m.member_id] = list(decode_subscription(m.metadata).topics)
            except ProtocolError:
                subscriptions[m.member_id] = []  # a subscription we cannot read gets no partitions
        counts: dict[str, int] = {}
        for topic in sorted({t for topics in subscriptions.values() for t in topics}):
            try:
                counts[topic] = self.transport.partition_count(topic)
            except NotFoundError:
                pass  # deleted, or not created yet: nothing to assign
        return [
            {"member_id": member, "assignment": assignment_bytes(partitions)}
            for member, partitions in sorted(self.assign(counts, subscriptions).items())
        ]

    def _take(self, assignment: set[TopicPartition]) -> None:
        """Keep the positions of partitions we still own; start new ones at their committed offsets."""
        self._revoke(self.assignment - assignment)
        fresh = sorted(assignment - self.assignment)
        committed = self._fetch_committed(fresh) if fresh else {}
        for tp in fresh:
            start = committed_or_reset(self.transport, tp[0], tp[1], committed.get(tp), self.settings.reset,
                                       self.settings.isolation)
            self.consumer.positions[tp] = start
            self.delivered[tp] = start
            self.committed[tp] = committed.get(tp)
            if self.settings.exit_on_eof and tp not in self.ends:
                self.ends[tp] = self.transport.list_offset(tp[0], tp[1], "latest", self.settings.isolation)
        self.assignment = assignment

    def _revoke(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._forget(tp)
        self.assignment -= partitions

    def _fetch_committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        wanted: dict[str, list[int]] = {}
        for topic, partition in partitions:
            wanted.setdefault(topic, []).append(partition)
        topics = [{"name": t, "partition_indexes": ps} for t, ps in wanted.items()]
        body = offset_fetch_body(self.group, topics)
        resp = self.coordinator.ask(
            ApiKey.OFFSET_FETCH, body, lambda r: fetched_group(r, self.group).error_code, f"group {self.group!r}"
        )
        out = {}
        for t in fetched_group(resp, self.group).topics:
            for p in t.partitions:
                raise_for(p.error_code, None, f"committed offset of {t.name}-{p.partition_index}")
                if p.committed_offset >= 0:
                    out[(t.name, p.partition_index)] = p.committed_offset
        return out

    def _leave(self) -> None:
        body = {
            "group_id": self.group,
            "member_id": self.member_id,
            "members": [{"member_id": self.member_id, "reason": "the consumer is closing"}],  # v5+
        }
        self.coordinator.send(ApiKey.LEAVE_GROUP, body)
        self.member_id, self.generation = "", -1


def _commit_error(resp: Struct, refused: set[ErrorCode]) -> int:
    """The first partition error that is not a refusal by the group (those are handled by the caller)."""
    for t in resp.topics:
        for p in t.partitions:
            if p.error_code != ErrorCode.NONE and p.error_code not in refused:
                return int(p.error_code)
    return ErrorCode.NONE
