"""TLS, SASL and ACLs together, as issue 21's "What proves it" asks: one broker with a SASL_SSL listener
(SCRAM-SHA-512 users alice, bob and the super user admin) and an SSL listener that requires client
certificates (principals by ``ssl.principal.mapping.rules``), no ``allow.everyone.if.no.acl.found``
override (a secured broker denies what no ACL allows).  Real clients (confluent-kafka, kafka-python,
kcat, kcli's own) log in, are refused, are authorized and denied by ACLs; a client logged in as alice
asks for bob's resources with every kind of request and gets only authorization errors while bob is
served."""

from __future__ import annotations

import gc
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.brokers import BrokerProcess, Brokers, call, read_frame
from support.tls import PKI, Issued, make_pki

from kcli.net.client_config import ClientConfig
from kcli.net.connection import BrokerConnection
from kcli.protocol import ApiKey, ErrorCode, RequestHeader, decode_response, encode_request
from kcli.storage.records import encode_batch

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "admin": "admin-secret"}
RULES = "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT"  # CN=carol,OU=clients,O=kcli,C=US -> User:carol
TOPICS = ("orders", "bobs", "carols")
AUTH_CODES = {ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.GROUP_AUTHORIZATION_FAILED,
              ErrorCode.CLUSTER_AUTHORIZATION_FAILED, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
KCAT = shutil.which("kcat")


@dataclass
class Secured:
    brokers: Brokers
    broker: BrokerProcess
    pki: PKI
    carol: Issued  # a client certificate whose principal is User:carol
    tmp: Path

    def port(self, listener: str) -> int:
        return next(e["port"] for e in self.broker.info["listeners"] if e["listener"] == listener)

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.port('SASL_SSL')}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.port('SSL')}"

    def kcli(self, *args: object, **kw: Any) -> subprocess.CompletedProcess:
        """kcli on the data dir (through the broker's Unix socket: its own user, who may do everything)."""
        return self.brokers.kcli(*args, **kw)

    def allow(self, principal: str, operation: str, *resource: str) -> None:
        self.kcli("acl", "add", "--allow-principal", principal, "--operation", operation, *resource)

    def confluent(self, user: str, password: str | None = None) -> dict[str, Any]:
        return {"bootstrap.servers": self.sasl_bootstrap, "security.protocol": "SASL_SSL",
                "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user,
                "sasl.password": PASSWORDS[user] if password is None else password,
                "ssl.ca.location": str(self.pki.ca.cert)}

    def confluent_mtls(self, issued: Issued) -> dict[str, Any]:
        return {"bootstrap.servers": self.ssl_bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": str(self.pki.ca.cert), "ssl.certificate.location": str(issued.cert),
                "ssl.key.location": str(issued.key)}

    def kafka_python(self, user: str, password: str | None = None) -> dict[str, Any]:
        return {"bootstrap_servers": self.sasl_bootstrap, "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user,
                "sasl_plain_password": PASSWORDS[user] if password is None else password,
                "ssl_cafile": str(self.pki.ca.cert)}

    def client_config(self, user: str, password: str | None = None) -> ClientConfig:
        return ClientConfig({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                             "sasl.username": user, "ssl.cafile": str(self.pki.ca.cert),
                             "sasl.password": PASSWORDS[user] if password is None else password})

    def connect(self, user: str) -> BrokerConnection:
        return BrokerConnection(("127.0.0.1", self.port("SASL_SSL")), config=self.client_config(user))

    def remote(self, user: str, password: str | None = None) -> tuple[str, ...]:
        """kcli's global options for a client of the SASL_SSL listener logged in as ``user``."""
        path = self.tmp / f"{user}-{password or 'right'}.properties"
        path.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                        f"sasl.username={user}\nsasl.password={PASSWORDS[user] if password is None else password}\n"
                        f"ssl.cafile={self.pki.ca.cert}\n")
        path.chmod(0o600)
        return ("--bootstrap-server", self.sasl_bootstrap, "--command-config", str(path))


@pytest.fixture
def secured(brokers: Brokers, tmp_path: Path) -> Iterator[Secured]:
    pki = make_pki(tmp_path / "pki")
    carol = pki.ca.issue("carol", "clients")
    brokers.init()
    for user, password in PASSWORDS.items():
        brokers.kcli("user", "create", user, "--mechanism", "SCRAM-SHA-512", input=password + "\n")
    for topic in TOPICS:
        brokers.runner.in_process("topic", "create", topic)
    broker = brokers.start(0, "--listener", "SASL_SSL://127.0.0.1:0", "--listener", "SSL://127.0.0.1:0",
                           *pki.broker_args("required"), "--ssl-principal-mapping-rules", RULES,
                           "--override", "super.users=User:admin", listener=None)
    yield Secured(brokers, broker, pki, carol, tmp_path)
    gc.collect()  # librdkafka clients left of the test go now, not on retrying a stopped broker later


def _consume_confluent(ck: Any, conf: dict[str, Any], topic: str, want: int, group: str,
                       timeout: float = 30) -> tuple[list[bytes], list[Any]]:
    """What a confluent consumer in ``group`` reads of ``topic`` (up to ``want`` messages) and the
    errors it meets; it stops at the first error."""
    consumer = ck.Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    errors: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and not errors and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(m.error())
            else:
                got.append(m.value())
    finally:
        consumer.close()
    return got, errors


def _auth_error_of_confluent(ck: Any, conf: dict[str, Any]) -> Any:
    errors: list[Any] = []
    producer = ck.Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, "no error within 15 s"
    return errors[0]


# ---------------------------------------------------------------- 1. logging in over SASL_SSL


@pytest.mark.interop
def test_confluent_kafka_over_sasl_ssl(secured: Secured) -> None:
    ck = pytest.importorskip("confluent_kafka")
    secured.allow("User:alice", "Write", "--topic", "orders")
    secured.allow("User:alice", "Read", "--topic", "orders", "--group", "g-alice")
    producer = ck.Producer(secured.confluent("alice"))
    for i in range(10):
        producer.produce("orders", f"m{i}".encode())
    assert producer.flush(30) == 0
    got, errors = _consume_confluent(ck, secured.confluent("alice"), "orders", 10, "g-alice")
    assert not errors and sorted(got) == sorted(f"m{i}".encode() for i in range(10))
    for user, password in (("alice", "wrong-password"), ("nobody", "alice-secret")):
        started = time.monotonic()
        error = _auth_error_of_confluent(ck, {**secured.confluent("alice", password), "sasl.username": user})
        assert error.code() == ck.KafkaError._AUTHENTICATION, error
        assert "Authentication failed" in error.str() and time.monotonic() - started < 10


@pytest.mark.interop
@pytest.mark.slow
def test_kafka_python_over_sasl_ssl(secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    kafka = pytest.importorskip("kafka")
    from kafka.errors import KafkaError

    secured.allow("User:alice", "Write", "--topic", "orders")
    secured.allow("User:alice", "Read", "--topic", "orders", "--group", "kp-alice")
    producer = kafka.KafkaProducer(**secured.kafka_python("alice"))
    for i in range(5):
        producer.send("orders", f"v{i}".encode()).get(timeout=30)
    producer.close()
    consumer = kafka.KafkaConsumer("orders", group_id="kp-alice", auto_offset_reset="earliest",
                                   consumer_timeout_ms=10000, **secured.kafka_python("alice"))
    assert sorted(m.value for m in consumer) == [f"v{i}".encode() for i in range(5)]
    consumer.close()
    # kafka-python 3 retries a refused bootstrap until its bootstrap timeout: what matters is that
    # each attempt met the broker's SaslAuthenticationFailed, not a silent hang-up
    for user, password in (("alice", "wrong-password"), ("nobody", "x")):
        caplog.clear()
        with pytest.raises(KafkaError):
            kafka.KafkaProducer(**{**secured.kafka_python("alice", password), "sasl_plain_username": user},
                                bootstrap_timeout_ms=3000)
        failures = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
        assert failures and "invalid credentials" in failures[0]


@pytest.mark.interop
@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_over_sasl_ssl(secured: Secured) -> None:
    secured.allow("User:alice", "All", "--topic", "orders")
    run = [KCAT, "-b", secured.sasl_bootstrap, "-X", "security.protocol=SASL_SSL",
           "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=alice",
           "-X", f"ssl.ca.location={secured.pki.ca.cert}"]
    subprocess.run([*run, "-X", "sasl.password=alice-secret", "-P", "-t", "orders"], input=b"one\ntwo\n",
                   check=True, timeout=60)
    out = subprocess.run([*run, "-X", "sasl.password=alice-secret", "-C", "-t", "orders", "-o", "beginning",
                          "-e", "-q"], capture_output=True, check=True, timeout=60).stdout
    assert out == b"one\ntwo\n"
    bad = subprocess.run([*run, "-X", "sasl.password=nope", "-L"], capture_output=True, timeout=60)
    assert bad.returncode != 0 and b"Authentication failed" in bad.stderr
    denied = subprocess.run([*run, "-X", "sasl.password=alice-secret", "-C", "-t", "bobs", "-o", "beginning",
                             "-e"], capture_output=True, timeout=60)
    assert denied.returncode != 0 and b"authoriz" in denied.stderr.lower(), denied.stderr


def test_kcli_client_over_sasl_ssl_by_command_config(secured: Secured) -> None:
    secured.allow("User:alice", "All", "--topic", "orders", "--group", "billing")
    alice = secured.remote("alice")
    secured.kcli(*alice, "produce", "orders", input="a\nb\nc\n")
    out = secured.kcli(*alice, "consume", "orders", "-g", "billing", "--reset", "earliest", "-c", "3").stdout
    assert out.splitlines() == ["a", "b", "c"]
    refused = secured.kcli(*secured.remote("alice", "wrong-pw-42"), "topic", "list", ok=False)
    assert refused.returncode == 13, refused.stderr
    assert len(refused.stderr.splitlines()) == 1 and refused.stderr.startswith("kcli: error:")
    assert "wrong-pw-42" not in refused.stderr
    denied = secured.kcli(*alice, "consume", "bobs", "-b", "-e", ok=False)
    assert denied.returncode == 14, denied.stderr
    assert len(denied.stderr.splitlines()) == 1 and "TOPIC_AUTHORIZATION_FAILED" in denied.stderr


# ---------------------------------------------------------------- 2. authorization by real principals


@pytest.mark.interop
def test_topic_read_acl_with_confluent_kafka_python_and_kcli(secured: Secured) -> None:
    """bob has no READ on orders: each client is told TOPIC_AUTHORIZATION_FAILED; with one, each reads."""
    ck = pytest.importorskip("confluent_kafka")
    kafka = pytest.importorskip("kafka")
    from kafka.errors import TopicAuthorizationFailedError

    secured.kcli("produce", "orders", input="first\n")
    secured.allow("User:bob", "Read", "--group", "g-bob")
    got, errors = _consume_confluent(ck, secured.confluent("bob"), "orders", 1, "g-bob")
    assert got == [] and [e.code() for e in errors] == [ck.KafkaError.TOPIC_AUTHORIZATION_FAILED]
    denied = secured.kcli(*secured.remote("bob"), "consume", "orders", "-b", "-e", ok=False)
    assert denied.returncode == 14 and len(denied.stderr.splitlines()) == 1, denied.stderr
    assert "TOPIC_AUTHORIZATION_FAILED" in denied.stderr
    # kafka-python only logs a topic that Metadata refuses; its Fetch refused raises (DESCRIBE, no READ)
    secured.allow("User:bob", "Describe", "--topic", "orders")
    consumer = kafka.KafkaConsumer(auto_offset_reset="earliest", **secured.kafka_python("bob"))
    consumer.assign([kafka.TopicPartition("orders", 0)])
    with pytest.raises(TopicAuthorizationFailedError):
        consumer.poll(timeout_ms=10000)
    consumer.close()
    # (not idempotent: an idempotent producer with no WRITE anywhere is refused the producer id first,
    # CLUSTER_AUTHORIZATION_FAILED, as by Kafka)
    producer = kafka.KafkaProducer(**secured.kafka_python("bob"), max_block_ms=10000, enable_idempotence=False)
    with pytest.raises(TopicAuthorizationFailedError):  # nor WRITE
        producer.send("orders", b"by bob").get(timeout=15)
    producer.close()

    secured.allow("User:bob", "Read", "--topic", "orders")
    got, errors = _consume_confluent(ck, secured.confluent("bob"), "orders", 1, "g-bob")
    assert not errors and got == [b"first"]
    consumer = kafka.KafkaConsumer("orders", group_id="g-bob-kp", auto_offset_reset="earliest",
                                   consumer_timeout_ms=5000, **secured.kafka_python("bob"))
    secured.allow("User:bob", "Read", "--group", "g-bob-kp")
    assert [m.value for m in consumer] == [b"first"]
    consumer.close()
    assert secured.kcli(*secured.remote("bob"), "consume", "orders", "-b", "-e").stdout == "first\n"


@pytest.mark.interop
def test_group_acl_with_real_clients(secured: Secured) -> None:
    """READ on the topic is not enough for a consumer group: it needs READ on the group too."""
    ck = pytest.importorskip("confluent_kafka")
    secured.kcli("produce", "orders", input="x\n")
    secured.allow("User:bob", "Read", "--topic", "orders")
    got, errors = _consume_confluent(ck, secured.confluent("bob"), "orders", 1, "team")
    assert got == [] and [e.code() for e in errors] == [ck.KafkaError.GROUP_AUTHORIZATION_FAILED]
    denied = secured.kcli(*secured.remote("bob"), "consume", "orders", "-g", "team", "--reset", "earliest", "-c", "1",
                          ok=False)
    assert denied.returncode == 14 and "GROUP_AUTHORIZATION_FAILED" in denied.stderr, denied.stderr
    assert len(denied.stderr.splitlines()) == 1
    kafka = pytest.importorskip("kafka")
    from kafka.errors import GroupAuthorizationFailedError

    consumer = kafka.KafkaConsumer("orders", group_id="team", auto_offset_reset="earliest",
                                   **secured.kafka_python("bob"))
    with pytest.raises(GroupAuthorizationFailedError):
        consumer.poll(timeout_ms=10000)
    consumer.close()
    secured.allow("User:bob", "Read", "--group", "team")
    got, errors = _consume_confluent(ck, secured.confluent("bob"), "orders", 1, "team")
    assert not errors and got == [b"x"]
    secured.allow("User:bob", "Read", "--group", "team-kcli")
    again = secured.kcli(*secured.remote("bob"), "consume", "orders", "-g", "team-kcli", "--reset", "earliest",
                         "-c", "1").stdout
    assert again == "x\n"


@pytest.mark.interop
def test_transactional_id_acl_with_confluent_kafka(secured: Secured) -> None:
    """A transactional producer needs WRITE on its transactional id (and on the topic)."""
    ck = pytest.importorskip("confluent_kafka")
    secured.allow("User:alice", "Write", "--topic", "orders")
    conf = {**secured.confluent("alice"), "transactional.id": "tx-alice"}
    producer = ck.Producer(conf)
    with pytest.raises(ck.KafkaException) as refused:
        producer.init_transactions(20)
    assert refused.value.args[0].code() == ck.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    kafka = pytest.importorskip("kafka")
    from kafka.errors import TransactionalIdAuthorizationFailedError

    kp = kafka.KafkaProducer(**secured.kafka_python("alice"), transactional_id="tx-alice")
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        kp.init_transactions()
    kp.close(timeout=5)
    denied = secured.kcli(*secured.remote("alice"), "produce", "orders", "--transactional-id", "tx-alice",
                          input="x\n", ok=False)
    assert denied.returncode == 14 and len(denied.stderr.splitlines()) == 1, denied.stderr
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in denied.stderr
    secured.allow("User:alice", "Write", "--transactional-id", "tx-alice")
    producer = ck.Producer(conf)
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce("orders", b"in a transaction")
    producer.commit_transaction(20)
    secured.kcli(*secured.remote("alice"), "produce", "orders", "--transactional-id", "tx-alice", input="by kcli\n")
    out = secured.kcli("consume", "orders", "-b", "-c", "2", "--isolation-level", "read_committed").stdout
    assert out == "in a transaction\nby kcli\n"


@pytest.mark.interop
def test_a_super_user_may_do_everything(secured: Secured) -> None:
    """User:admin (super.users) with no ACL at all: produce, consume in a group, create and delete
    topics, manage ACLs and users, transactions; the same requests from bob are refused."""
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient, NewTopic

    secured.allow("User:nobody-else", "Read", "--topic", "bobs")  # an ACL that names the topic, not admin
    producer = ck.Producer({**secured.confluent("admin"), "transactional.id": "tx-admin"})
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce("bobs", b"by admin")
    producer.commit_transaction(20)
    got, errors = _consume_confluent(ck, secured.confluent("admin"), "bobs", 1, "admins")
    assert not errors and got == [b"by admin"]
    admin = AdminClient(secured.confluent("admin"))
    for future in admin.create_topics([NewTopic("made-by-admin", 1, 1)], request_timeout=15).values():
        future.result()
    for future in admin.delete_topics(["made-by-admin"], request_timeout=15).values():
        future.result()
    admin_cli = secured.remote("admin")
    secured.kcli(*admin_cli, "acl", "add", "--allow-principal", "User:bob", "--operation", "Read", "--topic", "bobs")
    secured.kcli(*admin_cli, "user", "create", "dave", "--mechanism", "SCRAM-SHA-512", input="dave-pw\n")
    assert "dave" in secured.kcli(*admin_cli, "user", "list").stdout
    bob = AdminClient(secured.confluent("bob"))
    with pytest.raises(ck.KafkaException) as refused:
        next(iter(bob.create_topics([NewTopic("made-by-bob", 1, 1)], request_timeout=15).values())).result()
    assert refused.value.args[0].code() == ck.KafkaError.TOPIC_AUTHORIZATION_FAILED
    denied = secured.kcli(*secured.remote("bob"), "user", "list", ok=False)
    assert denied.returncode == 14 and "not authorized to DESCRIBE cluster" in denied.stderr, denied.stderr
    assert len(denied.stderr.splitlines()) == 1


@pytest.mark.interop
def test_mtls_principal_gets_exactly_its_acls(secured: Secured) -> None:
    """Over the SSL listener carol's certificate makes her User:carol (the mapping rule): she reads
    what her ACL allows and nothing else; a client without a certificate does not get in."""
    ck = pytest.importorskip("confluent_kafka")
    for topic in ("carols", "orders"):
        secured.kcli("produce", topic, input=f"in {topic}\n")
    secured.allow("User:carol", "Read", "--topic", "carols", "--group", "g-carol")
    secured.allow("User:alice", "Read", "--topic", "orders", "--group", "g-carol")
    carol = secured.confluent_mtls(secured.carol)
    got, errors = _consume_confluent(ck, carol, "carols", 1, "g-carol")
    assert not errors and got == [b"in carols"]
    got, errors = _consume_confluent(ck, carol, "orders", 1, "g-carol")  # alice's, not carol's
    assert got == [] and [e.code() for e in errors] == [ck.KafkaError.TOPIC_AUTHORIZATION_FAILED]
    producer = ck.Producer(carol)
    results: list[Any] = []
    producer.produce("carols", b"w", on_delivery=lambda err, _m: results.append(err and err.code()))
    producer.flush(20)
    assert results == [ck.KafkaError.TOPIC_AUTHORIZATION_FAILED]  # READ, not WRITE
    # the certificate CN=alice maps to User:alice, the same principal as SCRAM's alice
    got, errors = _consume_confluent(ck, secured.confluent_mtls(secured.pki.client), "orders", 1, "g-carol")
    assert not errors and got == [b"in orders"]
    anonymous = {k: v for k, v in carol.items() if k not in ("ssl.certificate.location", "ssl.key.location")}
    error = _auth_error_of_confluent(ck, anonymous)
    assert error.code() in (ck.KafkaError._SSL, ck.KafkaError._TRANSPORT, ck.KafkaError._ALL_BROKERS_DOWN), error


# ---------------------------------------------------------------- 3. alice asks for bob's things


def _records(batch_count: int = 1) -> bytes:
    return encode_batch([(None, b"alice was here", [], int(time.time() * 1000))] * batch_count)


def _alices_requests() -> list[tuple[str, int, int, dict[str, Any]]]:
    """(what, api key, version, body): requests for bob's topic, group and transactional id, and for the
    cluster, none of which alice has an ACL for."""
    part = {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20, "log_start_offset": -1}
    scram = {"name": "bob", "mechanism": 2, "iterations": 4096, "salt": b"s" * 16, "salted_password": b"p" * 64}
    return [
        ("produce", ApiKey.PRODUCE, 9, {"transactional_id": None, "acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": "bobs", "partition_data": [{"index": 0, "records": _records()}]}]}),
        ("transactional produce", ApiKey.PRODUCE, 9, {"transactional_id": "tx-bob", "acks": 1, "timeout_ms": 5000,
                                                      "topic_data": [{"name": "bobs", "partition_data": [
                                                          {"index": 0, "records": _records()}]}]}),
        ("fetch", ApiKey.FETCH, 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                     "topics": [{"topic": "bobs", "partitions": [part]}]}),
        ("follower fetch", ApiKey.FETCH, 12, {"replica_id": 0, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                              "topics": [{"topic": "bobs", "partitions": [part]}]}),
        ("list offsets", ApiKey.LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": "bobs", "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]}),
        ("offset commit", ApiKey.OFFSET_COMMIT, 8, {"group_id": "g-bob", "generation_id": -1, "member_id": "",
                                                   "retention_time_ms": -1, "topics": [{"name": "bobs", "partitions": [
                                                       {"partition_index": 0, "committed_offset": 0}]}]}),
        ("offset fetch", ApiKey.OFFSET_FETCH, 7, {"group_id": "g-bob", "topics": None, "require_stable": False}),
        ("find group coordinator", ApiKey.FIND_COORDINATOR, 3, {"key": "g-bob", "key_type": 0}),
        ("find txn coordinator", ApiKey.FIND_COORDINATOR, 3, {"key": "tx-bob", "key_type": 1}),
        ("init producer id", ApiKey.INIT_PRODUCER_ID, 4, {"transactional_id": "tx-bob", "transaction_timeout_ms": 60000,
                                                         "producer_id": -1, "producer_epoch": -1}),
        ("delete topics", ApiKey.DELETE_TOPICS, 6, {"topics": [{"name": "bobs", "topic_id": bytes(16)}],
                                                    "timeout_ms": 5000}),
        ("delete groups", ApiKey.DELETE_GROUPS, 2, {"groups_names": ["g-bob"]}),
        ("create acls", ApiKey.CREATE_ACLS, 3, {"creations": [
            {"resource_type": 2, "resource_name": "bobs", "resource_pattern_type": 3, "principal": "User:alice",
             "host": "*", "operation": 2, "permission_type": 3}]}),
        ("metadata", ApiKey.METADATA, 9, {"topics": [{"name": "bobs"}], "allow_auto_topic_creation": True,
                                         "include_cluster_authorized_operations": False,
                                         "include_topic_authorized_operations": False}),
        ("create topics", ApiKey.CREATE_TOPICS, 7, {"topics": [{"name": "bobs-too", "num_partitions": 1,
                                                               "replication_factor": 1, "assignments": [],
                                                               "configs": []}],
                                                   "timeout_ms": 5000, "validate_only": False}),
        ("create partitions", ApiKey.CREATE_PARTITIONS, 3, {"topics": [{"name": "bobs", "count": 3,
                                                                       "assignments": None}],
                                                           "timeout_ms": 5000, "validate_only": False}),
        ("delete records", ApiKey.DELETE_RECORDS, 2, {"topics": [{"name": "bobs", "partitions": [
            {"partition_index": 0, "offset": -1}]}], "timeout_ms": 5000}),
        ("describe configs", ApiKey.DESCRIBE_CONFIGS, 4, {"resources": [
            {"resource_type": 2, "resource_name": "bobs", "configuration_keys": None}],
            "include_synonyms": False, "include_documentation": False}),
        ("alter configs", ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {"resources": [
            {"resource_type": 2, "resource_name": "bobs", "configs": [
                {"name": "retention.ms", "config_operation": 0, "value": "1"}]}], "validate_only": False}),
        ("describe producers", ApiKey.DESCRIBE_PRODUCERS, 0, {"topics": [{"name": "bobs", "partition_indexes": [0]}]}),
        ("join group", ApiKey.JOIN_GROUP, 9, {"group_id": "g-bob", "session_timeout_ms": 10000,
                                             "rebalance_timeout_ms": 10000, "member_id": "", "group_instance_id": None,
                                             "protocol_type": "consumer", "protocols": [{"name": "range",
                                                                                         "metadata": b""}],
                                             "reason": None}),
        ("heartbeat", ApiKey.HEARTBEAT, 4, {"group_id": "g-bob", "generation_id": 1, "member_id": "m",
                                           "group_instance_id": None}),
        ("leave group", ApiKey.LEAVE_GROUP, 5, {"group_id": "g-bob", "members": [
            {"member_id": "m", "group_instance_id": None, "reason": None}]}),
        ("describe groups", ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["g-bob"], "include_authorized_operations": True}),
        ("offset delete", ApiKey.OFFSET_DELETE, 0, {"group_id": "g-bob", "topics": [
            {"name": "bobs", "partitions": [{"partition_index": 0}]}]}),
        ("add partitions to txn", ApiKey.ADD_PARTITIONS_TO_TXN, 3, {"transactional_id": "tx-bob", "producer_id": 1,
                                                                   "producer_epoch": 0, "topics": [
                                                                       {"name": "bobs", "partitions": [0]}]}),
        ("add offsets to txn", ApiKey.ADD_OFFSETS_TO_TXN, 4, {"transactional_id": "tx-bob", "producer_id": 1,
                                                             "producer_epoch": 0, "group_id": "g-bob"}),
        ("txn offset commit", ApiKey.TXN_OFFSET_COMMIT, 4, {
            "transactional_id": "tx-bob", "group_id": "g-bob", "producer_id": 1, "producer_epoch": 0,
            "generation_id": -1, "member_id": "", "group_instance_id": None, "topics": [
                {"name": "bobs", "partitions": [{"partition_index": 0, "committed_offset": 0,
                                                 "committed_leader_epoch": -1, "committed_metadata": None}]}]}),
        ("end txn", ApiKey.END_TXN, 4, {"transactional_id": "tx-bob", "producer_id": 1, "producer_epoch": 0,
                                       "committed": True}),
        ("describe transactions", ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": ["tx-bob"]}),
        ("describe acls", ApiKey.DESCRIBE_ACLS, 3, {"resource_type_filter": 1, "resource_name_filter": None,
                                                   "pattern_type_filter": 1, "principal_filter": None,
                                                   "host_filter": None, "operation": 1, "permission_type": 1}),
        ("delete acls", ApiKey.DELETE_ACLS, 3, {"filters": [
            {"resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
             "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1}]}),
        ("describe scram", ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": [{"name": "bob"}]}),
        ("alter scram", ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, {"deletions": [], "upsertions": [scram]}),
        ("delete scram", ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, {"deletions": [{"name": "bob", "mechanism": 2}],
                                                                 "upsertions": []}),
    ]


def _error_codes(value: Any) -> list[int]:
    """The error codes of a response's innermost entries (the top level's when it has no entries):
    what answers each topic, partition, group or user asked about."""
    if isinstance(value, list):
        return [c for v in value for c in _error_codes(v)]
    if not isinstance(value, dict):
        return []
    inner = [c for v in value.values() if isinstance(v, list | dict) for c in _error_codes(v)]
    return inner or [v for k, v in value.items() if k in ("error_code", "partition_error_code")]


def _no_data(value: Any) -> bool:
    """No records and no offsets of bob's in a response."""
    if isinstance(value, dict):
        return all((v in (None, b"") if k == "records" else
                    v in (-1, 0) if k in ("committed_offset", "offset", "high_watermark") else _no_data(v))
                   for k, v in value.items())
    if isinstance(value, list):
        return all(_no_data(v) for v in value)
    return True


def _bad_clients(secured: Secured, rng: random.Random) -> None:
    """A TLS handshake cut short and a TLS client whose SASL tokens are garbage, on the SASL_SSL listener."""
    address = ("127.0.0.1", secured.port("SASL_SSL"))
    with socket.create_connection(address, timeout=10) as raw:  # a ClientHello's start, then gone
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(rng.randrange(0, 64)))
    context = ssl.create_default_context(cafile=str(secured.pki.ca.cert))
    with context.wrap_socket(socket.create_connection(address, timeout=10), server_hostname="127.0.0.1") as tls:
        assert call(tls, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == 0
        tls.sendall(_frame(ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": rng.randbytes(rng.randrange(0, 300))}))
        answer = read_frame(tls)  # SASL_AUTHENTICATION_FAILED, then the broker closes; never a login
        if answer is not None:
            assert decode_response(ApiKey.SASL_AUTHENTICATE, 2, answer).body.error_code != 0


def _frame(key: int, version: int, body: dict[str, Any]) -> bytes:
    return encode_request(RequestHeader(key, version, 7, "fuzz"), body)


def test_alice_gets_only_authorization_errors_for_bobs_resources(secured: Secured) -> None:
    """alice is logged in but has no ACL for bob's topic, group or transactional id, nor for the
    cluster: every request she makes for them, again and again in a shuffled order between clients that
    cut their TLS handshake short or send garbage SASL tokens, is answered with an authorization error
    and carries none of bob's data, while bob produces and consumes on the same broker at the same time;
    afterwards bob's records, offsets, ACLs and credentials are as he left them."""
    secured.allow("User:bob", "All", "--topic", "bobs", "--group", "g-bob", "--transactional-id", "tx-bob")
    secured.kcli("produce", "bobs", input="bob's secret\n")
    secured.kcli("group", "reset-offsets", "g-bob", "--topic", "bobs", "--to-earliest", "--execute")
    acls_before = secured.kcli("acl", "list", "--json").stdout
    stop = threading.Event()
    bob_failures: list[BaseException] = []
    bob_rounds = [0]

    def bob_works() -> None:
        try:
            bob = secured.connect("bob")
            while not stop.is_set():
                answer = bob.request(ApiKey.PRODUCE, {"transactional_id": None, "acks": 1, "timeout_ms": 5000,
                                                      "topic_data": [{"name": "bobs", "partition_data": [
                                                          {"index": 0, "records": encode_batch(
                                                              [(None, b"bob", [], int(time.time() * 1000))])}]}]},
                                     version=9)
                assert answer.responses[0].partition_responses[0].error_code == 0, answer
                bob_rounds[0] += 1
            bob.close()
        except BaseException as exc:  # reported by the main thread
            bob_failures.append(exc)

    worker = threading.Thread(target=bob_works, daemon=True)
    worker.start()
    alice = secured.connect("alice")
    try:
        rng = random.Random(21)
        for _round in range(5):
            _bad_clients(secured, rng)
            for what, key, version, body in rng.sample(_alices_requests(), k=len(_alices_requests())):
                answer = alice.request(key, body, version=version)
                codes = _error_codes(answer)
                assert codes and set(codes) <= AUTH_CODES, (what, answer)
                assert answer.get("error_code", 0) in AUTH_CODES | {0}, (what, answer)
                assert _no_data(answer), (what, answer)
                if key == ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS:
                    assert all(not r.credential_infos for r in answer.results), answer
    finally:
        alice.close()
        stop.set()
        worker.join(30)
    assert not bob_failures, bob_failures
    assert bob_rounds[0] > 0
    assert secured.broker.proc.poll() is None and "Traceback" not in secured.broker.log()
    # nothing of alice's got in: bob's topic, ACLs and password are as they were
    values = secured.kcli("consume", "bobs", "-b", "-e").stdout.splitlines()
    assert values[0] == "bob's secret" and set(values[1:]) == {"bob"}
    assert secured.kcli("acl", "list", "--json").stdout == acls_before
    secured.connect("bob").close()  # his password still works
    assert "bobs" in secured.kcli("topic", "list").stdout


# ---------------------------------------------------------------- 4. SCRAM credentials need CLUSTER rights


def test_scram_credential_apis_need_describe_and_alter_on_the_cluster(secured: Secured) -> None:
    """As Kafka: DescribeUserScramCredentials needs DESCRIBE on the cluster, AlterUserScramCredentials
    ALTER; without them every user in the answer gets CLUSTER_AUTHORIZATION_FAILED and nothing changes."""
    up = {"name": "eve", "mechanism": 2, "iterations": 4096, "salt": b"s" * 16, "salted_password": b"p" * 64}
    describe = {"users": [{"name": "alice"}, {"name": "bob"}]}
    alter = {"deletions": [{"name": "bob", "mechanism": 2}], "upsertions": [up]}
    alice = secured.connect("alice")
    try:
        answer = alice.request(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, describe, version=0)
        assert answer.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        assert [(r.user, r.error_code, r.credential_infos) for r in answer.results] == [
            ("alice", ErrorCode.CLUSTER_AUTHORIZATION_FAILED, []), ("bob", ErrorCode.CLUSTER_AUTHORIZATION_FAILED, [])]
        everyone = alice.request(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, {"users": None}, version=0)
        assert everyone.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED and everyone.results == []
        answer = alice.request(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, alter, version=0)
        assert sorted((r.user, r.error_code) for r in answer.results) == [
            ("bob", ErrorCode.CLUSTER_AUTHORIZATION_FAILED), ("eve", ErrorCode.CLUSTER_AUTHORIZATION_FAILED)]

        secured.allow("User:alice", "Describe", "--cluster")
        answer = alice.request(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, describe, version=0)
        assert answer.error_code == 0 and [len(r.credential_infos) for r in answer.results] == [1, 1]
        answer = alice.request(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, alter, version=0)
        assert {r.error_code for r in answer.results} == {ErrorCode.CLUSTER_AUTHORIZATION_FAILED}
        assert "eve" not in secured.kcli("user", "list").stdout

        secured.allow("User:alice", "Alter", "--cluster")
        answer = alice.request(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, alter, version=0)
        assert [(r.user, r.error_code) for r in answer.results] == [("bob", 0), ("eve", 0)]
    finally:
        alice.close()
    users = secured.kcli("user", "list").stdout
    assert "eve" in users and "bob" not in users
    assert "eve" in secured.kcli(*secured.remote("admin"), "user", "list").stdout  # a super user, by wire
