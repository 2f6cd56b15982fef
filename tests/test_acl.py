"""ACLs: Kafka's authorization model (unit tests of kcli.security.acl), the store in the cluster
metadata, the broker's checks per API, and `kcli acl`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.brokers import Brokers, call, connect
from support.waits import wait_for

from kcli.errors import UsageError
from kcli.protocol import ApiKey
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


# ---------------------------------------------------------------- the store and the CLI, embedded


def test_acls_live_in_the_metadata_and_survive_a_snapshot(tmp_path):
    from kcli.cluster.acls import AclStore
    from kcli.cluster.datadir import DataDir
    from kcli.cluster.metadata import Metadata

    metadata = Metadata(DataDir(str(tmp_path / "data")))
    metadata.ensure()
    store = AclStore(metadata)
    assert store.create([acl("orders"), acl("orders"), acl("ord", pattern=PREFIXED)]) == [
        acl("orders"), acl("ord", pattern=PREFIXED)]
    assert store.create([acl("orders")]) == []  # already there: nothing new
    metadata._snapshot(metadata.load())
    assert Metadata(metadata.datadir).load().acls == (acl("orders"), acl("ord", pattern=PREFIXED))
    assert store.delete([AclFilter(TOPIC, "orders", PatternType.MATCH)]) == [[acl("orders"), acl("ord", pattern=PREFIXED)]]
    assert store.find() == []


def test_cli_add_list_remove_embedded(kcli):
    kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Read", "--operation", "Describe",
         "--topic", "orders", "--group", "billing")
    kcli("acl", "add", "--deny-principal", "User:*", "--operation", "Write", "--topic", "pay",
         "--resource-pattern-type", "prefixed", "--host", "10.0.0.9")
    listed = json.loads(kcli("acl", "list", "--json").stdout)
    assert len(listed) == 5
    mine = json.loads(kcli("acl", "list", "--topic", "payments", "--resource-pattern-type", "match", "--json").stdout)
    assert mine == [{"resource_type": "TOPIC", "name": "pay", "pattern": "PREFIXED", "principal": "User:*",
                     "host": "10.0.0.9", "operation": "WRITE", "permission": "DENY"}]
    refused = kcli("acl", "remove", "--topic", "orders", ok=False)
    assert refused.returncode == 2 and "2 ACLs match" in refused.stderr and "--force" in refused.stderr
    kcli("acl", "remove", "--topic", "orders", "--allow-principal", "User:alice", "--operation", "Read")
    kcli("acl", "remove", "--topic", "orders", "--force")
    assert len(json.loads(kcli("acl", "list", "--json").stdout)) == 3


@pytest.mark.parametrize("args, words", [
    (["--allow-principal", "alice", "--topic", "t"], "Type:name"),
    (["--allow-principal", "User:a", "--operation", "Fly", "--topic", "t"], "unknown operation"),
    (["--allow-principal", "User:a", "--topic", "t", "--resource-pattern-type", "match"], "pattern type"),
    (["--operation", "Read", "--topic", "t"], "no principal"),
    (["--allow-principal", "User:a"], "no resource"),
])
def test_cli_add_refuses_bad_input_in_one_line(kcli, args, words):
    proc = kcli.in_process("acl", "add", *args, ok=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("kcli: error:") and words in proc.stderr and len(proc.stderr.splitlines()) == 1


# ---------------------------------------------------------------- a broker's checks


def _produce_body(*topics: str, transactional_id: str | None = None) -> dict[str, Any]:
    from kcli.storage.records import encode_batch

    batch = encode_batch([(None, b"v", [], int(time.time() * 1000))])
    return {"transactional_id": transactional_id, "acks": 1, "timeout_ms": 10000,
            "topic_data": [{"name": t, "partition_data": [{"index": 0, "records": batch}]} for t in topics]}


def _codes(response: Any) -> dict[str, int]:
    return {t.name: t.partition_responses[0].error_code for t in response.responses}


def _tcp(broker: Any) -> socket.socket:
    return connect(("127.0.0.1", broker.port))


def test_a_denied_topic_fails_alone_and_an_acl_lets_it_in(broker):
    """Over TCP the client is User:ANONYMOUS.  An ACL naming a topic for someone else shuts it out of
    that topic (TOPIC_AUTHORIZATION_FAILED for its partitions), not the others of the same request; the
    broker serves on; an ALLOW lets it in."""
    broker.runner.in_process("topic", "create", "locked")
    broker.runner.in_process("topic", "create", "open")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "locked")
    with _tcp(broker) as sock:
        assert _codes(call(sock, ApiKey.PRODUCE, 9, _produce_body("locked", "open"))) == {"locked": 29, "open": 0}
        broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Write", "--topic", "locked")
        assert _codes(call(sock, ApiKey.PRODUCE, 9, _produce_body("locked", "open"))) == {"locked": 0, "open": 0}
    assert broker.proc.poll() is None


def test_reads_are_checked_per_topic_and_followers_need_cluster_action(broker):
    """Fetch needs READ per topic (DESCRIBE for ListOffsets), and a fetch that says it comes from a
    replica needs CLUSTER_ACTION on the cluster, which a client does not have once the cluster has ACLs."""
    for name in ("locked", "open"):
        broker.runner.in_process("topic", "create", name)
        broker.kcli("produce", name, input="x\n")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "locked")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "ClusterAction", "--cluster")
    part = {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20, "log_start_offset": -1}

    def fetch(sock: socket.socket, replica: int) -> dict[str, int]:
        body = {"replica_id": replica, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                "topics": [{"topic": t, "partitions": [part]} for t in ("locked", "open")]}
        return {t.topic: t.partitions[0].error_code for t in call(sock, ApiKey.FETCH, 12, body).responses}

    offsets = {"replica_id": -1, "topics": [{"name": t, "partitions": [
        {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]} for t in ("locked", "open")]}
    with _tcp(broker) as sock:
        assert fetch(sock, -1) == {"locked": 29, "open": 0}
        assert fetch(sock, 1) == {"locked": 29, "open": 29}
        listed = call(sock, ApiKey.LIST_OFFSETS, 7, offsets)
        assert {t.name: t.partitions[0].error_code for t in listed.topics} == {"locked": 29, "open": 0}


def test_kcli_client_denied_gets_one_line_and_exit_14(broker):
    broker.runner.in_process("topic", "create", "locked")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "All", "--topic", "locked")
    remote = ("--bootstrap-server", broker.bootstrap)
    proc = broker.kcli(*remote, "produce", "locked", input="x\n", ok=False)
    assert proc.returncode == 14, proc.stderr
    assert proc.stderr.startswith("kcli: error:") and "TOPIC_AUTHORIZATION_FAILED" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the broker's own user on the Unix socket is unaffected
    broker.kcli("produce", "locked", input="y\n")
    broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Write", "--topic", "locked")
    broker.kcli(*remote, "produce", "locked", input="x\n")


def _metadata(sock: socket.socket, topics: list[str] | None) -> dict[str, int]:
    body = {"topics": None if topics is None else [{"name": t} for t in topics], "allow_auto_topic_creation": False}
    return {t.name: t.error_code for t in call(sock, ApiKey.METADATA, 9, body).topics}


def test_metadata_hides_what_the_caller_may_not_describe(broker):
    for name in ("secret", "public"):
        broker.runner.in_process("topic", "create", name)
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "secret")
    with _tcp(broker) as sock:
        assert _metadata(sock, None) == {"public": 0}
        assert _metadata(sock, ["secret", "public", "missing"]) == {"secret": 29, "public": 0, "missing": 3}
    with connect(broker.socket_path) as sock:  # the broker's own user sees everything
        assert _metadata(sock, None) == {"public": 0, "secret": 0}
    broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Read", "--topic", "secret")
    body = {"topics": [{"name": "secret"}], "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": True}
    with _tcp(broker) as sock:
        (topic,) = call(sock, ApiKey.METADATA, 9, body).topics
        assert topic.topic_authorized_operations == (1 << OP.READ) | (1 << OP.DESCRIBE)  # READ implies DESCRIBE


def test_auto_creation_needs_create(broker):
    broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Describe", "--topic", "*")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Create", "--cluster")
    body = {"topics": [{"name": "fresh"}], "allow_auto_topic_creation": True}
    with _tcp(broker) as sock:
        assert [t.error_code for t in call(sock, ApiKey.METADATA, 9, body).topics] == [29]
        broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Create", "--topic", "fresh")
        assert [t.error_code for t in call(sock, ApiKey.METADATA, 9, body).topics] == [0]


def test_create_topics_needs_create_and_hides_configs_without_describe_configs(broker):
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Create", "--cluster", "--topic", "*")
    broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Create", "--topic", "mine")
    body = {"topics": [{"name": n, "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}
                       for n in ("mine", "theirs")], "timeout_ms": 10000, "validate_only": False}
    with _tcp(broker) as sock:
        answer = {t.name: t for t in call(sock, ApiKey.CREATE_TOPICS, 7, body).topics}
    assert answer["theirs"].error_code == 29
    assert answer["mine"].error_code == 0 and answer["mine"].topic_config_error_code == 29
    assert answer["mine"].configs is None


def test_deny_wins_and_prefixes_apply(broker):
    for name in ("payments", "orders"):
        broker.runner.in_process("topic", "create", name)
    broker.kcli("acl", "add", "--allow-principal", "User:*", "--operation", "All", "--topic", "*")
    broker.kcli("acl", "add", "--deny-principal", "User:ANONYMOUS", "--operation", "Write", "--topic", "pay",
                "--resource-pattern-type", "prefixed")
    with _tcp(broker) as sock:
        assert _codes(call(sock, ApiKey.PRODUCE, 9, _produce_body("payments", "orders"))) == {"payments": 29,
                                                                                             "orders": 0}
        assert _metadata(sock, ["payments"]) == {"payments": 0}  # a DENY of WRITE does not deny DESCRIBE


def test_group_and_transactional_id_acls(broker):
    broker.runner.in_process("topic", "create", "t")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Read", "--group", "g")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "Write", "--transactional-id", "tx")
    commit = {"group_id": "g", "generation_id": -1, "member_id": "", "retention_time_ms": -1,
              "topics": [{"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 0}]}]}
    init = {"transactional_id": "tx", "transaction_timeout_ms": 60000, "producer_id": -1, "producer_epoch": -1}
    with _tcp(broker) as sock:
        assert call(sock, ApiKey.FIND_COORDINATOR, 3, {"key": "g", "key_type": 0}).error_code == 30
        assert call(sock, ApiKey.FIND_COORDINATOR, 3, {"key": "tx", "key_type": 1}).error_code == 53
        answer = call(sock, ApiKey.OFFSET_COMMIT, 8, commit)
        assert [p.error_code for t in answer.topics for p in t.partitions] == [30]
        assert call(sock, ApiKey.INIT_PRODUCER_ID, 4, init).error_code == 53
        assert _codes(call(sock, ApiKey.PRODUCE, 9, _produce_body("t", transactional_id="tx"))) == {"t": 53}
        broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Read", "--group", "g")
        broker.kcli("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Write",
                    "--transactional-id", "tx")
        assert call(sock, ApiKey.FIND_COORDINATOR, 3, {"key": "g", "key_type": 0}).error_code == 0
        answer = call(sock, ApiKey.OFFSET_COMMIT, 8, commit)
        assert [p.error_code for t in answer.topics for p in t.partitions] == [0]
        assert call(sock, ApiKey.INIT_PRODUCER_ID, 4, init).error_code == 0


def test_super_users_and_a_closed_default(brokers):
    """allow.everyone.if.no.acl.found=false shuts TCP clients out of every topic no ACL names; a
    principal in super.users passes anyway (checked with a second broker whose super user is ANONYMOUS)."""
    brokers.init(2)
    closed = brokers.start(0, "--override", "allow.everyone.if.no.acl.found=false")
    admin = brokers.start(1, "--override", "allow.everyone.if.no.acl.found=false",
                          "--override", "super.users=User:bob;User:ANONYMOUS")
    brokers.runner.in_process("topic", "create", "t", "--partitions", "2", "--replication-factor", "1")
    for b in (closed, admin):
        with _tcp(b) as sock:
            assert _metadata(sock, ["t"]) == {"t": 29 if b is closed else 0}
    brokers.kcli("produce", "t", input="root is the brokers' own user\n")  # the Unix socket: unaffected


def test_acl_changes_reach_every_broker(brokers):
    brokers.init(2)
    b0, b1 = brokers.start(0), brokers.start(1)
    brokers.runner.in_process("topic", "create", "t")
    with _tcp(b1) as sock, _tcp(b0) as other:
        assert _metadata(sock, ["t"]) == {"t": 0}
        created = call(other, ApiKey.CREATE_ACLS, 3, {"creations": [
            {"resource_type": 2, "resource_name": "t", "resource_pattern_type": 3, "principal": "User:alice",
             "host": "*", "operation": 2, "permission_type": 3}]})
        assert [r.error_code for r in created.results] == [0]
        wait_for("broker 1 to see the ACL", lambda: _metadata(sock, ["t"]) == {"t": 29}, timeout=10)


def test_acl_apis_need_cluster_permissions(brokers):
    brokers.init(1)
    b = brokers.start(0)
    brokers.kcli("acl", "add", "--allow-principal", "User:admin", "--operation", "Alter", "--cluster")
    proc = brokers.kcli("--bootstrap-server", b.bootstrap, "acl", "add", "--allow-principal", "User:x",
                        "--topic", "t", ok=False)
    assert proc.returncode == 14 and "CLUSTER_AUTHORIZATION_FAILED" in proc.stderr
    # DESCRIBE is not implied by ALTER for someone else: ANONYMOUS may not list either
    listed = brokers.kcli("--bootstrap-server", b.bootstrap, "acl", "list", ok=False)
    assert listed.returncode == 14


def test_cli_through_a_broker(broker):
    """With a broker running, `kcli acl` goes through it (CreateAcls, DescribeAcls, DeleteAcls)."""
    broker.kcli("acl", "add", "--allow-principal", "User:a", "--allow-principal", "User:b", "--operation", "Read",
                "--topic", "t")
    assert "created ACL" in broker.log()
    assert len(json.loads(broker.kcli("acl", "list", "--principal", "User:a", "--json").stdout)) == 1
    assert broker.kcli("acl", "remove", "--topic", "t", ok=False).returncode == 2
    removed = broker.kcli("acl", "remove", "--topic", "t", "--force")
    assert removed.stderr.count("Removed ACL") == 2 and "deleted ACL" in broker.log()
    assert json.loads(broker.kcli("acl", "list", "--json").stdout) == []


def test_configs_groups_and_cluster_apis_check_their_resources(broker):
    broker.runner.in_process("topic", "create", "t")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "All", "--topic", "t",
                "--group", "g", "--cluster")
    broker.kcli("group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--execute")  # a group to list
    describe = {"resources": [{"resource_type": 2, "resource_name": "t", "configuration_keys": None},
                              {"resource_type": 4, "resource_name": "0", "configuration_keys": None},
                              {"resource_type": 32, "resource_name": "g", "configuration_keys": None}],
                "include_synonyms": False, "include_documentation": False}
    with _tcp(broker) as sock:
        assert [r.error_code for r in call(sock, ApiKey.DESCRIBE_CONFIGS, 4, describe).results] == [29, 31, 30]
        assert call(sock, ApiKey.LIST_GROUPS, 4, {"states_filter": []}).groups == []
        assert [g.error_code for g in call(sock, ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["g"]}).groups] == [30]
        assert call(sock, ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": None}).error_code == 31
        deleted = call(sock, ApiKey.DELETE_TOPICS, 6, {"topics": [{"name": "t", "topic_id": bytes(16)}],
                                                      "timeout_ms": 5000})
        assert [r.error_code for r in deleted.responses] == [29]
    with connect(broker.socket_path) as sock:  # the broker's own user
        assert [g.group_id for g in call(sock, ApiKey.LIST_GROUPS, 4, {"states_filter": []}).groups] == ["g"]
    assert broker.proc.poll() is None


@pytest.mark.interop
def test_confluent_producer_gets_topic_authorization_failed(broker):
    from confluent_kafka import KafkaError, Producer

    broker.runner.in_process("topic", "create", "locked")
    broker.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "All", "--topic", "locked")
    errors: list[int] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 15000})
    producer.produce("locked", b"x", on_delivery=lambda err, _msg: errors.append(err.code() if err else 0))
    producer.flush(20)
    assert errors == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


@pytest.mark.interop
def test_confluent_admin_client_creates_describes_and_deletes_acls(broker):
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
    )
    from confluent_kafka.admin import ResourceType as CResourceType

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = AclBinding(CResourceType.TOPIC, "orders", ResourcePatternType.PREFIXED, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding], request_timeout=15).values():
        future.result()
    every = AclBindingFilter(CResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                             AclPermissionType.ANY)
    assert admin.describe_acls(every, request_timeout=15).result() == [binding]
    assert json.loads(broker.kcli("acl", "list", "--json").stdout)[0]["principal"] == "User:alice"
    deleted = admin.delete_acls([every], request_timeout=15)
    assert [f.result() for f in deleted.values()] == [[binding]]
    assert json.loads(broker.kcli("acl", "list", "--json").stdout) == []


# ---------------------------------------------------------------- Unix-socket principals (SO_PEERCRED)

NOBODY = 65534


def _as_nobody(fn: Callable[[], object]) -> object:
    """``fn()``'s (JSON) result, run in a child process that dropped to uid/gid nobody."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_end, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        out = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(out)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_unix_socket_principal_is_the_peer_user(tmp_path):
    """A local user other than the broker's is User:<login name> on the Unix socket: denied a topic an
    ACL names for someone else, let in by an ACL for itself.  (The socket is opened to other users here
    on purpose: the ACLs must hold even then.)"""
    import pwd

    nobody = f"User:{pwd.getpwuid(NOBODY).pw_name}"
    root = Path(tempfile.mkdtemp(prefix="kcli-acl-"))
    started = Brokers(root / "data", tmp_path)
    try:
        started.init(1)
        b = started.start(0)
        started.runner.in_process("topic", "create", "t")
        started.kcli("acl", "add", "--allow-principal", "User:alice", "--operation", "All", "--topic", "t")
        for path in (root, root / "data", b.folder):
            path.chmod(0o711)
        os.chmod(b.socket_path, 0o666)

        def produce() -> dict[str, int]:
            with connect(b.socket_path) as sock:
                return _codes(call(sock, ApiKey.PRODUCE, 9, _produce_body("t")))

        assert _as_nobody(produce) == {"t": 29}
        started.kcli("acl", "add", "--allow-principal", nobody, "--operation", "Write", "--topic", "t")
        assert _as_nobody(produce) == {"t": 0}
        started.kcli("produce", "t", input="the broker's own user\n")
    finally:
        started.stop_all()
        shutil.rmtree(root, ignore_errors=True)
