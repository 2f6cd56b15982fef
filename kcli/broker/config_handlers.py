"""Config API handlers: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.

Topic configs, dynamic broker configs and group configs live in the cluster metadata (:mod:`kcli.cluster.configs` reads
and changes them, the same code ``kcli config`` runs embedded); every broker's open logs follow a change
when they see the metadata move, this broker's at once.  Each resource gets its own error code; a
resource with any bad change is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kcli.broker.answers import answer_for
from kcli.broker.authorize import require
from kcli.broker.context import BrokerContext
from kcli.cluster import configs as cfg
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.errors import KcliError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.apis.configs import BROKER_LOGGER_RESOURCE, BROKER_RESOURCE, GROUP_RESOURCE, TOPIC_RESOURCE
from kcli.protocol.error_codes import ApiError, message_for
from kcli.security.acl import CLUSTER_NAME, Operation, ResourceType

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]


def _broker_entity(ctx: BrokerContext, name: str) -> int | None:
    """The broker id a BROKER resource names (None: the cluster-wide default); like Kafka, a broker
    answers only for itself -- clients send each broker's resources to that broker."""
    if name == cfg.CLUSTER_DEFAULT:
        return None
    if name != str(ctx.broker_id):
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"unexpected broker id, expected {ctx.broker_id} or empty string, but received {name}",
        )
    return ctx.broker_id


# the ACL resource a config resource is authorized as: a broker's configs are the cluster's (Kafka's rule)
_ACL_RESOURCES = {TOPIC_RESOURCE: ResourceType.TOPIC, GROUP_RESOURCE: ResourceType.GROUP,
                  BROKER_RESOURCE: ResourceType.CLUSTER, BROKER_LOGGER_RESOURCE: ResourceType.CLUSTER}


def _require(ctx: BrokerContext, operation: Operation, res: Struct) -> None:
    """DESCRIBE_CONFIGS or ALTER_CONFIGS on the resource (the cluster for a broker), or that resource
    type's authorization error for this resource alone."""
    kind = _ACL_RESOURCES.get(res.resource_type)
    if kind is not None:
        require(ctx, operation, kind, res.resource_name if kind != ResourceType.CLUSTER else CLUSTER_NAME)


def _unsupported(resource_type: int) -> ApiError:
    if resource_type == BROKER_LOGGER_RESOURCE:
        return ApiError(ErrorCode.INVALID_REQUEST, "broker loggers are not configurable on kcli brokers")
    return ApiError(ErrorCode.INVALID_REQUEST, f"unsupported resource type {resource_type}")


def _answer(exc: BaseException, what: str) -> tuple[ErrorCode, str | None]:
    return answer_for(exc, what), message_for(exc)


# ---------------------------------------------------------------- DescribeConfigs


def describe_configs(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    version = header.api_version
    state = ctx.partitions.refresh()
    results = []
    for res in req.resources:
        out: dict[str, Any] = {
            "resource_type": res.resource_type,
            "resource_name": res.resource_name,
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "configs": [],
        }
        try:
            _require(ctx, Operation.DESCRIBE_CONFIGS, res)
            entries = _describe(ctx, state, res)
        except (ApiError, KcliError) as exc:
            out["error_code"], out["error_message"] = _answer(exc, f"describing {res.resource_name!r}")
        else:
            out["configs"] = [
                _entry(e, version, req.include_synonyms, req.include_documentation) for e in entries
            ]
        results.append(out)
    return {"throttle_time_ms": 0, "results": results}


def _describe(ctx: BrokerContext, state: ClusterState, res: Struct) -> list[cfg.ConfigEntry]:
    keys = res.configuration_keys
    if res.resource_type == TOPIC_RESOURCE:
        return cfg.describe_topic(state, res.resource_name, ctx.broker_id, keys)
    if res.resource_type == BROKER_RESOURCE:
        return cfg.describe_broker(state, _broker_entity(ctx, res.resource_name), keys)
    if res.resource_type == GROUP_RESOURCE:
        return cfg.describe_group(state, res.resource_name, ctx.broker_id, keys)
    raise _unsupported(res.resource_type)


def _entry(e: cfg.ConfigEntry, version: int, synonyms: bool, documentation: bool) -> dict[str, Any]:
    return {
        "name": e.name,
        "value": e.value,
        "read_only": e.read_only,
        "config_source": e.source,
        "is_default": e.source == cfg.DEFAULT_CONFIG,
        "is_sensitive": e.sensitive,
        "synonyms": [{"name": n, "value": v, "source": s} for n, v, s in e.synonyms] if synonyms else [],
        "config_type": e.type,
        "documentation": e.doc if documentation else None,
    }


# ---------------------------------------------------------------- AlterConfigs / IncrementalAlterConfigs


def alter_configs(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """AlterConfigs: each resource's configs become exactly the ones given."""
    changes = [
        (res, [cfg.ConfigOp(c.name, cfg.SET, c.value) for c in res.configs]) for res in req.resources
    ]
    return _alter(ctx, changes, req.validate_only, replace=True)


def incremental_alter_configs(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    changes = [
        (res, [cfg.ConfigOp(c.name, c.config_operation, c.value) for c in res.configs])
        for res in req.resources
    ]
    return _alter(ctx, changes, req.validate_only, replace=False)


def _alter(
    ctx: BrokerContext, changes: list[tuple[Struct, list[cfg.ConfigOp]]], validate_only: bool, replace: bool
) -> Body:
    metadata = Metadata(ctx.datadir)
    keys = [(res.resource_type, res.resource_name) for res, _ops in changes]
    responses = []
    changed = False
    for res, ops in changes:
        code: ErrorCode = ErrorCode.NONE
        message: str | None = None
        try:
            if keys.count((res.resource_type, res.resource_name)) > 1:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"resource {res.resource_name!r} appears more than once")
            _require(ctx, Operation.ALTER_CONFIGS, res)
            _alter_one(ctx, metadata, res, ops, validate_only, replace)
            changed = changed or not validate_only
        except (ApiError, KcliError, OSError) as exc:
            code, message = _answer(exc, f"altering configs of {res.resource_name!r}")
        responses.append(
            {
                "error_code": code,
                "error_message": message,
                "resource_type": res.resource_type,
                "resource_name": res.resource_name,
            }
        )
    if changed:
        ctx.partitions.refresh()  # this broker's logs follow now; the others when they see the metadata
    return {"throttle_time_ms": 0, "responses": responses}


def _alter_one(
    ctx: BrokerContext, metadata: Metadata, res: Struct, ops: list[cfg.ConfigOp], validate_only: bool, replace: bool
) -> None:
    if res.resource_type == TOPIC_RESOURCE:
        new = cfg.alter_topic(metadata, res.resource_name, ops, validate_only, replace, ctx.broker_id)
        what = f"topic {res.resource_name!r}"
    elif res.resource_type == BROKER_RESOURCE:
        broker = _broker_entity(ctx, res.resource_name)
        new = cfg.alter_broker(metadata, broker, ops, validate_only, replace)
        what = "the cluster-wide broker defaults" if broker is None else f"broker {broker}"
    elif res.resource_type == GROUP_RESOURCE:
        new = cfg.alter_group(metadata, res.resource_name, ops, validate_only, replace, ctx.broker_id)
        what = f"group {res.resource_name!r}"
    else:
        raise _unsupported(res.resource_type)
    if not validate_only:
        log.info("configs of %s are now %s", what, new or "the defaults")
