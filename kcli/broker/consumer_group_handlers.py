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
- **Classic and consumer groups coexist** as in Kafka 4.x, converted online as
  ``group.consumer.migration.policy`` allows (bidirectional by default; upgrade, downgrade, disabled):
  a consumer-protocol member joining a live classic group of "consumer" protocol type converts it
  (upgrade); its classic members stay, and their JoinGroup, SyncGroup, Heartbeat and LeaveGroup are
  answered here from the consumer group (the server assignor decides their partitions).  When the last
  consumer-protocol member leaves and classic members remain, the group goes back to the classic
  coordinator (downgrade), rebalancing at once.  An empty classic group is always taken, and a classic
  JoinGroup to an empty consumer group turns it back into a classic group (its offsets stay).  Where the
  policy forbids the conversion, a consumer-protocol member joining a live classic group gets
  GROUP_ID_NOT_FOUND, and with the policy ``disabled`` a classic JoinGroup to a live consumer group
  gets INCONSISTENT_GROUP_PROTOCOL.  Groups with live embedded kcli members are never converted.
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
from kcli.broker.authorize import authorize, authorized_operations, require
from kcli.broker.context import BrokerContext, made_once
from kcli.broker.coordinator import STABLE, Group, JoinResult, SyncResult
from kcli.broker.coordinator import Member as ClassicMember
from kcli.broker.group_service import GroupService, service
from kcli.cluster import configs as cfg
from kcli.cluster.metadata import ClusterState, TopicMeta
from kcli.errors import KcliError, ProtocolError
from kcli.groups.consumer_group import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicSeed,
    ConsumerGroup,
    ConsumerGroups,
    Heartbeat,
    HeartbeatAnswer,
    HeartbeatError,
    TopicPartition,
    from_classic,
    partitions_by_topic,
    read_group,
    state_path,
)
from kcli.groups.layout import GroupPaths
from kcli.groups.membership import CoordinatedMembers, GroupState, MemberInfo, live_members
from kcli.groups.offsets import CommittedOffset, OffsetStore
from kcli.protocol import ErrorCode, RequestHeader, Struct, assignment_bytes
from kcli.protocol.api import NO_OPERATIONS
from kcli.security.acl import Operation, ResourceType
from kcli.storage.checkpoint import atomic_write

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]
CONSUMER_TYPE = "consumer"  # ListGroups v5's type, and the protocol type Kafka lists such groups with
TICK = 0.2
OWNERSHIP_CHECK = 1.0


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
            migration_policy=settings.group_consumer_migration_policy,
            on_downgrade=self._downgrade,
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

    def _forget(self, group_id: str) -> None:
        """Stop keeping a consumer group that becomes a classic group (its offsets stay)."""
        self._unload(group_id)
        try:
            os.unlink(state_path(GroupPaths(self.ctx.datadir, group_id)))
        except FileNotFoundError:
            pass

    def _upgrade(self, group_id: str, counts: Mapping[str, int]) -> None:
        """A consumer-protocol member joins ``group_id``, which has no consumer-group members: an empty
        classic group is simply taken over; a live one is converted when the policy allows it and it
        uses the "consumer" protocol type (Kafka's validateOnlineUpgrade), else GROUP_ID_NOT_FOUND."""
        coordinator = self.classic.coordinator
        with coordinator.lock:
            kept = coordinator.groups.get(group_id)
            if kept is not None and kept.members:
                why = None
                if not self.groups.upgrades:
                    why = "the online upgrade is disabled (group.consumer.migration.policy)"
                elif kept.protocol_type != CONSUMER_PROTOCOL_TYPE:
                    why = f"it uses protocol type {kept.protocol_type!r}, not the consumer protocol"
                else:
                    seeds = [
                        ClassicSeed(
                            m.member_id,
                            m.client_id,
                            m.client_host,
                            int(m.session_timeout * 1000),
                            int(m.rebalance_timeout * 1000),
                            list(m.protocols),
                            kept.protocol_name,
                            m.assignment,
                        )
                        for m in kept.members.values()
                    ]
                    try:
                        group = from_classic(group_id, kept.generation, seeds, counts)
                    except ProtocolError as exc:
                        why = f"its members' consumer protocol bytes are malformed: {exc}"
                if why is not None:
                    raise HeartbeatError(
                        ErrorCode.GROUP_ID_NOT_FOUND,
                        f"Cannot upgrade classic group {group_id} to consumer group: {why}.",
                    )
                log.info("classic group %r becomes a consumer group (%d classic members)", group_id, len(seeds))
                coordinator.unload(group_id, ErrorCode.REBALANCE_IN_PROGRESS)  # waiting members rejoin
                self.groups.adopt(group)
                return
        if any(m.coordinator is None for m in live_members(self.ctx.datadir, group_id)):
            raise HeartbeatError(
                ErrorCode.GROUP_ID_NOT_FOUND,
                f"Cannot upgrade classic group {group_id} to consumer group: it has live embedded kcli members.",
            )
        coordinator.unload(group_id)  # an empty classic group becomes ours

    def _downgrade(self, group: ConsumerGroup) -> None:
        """The consumer group's members all speak the classic protocol now: hand it to the classic
        coordinator at its epoch as generation (Kafka's ClassicGroup.fromConsumerGroup)."""
        log.info("consumer group %r becomes a classic group (%d classic members)", group.group_id, len(group.members))
        self._forget(group.group_id)
        classic = Group(group.group_id, generation=group.epoch, state=STABLE, protocol_type=CONSUMER_PROTOCOL_TYPE)
        for m in group.members.values():
            assert m.classic is not None
            classic.members[m.member_id] = ClassicMember(
                m.member_id,
                m.client_id,
                m.client_host,
                m.classic.session_timeout_ms / 1000,
                m.rebalance_timeout_ms / 1000,
                CONSUMER_PROTOCOL_TYPE,
                list(m.classic.protocols),
                int(time.time() * 1000),
                assignment=assignment_bytes(sorted(m.assigned)),
            )
        self.classic.coordinator.adopt(classic)

    def classic_join(
        self,
        group_id: str,
        member_id: str,
        client_id: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
    ) -> JoinResult | None:
        """A classic JoinGroup: answered here while the group is a consumer group with members (None:
        the classic coordinator answers it; an empty consumer group becomes a classic group first)."""
        coordinator = self.classic.coordinator
        with self.groups.lock:
            group = self.groups.get(group_id)
            if group is None:
                return None
            if not group.members:
                self._forget(group_id)
                return None
            if self.groups.migration_policy == "disabled":
                return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
            if not coordinator.min_session_timeout_ms <= session_timeout_ms <= coordinator.max_session_timeout_ms:
                return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id=member_id)
            if not member_id:
                member_id = coordinator.new_member_id(client_id)
                if require_known_member_id:
                    if not group.supports_classic(protocol_type, {n for n, _ in protocols}):
                        return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
                    return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=member_id)
            counts = {name: len(meta.partitions) for name, meta in self.ctx.partitions.refresh().topics.items()}
            rebalance_timeout_ms = session_timeout_ms if rebalance_timeout_ms < 0 else rebalance_timeout_ms
            try:
                joined = self.groups.classic_join(
                    group_id, member_id, client_id, "", session_timeout_ms, rebalance_timeout_ms,
                    protocol_type, protocols, counts,
                )
            except HeartbeatError as exc:
                return JoinResult(exc.code, member_id=member_id)
            return JoinResult(
                ErrorCode.NONE, joined.generation, joined.protocol_name, "", joined.member_id, [], CONSUMER_PROTOCOL_TYPE
            )

    def classic_sync(
        self, group_id: str, member_id: str, generation: int, protocol_type: str | None, protocol_name: str | None
    ) -> SyncResult | None:
        """A classic SyncGroup, answered here while the group is a consumer group (else None)."""
        with self.groups.lock:
            if self.groups.get(group_id) is None:
                return None
            try:
                assignment = self.groups.classic_sync(group_id, member_id, generation, protocol_type, protocol_name)
            except HeartbeatError as exc:
                return SyncResult(exc.code)
            return SyncResult(ErrorCode.NONE, assignment, protocol_type, protocol_name)

    def classic_heartbeat(self, group_id: str, member_id: str, generation: int) -> ErrorCode | None:
        """A classic Heartbeat, answered here while the group is a consumer group (else None)."""
        with self.groups.lock:
            if self.groups.get(group_id) is None:
                return None
            try:
                return self.groups.classic_heartbeat(group_id, member_id, generation)
            except HeartbeatError as exc:
                return exc.code

    def classic_leave(self, group_id: str, member_ids: list[str]) -> list[tuple[str, ErrorCode]] | None:
        """A classic LeaveGroup, answered here while the group is a consumer group (else None)."""
        with self.groups.lock:
            if self.groups.get(group_id) is None:
                return None
            return self.groups.classic_leave(group_id, member_ids)

    # ------------------------------------------------------------ requests

    def heartbeat(self, hb: Heartbeat, topics: Mapping[str, TopicMeta]) -> HeartbeatAnswer:
        counts = {name: len(meta.partitions) for name, meta in topics.items()}
        with self.groups.lock:
            if hb.member_epoch == 0 and hb.group_id and not self.groups.has_members(hb.group_id):
                self._upgrade(hb.group_id, counts)
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


# ---------------------------------------------------------------- ConsumerGroupHeartbeat


def consumer_group_heartbeat(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Needs READ on the group, and DESCRIBE on every topic subscribed to by name (Kafka 4.0's rule)."""
    require(ctx, Operation.READ, ResourceType.GROUP, req.group_id)
    cgs = consumer_service(ctx)

    def error(code: ErrorCode, message: str) -> Body:
        return {"throttle_time_ms": 0, "error_code": code, "error_message": message}

    hidden = [t for t in req.subscribed_topic_names or () if not authorize(
        ctx, Operation.DESCRIBE, ResourceType.TOPIC, t)]
    if hidden:
        return error(ErrorCode.TOPIC_AUTHORIZATION_FAILED, f"not authorized to describe topics {', '.join(hidden)}")

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
                {"topic_id": by_name[t], "partitions": ps} for t, ps in partitions_by_topic(answer.assignment).items()
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
                for t, ps in partitions_by_topic(partitions).items()
            ]
        }

    out = []
    for group_id in req.group_ids:
        described: dict[str, Any] = {"group_id": group_id}
        code = cgs.classic.check(group_id)
        if not authorize(ctx, Operation.DESCRIBE, ResourceType.GROUP, group_id):
            code = ErrorCode.GROUP_AUTHORIZATION_FAILED
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
                authorized_operations=authorized_operations(ctx, ResourceType.GROUP, group_id)
                if req.include_authorized_operations else NO_OPERATIONS,
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


def check_fetch(ctx: BrokerContext, group_id: str, member_id: str | None, epoch: int) -> ErrorCode:
    """OffsetFetch v9's member check: an admin fetch (no member id, epoch -1) and fetches for groups
    that are no consumer groups pass."""
    if (member_id is None and epoch < 0) or consumer_group(ctx, group_id) is None:
        return ErrorCode.NONE
    return consumer_service(ctx).groups.check_fetch(group_id, member_id, epoch)
