"""ACLs: Kafka's authorization model (unit tests of kcli.security.acl), the store in the cluster
metadata, the broker's checks per API, and `kcli acl`."""

from __future__ import annotations

import pytest

from kcli.errors import UsageError
from kcli.security.acl import (
    Acl,
    AclFilter,
    Authorizer,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    parse_enum,
    parse_super_users,
)

TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY
OP = Operation


def acl(name: str, op: Operation = OP.READ, perm: Permission = ALLOW, principal: str = "User:alice",
        host: str = "*", pattern: PatternType = LITERAL, kind: ResourceType = TOPIC) -> Acl:
    return Acl(kind, name, pattern, principal, host, op, perm)


def decide(acls: list[Acl], op: Operation, name: str = "orders", principal: str = "User:alice",
           host: str = "10.0.0.1", kind: ResourceType = TOPIC, allow_if_no_acl: bool = False,
           super_users: tuple[str, ...] = ()) -> bool:
    return Authorizer(acls, super_users, allow_if_no_acl).authorize(principal, host, op, kind, name)


def test_no_acl_means_the_default():
    assert decide([], OP.READ, allow_if_no_acl=True)
    assert not decide([], OP.READ, allow_if_no_acl=False)
    # an ACL on another resource of the type does not name this one
    assert decide([acl("other")], OP.READ, allow_if_no_acl=True)


def test_an_acl_for_someone_else_names_the_resource():
    """Once any ACL names a resource, the default no longer applies: whoever no ACL allows is denied."""
    assert not decide([acl("orders", principal="User:bob")], OP.READ, allow_if_no_acl=True)


def test_allow_matches_principal_host_and_operation():
    acls = [acl("orders", host="10.0.0.1")]
    assert decide(acls, OP.READ)
    assert not decide(acls, OP.WRITE)
    assert not decide(acls, OP.READ, principal="User:bob")
    assert not decide(acls, OP.READ, host="10.0.0.2")


def test_wildcards_principal_host_and_literal_name():
    assert decide([acl("orders", principal="User:*")], OP.READ, principal="User:anyone")
    assert decide([acl("*")], OP.READ, name="whatever")
    assert decide([acl("orders", host="*")], OP.READ, host="192.168.1.1")


def test_prefixed_patterns():
    acls = [acl("ord", pattern=PREFIXED)]
    assert decide(acls, OP.READ, name="orders")
    assert decide(acls, OP.READ, name="ord")
    assert not decide(acls, OP.READ, name="or")
    assert not decide(acls, OP.READ, name="payments")
    # a literal ACL whose name is a prefix of the resource does not apply
    assert not decide([acl("ord")], OP.READ, name="orders")


def test_deny_wins_over_allow():
    acls = [acl("orders"), acl("ord", perm=DENY, pattern=PREFIXED)]
    assert not decide(acls, OP.READ)
    assert not decide([acl("*", OP.ALL), acl("orders", perm=DENY, principal="User:*")], OP.READ)
    assert decide([acl("*", OP.ALL), acl("orders", perm=DENY, principal="User:*")], OP.READ, name="other")


@pytest.mark.parametrize("granted", [OP.READ, OP.WRITE, OP.DELETE, OP.ALTER, OP.DESCRIBE])
def test_allow_implies_describe(granted: Operation):
    assert decide([acl("orders", granted)], OP.DESCRIBE)


@pytest.mark.parametrize("granted", [OP.CREATE, OP.ALTER_CONFIGS, OP.DESCRIBE_CONFIGS, OP.CLUSTER_ACTION])
def test_other_operations_do_not_imply_describe(granted: Operation):
    assert not decide([acl("orders", granted)], OP.DESCRIBE)


def test_alter_configs_implies_describe_configs_and_all_is_everything():
    assert decide([acl("orders", OP.ALTER_CONFIGS)], OP.DESCRIBE_CONFIGS)
    assert not decide([acl("orders", OP.DESCRIBE_CONFIGS)], OP.ALTER_CONFIGS)
    for op in (OP.READ, OP.WRITE, OP.DESCRIBE, OP.ALTER_CONFIGS):
        assert decide([acl("orders", OP.ALL)], op)


def test_deny_implies_nothing():
    """A DENY READ does not deny DESCRIBE (Kafka: the implication is for ALLOW only)."""
    assert decide([acl("orders", OP.DESCRIBE), acl("orders", OP.READ, DENY)], OP.DESCRIBE)
    assert not decide([acl("orders", OP.DESCRIBE), acl("orders", OP.ALL, DENY)], OP.DESCRIBE)


def test_super_users_bypass_acls():
    acls = [acl("orders", OP.ALL, DENY, principal="User:*")]
    assert decide(acls, OP.READ, principal="User:admin", super_users=("User:admin",))
    assert not decide(acls, OP.READ, principal="User:bob", super_users=("User:admin",))


def test_resource_types_are_separate():
    assert not decide([acl("orders", kind=GROUP)], OP.READ, kind=GROUP, principal="User:bob")
    assert decide([acl("orders", kind=GROUP)], OP.READ, allow_if_no_acl=True)  # a topic: no topic ACLs


def test_authorize_any_for_idempotent_producers():
    auth = Authorizer([acl("orders", OP.WRITE)], (), False)
    assert auth.authorize_any("User:alice", "h", OP.WRITE, TOPIC)
    assert not auth.authorize_any("User:bob", "h", OP.WRITE, TOPIC)
    denied = Authorizer([acl("orders", OP.WRITE), acl("*", OP.WRITE, DENY)], (), False)
    assert not denied.authorize_any("User:alice", "h", OP.WRITE, TOPIC)
    assert Authorizer([], (), True).authorize_any("User:bob", "h", OP.WRITE, TOPIC)


def test_filters_match_as_kafka_does():
    lit, pre, star = acl("orders"), acl("ord", pattern=PREFIXED), acl("*")
    every = [lit, pre, star, acl("x", kind=GROUP)]
    assert [a for a in every if AclFilter().matches(a)] == every
    assert [a for a in every if AclFilter(TOPIC, "orders", PatternType.MATCH).matches(a)] == [lit, pre, star]
    assert [a for a in every if AclFilter(TOPIC, "orders", PatternType.ANY).matches(a)] == [lit]
    assert [a for a in every if AclFilter(TOPIC, "ord", PREFIXED).matches(a)] == [pre]
    assert not AclFilter(principal="User:bob").matches(lit)
    assert AclFilter(operation=OP.READ, permission=ALLOW, host="*").matches(lit)
    with pytest.raises(UsageError):
        AclFilter(operation=OP.UNKNOWN).validate()


def test_validation_and_parsing():
    with pytest.raises(UsageError):
        acl("orders", OP.ANY).validate()
    with pytest.raises(UsageError):
        acl("orders", principal="alice").validate()
    with pytest.raises(UsageError):
        acl("").validate()
    with pytest.raises(UsageError):
        acl("orders", pattern=PatternType.MATCH).validate()
    assert acl("orders").validate() == Acl.from_json(acl("orders").to_json())
    assert parse_enum(Operation, "describe-configs") is OP.DESCRIBE_CONFIGS
    assert parse_enum(Operation, "IdempotentWrite") is OP.IDEMPOTENT_WRITE
    assert parse_enum(ResourceType, "TransactionalId") is ResourceType.TRANSACTIONAL_ID
    with pytest.raises(UsageError):
        parse_enum(Operation, "Fly")
    assert parse_super_users("User:admin; User:CN=a,O=b") == {"User:admin", "User:CN=a,O=b"}
