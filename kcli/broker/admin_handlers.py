"""Topic admin API handlers: CreateTopics, DeleteTopics, CreatePartitions.

A count or factor of -1 in CreateTopics is the broker's num.partitions / default.replication.factor; v5+
answers with what the topic got (its partitions, replication factor and every resolved config), v7 with
its topic id.  DeleteTopics v6 names a topic by name or by id.

They change the shared metadata through :class:`kcli.cluster.topics.TopicAdmin` (the same code the embedded
CLI runs when no broker lives), then make this broker's led partitions follow at once;
other brokers follow when they see ``metadata.log`` change.  Errors are Kafka's per-topic codes with a
message (from the one table, :func:`kcli.protocol.error_codes.code_for`), never an exception that would
cost the client its connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from kcli.broker.answers import answer_for
from kcli.broker.authorize import authorize, denied, require
from kcli.broker.context import BrokerContext
from kcli.cluster.configs import check_topic_configs, describe_topic, new_topic_shape
from kcli.cluster.metadata import PartitionMeta, TopicMeta, validate_topic_name
from kcli.cluster.topics import TopicAdmin
from kcli.errors import AlreadyExistsError, KcliError, NotFoundError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.error_codes import ApiError, message_for
from kcli.security.acl import Operation, ResourceType
from kcli.storage.config import parse_topic_config

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]
MAX_PARTITIONS = 100_000


def _admin(ctx: BrokerContext) -> TopicAdmin:
    return TopicAdmin(ctx.datadir)


def _run(what: str, fn: Callable[[], None]) -> tuple[ErrorCode, str | None]:
    """Run one topic's change; what went wrong is that topic's code (:func:`code_for`) and message."""
    try:
        fn()
    except (ApiError, KcliError, OSError) as exc:
        return answer_for(exc, what), message_for(exc)
    return ErrorCode.NONE, None


# ---------------------------------------------------------------- CreateTopics


def create_topics(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    names = [t.name for t in req.topics]
    results = []
    for topic in req.topics:
        message: str | None
        created: list[TopicMeta] = []
        if names.count(topic.name) > 1:
            code, message = (
                ErrorCode.INVALID_REQUEST,
                f"topic {topic.name!r} appears more than once in the request",
            )
        else:
            code, message = _run(
                f"creating topic {topic.name!r}", partial(_create_one, ctx, topic, req.validate_only, created)
            )
        result: dict[str, Any] = {"name": topic.name, "error_code": code, "error_message": message, "configs": None}
        if created:
            meta = created[0]
            result["num_partitions"] = len(meta.partitions)
            result["replication_factor"] = len(meta.partitions[0].replicas)
            if not req.validate_only:
                result["topic_id"] = bytes.fromhex(meta.topic_id)
            if authorize(ctx, Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, topic.name):
                result["configs"] = [
                    {"name": e.name, "value": e.value, "read_only": e.read_only, "config_source": e.source,
                     "is_sensitive": e.sensitive}
                    for e in describe_topic(ctx.partitions.state, meta, ctx.broker_id)
                ]
            else:  # created, but its configs are not the caller's to see (Kafka's answer)
                result["topic_config_error_code"] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        results.append(result)
    ctx.partitions.refresh()
    return {"throttle_time_ms": 0, "topics": results}


def _create_one(ctx: BrokerContext, topic: Struct, validate_only: bool, created: list[TopicMeta]) -> None:
    """Create one topic (or only check it can be); what it got (or would get) goes into ``created``.
    Needs CREATE on the cluster or on the topic."""
    from kcli.broker.handlers import may_create

    if not may_create(ctx, topic.name):
        raise denied(ResourceType.TOPIC, Operation.CREATE, topic.name)
    validate_topic_name(topic.name)
    if topic.assignments:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "manual replica assignment is not supported")
    state = ctx.partitions.refresh()
    partitions, rf = new_topic_shape(  # -1: the broker's default (CreateTopics v4+)
        state,
        None if topic.num_partitions == -1 else topic.num_partitions,
        None if topic.replication_factor == -1 else topic.replication_factor,
        ctx.broker_id,
    )
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ApiError(
            ErrorCode.INVALID_PARTITIONS, f"partition count must be 1..{MAX_PARTITIONS} (got {partitions})"
        )
    if rf < 1 or rf > len(state.brokers):
        raise ApiError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"replication factor {rf} must be 1..{len(state.brokers)} (the number of brokers)",
        )
    configs: dict[str, object] = {c.name: parse_topic_config(c.name, c.value) for c in topic.configs if c.value is not None}
    check_topic_configs(state, configs, ctx.broker_id)  # Metadata checks again, this for validate_only too
    if topic.name in state.topics:
        raise AlreadyExistsError(f"topic {topic.name!r} already exists")
    if validate_only:
        created.append(TopicMeta(topic.name, "", configs, [PartitionMeta(list(range(rf)), -1, [])] * partitions))
        return
    created.append(_admin(ctx).create_topic(topic.name, partitions, rf, configs))
    log.info("created topic %r with %d partition(s), replication factor %d", topic.name, partitions, rf)


# ---------------------------------------------------------------- DeleteTopics


def delete_topics(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    wanted = [(t.name, t.topic_id) for t in req.topics] if header.api_version >= 6 else [
        (name, bytes(16)) for name in req.topic_names
    ]
    results = []
    for name, topic_id in wanted:
        found = [name]
        code, message = _run(f"deleting topic {name or topic_id.hex()!r}", partial(_delete_one, ctx, found, topic_id))
        results.append({"name": found[0], "topic_id": topic_id, "error_code": code, "error_message": message})
    return {"throttle_time_ms": 0, "responses": results}


def _by_id(ctx: BrokerContext, found: list[str | None], topic_id: bytes) -> str:
    """The name of the topic a DeleteTopics v6 entry means (by name or by id, not both); put in ``found``."""
    name = found[0]
    if name is not None and any(topic_id):
        raise ApiError(ErrorCode.INVALID_REQUEST, "give a topic's name or its id, not both")
    if name is not None:
        return name
    for meta in ctx.partitions.refresh().topics.values():
        if meta.topic_id == topic_id.hex():
            found[0] = meta.name
            return meta.name
    raise ApiError(ErrorCode.UNKNOWN_TOPIC_ID, f"no topic has id {topic_id.hex()}")


def _delete_one(ctx: BrokerContext, found: list[str | None], topic_id: bytes) -> None:
    name = _by_id(ctx, found, topic_id)
    require(ctx, Operation.DELETE, ResourceType.TOPIC, name)
    if name not in ctx.partitions.refresh().topics:
        raise NotFoundError(f"topic {name!r} does not exist")
    # let go of our partitions first: deletion takes each replica lock before removing its folder
    with ctx.partitions.fenced(name):
        _admin(ctx).delete_topic(name)
    log.info("deleted topic %r", name)


# ---------------------------------------------------------------- CreatePartitions


def create_partitions(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    results = []
    for topic in req.topics:
        code, message = _run(
            f"adding partitions to {topic.name!r}", partial(_grow_one, ctx, topic, req.validate_only)
        )
        results.append({"name": topic.name, "error_code": code, "error_message": message})
    ctx.partitions.refresh()
    return {"throttle_time_ms": 0, "results": results}


def _grow_one(ctx: BrokerContext, topic: Struct, validate_only: bool) -> None:
    require(ctx, Operation.ALTER, ResourceType.TOPIC, topic.name)
    state = ctx.partitions.refresh()
    meta = state.topics.get(topic.name)
    if meta is None:
        raise NotFoundError(f"topic {topic.name!r} does not exist")
    if topic.assignments is not None:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "manual replica assignment is not supported")
    current = len(meta.partitions)
    if topic.count <= current:
        raise ApiError(
            ErrorCode.INVALID_PARTITIONS,
            f"topic {topic.name!r} has {current} partitions; the count can only grow",
        )
    if topic.count > MAX_PARTITIONS:
        raise ApiError(ErrorCode.INVALID_PARTITIONS, f"partition count {topic.count} is too large")
    if validate_only:
        return
    _admin(ctx).add_partitions(topic.name, topic.count)
    log.info("topic %r now has %d partitions", topic.name, topic.count)
