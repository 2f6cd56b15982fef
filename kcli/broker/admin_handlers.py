"""Topic admin API handlers: CreateTopics, DeleteTopics, CreatePartitions.

They change the shared metadata through :class:`kcli.cluster.topics.TopicAdmin` (the same code the embedded
CLI runs when no broker lives), then make this broker's led partitions follow at once;
other brokers follow when they see ``metadata.log`` change.  Errors are Kafka's per-topic codes with a
message, never an exception that would cost the client its connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kcli.broker.context import BrokerContext
from kcli.cluster.metadata import validate_topic_name
from kcli.cluster.topics import TopicAdmin
from kcli.errors import (
    AlreadyExistsError,
    InvalidConfigError,
    InvalidTopicError,
    KcliError,
    LockTimeoutError,
    NotFoundError,
)
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.storage.config import parse_topic_config

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]
MAX_PARTITIONS = 100_000


class TopicError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _admin(ctx: BrokerContext) -> TopicAdmin:
    return TopicAdmin(ctx.datadir)


def _code_for(exc: KcliError) -> ErrorCode:
    if isinstance(exc, AlreadyExistsError):
        return ErrorCode.TOPIC_ALREADY_EXISTS
    if isinstance(exc, InvalidTopicError):
        return ErrorCode.INVALID_TOPIC_EXCEPTION
    if isinstance(exc, InvalidConfigError):
        return ErrorCode.INVALID_CONFIG
    if isinstance(exc, NotFoundError):
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if isinstance(exc, LockTimeoutError):
        return ErrorCode.REQUEST_TIMED_OUT
    return ErrorCode.INVALID_REQUEST


def _run(ctx: BrokerContext, what: str, fn) -> tuple[ErrorCode, str | None]:
    try:
        fn()
    except TopicError as exc:
        return exc.code, exc.message
    except KcliError as exc:
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        return _code_for(exc), message
    except OSError as exc:
        log.error("%s failed: %s", what, exc)
        return ErrorCode.KAFKA_STORAGE_ERROR, str(exc)
    return ErrorCode.NONE, None


# ---------------------------------------------------------------- CreateTopics


def create_topics(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    names = [t.name for t in req.topics]
    results = []
    for topic in req.topics:
        if names.count(topic.name) > 1:
            code, message = (
                ErrorCode.INVALID_REQUEST,
                f"topic {topic.name!r} appears more than once in the request",
            )
        else:
            code, message = _run(
                ctx, f"creating topic {topic.name!r}", lambda t=topic: _create_one(ctx, t, req.validate_only)
            )
        results.append({"name": topic.name, "error_code": code, "error_message": message})
    ctx.partitions.refresh()
    return {"throttle_time_ms": 0, "topics": results}


def _create_one(ctx: BrokerContext, topic: Struct, validate_only: bool) -> None:
    validate_topic_name(topic.name)
    if topic.assignments:
        raise TopicError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "manual replica assignment is not supported")
    partitions = 1 if topic.num_partitions == -1 else topic.num_partitions
    rf = 1 if topic.replication_factor == -1 else topic.replication_factor
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise TopicError(
            ErrorCode.INVALID_PARTITIONS, f"partition count must be 1..{MAX_PARTITIONS} (got {partitions})"
        )
    state = ctx.partitions.refresh()
    if rf < 1 or rf > len(state.brokers):
        raise TopicError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"replication factor {rf} must be 1..{len(state.brokers)} (the number of brokers)",
        )
    configs = {c.name: parse_topic_config(c.name, c.value) for c in topic.configs if c.value is not None}
    if topic.name in state.topics:
        raise TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {topic.name!r} already exists")
    if validate_only:
        return
    _admin(ctx).create_topic(topic.name, partitions, rf, configs)
    log.info("created topic %r with %d partition(s), replication factor %d", topic.name, partitions, rf)


# ---------------------------------------------------------------- DeleteTopics


def delete_topics(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    results = []
    for name in req.topic_names:
        code, _message = _run(ctx, f"deleting topic {name!r}", lambda n=name: _delete_one(ctx, n))
        results.append({"name": name, "error_code": code})
    return {"throttle_time_ms": 0, "responses": results}


def _delete_one(ctx: BrokerContext, name: str) -> None:
    if name not in ctx.partitions.refresh().topics:
        raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
    # let go of our partitions first: deletion takes each replica lock before removing its folder
    with ctx.partitions.fenced(name):
        _admin(ctx).delete_topic(name)
    log.info("deleted topic %r", name)


# ---------------------------------------------------------------- CreatePartitions


def create_partitions(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    results = []
    for topic in req.topics:
        code, message = _run(
            ctx, f"adding partitions to {topic.name!r}", lambda t=topic: _grow_one(ctx, t, req.validate_only)
        )
        results.append({"name": topic.name, "error_code": code, "error_message": message})
    ctx.partitions.refresh()
    return {"throttle_time_ms": 0, "results": results}


def _grow_one(ctx: BrokerContext, topic: Struct, validate_only: bool) -> None:
    state = ctx.partitions.refresh()
    meta = state.topics.get(topic.name)
    if meta is None:
        raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {topic.name!r} does not exist")
    if topic.assignments is not None:
        raise TopicError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "manual replica assignment is not supported")
    current = len(meta.partitions)
    if topic.count <= current:
        raise TopicError(
            ErrorCode.INVALID_PARTITIONS,
            f"topic {topic.name!r} has {current} partitions; the count can only grow",
        )
    if topic.count > MAX_PARTITIONS:
        raise TopicError(ErrorCode.INVALID_PARTITIONS, f"partition count {topic.count} is too large")
    if validate_only:
        return
    _admin(ctx).add_partitions(topic.name, topic.count)
    log.info("topic %r now has %d partitions", topic.name, topic.count)
