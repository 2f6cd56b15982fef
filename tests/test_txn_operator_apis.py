"""DescribeTransactions and ListTransactions (KIP-664, flexible-only APIs) of a real ``kcli broker serve``:
raw requests in Kafka's flexible layout, confluent-kafka transactional producers and kcli's own
``produce --transactional-id`` making the transactions, and kafka-python's admin client asking."""

from __future__ import annotations

import struct
import time

import pytest
from support.brokers import call, connect, read_frame

from kcli.broker.coordinator_choice import choose_coordinator
from kcli.protocol import ApiKey, ErrorCode, decode_response
from kcli.storage.records import encode_batch

kafka_admin = pytest.importorskip("kafka.admin")
confluent_kafka = pytest.importorskip("confluent_kafka")


def _describe(sock, *transactional_ids: str) -> dict:
    body = call(sock, ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": list(transactional_ids)})
    assert body.throttle_time_ms == 0
    return {s.transactional_id: s for s in body.transaction_states}


def _list(sock, version: int = 1, states=(), producer_ids=(), duration: int = -1):
    request = {"state_filters": list(states), "producer_id_filters": list(producer_ids)}
    if version >= 1:
        request["duration_filter"] = duration
    body = call(sock, ApiKey.LIST_TRANSACTIONS, version, request)
    assert body.error_code == ErrorCode.NONE
    return {s.transactional_id: (s.producer_id, s.transaction_state) for s in body.transaction_states}, list(
        body.unknown_state_filters
    )


def _open_transaction(
    sock, transactional_id: str, topic: str, partitions: list[int], produce: bool = True
) -> tuple[int, int]:
    """InitProducerId, AddPartitionsToTxn and (``produce``) a record in each partition: an Ongoing
    transaction."""
    init = call(
        sock,
        ApiKey.INIT_PRODUCER_ID,
        1,
        {"transactional_id": transactional_id, "transaction_timeout_ms": 60000},
    )
    assert init.error_code == ErrorCode.NONE
    pid, epoch = init.producer_id, init.producer_epoch
    added = call(
        sock,
        ApiKey.ADD_PARTITIONS_TO_TXN,
        2,
        {
            "transactional_id": transactional_id,
            "producer_id": pid,
            "producer_epoch": epoch,
            "topics": [{"name": topic, "partitions": partitions}],
        },
    )
    assert {r.partition_error_code for t in added.results_by_topic for r in t.results_by_partition} == {0}
    for p in partitions if produce else ():
        batch = encode_batch(
            [(None, b"v", [], 1000)],
            0,
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=0,
            transactional=True,
        )
        body = {
            "transactional_id": transactional_id,
            "acks": -1,
            "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": p, "records": batch}]}],
        }
        assert call(sock, ApiKey.PRODUCE, 7, body).responses[0].partition_responses[0].error_code == 0
    return pid, epoch


def _end(sock, transactional_id: str, pid: int, epoch: int, commit: bool) -> None:
    body = {
        "transactional_id": transactional_id,
        "producer_id": pid,
        "producer_epoch": epoch,
        "committed": commit,
    }
    assert call(sock, ApiKey.END_TXN, 2, body).error_code == ErrorCode.NONE


def test_advertised_in_api_versions(broker):
    with connect(broker.socket_path) as sock:
        keys = {
            k.api_key: (k.min_version, k.max_version) for k in call(sock, ApiKey.API_VERSIONS, 2, {}).api_keys
        }
    assert keys[ApiKey.DESCRIBE_TRANSACTIONS] == (0, 0)
    assert keys[ApiKey.LIST_TRANSACTIONS] == (0, 1)


def test_tagged_fields_a_newer_client_sends_are_skipped(broker):
    """Request header v2 and a body, each with tagged fields kcli does not know: answered, and the
    connection serves the next request."""
    cid = b"newer"
    unknown = b"\x02" + b"\x00\x02hi" + b"\x7f\x00"  # two tagged fields: tag 0 (2 bytes), tag 127 (empty)
    header = struct.pack(">hhih", ApiKey.LIST_TRANSACTIONS, 1, 5, len(cid)) + cid + unknown
    body = b"\x01" + b"\x01" + struct.pack(">q", -1) + unknown  # no filters, no duration filter
    with connect(broker.socket_path) as sock:
        payload = header + body
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        answer = read_frame(sock)
        assert answer is not None, "broker closed the connection"
        response = decode_response(ApiKey.LIST_TRANSACTIONS, 1, answer)
        assert (response.correlation_id, response.body.error_code) == (5, ErrorCode.NONE)
        assert _describe(sock, "nobody")["nobody"].error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND


def test_describe_and_list_an_open_then_committed_transaction(broker):
    broker.runner.in_process("topic", "create", "t", "-p", 3)
    with connect(broker.socket_path) as sock:
        before = int(time.time() * 1000)
        pid, epoch = _open_transaction(sock, "tx-open", "t", [0, 2])
        idle_pid = call(
            sock, ApiKey.INIT_PRODUCER_ID, 1, {"transactional_id": "tx-idle", "transaction_timeout_ms": 30000}
        ).producer_id

        found = _describe(sock, "tx-open", "tx-idle", "nobody", "")
        ongoing = found["tx-open"]
        assert (ongoing.error_code, ongoing.transaction_state) == (ErrorCode.NONE, "Ongoing")
        assert (ongoing.producer_id, ongoing.producer_epoch, ongoing.transaction_timeout_ms) == (
            pid,
            epoch,
            60000,
        )
        assert before <= ongoing.transaction_start_time_ms <= int(time.time() * 1000)
        assert [(t.topic, sorted(t.partitions)) for t in ongoing.topics] == [("t", [0, 2])]
        idle = found["tx-idle"]
        assert (idle.error_code, idle.transaction_state, idle.producer_id, idle.topics) == (
            ErrorCode.NONE,
            "Empty",
            idle_pid,
            [],
        )
        assert (idle.transaction_start_time_ms, idle.transaction_timeout_ms) == (-1, 30000)
        assert found["nobody"].error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
        assert found[""].error_code == ErrorCode.INVALID_REQUEST
        assert _describe(sock) == {}

        # filters: none, by state, by producer id, unknown state names reported and filtering nothing
        everything = {"tx-open": (pid, "Ongoing"), "tx-idle": (idle_pid, "Empty")}
        assert _list(sock, version=0) == (everything, [])
        assert _list(sock, states=["Ongoing"]) == ({"tx-open": (pid, "Ongoing")}, [])
        assert _list(sock, states=["Ongoing", "Empty"]) == (everything, [])
        assert _list(sock, states=["CompleteCommit"]) == ({}, [])
        assert _list(sock, producer_ids=[idle_pid]) == ({"tx-idle": (idle_pid, "Empty")}, [])
        assert _list(sock, producer_ids=[pid, idle_pid], states=["Empty"]) == (
            {"tx-idle": (idle_pid, "Empty")},
            [],
        )
        assert _list(sock, producer_ids=[987654321]) == ({}, [])
        assert _list(sock, states=["ongoing", "Bogus"]) == (
            everything,
            ["ongoing", "Bogus"],
        )  # names as Kafka's
        # duration (v1): only transactions running longer than it; an Empty id has no start time, so it
        # counts as running since ever, as in Kafka
        assert _list(sock, states=["Ongoing"], duration=3_600_000) == ({}, [])
        time.sleep(0.01)
        assert _list(sock, states=["Ongoing"], duration=1) == ({"tx-open": (pid, "Ongoing")}, [])

        _end(sock, "tx-open", pid, epoch, True)
        done = _describe(sock, "tx-open")["tx-open"]
        assert (done.error_code, done.transaction_state, done.topics, done.transaction_start_time_ms) == (
            ErrorCode.NONE,
            "CompleteCommit",
            [],
            -1,
        )
        assert _list(sock, states=["CompleteCommit"]) == ({"tx-open": (pid, "CompleteCommit")}, [])
        assert _list(sock, states=["Ongoing"]) == ({}, [])


def test_each_broker_answers_for_the_ids_it_coordinates(brokers):
    brokers.init(2)
    running = [brokers.spawn(b) for b in range(2)]
    for b in running:
        b.wait_ready()
    brokers.runner.in_process("topic", "create", "t")
    ids = {
        b: next(f"tx-{i}" for i in range(100) if choose_coordinator(f"tx-{i}", [0, 1]) == b) for b in (0, 1)
    }
    pids = {}
    for b, tid in ids.items():
        with connect(running[b].socket_path) as sock:
            pids[b] = _open_transaction(sock, tid, "t", [0], produce=False)[0]  # t-0 has one leader
    for b, tid in ids.items():
        other = ids[1 - b]
        with connect(running[b].socket_path) as sock:
            found = _describe(sock, tid, other)
            assert (found[tid].error_code, found[tid].transaction_state) == (ErrorCode.NONE, "Ongoing")
            assert found[other].error_code == ErrorCode.NOT_COORDINATOR
            assert _list(sock) == ({tid: (pids[b], "Ongoing")}, [])


def test_kafka_python_admin_sees_confluent_and_kcli_transactions(broker):
    """kafka-python's KafkaAdminClient (list_transactions at every broker, describe_transactions at the
    coordinator) on transactions of a confluent-kafka producer and of ``kcli produce --transactional-id``."""
    broker.kcli("topic", "create", "out", "-p", 3)
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": broker.bootstrap, "transactional.id": "cf-tx", "linger.ms": 5}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for p in (0, 1):
        producer.produce("out", b"open", partition=p)
    producer.flush(30)  # the partitions are added to the transaction; it stays open
    remote = ("--bootstrap-server", broker.bootstrap)
    broker.kcli(*remote, "produce", "out", "--transactional-id", "kcli-tx", input="a\nb\n")

    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = admin.list_transactions()
        assert list(listed) == [0]
        states = {t.transactional_id: t.state.value for t in listed[0]}
        assert states == {"cf-tx": "Ongoing", "kcli-tx": "CompleteCommit"}
        ongoing = admin.list_transactions(state_filters=["Ongoing"], duration_filter_ms=0)[0]
        assert [t.transactional_id for t in ongoing] == ["cf-tx"]

        described = admin.describe_transactions(["cf-tx", "kcli-tx"])
        open_one = described["cf-tx"]
        assert (open_one.coordinator_id, open_one.state.value) == (0, "Ongoing")
        assert {(tp.topic, tp.partition) for tp in open_one.topic_partitions} == {("out", 0), ("out", 1)}
        assert (described["kcli-tx"].state.value, described["kcli-tx"].topic_partitions) == (
            "CompleteCommit",
            set(),
        )
        with pytest.raises(Exception, match="(?i)TransactionalIdNotFound"):
            admin.describe_transactions(["never-used"])

        producer.commit_transaction(30)
        assert admin.describe_transactions(["cf-tx"])["cf-tx"].state.value == "CompleteCommit"
    finally:
        admin.close()
