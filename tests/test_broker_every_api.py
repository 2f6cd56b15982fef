"""Every API and version the broker advertises, exercised over a real socket -- and bad input after which
the connection must stay usable.

One real broker serves the whole module.  For each (api key, version) of kcli's dispatch table (the
same table ApiVersions sends, checked below) a request is written by the reference codec built from
Kafka's JSON definitions (tests/support/kafka_json.py, independent of kcli.protocol), from a per-API
request maker that makes it mean something: existing topics, a group with a real member, a transaction
that was begun, ...  The answer must decode completely at that version, carry the correlation id, hold
only the error codes the maker expects, and the connection must answer the next request.

An advertised API without a maker fails ``test_every_advertised_api_has_a_request_maker`` and its own
cases, naming it: a new API or version is not done until it is exercised here.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.brokers import BrokerProcess, Brokers, connect, read_frame
from support.kafka_json import Api, Message, api_message_names, in_range

from kcli.broker.dispatch import advertised
from kcli.protocol import ApiKey, ErrorCode
from kcli.storage.records import encode_batch

ADVERTISED = advertised()
CASES = [(key, v) for key, (lo, hi) in sorted(ADVERTISED.items()) for v in range(lo, hi + 1)]
ZERO_UUID = uuid.UUID(int=0)
UNSUPPORTED_VERSION = struct.pack(">h", ErrorCode.UNSUPPORTED_VERSION)


def name_of(key: int) -> str:
    names = api_message_names()
    return names[(key, "request")].removesuffix("Request") if (key, "request") in names else f"api key {key}"


# --- a connection speaking through the reference codec --------------------------------------------------


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.correlation_id = 0

    def send(
        self, key: int, version: int, body: dict[str, Any], *, header_tags: tuple[tuple[int, bytes], ...] = ()
    ) -> int:
        self.correlation_id += 1
        frame = Api.of(key, version).encode_request(
            version, self.correlation_id, "every-api", body, header_tags=header_tags
        )
        self.sock.sendall(frame)
        return self.correlation_id

    def send_raw(self, payload_after_size: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload_after_size)) + payload_after_size)

    def receive(self, correlation_id: int) -> bytes:
        payload = read_frame(self.sock)
        assert payload is not None, "the broker closed the connection"
        assert struct.unpack(">i", payload[:4])[0] == correlation_id, "correlation id"
        return payload

    def call(self, key: int, version: int, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        """Send, and decode the answer at ``version`` with the reference (it must fill the frame)."""
        payload = self.receive(self.send(key, version, body, **kw))
        _header, response = Api.of(key, version).decode_response(version, payload)
        return response

    def usable(self) -> bool:
        """Whether the connection still answers a plain ApiVersions v0."""
        return self.call(ApiKey.API_VERSIONS, 0, {})["error_code"] == 0


def error_codes(value: Any) -> set[int]:
    """Every ``*error_code`` anywhere in a decoded response."""
    out: set[int] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith("error_code") and isinstance(v, int):
                out.add(v)
            else:
                out |= error_codes(v)
    elif isinstance(value, list):
        for v in value:
            out |= error_codes(v)
    return out


# --- the broker and what the requests refer to ----------------------------------------------------------


@dataclass
class World:
    """The running broker, the topic every request can use, and set-up helpers."""

    broker: BrokerProcess
    topic: str = "every-api"
    topic_id: uuid.UUID = ZERO_UUID
    made: set[str] = field(default_factory=set)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        sock = connect(("127.0.0.1", self.broker.port))
        try:
            yield Connection(sock)
        finally:
            sock.close()

    def version(self, key: int) -> int:
        """The version set-up steps use: the lowest advertised, whose layout is the simplest."""
        return ADVERTISED[key][0]

    def setup(self, conn: Connection, key: int, body: dict[str, Any]) -> dict[str, Any]:
        response = conn.call(key, self.version(key), body)
        assert error_codes(response) <= {0}, f"set-up {name_of(key)}: {response}"
        return response

    def unique(self, prefix: str) -> str:
        name = f"{prefix}-{len(self.made)}"
        self.made.add(name)
        return name

    def create_topic(self, conn: Connection, name: str, partitions: int = 1) -> None:
        topic = {"name": name, "num_partitions": partitions, "replication_factor": 1}
        self.setup(conn, ApiKey.CREATE_TOPICS, {"topics": [topic], "timeout_ms": 10000})

    def batch(self) -> bytes:
        return encode_batch([(b"k", b"every-api", [], int(time.time() * 1000))], 0)

    def subscription(self) -> bytes:
        body = Message("ConsumerProtocolSubscription").encode({"topics": [self.topic], "user_data": None}, 0)
        return struct.pack(">h", 0) + body

    def assignment(self) -> bytes:
        owned = {"assigned_partitions": [{"topic": self.topic, "partitions": [0, 1]}], "user_data": None}
        return struct.pack(">h", 0) + Message("ConsumerProtocolAssignment").encode(owned, 0)

    def join(self, conn: Connection, group: str) -> dict[str, Any]:
        """A classic consumer-group member (JoinGroup, twice when the broker asks for a member id)."""
        body = {
            "group_id": group,
            "session_timeout_ms": 30000,
            "rebalance_timeout_ms": 30000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": self.subscription()}],
        }
        version = self.version(ApiKey.JOIN_GROUP)
        response = conn.call(ApiKey.JOIN_GROUP, version, body)
        if response["error_code"] == ErrorCode.MEMBER_ID_REQUIRED:
            response = conn.call(ApiKey.JOIN_GROUP, version, {**body, "member_id": response["member_id"]})
        assert response["error_code"] == 0, response
        return response

    def member(self, conn: Connection, group: str) -> dict[str, Any]:
        """A member that joined and synced (the group is Stable)."""
        joined = self.join(conn, group)
        self.setup(conn, ApiKey.SYNC_GROUP, self.sync_body(group, joined))
        return joined

    def sync_body(self, group: str, joined: dict[str, Any]) -> dict[str, Any]:
        return {
            "group_id": group,
            "generation_id": joined["generation_id"],
            "member_id": joined["member_id"],
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [{"member_id": joined["member_id"], "assignment": self.assignment()}],
        }

    def commit(self, conn: Connection, group: str) -> None:
        """Offsets committed for ``group`` without members (what a standalone consumer does)."""
        self.setup(conn, ApiKey.OFFSET_COMMIT, self.offset_commit_body(group))

    def offset_commit_body(self, group: str) -> dict[str, Any]:
        partition = {"partition_index": 0, "committed_offset": 1, "committed_metadata": "m"}
        return {
            "group_id": group,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "retention_time_ms": -1,
            "topics": [{"name": self.topic, "topic_id": self.topic_id, "partitions": [partition]}],
        }

    def transaction(self, conn: Connection, txn: str) -> dict[str, Any]:
        """A transactional producer id: ``{transactional_id, producer_id, producer_epoch}``."""
        body = {
            "transactional_id": txn,
            "transaction_timeout_ms": 60000,
            "producer_id": -1,
            "producer_epoch": -1,
        }
        got = self.setup(conn, ApiKey.INIT_PRODUCER_ID, body)
        return {
            "transactional_id": txn,
            "producer_id": got["producer_id"],
            "producer_epoch": got["producer_epoch"],
        }

    def add_partitions_body(self, txn: dict[str, Any]) -> dict[str, Any]:
        topics = [{"name": self.topic, "partitions": [0]}]
        return {
            "v3_and_below_transactional_id": txn["transactional_id"],
            "v3_and_below_producer_id": txn["producer_id"],
            "v3_and_below_producer_epoch": txn["producer_epoch"],
            "v3_and_below_topics": topics,
            "transactions": [{**txn, "verify_only": False, "topics": topics}],
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("every-api")
    brokers = Brokers(tmp / "data", tmp)
    try:
        w = World(brokers.start(0))
        with w.connection() as conn:
            w.create_topic(conn, w.topic, partitions=2)
            key = ApiKey.METADATA
            if ADVERTISED[key][1] >= 10:  # topic ids exist from Metadata v10
                meta = conn.call(
                    key, ADVERTISED[key][1], {"topics": [{"name": w.topic, "topic_id": ZERO_UUID}]}
                )
                w.topic_id = meta["topics"][0]["topic_id"]
            produce = {
                "acks": -1,
                "timeout_ms": 10000,
                "topic_data": [
                    {
                        "name": w.topic,
                        "topic_id": w.topic_id,
                        "partition_data": [{"index": 0, "records": w.batch()}],
                    }
                ],
            }
            w.setup(conn, ApiKey.PRODUCE, produce)
        yield w
    finally:
        brokers.stop_all()
        brokers.print_logs()


# --- one request maker per API --------------------------------------------------------------------------
# A maker returns the request body in Kafka's JSON names, with the fields of every version it may be asked
# for (the encoder takes those of the version at hand); it may set things up first on the connection.


@dataclass(frozen=True)
class Maker:
    make: Callable[[World, Connection, int], dict[str, Any]]
    ok: frozenset[int] = frozenset({0})  # the error codes a correct answer may hold
    check: Callable[[World, dict[str, Any]], bool] | None = None  # what the answer must say besides


def _generic(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {}  # every field at its default is a sensible request for this API


def _produce(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    data = [{"name": w.topic, "topic_id": w.topic_id, "partition_data": [{"index": 0, "records": w.batch()}]}]
    return {"transactional_id": None, "acks": -1, "timeout_ms": 10000, "topic_data": data}


def _fetch(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    partition = {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20, "log_start_offset": -1}
    return {
        "replica_id": -1,
        "max_wait_ms": 0,
        "min_bytes": 0,
        "max_bytes": 1 << 20,
        "topics": [{"topic": w.topic, "topic_id": w.topic_id, "partitions": [partition]}],
    }


def _list_offsets(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    partition = {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}
    return {"replica_id": -1, "topics": [{"name": w.topic, "partitions": [partition]}], "timeout_ms": 10000}


def _metadata(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"topics": [{"name": w.topic, "topic_id": ZERO_UUID}], "allow_auto_topic_creation": False}


def _offset_commit(w: World, _c: Connection, v: int) -> dict[str, Any]:
    return w.offset_commit_body(w.unique(f"commit-v{v}"))


def _offset_fetch(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"fetch-v{v}")
    w.commit(c, group)
    topics = [{"name": w.topic, "partition_indexes": [0]}]
    by_group = [{"group_id": group, "topics": [{**topics[0], "topic_id": w.topic_id}]}]  # v8+
    return {"group_id": group, "topics": topics, "groups": by_group}


def _find_coordinator(w: World, _c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"find-v{v}")
    return {"key": group, "key_type": 0, "coordinator_keys": [group]}


def _join_group(w: World, _c: Connection, v: int) -> dict[str, Any]:
    return {
        "group_id": w.unique(f"join-v{v}"),
        "session_timeout_ms": 30000,
        "rebalance_timeout_ms": 30000,
        "member_id": "",
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": w.subscription()}],
        "reason": "every-api",
    }


def _heartbeat(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"heartbeat-v{v}")
    joined = w.member(c, group)
    return {"group_id": group, "generation_id": joined["generation_id"], "member_id": joined["member_id"]}


def _leave_group(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"leave-v{v}")
    member_id = w.member(c, group)["member_id"]
    return {
        "group_id": group,
        "member_id": member_id,
        "members": [{"member_id": member_id, "reason": "done"}],
    }


def _sync_group(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"sync-v{v}")
    return w.sync_body(group, w.join(c, group))


def _describe_groups(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"describe-v{v}")
    w.member(c, group)
    return {"groups": [group], "include_authorized_operations": True}


def _api_versions(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"client_software_name": "kcli-tests", "client_software_version": "1.0"}


def _create_topics(w: World, _c: Connection, v: int) -> dict[str, Any]:
    topic = {"name": w.unique(f"create-v{v}"), "num_partitions": 1, "replication_factor": 1}
    return {"topics": [topic], "timeout_ms": 10000}


def _delete_topics(w: World, c: Connection, v: int) -> dict[str, Any]:
    name = w.unique(f"delete-v{v}")
    w.create_topic(c, name)
    return {"topic_names": [name], "topics": [{"name": name, "topic_id": ZERO_UUID}], "timeout_ms": 10000}


def _init_producer_id(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {
        "transactional_id": None,
        "transaction_timeout_ms": 60000,
        "producer_id": -1,
        "producer_epoch": -1,
    }


def _offset_for_leader_epoch(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    partition = {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}
    return {"replica_id": -1, "topics": [{"topic": w.topic, "partitions": [partition]}]}


def _add_partitions_to_txn(w: World, c: Connection, v: int) -> dict[str, Any]:
    return w.add_partitions_body(w.transaction(c, w.unique(f"add-partitions-v{v}")))


def _add_offsets_to_txn(w: World, c: Connection, v: int) -> dict[str, Any]:
    return {**w.transaction(c, w.unique(f"add-offsets-v{v}")), "group_id": w.unique("txn-group")}


def _end_txn(w: World, c: Connection, v: int) -> dict[str, Any]:
    txn = w.transaction(c, w.unique(f"end-v{v}"))
    w.setup(c, ApiKey.ADD_PARTITIONS_TO_TXN, w.add_partitions_body(txn))
    return {**txn, "committed": False}


def _write_txn_markers(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"markers": []}  # what a controller sends a broker with nothing to mark


def _txn_offset_commit(w: World, c: Connection, v: int) -> dict[str, Any]:
    txn = w.transaction(c, w.unique(f"txn-commit-v{v}"))
    group = w.unique("txn-group")
    w.setup(c, ApiKey.ADD_OFFSETS_TO_TXN, {**txn, "group_id": group})
    partition = {
        "partition_index": 0,
        "committed_offset": 1,
        "committed_leader_epoch": -1,
        "committed_metadata": "",
    }
    return {**txn, "group_id": group, "topics": [{"name": w.topic, "partitions": [partition]}]}


def _describe_log_dirs(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"topics": None}


def _create_partitions(w: World, c: Connection, v: int) -> dict[str, Any]:
    name = w.unique(f"grow-v{v}")
    w.create_topic(c, name)
    return {"topics": [{"name": name, "count": 2, "assignments": None}], "timeout_ms": 10000}


def _delete_groups(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"delete-group-v{v}")
    w.commit(c, group)
    return {"groups_names": [group]}


def _offset_delete(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"offset-delete-v{v}")
    w.commit(c, group)
    return {"group_id": group, "topics": [{"name": w.topic, "partitions": [{"partition_index": 0}]}]}


def _describe_producers(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"topics": [{"name": w.topic, "partition_indexes": [0, 1]}]}


def _describe_transactions(w: World, c: Connection, v: int) -> dict[str, Any]:
    return {"transactional_ids": [w.transaction(c, w.unique(f"describe-txn-v{v}"))["transactional_id"]]}


# The APIs other slices of issue 19 add; written from the JSON, exercised once their branches land.


def _delete_records(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    partitions = [{"partition_index": 1, "offset": 0}]  # partition 1 is empty: nothing else is disturbed
    return {"topics": [{"name": w.topic, "partitions": partitions}], "timeout_ms": 10000}


TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4


def _describe_configs(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {
        "resources": [
            {"resource_type": TOPIC_RESOURCE, "resource_name": w.topic, "configuration_keys": None},
            {
                "resource_type": BROKER_RESOURCE,
                "resource_name": str(w.broker.broker_id),
                "configuration_keys": None,
            },
        ],
        "include_synonyms": True,
        "include_documentation": True,
    }


def _alter_configs(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    configs = [{"name": "retention.ms", "value": "604800000"}]
    resource = {"resource_type": TOPIC_RESOURCE, "resource_name": w.topic, "configs": configs}
    return {"resources": [resource], "validate_only": True}


def _incremental_alter_configs(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    configs = [{"name": "retention.ms", "config_operation": 0, "value": "604800000"}]  # 0: SET
    resource = {"resource_type": TOPIC_RESOURCE, "resource_name": w.topic, "configs": configs}
    return {"resources": [resource], "validate_only": True}


def _elect_leaders(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {
        "election_type": 0,
        "topic_partitions": [{"topic": w.topic, "partitions": [0]}],
        "timeout_ms": 10000,
    }


def _alter_partition_reassignments(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    partitions = [{"partition_index": 0, "replicas": [w.broker.broker_id]}]  # where it already is
    return {"timeout_ms": 10000, "topics": [{"name": w.topic, "partitions": partitions}]}


def _list_partition_reassignments(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"timeout_ms": 10000, "topics": None}


def _consumer_group_heartbeat(w: World, _c: Connection, v: int) -> dict[str, Any]:
    # v0: the coordinator names a joining member; from v1 the member names itself (KIP-1082)
    member_id = "" if v == 0 else str(uuid.uuid4())
    return {
        "group_id": w.unique(f"consumer-v{v}"),
        "member_id": member_id,
        "member_epoch": 0,
        "rebalance_timeout_ms": 30000,
        "subscribed_topic_names": [w.topic],
        "topic_partitions": [],
    }


def _consumer_group_describe(w: World, c: Connection, v: int) -> dict[str, Any]:
    group = w.unique(f"consumer-describe-v{v}")
    heartbeat = 68  # ConsumerGroupHeartbeat: a group with a member to describe
    w.setup(c, heartbeat, {**_consumer_group_heartbeat(w, c, w.version(heartbeat)), "group_id": group})
    return {"group_ids": [group], "include_authorized_operations": True}


def _describe_topic_partitions(w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"topics": [{"name": w.topic}], "response_partition_limit": 2000, "cursor": None}


def _sasl_handshake(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"mechanism": "SCRAM-SHA-512"}


def _sasl_authenticate(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"auth_bytes": b"n,,n=alice,r=abc"}


def _describe_user_scram_credentials(_w: World, _c: Connection, _v: int) -> dict[str, Any]:
    return {"users": None}  # every user (none yet)


def _alter_user_scram_credentials(w: World, _c: Connection, v: int) -> dict[str, Any]:
    upsertion = {"name": w.unique(f"user-v{v}"), "mechanism": 2, "iterations": 4096, "salt": b"salt" * 8,
                 "salted_password": b"p" * 64}
    return {"deletions": [], "upsertions": [upsertion]}


def _acl(w: World, v: int) -> dict[str, Any]:
    # v0 has no pattern type (LITERAL); each version its own topic, so creating is never a no-op
    return {"resource_type": 2, "resource_name": w.unique(f"acl-v{v}"), "resource_pattern_type": 3,
            "principal": "User:alice", "host": "*", "operation": 3, "permission_type": 3}


def _create_acls(w: World, _c: Connection, v: int) -> dict[str, Any]:
    return {"creations": [_acl(w, v)]}


def _acl_filter(w: World, c: Connection, v: int) -> dict[str, Any]:
    acl = _acl(w, v)
    w.setup(c, 30, {"creations": [acl]})  # CreateAcls: an ACL to find
    return {"resource_type_filter": 2, "resource_name_filter": acl["resource_name"], "pattern_type_filter": 3,
            "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1}


def _describe_acls(w: World, c: Connection, v: int) -> dict[str, Any]:
    return _acl_filter(w, c, v)


def _delete_acls(w: World, c: Connection, v: int) -> dict[str, Any]:
    return {"filters": [_acl_filter(w, c, v)]}


# What some answers must say, in any version (the fields the checks read exist in all of them).


def _produced(_w: World, r: dict[str, Any]) -> bool:
    return bool(r["responses"][0]["partition_responses"][0]["base_offset"] >= 1)  # after the set-up batch


def _fetched(_w: World, r: dict[str, Any]) -> bool:
    partition = r["responses"][0]["partitions"][0]
    return bool(partition["high_watermark"] >= 1 and partition["records"])


def _listed(_w: World, r: dict[str, Any]) -> bool:
    return bool(r["topics"][0]["partitions"][0]["offset"] >= 1)


def _described_topic(w: World, r: dict[str, Any]) -> bool:
    (topic,) = r["topics"]
    leaders = [p["leader_id"] for p in topic["partitions"]]
    return leaders == [w.broker.broker_id] * 2 and [b["node_id"] for b in r["brokers"]] == [
        w.broker.broker_id
    ]


def _coordinator(w: World, r: dict[str, Any]) -> bool:
    node = r["coordinators"][0]["node_id"] if r.get("coordinators") else r["node_id"]
    return bool(node == w.broker.broker_id)


def _stable(_w: World, r: dict[str, Any]) -> bool:
    return bool(r["groups"][0]["group_state"] == "Stable" and len(r["groups"][0]["members"]) == 1)


def _every_api(_w: World, r: dict[str, Any]) -> bool:
    return {k["api_key"] for k in r["api_keys"]} == set(ADVERTISED)


def _listed_groups(_w: World, r: dict[str, Any]) -> bool:
    return len(r["groups"]) > 0


def _one_acl(_w: World, r: dict[str, Any]) -> bool:
    return [len(res["acls"]) for res in r["resources"]] == [1]


def _one_deleted(_w: World, r: dict[str, Any]) -> bool:
    return [len(f["matching_acls"]) for f in r["filter_results"]] == [1]


def _this_cluster(w: World, r: dict[str, Any]) -> bool:
    return [b["broker_id"] for b in r["brokers"]] == [w.broker.broker_id]


MAKERS: dict[int, Maker] = {
    0: Maker(_produce, check=_produced),
    1: Maker(_fetch, check=_fetched),
    2: Maker(_list_offsets, check=_listed),
    3: Maker(_metadata, check=_described_topic),
    8: Maker(_offset_commit),
    9: Maker(_offset_fetch),
    10: Maker(_find_coordinator, check=_coordinator),
    11: Maker(_join_group, frozenset({0, ErrorCode.MEMBER_ID_REQUIRED})),
    12: Maker(_heartbeat),
    13: Maker(_leave_group),
    14: Maker(_sync_group),
    15: Maker(_describe_groups, check=_stable),
    16: Maker(_generic, check=_listed_groups),
    # on a PLAINTEXT listener, as Kafka answers: SASL is for SASL listeners (tests/test_sasl.py)
    17: Maker(_sasl_handshake, frozenset({ErrorCode.ILLEGAL_SASL_STATE})),
    18: Maker(_api_versions, check=_every_api),
    19: Maker(_create_topics),
    20: Maker(_delete_topics),
    21: Maker(_delete_records),
    22: Maker(_init_producer_id),
    23: Maker(_offset_for_leader_epoch),
    24: Maker(_add_partitions_to_txn),
    25: Maker(_add_offsets_to_txn),
    26: Maker(_end_txn),
    27: Maker(_write_txn_markers),
    28: Maker(_txn_offset_commit),
    29: Maker(_describe_acls, check=_one_acl),
    30: Maker(_create_acls),
    31: Maker(_delete_acls, check=_one_deleted),
    32: Maker(_describe_configs),
    33: Maker(_alter_configs),
    35: Maker(_describe_log_dirs),
    36: Maker(_sasl_authenticate, frozenset({ErrorCode.ILLEGAL_SASL_STATE})),
    37: Maker(_create_partitions),
    42: Maker(_delete_groups),
    43: Maker(_elect_leaders, frozenset({0, 84})),  # 84: ELECTION_NOT_NEEDED, the preferred leader leads
    44: Maker(_incremental_alter_configs),
    45: Maker(_alter_partition_reassignments),
    46: Maker(_list_partition_reassignments),
    47: Maker(_offset_delete),
    50: Maker(_describe_user_scram_credentials),
    51: Maker(_alter_user_scram_credentials),
    60: Maker(_generic, check=_this_cluster),
    61: Maker(_describe_producers),
    65: Maker(_describe_transactions),
    66: Maker(_generic),
    68: Maker(_consumer_group_heartbeat),
    69: Maker(_consumer_group_describe),
    75: Maker(_describe_topic_partitions),
}


# --- every advertised API and version -------------------------------------------------------------------


def case_id(case: tuple[int, int]) -> str:
    return f"{name_of(case[0])}-v{case[1]}"


def test_api_versions_sends_the_dispatch_table(world: World) -> None:
    """The table these cases come from is the one on the wire, in every ApiVersions version."""
    lo, hi = ADVERTISED[ApiKey.API_VERSIONS]
    with world.connection() as conn:
        for v in range(lo, hi + 1):
            got = conn.call(ApiKey.API_VERSIONS, v, _api_versions(world, conn, v))
            assert got["error_code"] == 0
            assert {k["api_key"]: (k["min_version"], k["max_version"]) for k in got["api_keys"]} == ADVERTISED


def test_every_advertised_api_has_a_request_maker() -> None:
    missing = [f"{name_of(key)} (api key {key})" for key in ADVERTISED if key not in MAKERS]
    assert not missing, f"advertised without a request maker in MAKERS: {', '.join(missing)}"


def test_every_request_maker_is_a_kafka_api() -> None:
    names = api_message_names()
    assert [key for key in MAKERS if (key, "request") not in names] == []


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_advertised_version_is_served(world: World, case: tuple[int, int]) -> None:
    key, version = case
    maker = MAKERS.get(key)
    if maker is None:
        pytest.fail(f"{name_of(key)} (api key {key}) is advertised but has no request maker in MAKERS")
    with world.connection() as conn:
        body = maker.make(world, conn, version)
        response = conn.call(key, version, body)
        errors = error_codes(response)
        assert errors <= maker.ok, f"{case_id(case)}: error codes {sorted(errors)} in {response}"
        assert maker.check is None or maker.check(world, response), f"{case_id(case)}: {response}"
        assert conn.usable()


# --- bad input: Kafka's error codes, and the connection lives on -------------------------------------------


def _flexible_case() -> tuple[int, int]:
    """An advertised flexible (api key, version), preferring Metadata: a request with a body to cut."""
    flexible = [(k, v) for k, v in CASES if Api.of(k, v).request.flexible(v) and MAKERS.get(k)]
    assert flexible, "the broker advertises no flexible version"
    return next(((k, v) for k, v in reversed(flexible) if k == ApiKey.METADATA), flexible[-1])


def _unsupported_cases() -> list[Any]:
    cases = []
    for key, (lo, hi) in sorted(ADVERTISED.items()):
        for v in ([lo - 1] if lo > 0 else []) + [hi + 1]:
            cases.append(pytest.param(key, v, id=f"{name_of(key)}-v{v}"))
    return cases


def _request_bytes(key: int, version: int, correlation_id: int, body: dict[str, Any]) -> bytes:
    """The request as the reference writes it, or -- for a version the JSON does not know -- the header
    of that version and no body."""
    api = Api.of(key, version)
    hi = int(api.request.js["validVersions"].rpartition("-")[2])
    if version <= hi:
        return api.encode_request(version, correlation_id, "every-api", body)[4:]
    header = struct.pack(">hhih", key, version, correlation_id, 3) + b"bad"
    return header + (b"\x00" if api.request.flexible(version) else b"")


@pytest.mark.parametrize(("key", "version"), _unsupported_cases())
def test_unsupported_version_is_answered(world: World, key: int, version: int) -> None:
    """A version outside the advertised range: an answer, not a closed connection.  Where the response
    has a top-level error code it is UNSUPPORTED_VERSION (35); the others can only answer per entry of a
    request they cannot read (for ApiVersions: a v0 body with the supported range, which clients retry
    with)."""
    nearest = min(max(version, ADVERTISED[key][0]), ADVERTISED[key][1])
    with world.connection() as conn:
        maker = MAKERS.get(key)
        body = maker.make(world, conn, nearest) if maker else {}
        conn.send_raw(_request_bytes(key, version, 500, body))
        payload = conn.receive(500)
        top_level = Api.of(key, nearest).response.fields
        if any(jf["name"] == "ErrorCode" and in_range(jf["versions"], nearest) for jf in top_level):
            assert UNSUPPORTED_VERSION in payload[4:], payload.hex()
        assert conn.usable()


def test_unknown_api_key_is_answered(world: World) -> None:
    """Kafka closes the connection; kcli answers with header v0 and UNSUPPORTED_VERSION alone (the
    ApiVersions v0 shape) and serves the next request."""
    with world.connection() as conn:
        conn.send_raw(struct.pack(">hhih", 32000, 0, 501, 3) + b"bad")
        assert conn.receive(501)[4:] == UNSUPPORTED_VERSION
        assert conn.usable()


def test_truncated_flexible_request_is_answered(world: World) -> None:
    key, version = _flexible_case()
    with world.connection() as conn:
        body = MAKERS[key].make(world, conn, version)
        whole = _request_bytes(key, version, 502, body)
        conn.send_raw(whole[:-3])
        conn.receive(502)
        assert conn.usable()


def test_unknown_tagged_fields_are_skipped(world: World) -> None:
    """Tags nobody knows, in the request header (v2) and in the body, are skipped as Kafka skips them:
    the request is served as if they were not there."""
    key, version = _flexible_case()
    with world.connection() as conn:
        body = MAKERS[key].make(world, conn, version)
        noisy = {**body, "_unknown_tags": [(9000, b"\x01\x02\x03")]}
        response = conn.call(key, version, noisy, header_tags=((77, b"\xff\xfe"),))
        assert error_codes(response) <= MAKERS[key].ok
        assert conn.usable()


def test_bad_requests_in_a_row_then_a_good_one(world: World) -> None:
    """An unsupported version and a truncated flexible request back to back on one connection: both
    answered, in order, then a good request."""
    key, version = _flexible_case()
    hi = ADVERTISED[ApiKey.METADATA][1]
    with world.connection() as conn:
        body = MAKERS[key].make(world, conn, version)
        conn.send_raw(_request_bytes(ApiKey.METADATA, hi + 1, 601, {}))
        conn.send_raw(_request_bytes(key, version, 602, body)[:-3])
        for correlation_id in (601, 602):
            conn.receive(correlation_id)
        assert conn.usable()
