"""KIP-848 consumer groups in the broker: ConsumerGroupHeartbeat and ConsumerGroupDescribe, and the
consumer-group side of OffsetCommit, OffsetFetch, ListGroups, DescribeGroups and JoinGroup.

The state machine is :mod:`kcli.groups.consumer_group`; this module gives it a home in the broker:

- **Storage.**  A group's whole state (epochs, members, assignments, target) is rewritten to
  ``consumer.json`` in the group's folder on every change, so the broker that coordinates the group
  next (after a failover, or this one after kill -9) continues it: members keep their epochs and
  partitions and go on heartbeating, as with Kafka's ``__consumer_offsets`` records.  Committed offsets
  are the same offsets store classic groups use, so ``kcli lag`` and ``group describe`` work alike.
- **The view.**  Live members are mirrored as member files this broker holds (as classic groups are,
  kcli.groups.membership.CoordinatedMembers), with ``state.json`` saying the group epoch, state and
  assignor.
- **Classic and consumer groups coexist** as in Kafka 4.x with ``group.consumer.migration.policy``
  upgrading only empty groups: a consumer-protocol member joining a classic group with no members
  (offsets only) turns it into a consumer group; one with live classic (or embedded kcli) members gets
  GROUP_ID_NOT_FOUND, as Kafka answers when it cannot upgrade; a classic JoinGroup to a consumer group
  with members gets INCONSISTENT_GROUP_PROTOCOL, and to an empty one turns it back into a classic group.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from kcli.broker.answers import answer_for
from kcli.broker.context import BrokerContext, made_once
from kcli.broker.group_service import GroupService, service
from kcli.cluster import configs as cfg
from kcli.cluster.metadata import ClusterState, TopicMeta
from kcli.errors import KcliError
from kcli.groups.consumer_group import (
    ConsumerGroup,
    ConsumerGroups,
    Heartbeat,
    HeartbeatAnswer,
    HeartbeatError,
    TopicPartition,
    read_group,
    state_path,
)
from kcli.groups.layout import GroupPaths
from kcli.groups.membership import CoordinatedMembers, GroupState, MemberInfo, live_members
from kcli.groups.offsets import CommittedOffset, OffsetStore
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.api import NO_OPERATIONS
from kcli.storage.checkpoint import atomic_write

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]
CONSUMER_TYPE = "consumer"  # ListGroups v5's type, and the protocol type Kafka lists such groups with
TICK = 0.2
OWNERSHIP_CHECK = 1.0
# ConsumerGroupDescribe's authorized operations without an authorizer (as DescribeGroups answers)
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)


class ConsumerGroupService:
    """One broker's KIP-848 groups: the state machine, its storage and mirror, and a ticker thread."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.groups = ConsumerGroups(
            lambda group_id: self.group_config(group_id, cfg.SESSION_TIMEOUT),
            tuple(settings.group_consumer_assignors),
            on_change=self._store,
            load=self._load,
        )
        self._mirrors: dict[str, CoordinatedMembers] = {}
        self._thread = threading.Thread(target=self._run, name="consumer-groups", daemon=True)
        self._thread.start()

    def group_config(self, group_id: str, name: str, state: ClusterState | None = None) -> int:
        """A group's effective ``consumer.*`` config (its own, else this broker's ``group.consumer.*``)."""
        return cfg.group_configs(state or self.ctx.partitions.state, group_id, self.ctx.broker_id)[name]

    @property
    def classic(self) -> GroupService:
        return service(self.ctx)

    # ------------------------------------------------------------ storage and mirror

    def _load(self, group_id: str) -> ConsumerGroup | None:
        """The stored group, its members shown as this broker's (a new coordinator takes over the view)."""
        group = read_group(GroupPaths(self.ctx.datadir, group_id))
        if group is not None:
            self._publish(group)
        return group

    def _store(self, group: ConsumerGroup) -> None:
        paths = GroupPaths(self.ctx.datadir, group.group_id)
        try:
            if not paths.exists():
                paths.ensure()
            atomic_write(state_path(paths), json.dumps(group.to_json()).encode())
        except (KcliError, OSError) as exc:
            log.warning("consumer group %r: cannot store its state: %s", group.group_id, exc)
        self._publish(group)

    def _publish(self, group: ConsumerGroup) -> None:
        state = GroupState(group.epoch, tuple(sorted(group.members)), self.ctx.broker_id, group.state, group.assignor)
        try:
            self._mirror(group.group_id).sync([self._member_info(group, m) for m in group.members], state)
        except (KcliError, OSError) as exc:
            log.warning("consumer group %r: cannot mirror its members: %s", group.group_id, exc)

    def _mirror(self, group_id: str) -> CoordinatedMembers:
        files = self._mirrors.get(group_id)
        if files is None:
            files = self._mirrors[group_id] = CoordinatedMembers(self.ctx.datadir, group_id, self.ctx.broker_id)
        return files

    def _member_info(self, group: ConsumerGroup, member_id: str) -> MemberInfo:
        m = group.members[member_id]
        return MemberInfo(
            m.member_id,
            m.client_id,
            m.client_host,
            os.getpid(),
            m.subscribed,
            group.assignor,
            0,
            self.ctx.broker_id,
            tuple(sorted(m.assigned)),
        )

    def _unload(self, group_id: str) -> None:
        self.groups.unload(group_id)
        files = self._mirrors.pop(group_id, None)
        if files is not None:
            files.release()

    def _run(self) -> None:
        next_check = time.monotonic() + OWNERSHIP_CHECK
        while not self.ctx.partitions.stopping:
            time.sleep(TICK)
            try:
                self.groups.tick()
                if time.monotonic() >= next_check:
                    for group_id in list(self.groups.groups):
                        if not self.classic.owns(group_id):
                            log.info("consumer group %r is now coordinated by another broker", group_id)
                            self._unload(group_id)
                    next_check = time.monotonic() + OWNERSHIP_CHECK
            except Exception:
                log.exception("consumer group tick failed")
        for group_id in list(self._mirrors):
            self._unload(group_id)

    # ------------------------------------------------------------ coexistence with classic groups

    def _classic_members(self, group_id: str) -> bool:
        """Whether the group has live classic members: kept by the classic coordinator, or embedded."""
        kept = self.classic.coordinator.describe(group_id)
        if kept is not None and kept.members:
            return True
        return any(m.coordinator is None for m in live_members(self.ctx.datadir, group_id))

    def classic_join(self, group_id: str) -> ErrorCode:
        """A classic JoinGroup: refused while the group is a consumer group with members; an empty
        consumer group becomes a classic group (its offsets stay)."""
        with self.groups.lock:
            group = self.groups.get(group_id)
            if group is None:
                return ErrorCode.NONE
            if group.members:
                return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
            self._unload(group_id)
            try:
                os.unlink(state_path(GroupPaths(self.ctx.datadir, group_id)))
            except FileNotFoundError:
                pass
            return ErrorCode.NONE

    # ------------------------------------------------------------ requests

    def heartbeat(self, hb: Heartbeat, topics: Mapping[str, TopicMeta]) -> HeartbeatAnswer:
        counts = {name: len(meta.partitions) for name, meta in topics.items()}
        with self.groups.lock:
            if hb.member_epoch == 0 and hb.group_id and not self.groups.has_members(hb.group_id):
                if self._classic_members(hb.group_id):
                    raise HeartbeatError(
                        ErrorCode.GROUP_ID_NOT_FOUND,
                        f"Cannot upgrade classic group {hb.group_id} to consumer group: it has live "
                        "classic members (kcli upgrades only empty classic groups).",
                    )
                self.classic.coordinator.unload(hb.group_id)  # an empty classic group becomes ours
            return self.groups.heartbeat(hb, counts)

    def commit(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        version: int,
        offsets: dict[TopicPartition, CommittedOffset],
    ) -> ErrorCode | None:
        """OffsetCommit to a consumer group: the member and epoch check, then the write, under the
        groups' lock (no epoch change slips in between).  None when ``group_id`` is no consumer group."""
        with self.groups.lock:
            if self.groups.get(group_id) is None:
                return None
            code = self.groups.check_commit(group_id, member_id, epoch, version)
            if code == ErrorCode.NONE:
                try:
                    OffsetStore(self.ctx.datadir).commit(group_id, offsets)
                except (KcliError, OSError) as exc:
                    return answer_for(exc, f"group {group_id!r}: committing offsets")
            return code


def consumer_service(ctx: BrokerContext) -> ConsumerGroupService:
    return made_once(ctx, "consumer-groups", ConsumerGroupService)


def _ids(topics: Mapping[str, TopicMeta]) -> tuple[dict[str, bytes], dict[bytes, str]]:
    by_name = {name: bytes.fromhex(meta.topic_id) for name, meta in topics.items()}
    return by_name, {tid: name for name, tid in by_name.items()}


def _by_topic(partitions: set[TopicPartition]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for topic, p in sorted(partitions):
        out.setdefault(topic, []).append(p)
    return out


# ---------------------------------------------------------------- ConsumerGroupHeartbeat


def consumer_group_heartbeat(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    cgs = consumer_service(ctx)

    def error(code: ErrorCode, message: str) -> Body:
        return {"throttle_time_ms": 0, "error_code": code, "error_message": message}

    if req.group_id:
        code = cgs.classic.check(req.group_id)
        if code != ErrorCode.NONE:
            return error(code, f"this broker does not coordinate group {req.group_id}")
    state = ctx.partitions.refresh()
    topics = state.topics
    by_name, by_id = _ids(topics)
    owned = None
    if req.topic_partitions is not None:
        owned = {(by_id[t.topic_id], p) for t in req.topic_partitions if t.topic_id in by_id for p in t.partitions}
    hb = Heartbeat(
        req.group_id,
        req.member_id,
        req.member_epoch,
        header.client_id or "",
        "",
        req.instance_id,
        req.rack_id,
        req.rebalance_timeout_ms,
        None if req.subscribed_topic_names is None else list(req.subscribed_topic_names),
        req.subscribed_topic_regex,
        req.server_assignor,
        owned,
    )
    try:
        answer = cgs.heartbeat(hb, topics)
    except HeartbeatError as exc:
        return error(exc.code, str(exc))
    assignment = None
    if answer.assignment is not None:
        assignment = {
            "topic_partitions": [
                {"topic_id": by_name[t], "partitions": ps} for t, ps in _by_topic(answer.assignment).items()
            ]
        }
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "member_id": answer.member_id,
        "member_epoch": answer.member_epoch,
        "heartbeat_interval_ms": cgs.group_config(req.group_id, cfg.HEARTBEAT_INTERVAL, state),
        "assignment": assignment,
    }


# ---------------------------------------------------------------- ConsumerGroupDescribe


def consumer_group_describe(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    cgs = consumer_service(ctx)
    by_name, _ = _ids(ctx.partitions.refresh().topics)

    def assignment(partitions: set[TopicPartition]) -> Body:
        return {
            "topic_partitions": [
                {"topic_id": by_name.get(t, bytes(16)), "topic_name": t, "partitions": ps}
                for t, ps in _by_topic(partitions).items()
            ]
        }

    out = []
    for group_id in req.group_ids:
        described: dict[str, Any] = {"group_id": group_id}
        code = cgs.classic.check(group_id)
        group = None
        if code == ErrorCode.NONE:
            try:
                group = cgs.groups.get(group_id)
            except (KcliError, OSError) as exc:
                code, described["error_message"] = ErrorCode.COORDINATOR_NOT_AVAILABLE, str(exc)
            if group is None and code == ErrorCode.NONE:
                code = ErrorCode.GROUP_ID_NOT_FOUND
                described["error_message"] = f"Group {group_id} is not a consumer group."
        described["error_code"] = code
        if group is not None:
            described.update(
                group_state=group.state,
                group_epoch=group.epoch,
                assignment_epoch=group.assignment_epoch,
                assignor_name=group.assignor,
                members=[
                    {
                        "member_id": m.member_id,
                        "instance_id": m.instance_id,
                        "rack_id": m.rack_id,
                        "member_epoch": m.epoch,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "subscribed_topic_names": list(m.subscribed),
                        "subscribed_topic_regex": m.regex,
                        "assignment": assignment(m.assigned),
                        "target_assignment": assignment(group.target.get(m.member_id, set())),
                    }
                    for m in group.members.values()
                ],
                authorized_operations=GROUP_OPERATIONS if req.include_authorized_operations else NO_OPERATIONS,
            )
        out.append(described)
    return {"throttle_time_ms": 0, "groups": out}


# ---------------------------------------------------------------- hooks for the classic group APIs


def consumer_group(ctx: BrokerContext, group_id: str) -> ConsumerGroup | None:
    """The consumer group ``group_id`` if it is one (ListGroups, DescribeGroups)."""
    try:
        return consumer_service(ctx).groups.get(group_id)
    except (KcliError, OSError):
        return None


def commit(
    ctx: BrokerContext,
    group_id: str,
    member_id: str,
    epoch: int,
    version: int,
    offsets: dict[TopicPartition, CommittedOffset],
) -> ErrorCode | None:
    """OffsetCommit's check and write for a consumer group (None: ``group_id`` is no consumer group)."""
    return consumer_service(ctx).commit(group_id, member_id, epoch, version, offsets)


def check_fetch(ctx: BrokerContext, group_id: str, member_id: str | None, epoch: int) -> ErrorCode:
    """OffsetFetch v9's member check: an admin fetch (no member id, epoch -1) and fetches for groups
    that are no consumer groups pass."""
    if (member_id is None and epoch < 0) or consumer_group(ctx, group_id) is None:
        return ErrorCode.NONE
    return consumer_service(ctx).groups.check_fetch(group_id, member_id, epoch)


def classic_join(ctx: BrokerContext, group_id: str) -> ErrorCode:
    """JoinGroup's check (see :meth:`ConsumerGroupService.classic_join`)."""
    return consumer_service(ctx).classic_join(group_id)
