"""The flexible data path (issue 19): real clients negotiate ApiVersions v3+, Metadata v9+, Produce v9+
and Fetch v12+ against ``kcli broker serve`` (the broker's --verbose log says which versions each
client used); topic ids on the wire (Metadata v10+, Fetch v13+) are the ones in ``partition.metadata``;
DescribeTopicPartitions pages."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess

import pytest
from support.brokers import call, connect

from kcli.protocol import ApiKey, ErrorCode
from kcli.storage.records import decode_records, encode_batch, iter_batches

confluent_kafka = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
from confluent_kafka.admin import AdminClient  # noqa: E402


@pytest.fixture
def broker(brokers):
    """A broker that logs every request's API and version (--verbose), with topics "t" (3 partitions)
    and "u" (2)."""
    b = brokers.start(0, "--verbose")
    b.kcli = brokers.kcli
    brokers.runner.in_process("topic", "create", "t", "-p", "3")
    brokers.runner.in_process("topic", "create", "u", "-p", "2")
    return b


def versions_used(broker, client: str) -> dict[str, set[int]]:
    """{api name: versions} of the requests the broker logged from clients whose id starts ``client``."""
    out: dict[str, set[int]] = {}
    for m in re.finditer(r"request (\w+) v(\d+) from client '([^']*)'", broker.log()):
        if m.group(3).startswith(client):
            out.setdefault(m.group(1), set()).add(int(m.group(2)))
    return out


def topic_id(broker, name: str) -> bytes:
    with connect(broker.socket_path) as sock:
        meta = call(sock, ApiKey.METADATA, 12, {"topics": [{"name": name}]})
    return meta.topics[0].topic_id


# ---------------------------------------------------------------- real clients


def test_confluent_kafka_produces_and_consumes_with_flexible_versions_and_topic_ids(broker):
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "client.id": "ck"})
    for i in range(30):
        producer.produce("t", key=str(i), value=f"v{i}")
    assert producer.flush(30) == 0
    del producer
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.bootstrap, "client.id": "ck", "group.id": "g", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe(["t"])
    values = set()
    for _ in range(120):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            values.add(msg.value())
        if len(values) == 30:
            break
    consumer.close()
    assert values == {f"v{i}".encode() for i in range(30)}
    used = versions_used(broker, "ck")
    assert max(used["ApiVersions"]) >= 3
    assert max(used["Metadata"]) >= 12  # topic ids in the answer
    assert max(used["Produce"]) >= 9
    assert max(used["Fetch"]) >= 13  # topics named by id


def test_kafka_python_produces_and_consumes_with_flexible_versions(broker):
    producer = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap, client_id="kp")
    for i in range(5):
        producer.send("u", f"k{i}".encode(), partition=i % 2).get(10)
    producer.close()
    consumer = kafka.KafkaConsumer(
        "u", bootstrap_servers=broker.bootstrap, client_id="kp", auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    assert sorted(m.value for m in consumer) == [f"k{i}".encode() for i in range(5)]
    consumer.close()
    used = versions_used(broker, "kp")
    assert max(used["ApiVersions"]) >= 3
    assert max(used["Metadata"]) >= 9
    assert max(used["Produce"]) >= 9
    assert max(used["Fetch"]) >= 12


def test_aiokafka_keeps_working_with_its_classic_versions(broker):
    """aiokafka 0.14 speaks only classic versions (ApiVersions v0, Fetch <= v11): the broker's wider range
    must not change what it gets."""
    aiokafka = pytest.importorskip("aiokafka")

    async def run() -> bytes:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap, client_id="aio")
        await producer.start()
        await producer.send_and_wait("u", b"hello", partition=1)
        await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(
            "u", bootstrap_servers=broker.bootstrap, client_id="aio", auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            return (await asyncio.wait_for(consumer.getone(), 20)).value
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == b"hello"
    used = versions_used(broker, "aio")
    assert used["Fetch"] and used["Produce"]


def test_kcat_produces_and_consumes(broker):
    subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-X", "client.id=kcat", "-P", "-t", "u", "-p", "0"],
        input=b"one\ntwo\n",
        timeout=60,
        check=True,
    )
    out = subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-X", "client.id=kcat", "-C", "-t", "u", "-p", "0", "-e", "-q"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == [b"one", b"two"]
    used = versions_used(broker, "kcat")
    assert max(used["ApiVersions"]) >= 3  # librdkafka opens with the flexible ApiVersions
    assert used["Fetch"] and used["Produce"]


def test_kcli_client_uses_its_capped_fetch_version(broker):
    """kcli's own client names topics, so it fetches at v12 (apis.CLIENT_MAX), produces at the
    newest Produce and reads Metadata v13, whose topic ids `topic describe` shows."""
    broker.kcli("--bootstrap-server", broker.bootstrap, "produce", "t", "-p", "1", input="a\nb\n")
    out = broker.kcli("--bootstrap-server", broker.bootstrap, "consume", "t", "-p", "1", "-b", "-e")
    assert out.stdout.split() == ["a", "b"]
    used = versions_used(broker, "kcli")
    assert used["Fetch"] == {12}
    assert max(used["Produce"]) == 11 and max(used["Metadata"]) == 13 and max(used["ApiVersions"]) == 4
    remote = json.loads(broker.kcli("--bootstrap-server", broker.bootstrap, "topic", "describe", "t", "--json").stdout)
    assert remote[0]["topic_id"] == topic_id(broker, "t").hex()  # Metadata v10+ carries it


# ---------------------------------------------------------------- topic ids on the wire


def _fetch_by_id(sock, tid: bytes, partition: int = 0, version: int = 13, **partition_fields):
    body = {
        "max_wait_ms": 0,
        "min_bytes": 0,
        "topics": [
            {
                "topic_id": tid,
                "partitions": [
                    {"partition": partition, "fetch_offset": 0, "partition_max_bytes": 1 << 20, **partition_fields}
                ],
            }
        ],
    }
    return call(sock, ApiKey.FETCH, version, body)


@pytest.mark.parametrize("version", [13, 15, 17])
def test_fetch_by_topic_id(broker, version):
    batch = encode_batch([(None, b"by-id", [], 1000)], 0)
    with connect(broker.socket_path) as sock:
        produced = call(
            sock,
            ApiKey.PRODUCE,
            11,
            {"acks": -1, "timeout_ms": 5000, "topic_data": [{"name": "t", "partition_data": [{"index": 2, "records": batch}]}]},
        )
        assert produced.responses[0].partition_responses[0].error_code == 0
        tid = topic_id(broker, "t")
        resp = _fetch_by_id(sock, tid, 2, version)
        (topic,) = resp.responses
        assert topic.topic_id == tid
        part = topic.partitions[0]
        assert part.error_code == 0 and part.high_watermark == 1
        data = bytes(part.records)
        assert [r.value for pos, h in iter_batches(data) for r in decode_records(data, pos, h)] == [b"by-id"]
        unknown = _fetch_by_id(sock, bytes(range(16)), 0, version)
        assert unknown.responses[0].topic_id == bytes(range(16))
        assert unknown.responses[0].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID


def test_fetch_from_a_replica_that_diverged_gets_the_diverging_epoch(broker):
    """Fetch v12's last_fetched_epoch (KIP-595): a replica whose last epoch our log does not have is told
    where our log's epochs end instead of getting records."""
    with connect(broker.socket_path) as sock:
        body = {
            "replica_id": -1,
            "max_wait_ms": 0,
            "min_bytes": 0,
            "topics": [
                {
                    "topic": "t",
                    "partitions": [
                        {"partition": 0, "fetch_offset": 5, "last_fetched_epoch": 7, "partition_max_bytes": 1000}
                    ],
                }
            ],
        }
        part = call(sock, ApiKey.FETCH, 12, body).responses[0].partitions[0]
        assert part.error_code == 0 and part.diverging_epoch is not None
        assert part.diverging_epoch.epoch < 7
        assert not part.records


def test_metadata_topic_ids_and_lookup_by_id(broker):
    with connect(broker.socket_path) as sock:
        every = call(sock, ApiKey.METADATA, 10, {"topics": None})
        ids = {t.name: t.topic_id for t in every.topics}
        assert set(ids) == {"t", "u"} and bytes(16) not in ids.values()
        by_id = call(
            sock, ApiKey.METADATA, 12, {"topics": [{"topic_id": ids["u"], "name": None}, {"topic_id": bytes(range(16)), "name": None}]}
        )
        assert [(t.name, t.error_code) for t in by_id.topics] == [("u", 0), (None, ErrorCode.UNKNOWN_TOPIC_ID)]
        assert len(by_id.topics[0].partitions) == 2
        assert by_id.error_code == 0  # v13's top-level error code is in v13 only
        assert call(sock, ApiKey.METADATA, 13, {"topics": []}).error_code == 0


def test_partition_metadata_file_is_kafkas_and_names_the_wire_topic_id(broker):
    tid = topic_id(broker, "t")
    for p in range(3):
        text = (broker.folder / f"t-{p}" / "partition.metadata").read_bytes()
        assert text == b"version: 0\ntopic_id: " + base64.urlsafe_b64encode(tid).rstrip(b"=")


# ---------------------------------------------------------------- DescribeTopicPartitions


def test_describe_topic_partitions_pages_with_a_cursor(broker):
    """Five partitions over two topics, two per page: three requests, each resuming at the cursor."""
    seen = []
    cursor = None
    with connect(broker.socket_path) as sock:
        for _ in range(5):
            body = call(
                sock,
                ApiKey.DESCRIBE_TOPIC_PARTITIONS,
                0,
                {"topics": [], "response_partition_limit": 2, "cursor": cursor},
            )
            for t in body.topics:
                assert t.error_code == 0 and t.topic_id == topic_id(broker, t.name)
                seen += [(t.name, p.partition_index, p.leader_id) for p in t.partitions]
            cursor = body.next_cursor
            if cursor is None:
                break
        assert seen == [("t", 0, 0), ("t", 1, 0), ("t", 2, 0), ("u", 0, 0), ("u", 1, 0)]
        named = call(
            sock,
            ApiKey.DESCRIBE_TOPIC_PARTITIONS,
            0,
            {"topics": [{"name": "v-ghost"}, {"name": "u"}, {"name": "t"}], "cursor": {"topic_name": "u", "partition_index": 1}},
        )
        # sorted by name, from the cursor on: "t" lies before it
        assert [(t.name, t.error_code, [p.partition_index for p in t.partitions]) for t in named.topics] == [
            ("u", 0, [1]),
            ("v-ghost", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, []),
        ]
        assert named.next_cursor is None


def test_confluent_admin_describes_the_topic_id_partition_metadata_holds(broker):
    """The id a Kafka client shows for a topic is the one in each replica folder's partition.metadata."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    (future,) = admin.describe_topics(confluent_kafka.TopicCollection(["t"])).values()
    described = future.result(20)
    ours = (broker.folder / "t-0" / "partition.metadata").read_text().rpartition("topic_id: ")[2]
    # librdkafka prints uuids in standard base64 where Kafka's Uuid.toString is URL-safe: compare the bytes
    theirs = str(described.topic_id)
    assert base64.urlsafe_b64decode(ours + "==") == base64.b64decode(theirs + "==")
    assert sorted(p.id for p in described.partitions) == [0, 1, 2]


# ---------------------------------------------------------------- every new version on the wire


@pytest.mark.parametrize("version", [9, 10, 11])
def test_produce_flexible_versions(broker, version):
    batch = encode_batch([(None, f"v{version}".encode(), [], 1000)], 0)
    with connect(broker.socket_path) as sock:
        body = {
            "acks": 1,
            "timeout_ms": 5000,
            "topic_data": [{"name": "u", "partition_data": [{"index": 0, "records": batch}, {"index": 7, "records": batch}]}],
        }
        resp = call(sock, ApiKey.PRODUCE, version, body)
        ok, missing = resp.responses[0].partition_responses
        assert ok.error_code == 0 and ok.base_offset >= 0 and ok.current_leader.leader_id == -1  # not sent
        assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize("version", [12, 14, 16])
def test_fetch_flexible_versions(broker, version):
    with connect(broker.socket_path) as sock:
        batch = encode_batch([(None, b"f", [], 1000)], 0)
        produce = {"acks": 1, "timeout_ms": 5000, "topic_data": [{"name": "u", "partition_data": [{"index": 1, "records": batch}]}]}
        assert call(sock, ApiKey.PRODUCE, 11, produce).responses[0].partition_responses[0].error_code == 0
        if version >= 13:
            resp = _fetch_by_id(sock, topic_id(broker, "u"), 1, version)
        else:
            body = {
                "max_wait_ms": 0,
                "min_bytes": 0,
                "topics": [{"topic": "u", "partitions": [{"partition": 1, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}],
            }
            resp = call(sock, ApiKey.FETCH, version, body)
        part = resp.responses[0].partitions[0]
        assert part.error_code == 0 and part.high_watermark == 1 and part.diverging_epoch.epoch == -1  # not sent
        assert bytes(part.records).startswith(bytes(8))  # the batch at offset 0


@pytest.mark.parametrize("version", [9, 11, 13])
def test_metadata_flexible_versions(broker, version):
    with connect(broker.socket_path) as sock:
        meta = call(sock, ApiKey.METADATA, version, {"topics": [{"name": "t"}, {"name": "nope"}], "allow_auto_topic_creation": False})
    assert [(t.name, t.error_code) for t in meta.topics] == [("t", 0), ("nope", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert len(meta.topics[0].partitions) == 3 and meta.brokers[0].port == broker.port
    assert (meta.topics[0].topic_id == topic_id(broker, "t")) == (version >= 10)


def test_offset_for_leader_epoch_v4(broker):
    with connect(broker.socket_path) as sock:
        body = {"topics": [{"topic": "t", "partitions": [{"partition": 0, "leader_epoch": 0}, {"partition": 9, "leader_epoch": 0}]}]}
        resp = call(sock, ApiKey.OFFSET_FOR_LEADER_EPOCH, 4, body)
    found, missing = resp.topics[0].partitions
    assert (found.error_code, found.leader_epoch, found.end_offset) == (0, 0, 0)
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize(("name", "version", "code"), [("kcli", "1.0", 0), ("bad name", "1.0", 42), ("x", "", 42)])
def test_api_versions_v3_checks_the_client_software(broker, name, version, code):
    """KIP-511: a software name or version outside Kafka's pattern gets INVALID_REQUEST and no APIs."""
    with connect(broker.socket_path) as sock:
        body = call(sock, ApiKey.API_VERSIONS, 3, {"client_software_name": name, "client_software_version": version})
        assert body.error_code == code and bool(body.api_keys) == (code == 0)
        assert call(sock, ApiKey.API_VERSIONS, 4, {"client_software_name": "a", "client_software_version": "1"}).error_code == 0


def test_fetch_v15_reads_the_follower_from_the_tagged_replica_state(broker):
    """From v15 a follower names itself in the tagged replica_state; broker 5 is no replica of "u"."""
    with connect(broker.socket_path) as sock:
        tid = topic_id(broker, "u")
        body = {
            "replica_state": {"replica_id": 5, "replica_epoch": -1},
            "max_wait_ms": 0,
            "min_bytes": 0,
            "topics": [{"topic_id": tid, "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 100}]}],
        }
        as_follower = call(sock, ApiKey.FETCH, 15, body).responses[0].partitions[0]
        assert as_follower.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        as_consumer = call(sock, ApiKey.FETCH, 15, {k: v for k, v in body.items() if k != "replica_state"}).responses[0].partitions[0]
        assert as_consumer.error_code == 0
