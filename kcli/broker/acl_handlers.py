"""DescribeAcls (29), CreateAcls (30) and DeleteAcls (31): the cluster's ACLs, in the cluster metadata
(:mod:`kcli.cluster.acls`).  Describing needs DESCRIBE on the cluster, creating and deleting ALTER, as
in Kafka's ``AclApis``; an ACL or filter Kafka would refuse gets INVALID_REQUEST for its entry alone."""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import TypeVar

from kcli.broker.authorize import require
from kcli.broker.context import BrokerContext
from kcli.broker.handlers import Body, Entry
from kcli.cluster.acls import AclStore, matching
from kcli.cluster.metadata import Metadata
from kcli.errors import KcliError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.error_codes import code_for, message_for
from kcli.security.acl import Acl, AclFilter, Operation, PatternType, Permission, ResourceType

log = logging.getLogger("kcli.broker")

_E = TypeVar("_E", bound=IntEnum)


def _enum(kind: type[_E], value: int, unknown: _E) -> _E:
    """A wire value as the enum, UNKNOWN for one newer than we know (then refused as Kafka does)."""
    try:
        return kind(value)
    except ValueError:
        return unknown


def _filter(f: Struct) -> AclFilter:
    return AclFilter(
        _enum(ResourceType, f.resource_type_filter, ResourceType.UNKNOWN),
        f.resource_name_filter,
        _enum(PatternType, f.pattern_type_filter, PatternType.UNKNOWN),
        f.principal_filter,
        f.host_filter,
        _enum(Operation, f.operation, Operation.UNKNOWN),
        _enum(Permission, f.permission_type, Permission.UNKNOWN),
    ).validate()


def _store(ctx: BrokerContext) -> AclStore:
    return AclStore(Metadata(ctx.datadir))


def describe_acls(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    require(ctx, Operation.DESCRIBE, ResourceType.CLUSTER)
    try:
        acl_filter = _filter(req)
    except KcliError as exc:
        return {"throttle_time_ms": 0, "error_code": code_for(exc), "error_message": message_for(exc), "resources": []}
    grouped: dict[tuple[int, str, int], list[Entry]] = {}
    for acl in matching(ctx.partitions.refresh(), acl_filter):
        grouped.setdefault((acl.resource_type, acl.name, acl.pattern), []).append(
            {"principal": acl.principal, "host": acl.host, "operation": acl.operation,
             "permission_type": acl.permission})
    resources = [{"resource_type": kind, "resource_name": name, "pattern_type": pattern, "acls": acls}
                 for (kind, name, pattern), acls in grouped.items()]
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None, "resources": resources}


def create_acls(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    require(ctx, Operation.ALTER, ResourceType.CLUSTER)
    results: list[Entry] = []
    valid: list[Acl] = []
    for c in req.creations:
        result: Entry = {"error_code": ErrorCode.NONE, "error_message": None}
        try:
            valid.append(Acl(
                _enum(ResourceType, c.resource_type, ResourceType.UNKNOWN), c.resource_name,
                _enum(PatternType, c.resource_pattern_type, PatternType.UNKNOWN), c.principal, c.host,
                _enum(Operation, c.operation, Operation.UNKNOWN),
                _enum(Permission, c.permission_type, Permission.UNKNOWN)).validate())
        except KcliError as exc:
            result.update(error_code=code_for(exc), error_message=message_for(exc))
        results.append(result)
    if valid:
        try:
            created = _store(ctx).create(valid)
            ctx.partitions.refresh()  # this broker's next request sees them at once
            for acl in created:
                log.info("created ACL %s", acl.describe())
        except (KcliError, OSError) as exc:
            log.error("creating ACLs failed: %s", exc)
            for result in results:
                if result["error_code"] == ErrorCode.NONE:
                    result.update(error_code=code_for(exc), error_message=message_for(exc))
    return {"throttle_time_ms": 0, "results": results}


def _matching_entry(acl: Acl) -> Entry:
    return {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": acl.resource_type,
            "resource_name": acl.name, "pattern_type": acl.pattern, "principal": acl.principal, "host": acl.host,
            "operation": acl.operation, "permission_type": acl.permission}


def delete_acls(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    require(ctx, Operation.ALTER, ResourceType.CLUSTER)
    results: list[Entry] = []
    filters: list[tuple[Entry, AclFilter]] = []
    for f in req.filters:
        result: Entry = {"error_code": ErrorCode.NONE, "error_message": None, "matching_acls": []}
        try:
            filters.append((result, _filter(f)))
        except KcliError as exc:
            result.update(error_code=code_for(exc), error_message=message_for(exc))
        results.append(result)
    if filters:
        try:
            found = _store(ctx).delete([f for _r, f in filters])
            ctx.partitions.refresh()
        except (KcliError, OSError) as exc:
            log.error("deleting ACLs failed: %s", exc)
            for result, _f in filters:
                result.update(error_code=code_for(exc), error_message=message_for(exc))
        else:
            for (result, _f), acls in zip(filters, found, strict=True):
                result["matching_acls"] = [_matching_entry(a) for a in acls]
                for acl in acls:
                    log.info("deleted ACL %s", acl.describe())
    return {"throttle_time_ms": 0, "filter_results": results}
