"""The one place handlers ask whether the caller may do something: ``authorize(ctx, operation,
resource_type, name)``, for the principal and host of the current connection's session.

The decisions are :class:`kcli.security.acl.Authorizer`'s over the ACLs of the metadata view the broker
already holds (``ctx.partitions.state``), rebuilt only when that view's offset moves, so a check costs a
few dict lookups and reads no file.  With no ACL of the resource's type the answer is
``allow.everyone.if.no.acl.found``, which defaults to true while the broker has only PLAINTEXT and Unix
listeners (kcli's behaviour before ACLs) and to false once a secured listener (SSL, SASL_*) is
configured or the connection came in by one.  ``super.users`` (``User:a;User:b``) may do everything, and
so may the broker's own uid on the Unix socket (:mod:`kcli.broker.peercred`).
"""

from __future__ import annotations

import logging
import threading

from kcli.broker.context import BrokerContext, made_once
from kcli.broker.peercred import own_principal
from kcli.broker.session import Session, current
from kcli.protocol import ErrorCode
from kcli.protocol.error_codes import ApiError
from kcli.security.acl import CLUSTER_NAME, Authorizer, Operation, ResourceType, parse_super_users

log = logging.getLogger("kcli.broker")

# what Kafka answers when the caller may not act on a resource of each type
DENIED_CODES = {
    ResourceType.TOPIC: ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    ResourceType.GROUP: ErrorCode.GROUP_AUTHORIZATION_FAILED,
    ResourceType.CLUSTER: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    ResourceType.TRANSACTIONAL_ID: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}

_SERVICE = "authorizers"
_lock = threading.Lock()  # one rebuild of the authorizers at a time


class _Authorizers:
    """This broker's two authorizers over the ACLs of one metadata offset: one for when no ACL means
    allowed, one for when it means denied (which applies depends on the connection's listener)."""

    def __init__(self, ctx: BrokerContext) -> None:
        configs = ctx.settings.configs
        self.super_users = parse_super_users(str(configs.get("super.users") or ""))
        explicit = configs.get("allow.everyone.if.no.acl.found")
        self.explicit: bool | None = None if explicit is None else bool(explicit)
        self.secured = ctx.settings.secured
        self.offset = -2
        self.by_allow: dict[bool, Authorizer] = {}

    def get(self, ctx: BrokerContext, protocol: str) -> Authorizer:
        state = ctx.partitions.state
        if state.offset != self.offset:
            with _lock:
                if state.offset != self.offset:
                    self.by_allow = {allow: Authorizer(state.acls, self.super_users, allow) for allow in (True, False)}
                    self.offset = state.offset
        allow = self.explicit
        if allow is None:
            allow = not self.secured and protocol == "PLAINTEXT"
        return self.by_allow[allow]


def _authorizers(ctx: BrokerContext) -> _Authorizers:
    return made_once(ctx, _SERVICE, _Authorizers)


def _authorizer(ctx: BrokerContext, session: Session) -> Authorizer | None:
    """The authorizer for ``session``'s listener; None for the broker's own uid on the Unix socket,
    which may do everything."""
    if session.listener == "unix" and session.principal == own_principal():
        return None
    return _authorizers(ctx).get(ctx, session.security_protocol)


def authorize(ctx: BrokerContext, operation: Operation, resource_type: ResourceType,
              name: str = CLUSTER_NAME) -> bool:
    """Whether the current connection's principal may do ``operation`` on the resource."""
    session = current()
    authorizer = _authorizer(ctx, session)
    if authorizer is None:
        return True
    allowed = authorizer.authorize(session.principal, session.host, operation, resource_type, name)
    if not allowed and log.isEnabledFor(logging.DEBUG):
        log.debug("denied %s %s on %s %r from %s", session.principal, operation.name, resource_type.name, name,
                  session.host or session.listener)
    return allowed


def authorize_any(ctx: BrokerContext, operation: Operation, resource_type: ResourceType) -> bool:
    """Whether the caller may do ``operation`` on some resource of the type (Kafka's
    ``authorizeByResourceType``: an idempotent producer needs WRITE on some topic)."""
    session = current()
    authorizer = _authorizer(ctx, session)
    return authorizer is None or authorizer.authorize_any(session.principal, session.host, operation, resource_type)


# the operations each resource type has (Kafka's AclEntry.supportedOperations), for *_authorized_operations
_SUPPORTED = {
    ResourceType.TOPIC: (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE, Operation.DELETE,
                         Operation.ALTER, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS),
    ResourceType.GROUP: (Operation.READ, Operation.DESCRIBE, Operation.DELETE, Operation.DESCRIBE_CONFIGS,
                         Operation.ALTER_CONFIGS),
    ResourceType.CLUSTER: (Operation.CREATE, Operation.CLUSTER_ACTION, Operation.DESCRIBE_CONFIGS,
                           Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE, Operation.ALTER, Operation.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (Operation.DESCRIBE, Operation.WRITE),
}


def authorized_operations(ctx: BrokerContext, resource_type: ResourceType, name: str = CLUSTER_NAME) -> int:
    """The operations the caller may do on the resource, a bit per operation code (the
    ``*_authorized_operations`` fields of Metadata, DescribeGroups, DescribeCluster, ...)."""
    return sum(1 << op for op in _SUPPORTED[resource_type] if authorize(ctx, op, resource_type, name))


class Unauthorized(ApiError):
    """The caller may not do this.  Inside a handler's per-partition ``answering`` block it answers that
    partition; out of a handler it answers the whole request with the code in every entry (the
    dispatcher's error answer, Kafka's ``getErrorResponse``)."""


def require(ctx: BrokerContext, operation: Operation, resource_type: ResourceType, name: str = CLUSTER_NAME) -> None:
    """Raise the resource type's :class:`Unauthorized` unless the caller may do ``operation`` on it."""
    if not authorize(ctx, operation, resource_type, name):
        raise denied(resource_type, operation, name)


def denied(resource_type: ResourceType, operation: Operation, name: str = CLUSTER_NAME) -> Unauthorized:
    return Unauthorized(DENIED_CODES[resource_type],
                        f"not authorized to {operation.name} {resource_type.name.lower()} {name!r}")
