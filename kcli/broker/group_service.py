"""A broker's group service: the coordinator, its file mirror, the offsets store and the ticker thread.

The group state machine (:mod:`kcli.broker.coordinator`) only reacts to calls; this module gives it what
it needs to run inside a broker: a thread that applies session and rebalance timeouts and lets go of
groups another broker now coordinates, the offsets store shared with embedded consumers
(:class:`kcli.groups.offsets.OffsetStore`), and the started-once-per-broker instance the wire handlers
share (:func:`service`).  Apart from the handlers because it outlives every request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from kcli.broker.answers import answer_for
from kcli.broker.context import BrokerContext, made_once
from kcli.broker.coordinator import Group, GroupCoordinator
from kcli.broker.coordinator_choice import coordinator_of
from kcli.broker.group_mirror import CONSUMER, FileMirror, subscribed_topics
from kcli.errors import GroupNotEmptyError, KcliError, NotFoundError, UsageError
from kcli.groups.layout import GroupPaths, check_group_id
from kcli.groups.membership import live_members, require_no_live_members
from kcli.groups.offsets import CommittedOffset, OffsetStore, TopicPartition
from kcli.protocol import ErrorCode
from kcli.protocol.error_codes import code_for

log = logging.getLogger("kcli.broker")

TICK = 0.1  # how often timeouts are applied
OWNERSHIP_CHECK = 1.0  # how often kept groups are checked to still be ours
WAIT_SLICE = 0.2  # parked requests notice a broker shutdown this fast
# A bad group id is Kafka's INVALID_GROUP_ID wherever the group API meets it (check_group_id raises the
# library's UsageError, which elsewhere is INVALID_REQUEST).
GROUP_ID_CODES: Mapping[type[BaseException], ErrorCode] = {UsageError: ErrorCode.INVALID_GROUP_ID}
# Kafka answers a commit from outside group management (generation -1) to a group with live members as
# from an unknown member; the store refuses it with GroupNotEmptyError.
_COMMIT_CODES: Mapping[type[BaseException], ErrorCode] = {GroupNotEmptyError: ErrorCode.UNKNOWN_MEMBER_ID}
# OffsetDelete: the store's NotFoundError is about the group
_OFFSET_DELETE_CODES: Mapping[type[BaseException], ErrorCode] = {NotFoundError: ErrorCode.GROUP_ID_NOT_FOUND}


class GroupService:
    """One broker's coordinator with its mirror, the offsets store and the ticker applying timeouts."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self.store = OffsetStore(ctx.datadir)
        self.coordinator = GroupCoordinator(
            FileMirror(ctx.datadir, ctx.broker_id),
            initial_rebalance_delay_ms=ctx.settings.group_initial_rebalance_delay_ms,
        )
        self._thread = threading.Thread(target=self._run, name="group-coordinator", daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return bool(self.ctx.partitions.stopping)

    def owns(self, group_id: str) -> bool:
        return coordinator_of(self.ctx, group_id) == self.ctx.broker_id

    def check(self, group_id: str) -> ErrorCode:
        """NONE when this broker coordinates ``group_id``, else the error to answer with."""
        try:
            check_group_id(group_id)
        except UsageError as exc:
            return code_for(exc, GROUP_ID_CODES)
        if self.stopping:
            return ErrorCode.NOT_COORDINATOR
        if not self.owns(group_id):
            self.coordinator.unload(group_id)
            return ErrorCode.NOT_COORDINATOR
        return ErrorCode.NONE

    def commit(
        self, group_id: str, generation: int, member_id: str, offsets: dict[tuple[str, int], CommittedOffset]
    ) -> ErrorCode:
        # a commit from outside group management must not write behind live embedded members' backs
        precondition = (
            require_no_live_members(self.ctx.datadir, group_id, "commit offsets of")
            if generation < 0
            else None
        )
        try:
            return self.coordinator.commit(
                group_id,
                generation,
                member_id,
                lambda: self.store.commit(group_id, offsets, precondition=precondition),
            )
        except (KcliError, OSError) as exc:
            return answer_for(exc, f"group {group_id!r}: committing offsets", _COMMIT_CODES)

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """Kafka's OffsetDelete: the group's error (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP for live members
        of a protocol type other than "consumer") and, when NONE, each partition's code: an unknown
        partition is UNKNOWN_TOPIC_OR_PARTITION, a topic a live member subscribes to
        GROUP_SUBSCRIBED_TO_TOPIC, and the rest have their committed offsets deleted (NONE also where
        none was committed).  Members are the coordinator's and the embedded ones in the data directory."""
        topics = self.ctx.partitions.refresh().topics
        paths = GroupPaths(self.ctx.datadir, group_id)
        codes: dict[TopicPartition, ErrorCode] = {}

        def embedded_topics() -> set[str]:
            return {t for m in live_members(self.ctx.datadir, group_id) for t in m.topics}

        def remove(group: Group | None) -> ErrorCode:
            members = list(group.members.values()) if group is not None else []
            if group is not None and members and group.protocol_type != CONSUMER:
                return ErrorCode.NON_EMPTY_GROUP
            subscribed = embedded_topics()
            if group is not None:
                subscribed.update(t for m in members for t in subscribed_topics(group, m))
            for topic, partition in partitions:
                meta = topics.get(topic)
                if meta is None or not 0 <= partition < len(meta.partitions):
                    codes[(topic, partition)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                elif topic in subscribed:
                    codes[(topic, partition)] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    codes[(topic, partition)] = ErrorCode.NONE
            gone = [tp for tp, code in codes.items() if code == ErrorCode.NONE]

            def check() -> None:  # under the group lock: the group is there, no embedded member came
                if group is None and not paths.exists():
                    raise NotFoundError(f"consumer group {group_id!r} does not exist")
                if embedded_topics() & {topic for topic, _ in gone}:
                    raise GroupNotEmptyError(f"consumer group {group_id!r}: a member joined meanwhile")

            self.store.delete_offsets(group_id, gone, precondition=check)
            return ErrorCode.NONE

        try:
            return self.coordinator.delete_offsets(group_id, remove), codes
        except (KcliError, OSError) as exc:
            return answer_for(exc, f"group {group_id!r}: deleting offsets", _OFFSET_DELETE_CODES), {}

    def _run(self) -> None:
        next_check = time.monotonic() + OWNERSHIP_CHECK
        while not self.stopping:
            time.sleep(TICK)
            try:
                self.coordinator.tick()
                if time.monotonic() >= next_check:
                    for group_id in self.coordinator.listing():
                        if not self.owns(group_id):
                            log.info("group %r is now coordinated by another broker", group_id)
                            self.coordinator.unload(group_id)
                    next_check = time.monotonic() + OWNERSHIP_CHECK
            except Exception:
                log.exception("group coordinator tick failed")
        self.coordinator.close()


def service(ctx: BrokerContext) -> GroupService:
    """The broker's group service, started on the first group request."""
    return made_once(ctx, "group", GroupService)


class Answer:
    """Receives a coordinator callback; the request's thread waits for it."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.result: Any = None

    def __call__(self, result: Any) -> None:
        self.result = result
        self._done.set()

    def wait(self, svc: GroupService, limit: float) -> Any:
        deadline = time.monotonic() + limit
        while not self._done.wait(WAIT_SLICE):
            if svc.stopping or time.monotonic() >= deadline:
                return None
        return self.result
