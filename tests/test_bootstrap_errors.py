"""``--bootstrap-server`` when things go wrong: unreachable servers, brokers that do not speak a version
kcli needs, leaders that move.  The brokers here are scripted fakes, so every path is exercised
deterministically, in-process, in well under a second."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from support.runner import KcliRunner
from support.waits import free_port

from kcli.client.remote import RemoteTransport
from kcli.errors import BrokerError, NotFoundError
from kcli.protocol import (
    ApiKey,
    ErrorCode,
    api_versions_response,
    decode_frame_size,
    decode_request,
    encode_response,
)
from kcli.storage.records import encode_batch

Handler = Callable[[int, object], dict]


class FakeBroker:
    """A loopback server speaking Kafka's framing: ApiVersions answered from ``advertised``, every other
    request by ``handler(api_key, body)``; requests are recorded as (api_key, body)."""

    def __init__(self, advertised: dict[int, tuple[int, int]], handler: Handler | None = None) -> None:
        self.advertised = advertised
        self.handler = handler
        self.requests: list[tuple[int, object]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    payload = _read(conn, decode_frame_size(_read(conn, 4)))
                except (OSError, EOFError):
                    return
                req = decode_request(payload)
                h = req.header
                if h.api_key == ApiKey.API_VERSIONS:
                    conn.sendall(
                        api_versions_response(h.correlation_id, h.api_version, supported=self.advertised)
                    )
                    continue
                self.requests.append((h.api_key, req.body))
                body = self.handler(h.api_key, req.body)
                conn.sendall(encode_response(h.api_key, h.api_version, h.correlation_id, body))

    def close(self) -> None:
        self.server.close()


def _read(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


@pytest.fixture
def nowhere(tmp_path: Path) -> KcliRunner:
    """kcli with a data dir path that must never be created."""
    runner = KcliRunner(tmp_path / "untouched")
    yield runner
    assert not runner.data_dir.exists()


# ---------------------------------------------------------------- unreachable


def test_unreachable_bootstrap_server_is_one_clear_line(nowhere: KcliRunner) -> None:
    dead = f"127.0.0.1:{free_port()}"
    for args in (["topic", "list"], ["produce", "t"], ["consume", "t", "-e"], ["lag"], ["group", "list"]):
        proc = nowhere("--bootstrap-server", dead, *args, input="x\n", ok=False)
        assert proc.returncode == 8, (args, proc.stderr)
        assert proc.stderr == f"kcli: error: cannot reach any bootstrap server {dead} (connection refused)\n"


def test_every_bootstrap_server_is_named_when_none_answers(nowhere: KcliRunner) -> None:
    a, b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    nowhere.env["KCLI_BOOTSTRAP_SERVER"] = f"{a},{b}"
    proc = nowhere("topic", "list", ok=False)
    assert proc.returncode == 8
    assert proc.stderr == (
        f"kcli: error: cannot reach any bootstrap server {a} (connection refused), {b} (connection refused)\n"
    )


@pytest.mark.parametrize("address", ["localhost", "host:port", "127.0.0.1:0", ","])
def test_a_malformed_address_is_a_usage_error(nowhere: KcliRunner, address: str) -> None:
    proc = nowhere.in_process("--bootstrap-server", address, "topic", "list", ok=False)
    assert proc.returncode == 2 and proc.stderr.startswith("kcli: error: ")


# ---------------------------------------------------------------- versions


def test_a_broker_without_a_version_kcli_speaks_is_named(nowhere: KcliRunner) -> None:
    broker = FakeBroker({ApiKey.API_VERSIONS: (0, 3), ApiKey.METADATA: (14, 15)})  # only newer versions
    try:
        proc = nowhere("--bootstrap-server", broker.address, "topic", "list", ok=False)
    finally:
        broker.close()
    assert proc.returncode == 8
    assert proc.stderr == (
        f"kcli: error: broker at {broker.address} does not support Metadata in a version kcli speaks (v0-v13)\n"
    )


# ---------------------------------------------------------------- leader moves


class MovingLeader:
    """Two fake brokers, node 1 and node 2, for topic ``t`` with one partition.  The leader starts on
    node 1; node 1 answers the first Produce with ``error`` and hands leadership to node 2."""

    def __init__(self, error: int) -> None:
        self.error = error
        self.leader = 1
        advertised = {k: (0, 8) for k in (ApiKey.METADATA, ApiKey.PRODUCE)}
        advertised[ApiKey.API_VERSIONS] = (0, 2)
        advertised[ApiKey.PRODUCE] = (3, 8)
        self.nodes = {1: FakeBroker(advertised, self._node1), 2: FakeBroker(advertised, self._node2)}

    def metadata(self) -> dict:
        return {
            "brokers": [
                {"node_id": n, "host": "127.0.0.1", "port": b.port, "rack": None}
                for n, b in self.nodes.items()
            ],
            "cluster_id": "fake",
            "controller_id": 1,
            "topics": [
                {
                    "error_code": 0,
                    "name": "t",
                    "is_internal": False,
                    "partitions": [
                        {
                            "error_code": 0,
                            "partition_index": 0,
                            "leader_id": self.leader,
                            "leader_epoch": self.leader,
                            "replica_nodes": [1, 2],
                            "isr_nodes": [1, 2],
                            "offline_replicas": [],
                        }
                    ],
                }
            ],
        }

    def _produce(self, code: int, base: int) -> dict:
        return {
            "responses": [
                {"name": "t", "partition_responses": [{"index": 0, "error_code": code, "base_offset": base}]}
            ]
        }

    def _node1(self, api_key: int, body) -> dict:
        if api_key == ApiKey.METADATA:
            return self.metadata()
        self.leader = 2
        return self._produce(self.error, -1)

    def _node2(self, api_key: int, body) -> dict:
        if api_key == ApiKey.METADATA:
            return self.metadata()
        return self._produce(ErrorCode.NONE, 41)

    def close(self) -> None:
        for broker in self.nodes.values():
            broker.close()


@pytest.mark.parametrize(
    "error",
    [ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
)
def test_produce_follows_a_moved_leader(error: int) -> None:
    cluster = MovingLeader(error)
    transport = RemoteTransport(bootstrap=cluster.nodes[1].address)
    try:
        assert transport.partition_count("t") == 1
        assert transport.produce("t", 0, encode_batch([(b"k", b"v", [], 1)])) == 41
    finally:
        transport.close()
        cluster.close()
    produced_at = {n for n, b in cluster.nodes.items() for key, _ in b.requests if key == ApiKey.PRODUCE}
    assert produced_at == {1, 2}
    metadata_asked = sum(key == ApiKey.METADATA for b in cluster.nodes.values() for key, _ in b.requests)
    assert metadata_asked >= 2, "the error made the client refresh its metadata"


def test_a_leader_that_never_settles_fails_with_the_brokers_error(monkeypatch) -> None:
    import kcli.client.remote

    # how long leadership errors are retried (a real failover takes seconds; this one never ends)
    monkeypatch.setattr(kcli.client.remote, "FAILOVER_WAIT", 1.0, raising=False)
    cluster = MovingLeader(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    cluster.nodes[2].handler = cluster._node1  # both refuse, for ever
    transport = RemoteTransport(bootstrap=cluster.nodes[1].address)
    try:
        with pytest.raises(BrokerError, match="NOT_LEADER_OR_FOLLOWER"):
            transport.produce("t", 0, encode_batch([(b"k", b"v", [], 1)]))
    finally:
        transport.close()
        cluster.close()


def test_a_missing_topic_is_not_found_not_retried_for_ever() -> None:
    cluster = MovingLeader(ErrorCode.NONE)
    transport = RemoteTransport(bootstrap=cluster.nodes[1].address, auto_create=False)
    try:
        with pytest.raises(NotFoundError):
            transport.produce("other", 0, encode_batch([(b"k", b"v", [], 1)]))
    finally:
        transport.close()
        cluster.close()


# ---------------------------------------------------------------- a cluster without transactions


NO_PRODUCER_IDS = {ApiKey.API_VERSIONS: (0, 3), ApiKey.METADATA: (0, 12), ApiKey.FIND_COORDINATOR: (0, 5),
                   ApiKey.INIT_PRODUCER_ID: (0, 5), ApiKey.PRODUCE: (3, 9), ApiKey.ADD_PARTITIONS_TO_TXN: (0, 3)}


def _without_producer_ids(broker: FakeBroker) -> Handler:
    """A one-partition cluster ("tx") that refuses every InitProducerId (as tansu did before kcli spoke
    the flexible versions) and acknowledges produced batches."""

    def handler(api_key: int, body) -> dict:
        me = {"node_id": 1, "host": "127.0.0.1", "port": broker.port}
        if api_key == ApiKey.METADATA:
            return {"brokers": [me | {"rack": None}], "cluster_id": "fake", "controller_id": 1, "topics": [
                {"error_code": 0, "name": "tx", "is_internal": False, "partitions": [
                    {"error_code": 0, "partition_index": 0, "leader_id": 1, "leader_epoch": 0,
                     "replica_nodes": [1], "isr_nodes": [1], "offline_replicas": []}]}]}
        if api_key == ApiKey.FIND_COORDINATOR:
            return me | {"error_code": 0, "coordinators": [
                me | {"key": k, "error_code": 0} for k in body.coordinator_keys or [body.key]]}
        if api_key == ApiKey.INIT_PRODUCER_ID:
            return {"error_code": ErrorCode.UNKNOWN_SERVER_ERROR}
        if api_key == ApiKey.PRODUCE:
            return {"responses": [{"name": t.name, "partition_responses": [
                {"index": p.index, "error_code": 0, "base_offset": 0} for p in t.partition_data]}
                for t in body.topic_data]}
        return {}

    return handler


def test_a_transactional_produce_to_a_cluster_without_transactions_is_one_line(nowhere: KcliRunner) -> None:
    """A cluster that refuses InitProducerId for a transactional id: one line saying so, exit 8, and
    nothing sent to be written."""
    broker = FakeBroker(NO_PRODUCER_IDS)
    broker.handler = _without_producer_ids(broker)
    try:
        proc = nowhere("--bootstrap-server", broker.address, "produce", "tx", "--transactional-id", "t1",
                       input="a\nb\n", ok=False)
    finally:
        broker.close()
    assert proc.returncode == 8, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("kcli: error: transactional id 't1'") and "support transactions" in line, line
    asked = {api_key for api_key, _body in broker.requests}
    assert ApiKey.INIT_PRODUCER_ID in asked and not asked & {ApiKey.PRODUCE, ApiKey.ADD_PARTITIONS_TO_TXN}


def test_a_cluster_without_producer_ids_gets_plain_batches_with_a_warning(nowhere: KcliRunner) -> None:
    """Without producer ids kcli produces without idempotence by default and says so once; asked for
    idempotence explicitly, it fails in one line (exit 8) and sends nothing."""
    broker = FakeBroker(NO_PRODUCER_IDS)
    broker.handler = _without_producer_ids(broker)
    try:
        plain = nowhere("--bootstrap-server", broker.address, "produce", "tx", input="a\nb\n")
        assert "producing without idempotence" in plain.stderr
        produced = [body for api_key, body in broker.requests if api_key == ApiKey.PRODUCE]
        batches = [bytes(p.records) for b in produced for t in b.topic_data for p in t.partition_data]
        # a batch's producer id sits at byte 43 of its header: -1, a plain batch
        assert batches and all(struct.unpack_from(">q", batch, 43)[0] == -1 for batch in batches)
        broker.requests.clear()
        refused = nowhere("--bootstrap-server", broker.address, "produce", "tx", "--idempotence",
                          input="c\n", ok=False)
    finally:
        broker.close()
    assert refused.returncode == 8 and "gave no producer id" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert ApiKey.PRODUCE not in {api_key for api_key, _body in broker.requests}
