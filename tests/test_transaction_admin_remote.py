"""``kcli transaction list|describe --bootstrap-server``: as kafka-transactions.sh, ListTransactions at
every broker (filters sent to them) and DescribeTransactions at the id's coordinator, over the flexible
request/response headers; the same columns and JSON as the data dir's path.  Transactions are opened by
confluent-kafka's transactional producer and by ``kcli produce --transactional-id`` through a broker."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest
from support.brokers import read_frame
from support.runner import one_error_line
from test_protocol_flexible import carr, cstr, i16, i32, i64, request_header_v2, tagged

from kcli.broker.coordinator_choice import choose_coordinator
from kcli.net.connection import BrokerConnection
from kcli.protocol import ApiKey, api_versions_response

confluent_kafka = pytest.importorskip("confluent_kafka")

LIST_COLUMNS = "TRANSACTIONAL_ID\tPRODUCER_ID\tPRODUCER_EPOCH\tSTATE"


def _open(bootstrap: str, transactional_id: str, topic: str, partitions: tuple[int, ...]):
    """A confluent-kafka transaction left open with a record in each of ``partitions``."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for p in partitions:
        producer.produce(topic, b"open", partition=p)
    producer.flush(30)  # the partitions are in the transaction now
    return producer


def _listed(run, *args: str) -> dict[str, dict]:
    return {i["transactional_id"]: i for i in json.loads(run("transaction", "list", "--json", *args).stdout)}


def test_the_client_connection_speaks_flexible_headers() -> None:
    """BrokerConnection against a hand-written peer: ListTransactions goes out with request header v2
    (Kafka's bytes exactly) and an answer with response header v1 and tagged fields kcli does not know,
    in the header, the body and a row, is read."""
    server = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def peer() -> None:
        conn, _ = server.accept()
        with conn:
            for _ in range(2):
                frame = read_frame(conn)
                assert frame is not None
                got.append(frame)
                corr = struct.unpack_from(">i", frame, 4)[0]
                if len(got) == 1:
                    conn.sendall(api_versions_response(corr, struct.unpack_from(">h", frame, 2)[0]))
                    continue
                row = cstr("a") + i64(7) + cstr("Ongoing") + tagged((3, b"??"))
                body = i32(0) + i16(0) + carr([]) + carr([row]) + tagged((9, b"new"))
                payload = i32(corr) + tagged((1, b"hdr")) + body
                conn.sendall(i32(len(payload)) + payload)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    conn = BrokerConnection(server.getsockname(), timeout=10)
    try:
        body = {"state_filters": ["Ongoing"], "producer_id_filters": [7], "duration_filter": 5}
        resp = conn.request(ApiKey.LIST_TRANSACTIONS, body)
    finally:
        conn.close()
        server.close()
    thread.join(10)
    assert got[1] == request_header_v2(66, 1, 2, "kcli") + carr([cstr("Ongoing")]) + carr([i64(7)]) + i64(5) + b"\0"
    assert resp.transaction_states == [{"transactional_id": "a", "producer_id": 7, "transaction_state": "Ongoing"}]


def test_list_and_describe_through_a_broker(broker) -> None:
    broker.kcli("topic", "create", "out", "-p", 3)

    def remote(*args: object, **kw: object):
        return broker.kcli("--bootstrap-server", broker.bootstrap, *args, **kw)

    before = int(time.time() * 1000)
    producer = _open(broker.bootstrap, "cf-tx", "out", (0, 2))
    remote("produce", "out", "--transactional-id", "kcli-tx", input="a\nb\n")

    described = json.loads(remote("transaction", "describe", "cf-tx", "--json").stdout)
    assert described["state"] == "Ongoing"
    assert described["partitions"] == [{"topic": "out", "partition": 0}, {"topic": "out", "partition": 2}]
    assert described["timeout_ms"] == 60000 and before <= described["start_ms"] <= time.time() * 1000
    assert described["producer_id"] >= 0 and described["producer_epoch"] >= 0
    # the same keys as the data dir's path, and the same answer the data dir gives (it is shared)
    assert json.loads(broker.kcli("transaction", "describe", "cf-tx", "--json").stdout) == described

    listed = _listed(remote)
    assert {t: i["state"] for t, i in listed.items()} == {"cf-tx": "Ongoing", "kcli-tx": "CompleteCommit"}
    assert listed == _listed(broker.kcli)
    table = remote("transaction", "list").stdout.splitlines()
    assert table[0] == LIST_COLUMNS
    assert [line.split("\t")[0] for line in table[1:]] == ["cf-tx", "kcli-tx"]
    row = remote("transaction", "describe", "cf-tx").stdout.splitlines()
    assert row[1].split("\t")[3] == "Ongoing" and "out-0,out-2" in row[1]

    # filters go to the brokers: state (any case, as the data dir's path), producer id, duration
    assert list(_listed(remote, "--state", "ongoing")) == ["cf-tx"]
    assert list(_listed(remote, "--state", "CompleteCommit", "--state", "Empty")) == ["kcli-tx"]
    pid = listed["kcli-tx"]["producer_id"]
    assert list(_listed(remote, "--producer-id", str(pid))) == ["kcli-tx"]
    assert list(_listed(remote, "--state", "Ongoing", "--duration-filter", "3600000")) == []
    assert list(_listed(remote, "--state", "Ongoing", "--duration-filter", "0")) == ["cf-tx"]
    assert list(_listed(broker.kcli, "--state", "Ongoing", "--duration-filter", "3600000")) == []
    assert list(_listed(broker.kcli, "--state", "Ongoing", "--duration-filter", "0")) == ["cf-tx"]
    one_error_line(remote("transaction", "list", "--state", "Bogus", ok=False), 2, "Bogus")

    producer.commit_transaction(30)
    done = json.loads(remote("transaction", "describe", "cf-tx", "--json").stdout)
    assert (done["state"], done["partitions"], done["start_ms"]) == ("CompleteCommit", [], -1)


def test_an_unknown_id_is_one_line_exit_3(broker) -> None:
    remote = ("--bootstrap-server", broker.bootstrap)
    one_error_line(broker.kcli(*remote, "transaction", "describe", "never-used", ok=False), 3, "never-used")
    assert broker.kcli(*remote, "transaction", "list").stdout.splitlines() == [LIST_COLUMNS]


def test_ids_of_both_coordinators_are_listed(brokers) -> None:
    brokers.init(2)
    running = [brokers.spawn(b) for b in range(2)]
    for b in running:
        b.wait_ready()
    brokers.kcli("topic", "create", "t", "-p", 2, "-r", 2)
    ids = [next(f"tx-{i}" for i in range(100) if choose_coordinator(f"tx-{i}", [0, 1]) == b) for b in (0, 1)]
    bootstrap = running[0].bootstrap
    producers = [_open(bootstrap, tid, "t", (0, 1)) for tid in ids]
    remote = ("--bootstrap-server", bootstrap)

    listed = _listed(lambda *a: brokers.kcli(*remote, *a))
    assert {t: i["state"] for t, i in listed.items()} == dict.fromkeys(ids, "Ongoing")
    for tid in ids:  # each described at its own coordinator
        info = json.loads(brokers.kcli(*remote, "transaction", "describe", tid, "--json").stdout)
        assert info == listed[tid]
    for p in producers:
        p.abort_transaction(30)
    assert {i["state"] for i in _listed(lambda *a: brokers.kcli(*remote, *a)).values()} == {"CompleteAbort"}


def test_tansu_answers_in_one_line(tansu, tmp_path) -> None:
    """tansu does not serve ListTransactions / DescribeTransactions (if it ever does, they must work)."""
    from support.runner import KcliRunner

    runner = KcliRunner(tmp_path / "untouched")
    runner.env["KCLI_BOOTSTRAP_SERVER"] = tansu.bootstrap
    for args, served in ((("list",), 0), (("describe", "never-used"), 3)):
        proc = runner("transaction", *args, ok=False)
        if proc.returncode != served:
            one_error_line(proc, 8, "does not support", "Transactions")
    assert not runner.data_dir.exists()
