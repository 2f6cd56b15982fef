"""Kafka's ACL model and the decisions of its ``StandardAuthorizer``, free of storage and sockets.

An ACL binds a resource pattern (resource type, name, LITERAL or PREFIXED; the LITERAL name ``*``
matches every name) to an entry (principal -- ``User:*`` is every principal --, host -- ``*`` is every
host --, operation, ALLOW or DENY).  A request is allowed when the principal is a super user, or when
an ALLOW ACL matches it and no DENY ACL does (DENY wins); when no ACL at all names the resource (for
any principal), ``allow.everyone.if.no.acl.found`` decides.  An ALLOW of READ, WRITE, DELETE or ALTER
implies DESCRIBE, and ALLOW ALTER_CONFIGS implies DESCRIBE_CONFIGS (DENY implies nothing), as Kafka's
``StandardAuthorizerData.findResult`` does.  The numbers are Kafka's wire values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from kcli.errors import UsageError

WILDCARD = "*"  # a LITERAL resource name matching every name, and the host matching every host
WILDCARD_PRINCIPAL = "User:*"
CLUSTER_NAME = "kafka-cluster"  # the one CLUSTER resource's name


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2  # a filter only: every pattern that matches the filter's name
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# an ALLOW of one of these implies the key operation (Kafka's IMPLIES_DESCRIBE, IMPLIES_DESCRIBE_CONFIGS)
_IMPLIED_BY = {
    Operation.DESCRIBE: frozenset({Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE,
                                   Operation.ALTER}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS}),
}


def parse_enum(kind: type[IntEnum], text: str) -> IntEnum:
    """An enum member from its name as Kafka's tools write it (``Read``, ``describe-configs``,
    ``TransactionalId``, ``prefixed``), case and separators ignored."""
    key = text.strip().replace("-", "").replace("_", "").upper()
    for member in kind:
        if member.name.replace("_", "") == key:
            return member
    names = ", ".join(m.name for m in kind if m.name not in ("UNKNOWN", "ANY", "MATCH"))
    raise UsageError(f"unknown {kind.__name__.lower()} {text!r}", hint=f"one of {names}")


def check_principal(principal: str) -> str:
    """Kafka's principal form, ``Type:name`` (``User:alice``; ``User:*`` for everyone)."""
    kind, sep, name = principal.partition(":")
    if not sep or not kind or not name:
        raise UsageError(f"principal {principal!r} is not of the form Type:name", hint="e.g. User:alice")
    return principal


@dataclass(frozen=True, order=True)
class Acl:
    """One ACL binding (Kafka's ``AclBinding``)."""

    resource_type: ResourceType
    name: str
    pattern: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def validate(self) -> Acl:
        """Kafka's rules for an ACL to be stored (``AclControlManager.validateNewAcl``); returns self."""
        if self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
            raise UsageError(f"invalid resource type {self.resource_type.name}")
        if self.pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise UsageError(f"invalid pattern type {self.pattern.name}")
        if self.operation in (Operation.UNKNOWN, Operation.ANY):
            raise UsageError(f"invalid operation {self.operation.name}")
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            raise UsageError(f"invalid permission type {self.permission.name}")
        if not self.name:
            raise UsageError("resource name should not be empty")
        if not self.host:
            raise UsageError("host should not be empty", hint="'*' is every host")
        check_principal(self.principal)
        return self

    def to_json(self) -> dict[str, str]:
        return {"resource_type": self.resource_type.name, "name": self.name, "pattern": self.pattern.name,
                "principal": self.principal, "host": self.host, "operation": self.operation.name,
                "permission": self.permission.name}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Acl:
        return cls(ResourceType[data["resource_type"]], data["name"], PatternType[data["pattern"]],
                   data["principal"], data["host"], Operation[data["operation"]], Permission[data["permission"]])

    def describe(self) -> str:
        """One line, as kafka-acls.sh lists them."""
        return (f"{self.resource_type.name}:{self.name} ({self.pattern.name}): {self.principal} from host "
                f"{self.host} has {self.permission.name} permission for operation {self.operation.name}")


@dataclass(frozen=True)
class AclFilter:
    """Which ACLs a DescribeAcls or DeleteAcls request (or ``kcli acl list|remove``) means: None for a
    name, principal or host is any; ANY for the enums is any; pattern MATCH is every pattern that would
    apply to the filter's name (LITERAL of it or ``*``, PREFIXED of a prefix of it)."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def validate(self) -> AclFilter:
        """Kafka refuses a filter with an UNKNOWN field (``AclControlManager.validateFilter``)."""
        for value in (self.resource_type, self.pattern, self.operation, self.permission):
            if value.name == "UNKNOWN":
                raise UsageError(f"a filter with an unknown {type(value).__name__}")
        return self

    def matches(self, acl: Acl) -> bool:
        """Kafka's ``AclBindingFilter.matches``."""
        if self.resource_type != ResourceType.ANY and self.resource_type != acl.resource_type:
            return False
        if self.pattern not in (PatternType.ANY, PatternType.MATCH) and self.pattern != acl.pattern:
            return False
        if self.name is not None:
            if self.pattern in (PatternType.ANY, acl.pattern):
                if self.name != acl.name:
                    return False
            elif acl.pattern == PatternType.LITERAL:
                if acl.name not in (self.name, WILDCARD):
                    return False
            elif not self.name.startswith(acl.name):
                return False
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation != Operation.ANY and self.operation != acl.operation:
            return False
        return self.permission == Permission.ANY or self.permission == acl.permission


def _entry_result(acl: Acl, principal: str, host: str, operation: Operation) -> Permission | None:
    """ALLOW or DENY when ``acl``'s entry applies to this principal, host and operation, else None
    (the resource is matched elsewhere): Kafka's ``StandardAuthorizerData.findResult``."""
    if acl.principal != principal and acl.principal != WILDCARD_PRINCIPAL:
        return None
    if acl.host != WILDCARD and acl.host != host:
        return None
    if acl.operation != Operation.ALL:
        if acl.permission == Permission.ALLOW:
            implied = _IMPLIED_BY.get(operation)
            if implied is not None:
                if acl.operation not in implied:
                    return None
            elif acl.operation != operation:
                return None
        elif acl.operation != operation:
            return None
    return acl.permission


class Authorizer:
    """The decisions over one set of ACLs, indexed by resource type and name so that a check looks at
    the ACLs of its resource only.  Decisions are remembered (a broker asks the same few questions for
    every request), so build a new one when the ACLs change."""

    def __init__(self, acls: Iterable[Acl], super_users: Iterable[str] = (), allow_if_no_acl: bool = False) -> None:
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._literal: dict[tuple[ResourceType, str], list[Acl]] = {}
        self._prefixed: dict[ResourceType, list[Acl]] = {}
        self._types: set[ResourceType] = set()
        for acl in acls:
            self._types.add(acl.resource_type)
            if acl.pattern == PatternType.PREFIXED:
                self._prefixed.setdefault(acl.resource_type, []).append(acl)
            else:
                self._literal.setdefault((acl.resource_type, acl.name), []).append(acl)
        self._memo: dict[tuple[str, str, Operation, ResourceType, str], bool] = {}

    def _applying(self, resource_type: ResourceType, name: str) -> Iterable[Acl]:
        yield from self._literal.get((resource_type, name), ())
        if name != WILDCARD:
            yield from self._literal.get((resource_type, WILDCARD), ())
        for acl in self._prefixed.get(resource_type, ()):
            if name.startswith(acl.name):
                yield acl

    def authorize(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                  name: str) -> bool:
        """Whether ``principal`` connecting from ``host`` may do ``operation`` on the resource."""
        if principal in self.super_users:
            return True
        if resource_type not in self._types:  # no ACL of this type: nothing names the resource
            return self.allow_if_no_acl
        key = (principal, host, operation, resource_type, name)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._decide(principal, host, operation, resource_type, name)
            if len(self._memo) > 100_000:  # many distinct names: keep memory bounded
                self._memo.clear()
        return found

    def _decide(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                name: str) -> bool:
        named = allowed = False
        for acl in self._applying(resource_type, name):
            named = True
            result = _entry_result(acl, principal, host, operation)
            if result == Permission.DENY:
                return False
            allowed = allowed or result == Permission.ALLOW
        return allowed or (not named and self.allow_if_no_acl)

    def authorize_any(self, principal: str, host: str, operation: Operation, resource_type: ResourceType) -> bool:
        """Whether ``principal`` may do ``operation`` on some resource of the type (Kafka's
        ``authorizeByResourceType``, which lets an idempotent producer with WRITE on any topic in): an
        ALLOW that applies, unless a DENY on every name (LITERAL ``*``) applies too; with no ACL of the
        type, ``allow.everyone.if.no.acl.found``."""
        if principal in self.super_users:
            return True
        if resource_type not in self._types:
            return self.allow_if_no_acl
        if any(_entry_result(acl, principal, host, operation) == Permission.DENY
               for acl in self._literal.get((resource_type, WILDCARD), ())):
            return False
        every = [acl for (kind, _name), acls in self._literal.items() if kind == resource_type for acl in acls]
        every += self._prefixed.get(resource_type, [])
        return any(_entry_result(acl, principal, host, operation) == Permission.ALLOW for acl in every)


def parse_super_users(text: str) -> frozenset[str]:
    """``super.users``: principals separated by ``;`` (Kafka's separator; principal names may hold ``,``)."""
    return frozenset(check_principal(p.strip()) for p in text.split(";") if p.strip())
