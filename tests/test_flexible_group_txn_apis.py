"""The group, offset and transaction APIs in their newest (flexible, KIP-482) versions against a real
broker, spoken by hand where no client here sends them: FindCoordinator v4-5 with several keys,
JoinGroup v7-9 / SyncGroup v5 / Heartbeat v4 / LeaveGroup v5 (protocol type and name, reasons),
OffsetCommit v8, OffsetFetch v7 (require_stable) and v8 (several groups), DeleteGroups v2,
InitProducerId v3-5 (a producer bumping its own epoch, fencing), AddPartitionsToTxn v4 (the brokers'
batched verify form), AddOffsetsToTxn / EndTxn / TxnOffsetCommit v3-4 -- and truncated flexible
requests, which change nothing."""

from __future__ import annotations

import pytest
from support.brokers import call, closed_by_peer, connect, read_frame
from support.negotiated import assert_negotiated, versions_used

from kcli.protocol import (
    ApiKey,
    ErrorCode,
    RequestHeader,
    api_name,
    decode_response,
    encode_request,
    encode_subscription,
)

GROUP, TXN = 0, 1  # FindCoordinator key types


@pytest.fixture
def broker(broker):
    broker.runner.in_process("topic", "create", "t", "--partitions", 2)
    return broker


def _commit(
    sock, group: str, offsets: dict[int, int], version: int = 8, generation: int = -1, member: str = ""
):
    body = {
        "group_id": group,
        "generation_id": generation,
        "member_id": member,
        "topics": [
            {
                "name": "t",
                "partitions": [
                    {"partition_index": p, "committed_offset": o, "committed_metadata": f"m{o}"}
                    for p, o in offsets.items()
                ],
            }
        ],
    }
    reply = call(sock, ApiKey.OFFSET_COMMIT, version, body)
    return {p.partition_index: p.error_code for t in reply.topics for p in t.partitions}


def _offsets(topics) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (committed offset, error code) of an OffsetFetch answer's topics."""
    return {
        (t.name, p.partition_index): (p.committed_offset, p.error_code) for t in topics for p in t.partitions
    }


def _fetch7(sock, group: str, require_stable: bool) -> dict[tuple[str, int], tuple[int, int]]:
    body = {
        "group_id": group,
        "topics": [{"name": "t", "partition_indexes": [0, 1]}],
        "require_stable": require_stable,
    }
    reply = call(sock, ApiKey.OFFSET_FETCH, 7, body)
    assert reply.error_code == ErrorCode.NONE
    return _offsets(reply.topics)


# ---------------------------------------------------------------- FindCoordinator


@pytest.mark.parametrize("version", [4, 5])
def test_find_coordinator_answers_several_keys_each_on_its_own(broker, version):
    with connect(broker.socket_path) as sock:
        groups = call(
            sock, ApiKey.FIND_COORDINATOR, version, {"key_type": GROUP, "coordinator_keys": ["a", "", "b"]}
        )
        txns = call(sock, ApiKey.FIND_COORDINATOR, version, {"key_type": TXN, "coordinator_keys": ["tx", ""]})
        unknown = call(sock, ApiKey.FIND_COORDINATOR, version, {"key_type": 7, "coordinator_keys": ["a"]})
        none = call(sock, ApiKey.FIND_COORDINATOR, version, {"key_type": GROUP, "coordinator_keys": []})
    here = (0, "127.0.0.1", broker.port)
    assert [(c.key, c.error_code, (c.node_id, c.host, c.port)) for c in groups.coordinators] == [
        ("a", ErrorCode.NONE, here),
        ("", ErrorCode.INVALID_GROUP_ID, (-1, "", -1)),
        ("b", ErrorCode.NONE, here),
    ]
    assert groups.coordinators[0].error_message is None and groups.coordinators[1].error_message
    assert [(c.key, c.error_code) for c in txns.coordinators] == [
        ("tx", ErrorCode.NONE),
        ("", ErrorCode.INVALID_REQUEST),
    ]
    assert [(c.key, c.error_code) for c in unknown.coordinators] == [("a", ErrorCode.INVALID_REQUEST)]
    assert none.coordinators == []


# ---------------------------------------------------------------- membership


def _join(sock, version: int, member: str = "", reason: str | None = None):
    body = {
        "group_id": "g",
        "session_timeout_ms": 10_000,
        "rebalance_timeout_ms": 10_000,
        "member_id": member,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": encode_subscription({"topics": ["t"]}, version=0)}],
        "reason": reason,
    }
    return call(sock, ApiKey.JOIN_GROUP, version, body)


@pytest.mark.log_requests
@pytest.mark.parametrize("version", [7, 8, 9])
def test_join_sync_heartbeat_leave_in_the_flexible_versions(broker, version):
    """JoinGroup v7+ answers the protocol type (null, like the name, on an error); v8 takes a reason and
    LeaveGroup v5 one per member, both logged; SyncGroup v5 checks the protocol type and name it is
    given and answers them; v9's skip_assignment stays false (kcli has no static members)."""
    reason = "the test starts" if version >= 8 else None
    with connect(broker.socket_path) as sock:
        first = _join(sock, version, reason=reason)
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        assert (first.protocol_type, first.protocol_name) == (None, None)
        member = first.member_id
        joined = _join(sock, version, member, reason=reason)
        assert joined.error_code == ErrorCode.NONE and joined.leader == member
        assert (joined.protocol_type, joined.protocol_name, joined.skip_assignment) == (
            "consumer",
            "range",
            False,
        )
        sync = {
            "group_id": "g",
            "generation_id": joined.generation_id,
            "member_id": member,
            "assignments": [],
        }
        wrong = call(
            sock, ApiKey.SYNC_GROUP, 5, {**sync, "protocol_type": "consumer", "protocol_name": "roundrobin"}
        )
        assert wrong.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL and wrong.protocol_name is None
        wrong = call(
            sock, ApiKey.SYNC_GROUP, 5, {**sync, "protocol_type": "connect", "protocol_name": "range"}
        )
        assert wrong.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        assignment = (
            b"\x00\x00" + b"\x00\x00\x00\x00" + b"\xff\xff\xff\xff"
        )  # v0, no partitions, null user data
        sync["assignments"] = [{"member_id": member, "assignment": assignment}]
        synced = call(
            sock, ApiKey.SYNC_GROUP, 5, {**sync, "protocol_type": "consumer", "protocol_name": "range"}
        )
        assert synced.error_code == ErrorCode.NONE and bytes(synced.assignment) == assignment
        assert (synced.protocol_type, synced.protocol_name) == ("consumer", "range")
        beat = {"group_id": "g", "generation_id": joined.generation_id, "member_id": member}
        assert call(sock, ApiKey.HEARTBEAT, 4, beat).error_code == ErrorCode.NONE
        assert (
            call(sock, ApiKey.HEARTBEAT, 4, {**beat, "member_id": "ghost"}).error_code
            == ErrorCode.UNKNOWN_MEMBER_ID
        )
        left = call(
            sock,
            ApiKey.LEAVE_GROUP,
            5,
            {
                "group_id": "g",
                "members": [{"member_id": member, "reason": "the test ends"}, {"member_id": "ghost"}],
            },
        )
    assert left.error_code == ErrorCode.NONE
    assert [(m.member_id, m.error_code) for m in left.members] == [
        (member, ErrorCode.NONE),
        ("ghost", ErrorCode.UNKNOWN_MEMBER_ID),
    ]
    log = broker.log()
    assert "leaves: the test ends" in log
    assert ("joins: the test starts" in log) == (version >= 8)
    used = versions_used(broker, "test")
    assert (used["JoinGroup"], used["SyncGroup"], used["Heartbeat"], used["LeaveGroup"]) == (
        {version},
        {5},
        {4},
        {5},
    )


# ---------------------------------------------------------------- offsets


def test_offset_fetch_v8_answers_two_groups_in_one_request(broker):
    with connect(broker.socket_path) as sock:
        assert _commit(sock, "a", {0: 3, 1: 5}) == {0: ErrorCode.NONE, 1: ErrorCode.NONE}
        assert _commit(sock, "b", {1: 7}) == {1: ErrorCode.NONE}
        body = {
            "groups": [
                {"group_id": "a", "topics": [{"name": "t", "partition_indexes": [0, 1]}]},
                {"group_id": "b", "topics": None},  # every partition it committed
                {"group_id": "", "topics": None},
            ],
            "require_stable": True,
        }
        reply = call(sock, ApiKey.OFFSET_FETCH, 8, body)
        deleted = call(sock, ApiKey.DELETE_GROUPS, 2, {"groups_names": ["a", "nobody"]})
        after = call(sock, ApiKey.OFFSET_FETCH, 8, {"groups": [{"group_id": "a", "topics": None}]})
    a, b, empty = reply.groups
    assert (a.group_id, a.error_code, _offsets(a.topics)) == ("a", 0, {("t", 0): (3, 0), ("t", 1): (5, 0)})
    assert a.topics[0].partitions[0].metadata == "m3"
    assert (b.group_id, b.error_code, _offsets(b.topics)) == ("b", 0, {("t", 1): (7, 0)})
    assert (empty.group_id, empty.error_code, empty.topics) == ("", ErrorCode.INVALID_GROUP_ID, [])
    assert [(r.group_id, r.error_code) for r in deleted.results] == [
        ("a", ErrorCode.NONE),
        ("nobody", ErrorCode.GROUP_ID_NOT_FOUND),
    ]
    assert after.groups[0].topics == []


def _txn(sock, tid: str, version: int = 5, producer_id: int = -1, producer_epoch: int = -1):
    body = {
        "transactional_id": tid,
        "transaction_timeout_ms": 60_000,
        "producer_id": producer_id,
        "producer_epoch": producer_epoch,
    }
    return call(sock, ApiKey.INIT_PRODUCER_ID, version, body)


def _txn_offsets(sock, tid, pid, epoch, group, offsets, version=4, generation=-1, member=""):
    body = {
        "transactional_id": tid,
        "group_id": group,
        "producer_id": pid,
        "producer_epoch": epoch,
        "generation_id": generation,
        "member_id": member,
        "topics": [
            {
                "name": "t",
                "partitions": [{"partition_index": p, "committed_offset": o} for p, o in offsets.items()],
            }
        ],
    }
    reply = call(sock, ApiKey.TXN_OFFSET_COMMIT, version, body)
    return {p.partition_index: p.error_code for t in reply.topics for p in t.partitions}


def test_require_stable_waits_out_pending_transactional_offsets(broker):
    """OffsetFetch v7's require_stable (KIP-447): a partition whose offsets an open transaction holds
    answers UNSTABLE_OFFSET_COMMIT (no offset), until the transaction ends; without it, the committed
    offset as before.  The transaction runs in the flexible v4s of AddOffsetsToTxn, TxnOffsetCommit and
    EndTxn."""
    with connect(broker.socket_path) as sock:
        _commit(sock, "c", {0: 1, 1: 2})
        init = _txn(sock, "tx")
        pid, epoch = init.producer_id, init.producer_epoch
        add = {"transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "group_id": "c"}
        assert call(sock, ApiKey.ADD_OFFSETS_TO_TXN, 4, add).error_code == ErrorCode.NONE
        assert _txn_offsets(sock, "tx", pid, epoch, "c", {0: 10}) == {0: ErrorCode.NONE}
        unstable = (-1, ErrorCode.UNSTABLE_OFFSET_COMMIT)
        assert _fetch7(sock, "c", True) == {("t", 0): unstable, ("t", 1): (2, 0)}
        assert _fetch7(sock, "c", False) == {("t", 0): (1, 0), ("t", 1): (2, 0)}
        end = {"transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "committed": True}
        assert call(sock, ApiKey.END_TXN, 4, end).error_code == ErrorCode.NONE
        assert _fetch7(sock, "c", True) == {("t", 0): (10, 0), ("t", 1): (2, 0)}


def test_txn_offset_commit_v3_checks_the_member_and_generation(broker):
    """KIP-447: a consumer's member id and generation, when given, must be the group's; without them
    (generation -1, member "") the offsets are taken as before."""
    with connect(broker.socket_path) as sock:
        first = _join(sock, 9)
        joined = _join(sock, 9, first.member_id)
        member, generation = joined.member_id, joined.generation_id
        init = _txn(sock, "tx")
        pid, epoch = init.producer_id, init.producer_epoch
        add = {"transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "group_id": "g"}
        assert call(sock, ApiKey.ADD_OFFSETS_TO_TXN, 3, add).error_code == ErrorCode.NONE
        for version in (3, 4):
            ghost = _txn_offsets(sock, "tx", pid, epoch, "g", {0: 5}, version, generation, "ghost")
            stale = _txn_offsets(sock, "tx", pid, epoch, "g", {0: 5}, version, generation + 1, member)
            assert (ghost, stale) == ({0: ErrorCode.UNKNOWN_MEMBER_ID}, {0: ErrorCode.ILLEGAL_GENERATION})
            good = _txn_offsets(sock, "tx", pid, epoch, "g", {0: 5}, version, generation, member)
            assert good == {0: ErrorCode.NONE}
            assert _txn_offsets(sock, "tx", pid, epoch, "g", {1: 6}, version) == {1: ErrorCode.NONE}
        end = {"transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "committed": True}
        assert call(sock, ApiKey.END_TXN, 3, end).error_code == ErrorCode.NONE
        fetched = call(sock, ApiKey.OFFSET_FETCH, 8, {"groups": [{"group_id": "g", "topics": None}]})
    assert _offsets(fetched.groups[0].topics) == {("t", 0): (5, 0), ("t", 1): (6, 0)}


# ---------------------------------------------------------------- producers


def test_init_producer_id_v3_bumps_its_own_epoch_and_fences_a_replaced_one(broker):
    """KIP-360: a producer re-initialising with its id and epoch gets epoch + 1 (a retry of that bump
    gets the same answer); once another instance took the id, the old epoch is fenced: PRODUCER_FENCED
    from v4, INVALID_PRODUCER_EPOCH in v3."""
    with connect(broker.socket_path) as sock:
        first = _txn(sock, "tx", 3)
        pid, epoch = first.producer_id, first.producer_epoch
        assert first.error_code == ErrorCode.NONE and pid >= 0
        bumped = _txn(sock, "tx", 3, pid, epoch)
        assert (bumped.error_code, bumped.producer_id, bumped.producer_epoch) == (0, pid, epoch + 1)
        retried = _txn(sock, "tx", 4, pid, epoch)
        assert (retried.error_code, retried.producer_id, retried.producer_epoch) == (0, pid, epoch + 1)
        newer = _txn(sock, "tx", 5)  # another instance, knowing nothing of the old one
        assert (newer.error_code, newer.producer_id, newer.producer_epoch) == (0, pid, epoch + 2)
        for version, code in (
            (3, ErrorCode.INVALID_PRODUCER_EPOCH),
            (4, ErrorCode.PRODUCER_FENCED),
            (5, ErrorCode.PRODUCER_FENCED),
        ):
            fenced = _txn(sock, "tx", version, pid, epoch + 1)
            assert (fenced.error_code, fenced.producer_id, fenced.producer_epoch) == (code, -1, -1), version
        again = _txn(sock, "tx", 5, pid, epoch + 2)  # the current instance still bumps its own epoch
        assert (again.error_code, again.producer_epoch) == (0, epoch + 3)
        idempotent = call(
            sock, ApiKey.INIT_PRODUCER_ID, 5, {"transactional_id": None, "transaction_timeout_ms": 0}
        )
        assert idempotent.error_code == 0 and idempotent.producer_id not in (-1, pid)


def test_add_partitions_v4_adds_and_verifies_several_transactions(broker):
    """The brokers' form (KIP-890 part 1): one request for several transactions; ``verify_only`` answers
    INVALID_TXN_STATE for a partition the open transaction does not hold, without adding it."""
    with connect(broker.socket_path) as sock:
        one, two = _txn(sock, "one"), _txn(sock, "two")

        def entry(tid, init, partitions, verify_only, epoch=None):
            return {
                "transactional_id": tid,
                "producer_id": init.producer_id,
                "producer_epoch": init.producer_epoch if epoch is None else epoch,
                "verify_only": verify_only,
                "topics": [{"name": "t", "partitions": partitions}],
            }

        def ask(*transactions):
            reply = call(sock, ApiKey.ADD_PARTITIONS_TO_TXN, 4, {"transactions": list(transactions)})
            assert reply.error_code == ErrorCode.NONE
            return {
                (r.transactional_id, p.partition_index): p.partition_error_code
                for r in reply.results_by_transaction
                for t in r.topic_results
                for p in t.results_by_partition
            }

        assert ask(entry("one", one, [0], False), entry("two", two, [0], True)) == {
            ("one", 0): ErrorCode.NONE,
            ("two", 0): ErrorCode.INVALID_TXN_STATE,
        }
        assert ask(
            entry("one", one, [0, 1], True), entry("two", two, [0], True, epoch=two.producer_epoch - 1)
        ) == {
            ("one", 0): ErrorCode.NONE,
            ("one", 1): ErrorCode.INVALID_TXN_STATE,
            ("two", 0): ErrorCode.PRODUCER_FENCED,  # an older epoch
        }
        assert ask(entry("one", one, [1, 9], False)) == {
            ("one", 1): ErrorCode.OPERATION_NOT_ATTEMPTED,
            ("one", 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        }
        assert ask(entry("one", one, [0, 1], True)) == {
            ("one", 0): ErrorCode.NONE,
            ("one", 1): ErrorCode.INVALID_TXN_STATE,
        }
        # the client form (v3, flexible) of the same
        v3 = {"transactional_id": "two", "producer_id": two.producer_id, "producer_epoch": two.producer_epoch}
        reply = call(
            sock, ApiKey.ADD_PARTITIONS_TO_TXN, 3, {**v3, "topics": [{"name": "t", "partitions": [1]}]}
        )
        assert [
            (p.partition_index, p.partition_error_code)
            for p in reply.results_by_topic[0].results_by_partition
        ] == [(1, ErrorCode.NONE)]
        assert ask(entry("two", two, [0, 1], True)) == {
            ("two", 0): ErrorCode.INVALID_TXN_STATE,
            ("two", 1): 0,
        }


# ---------------------------------------------------------------- kcli's own client


@pytest.mark.log_requests
def test_kcli_speaks_the_new_versions_to_its_own_broker(broker):
    """kcli's client builds the new requests (FindCoordinator v4+ keys, OffsetFetch v8+ groups) and its
    transactional producer stops at AddPartitionsToTxn v3, the clients' form."""
    remote = ("--bootstrap-server", broker.bootstrap)
    broker.kcli(*remote, "produce", "t", "-p", "1", "--transactional-id", "kt", input="a\nb\n")
    got = broker.kcli(*remote, "consume", "t", "--group", "kg", "--reset", "earliest", "-e")
    assert got.stdout.split() == ["a", "b"]
    assert broker.kcli(*remote, "consume", "t", "--group", "kg", "-e").stdout == ""  # committed, v8
    assert_negotiated(
        broker,
        {
            "FindCoordinator": 5,
            "InitProducerId": 5,
            "AddPartitionsToTxn": 3,
            "EndTxn": 4,
            "JoinGroup": 9,
            "SyncGroup": 5,
            "OffsetFetch": 9,
            "OffsetCommit": 9,
            "LeaveGroup": 5,
        },
        client="kcli",
    )
    assert "leaves: the consumer is closing" in broker.log()


# ---------------------------------------------------------------- bad input

# a request of each API in its newest version; each is cut short below
NEWEST = [
    (ApiKey.FIND_COORDINATOR, 5, {"key_type": GROUP, "coordinator_keys": ["cut"]}),
    (
        ApiKey.JOIN_GROUP,
        9,
        {
            "group_id": "cut",
            "session_timeout_ms": 10_000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
            "reason": "why",
        },
    ),
    (ApiKey.SYNC_GROUP, 5, {"group_id": "cut", "generation_id": 1, "member_id": "m", "assignments": []}),
    (ApiKey.HEARTBEAT, 4, {"group_id": "cut", "generation_id": 1, "member_id": "m"}),
    (ApiKey.LEAVE_GROUP, 5, {"group_id": "cut", "members": [{"member_id": "m", "reason": "r"}]}),
    (ApiKey.DELETE_GROUPS, 2, {"groups_names": ["cut"]}),
    (
        ApiKey.OFFSET_COMMIT,
        8,
        {
            "group_id": "cut",
            "topics": [
                {
                    "name": "t",
                    "partitions": [{"partition_index": 0, "committed_offset": 9, "committed_metadata": "m"}],
                }
            ],
        },
    ),
    (ApiKey.OFFSET_FETCH, 8, {"groups": [{"group_id": "cut", "topics": None}]}),
    (ApiKey.INIT_PRODUCER_ID, 5, {"transactional_id": "cut", "transaction_timeout_ms": 60_000}),
    (ApiKey.ADD_PARTITIONS_TO_TXN, 4, {"transactions": [{"transactional_id": "cut", "topics": []}]}),
    (ApiKey.ADD_OFFSETS_TO_TXN, 4, {"transactional_id": "cut", "group_id": "cut"}),
    (ApiKey.END_TXN, 4, {"transactional_id": "cut", "committed": True}),
    (ApiKey.TXN_OFFSET_COMMIT, 4, {"transactional_id": "cut", "group_id": "cut", "topics": []}),
    (ApiKey.WRITE_TXN_MARKERS, 1, {"markers": []}),
]


@pytest.mark.parametrize("key, version, body", NEWEST, ids=[f"{api_name(k)}-v{v}" for k, v, _ in NEWEST])
def test_a_truncated_flexible_request_changes_nothing(broker, key, version, body):
    """Cut one byte short (its last tagged-field section): the broker does not act on it -- it answers
    an error or closes the connection, as Kafka does for a request it cannot parse -- and keeps serving."""
    frame = encode_request(RequestHeader(key, version, 3, "cutter"), body)
    cut = (len(frame) - 5).to_bytes(4, "big") + frame[4:-1]
    with connect(broker.socket_path) as sock:
        sock.sendall(cut)
        payload = read_frame(sock)
        if payload is None:
            assert closed_by_peer(sock)
        else:  # an error answer; the connection goes on
            reply = decode_response(key, version, payload)
            # an error code where the response has one, or no entry answered (FindCoordinator v4+ and
            # the like answer per entry of a request that could not be read)
            assert reply.correlation_id == 3 and (_an_error(reply.body) or not _entries(reply.body))
            assert call(sock, ApiKey.API_VERSIONS, 2, {}).error_code == ErrorCode.NONE
    with connect(broker.socket_path) as sock:
        assert (
            call(sock, ApiKey.OFFSET_FETCH, 8, {"groups": [{"group_id": "cut", "topics": None}]})
            .groups[0]
            .topics
            == []
        )
        assert call(sock, ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["cut"]}).groups[0].group_state == "Dead"
        listed = call(sock, ApiKey.LIST_TRANSACTIONS, 0, {})
    assert "cut" not in [t.transactional_id for t in listed.transaction_states]
    assert broker.proc.poll() is None


def _entries(body) -> bool:
    """Whether a response answers any entry (a non-empty list anywhere at its top level)."""
    return any(isinstance(v, list) and v for v in body.values())


def _an_error(body) -> bool:
    """Whether a response carries a non-zero error code anywhere."""
    if isinstance(body, dict):
        return any((k.endswith("error_code") and v) or _an_error(v) for k, v in body.items())
    if isinstance(body, list):
        return any(_an_error(x) for x in body)
    return False
