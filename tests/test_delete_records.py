"""DeleteRecords (21) v0-2 and ``kcli topic delete-records``: the log start becomes logical (inside a
segment), readers start there, whole segments below it go, followers follow; embedded and through
brokers, with confluent-kafka's and kafka-python's admin clients."""

from __future__ import annotations

import json
import os
import time

import pytest
from support.brokers import call, connect
from support.runner import one_error_line

from kcli.protocol import ApiKey, ErrorCode

SEGMENT = "segment.bytes=300"  # a few records a segment: deleting records deletes whole segments too


def _bases(folder, topic: str, partition: int) -> list[int]:
    path = folder / f"{topic}-{partition}"
    return sorted(int(n[:20]) for n in os.listdir(path) if n.endswith(".log"))


def _start_checkpoint(folder, topic: str, partition: int) -> int | None:
    """What the broker's log-start-offset-checkpoint keeps for the partition."""
    try:
        lines = (folder / "log-start-offset-checkpoint").read_text().split("\n")[2:]
    except FileNotFoundError:
        return None
    for line in lines:
        if line.split()[:2] == [topic, str(partition)]:
            return int(line.split()[2])
    return None


def _describe(run, topic: str) -> list[dict]:
    return json.loads(run("topic", "describe", topic, "--json").stdout)[0]["partitions"]


# ---------------------------------------------------------------- embedded


def test_embedded_delete_records_moves_the_start_inside_a_segment(kcli):
    kcli("topic", "create", "t", "-p", "2", "-c", SEGMENT)
    kcli.produce_lines("t", "".join(f"m{i}\n" for i in range(60)), "-p", 0, "--batch-size", 1)
    folder = kcli.data_dir / "broker-0"
    before = _bases(folder, "t", 0)
    assert len(before) > 4
    inside = before[3] + 1  # not a segment base: the start becomes logical
    r = kcli("topic", "delete-records", "t", "--partition", 0, "--before", inside)
    assert r.stdout == f"partition: t-0\tlow_watermark: {inside}\n"
    assert _start_checkpoint(folder, "t", 0) == inside
    after = _bases(folder, "t", 0)
    assert after == [b for b in before if b >= before[3]]  # the segment holding the start stays
    assert _describe(kcli, "t")[0]["log_start_offset"] == inside
    out = kcli("consume", "t", "-p", 0, "--from-beginning", "-e").stdout.split()
    assert out == [f"m{i}" for i in range(inside, 60)]
    # a position below the start reads from the start, never the deleted records of its batch
    assert kcli("consume", "t", "-p", 0, "--offset", 0, "-e").stdout.split()[0] == f"m{inside}"
    # an offset below the start changes nothing (Kafka answers the current low watermark)
    assert json.loads(kcli("topic", "delete-records", "t", "-p", 0, "--before", 2, "--json").stdout) == [
        {"topic": "t", "partition": 0, "low_watermark": inside}
    ]
    # -1: everything up to the high watermark; the partition stays writable from there
    kcli("topic", "delete-records", "t", "-p", 0, "--before", -1)
    assert _describe(kcli, "t")[0]["log_start_offset"] == 60
    kcli.produce_lines("t", "new\n", "-p", 0)
    assert kcli("consume", "t", "-p", 0, "--from-beginning", "-e").stdout.split() == ["new"]
    assert kcli("verify").returncode == 0


def test_embedded_delete_records_json_file_and_every_replica(kcli, tmp_path):
    kcli("cluster", "init", "-n", 2)
    kcli("topic", "create", "t", "-p", "2", "-r", "2", "-c", SEGMENT)
    for p in (0, 1):
        kcli.produce_lines("t", "".join(f"p{p}-{i}\n" for i in range(30)), "-p", p, "--batch-size", 1)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"partitions": [{"topic": "t", "partition": 0, "offset": 7},
                                               {"topic": "t", "partition": 1, "offset": 20}], "version": 1}))
    r = kcli("topic", "delete-records", "--json-file", plan)
    assert r.stdout == "partition: t-0\tlow_watermark: 7\npartition: t-1\tlow_watermark: 20\n"
    for b in (0, 1):  # both in-sync replicas moved, and checkpointed it
        folder = kcli.data_dir / f"broker-{b}"
        assert _start_checkpoint(folder, "t", 0) == 7 and _start_checkpoint(folder, "t", 1) == 20
    assert kcli("consume", "t", "-p", 1, "-b", "-e").stdout.split() == [f"p1-{i}" for i in range(20, 30)]
    verify = kcli("verify", ok=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    dirs = json.loads(kcli("log-dirs", "--json").stdout)
    starts = {(b["broker"], p["partition"]): p["logStartOffset"] for b in dirs["brokers"] for p in b["partitions"]}
    assert starts == {(0, 0): 7, (0, 1): 20, (1, 0): 7, (1, 1): 20}


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["t", "-p", "0", "--before", "99"], 2, ("high watermark is 10",)),
        (["t", "-p", "0", "--before", "-5"], 2, ("offset -5",)),
        (["nope", "-p", "0", "--before", "1"], 3, ("nope",)),
        (["t", "-p", "5", "--before", "1"], 3, ("no partition 5",)),
        (["t", "-p", "-1", "--before", "1"], 2, ("negative",)),
        (["t", "-p", "0"], 2, ("--before",)),
    ],
)
def test_delete_records_bad_input_changes_nothing(kcli, args, code, words):
    kcli("topic", "create", "t", "-c", SEGMENT)
    kcli.produce_lines("t", "".join(f"m{i}\n" for i in range(10)), "--batch-size", 1)
    folder = kcli.data_dir / "broker-0"
    before = _bases(folder, "t", 0)
    r = kcli("topic", "delete-records", *args, ok=False)
    one_error_line(r, code, *words)
    assert _bases(folder, "t", 0) == before and _start_checkpoint(folder, "t", 0) in (None, 0)
    assert kcli("consume", "t", "-b", "-e").stdout.split()[0] == "m0"


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", ("bad delete-records JSON file",)),
        ('{"version": 1}', ("partitions",)),
        ('{"partitions": [{"topic": "t", "partition": "0", "offset": 3}]}', ("integers",)),
        ('{"partitions": [{"topic": "t", "partition": 0, "offset": 3}, {"topic": "t", "partition": 0, '
         '"offset": 4}]}', ("twice",)),
        ('{"partitions": [{"topic": "t", "partition": 0, "offset": null}]}', ("integers",)),
        ('{"partitions": []}', ("non-empty",)),
    ],
)
def test_delete_records_bad_json_file(kcli, tmp_path, content, words):
    kcli("topic", "create", "t")
    kcli.produce_lines("t", "".join(f"m{i}\n" for i in range(10)))
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    one_error_line(kcli("topic", "delete-records", "--json-file", plan, ok=False), 2, *words)
    assert kcli("consume", "t", "-b", "-e").stdout.split()[0] == "m0"


def test_json_file_with_one_bad_target_changes_nothing(kcli, tmp_path):
    kcli("topic", "create", "t", "-p", "2")
    kcli.produce_lines("t", "".join(f"m{i}\n" for i in range(10)), "-p", 0)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"partitions": [{"topic": "t", "partition": 0, "offset": 3},
                                               {"topic": "t", "partition": 1, "offset": 40}], "version": 1}))
    one_error_line(kcli("topic", "delete-records", "--json-file", plan, ok=False), 2, "t-1", "high watermark")
    assert _describe(kcli, "t")[0]["log_start_offset"] == 0


def test_a_topic_created_again_does_not_inherit_the_log_start(kcli):
    kcli("topic", "create", "t")
    kcli.produce_lines("t", "".join(f"m{i}\n" for i in range(10)))
    kcli("topic", "delete-records", "t", "-p", 0, "--before", 8)
    kcli("topic", "delete", "t")
    kcli("topic", "create", "t")
    kcli.produce_lines("t", "".join(f"n{i}\n" for i in range(10)))
    assert kcli("consume", "t", "-b", "-e").stdout.split() == [f"n{i}" for i in range(10)]


# ---------------------------------------------------------------- through brokers


@pytest.fixture
def two(brokers):
    """Two brokers, topic t (2 partitions, RF 2, small segments) with 40 records in partition 0."""
    brokers.init(2)
    started = [brokers.start(0), brokers.start(1)]
    brokers.kcli("topic", "create", "t", "-p", "2", "-r", "2", "-c", SEGMENT)
    brokers.runner.produce_lines("t", "".join(f"m{i}\n" for i in range(40)), "-p", 0, "--batch-size", 1)
    _wait_isr(brokers, "t", 0, 2)
    return started


def _wait_isr(brokers, topic: str, partition: int, size: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_describe(brokers.kcli, topic)[partition]["isr"]) < size:
        assert time.monotonic() < deadline, "the follower never joined the ISR"
        time.sleep(0.2)


def _wait_for(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _leader_of(brokers, started, topic: str, partition: int):
    leader = _describe(brokers.kcli, topic)[partition]["leader"]
    return next(b for b in started if b.broker_id == leader), next(b for b in started if b.broker_id != leader)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_delete_records_api_waits_for_the_followers(brokers, two, version):
    leader, follower = _leader_of(brokers, two, "t", 0)
    with connect(("127.0.0.1", leader.port)) as sock:
        body = {"topics": [{"name": "t", "partitions": [{"partition_index": 0, "offset": 13}]}], "timeout_ms": 20000}
        resp = call(sock, ApiKey.DELETE_RECORDS, version, body)
        [part] = resp.topics[0].partitions
        assert (part.error_code, part.low_watermark) == (ErrorCode.NONE, 13)
        # answered only once the follower has the new start (the low watermark), checkpointed
        assert _start_checkpoint(follower.folder, "t", 0) == 13
        assert _start_checkpoint(leader.folder, "t", 0) == 13
        errors = call(sock, ApiKey.DELETE_RECORDS, version, {"topics": [
            {"name": "t", "partitions": [{"partition_index": 0, "offset": 41},
                                         {"partition_index": 9, "offset": 1}]},
            {"name": "nope", "partitions": [{"partition_index": 0, "offset": 1}]},
        ], "timeout_ms": 1000})
        codes = [(t.name, p.partition_index, p.error_code) for t in errors.topics for p in t.partitions]
        assert codes == [("t", 0, ErrorCode.OFFSET_OUT_OF_RANGE), ("t", 9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                         ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
        assert call(sock, ApiKey.METADATA, 8, {"topics": []}).brokers  # the connection lives on
    with connect(("127.0.0.1", follower.port)) as sock:
        body = {"topics": [{"name": "t", "partitions": [{"partition_index": 0, "offset": 20}]}], "timeout_ms": 1000}
        part = call(sock, ApiKey.DELETE_RECORDS, version, body).topics[0].partitions[0]
        assert part.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    # followers delete their own whole segments below the start too
    _wait_for(lambda: _bases(follower.folder, "t", 0)[0] <= 13 < (_bases(follower.folder, "t", 0) + [99])[1],
              "the follower kept segments below the start")
    with connect(("127.0.0.1", leader.port)) as sock:
        offsets = call(sock, ApiKey.LIST_OFFSETS, 1, {"replica_id": -1, "topics": [
            {"name": "t", "partitions": [{"partition_index": 0, "timestamp": -2}]}]})
        assert offsets.topics[0].partitions[0].offset == 13
        fetch = call(sock, ApiKey.FETCH, 11, {
            "replica_id": -1, "max_wait_ms": 1, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "rack_id": "", "forgotten_topics_data": [],
            "topics": [{"topic": "t", "partitions": [{"partition": 0, "current_leader_epoch": -1,
                                                       "fetch_offset": 5, "log_start_offset": -1,
                                                       "partition_max_bytes": 1 << 20}]}]})
        part = fetch.responses[0].partitions[0]
        assert (part.error_code, part.log_start_offset) == (ErrorCode.OFFSET_OUT_OF_RANGE, 13)


def test_delete_records_times_out_when_a_follower_does_not_follow(brokers, two):
    leader, follower = _leader_of(brokers, two, "t", 0)
    follower.proc.send_signal(__import__("signal").SIGSTOP)
    try:
        with connect(("127.0.0.1", leader.port)) as sock:
            body = {"topics": [{"name": "t", "partitions": [{"partition_index": 0, "offset": 5}]}], "timeout_ms": 800}
            part = call(sock, ApiKey.DELETE_RECORDS, 2, body).topics[0].partitions[0]
        assert part.error_code == ErrorCode.REQUEST_TIMED_OUT
        assert _start_checkpoint(leader.folder, "t", 0) == 5  # the leader's start moved all the same
    finally:
        follower.proc.send_signal(__import__("signal").SIGCONT)
    _wait_for(lambda: _start_checkpoint(follower.folder, "t", 0) == 5, "the follower never followed")


def test_cli_delete_records_through_brokers_and_consumers_start_there(brokers, two, tmp_path):
    leader, follower = _leader_of(brokers, two, "t", 0)
    r = brokers.kcli("topic", "delete-records", "t", "-p", "0", "--before", "17")
    assert r.stdout == "partition: t-0\tlow_watermark: 17\n"
    assert brokers.kcli("consume", "t", "-p", "0", "-b", "-e").stdout.split() == [f"m{i}" for i in range(17, 40)]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"partitions": [{"topic": "t", "partition": 0, "offset": -1}], "version": 1}))
    r = brokers.kcli("--bootstrap-server", leader.bootstrap, "topic", "delete-records", "--json-file", plan)
    assert r.stdout == "partition: t-0\tlow_watermark: 40\n"
    bad = brokers.kcli("topic", "delete-records", "t", "-p", "0", "--before", "99", ok=False)
    one_error_line(bad, 2, "OFFSET_OUT_OF_RANGE")
    one_error_line(brokers.kcli("topic", "delete-records", "nope", "-p", "0", "--before", "1", ok=False), 3, "nope")
    for b in two:
        assert _start_checkpoint(b.folder, "t", 0) == 40
    leader.stop()
    follower.stop()
    assert brokers.kcli("verify", ok=False).returncode == 0


def test_a_follower_that_restarts_learns_the_new_start(brokers, two):
    leader, follower = _leader_of(brokers, two, "t", 0)
    follower.stop()
    brokers.kcli("topic", "delete-records", "t", "-p", "0", "--before", "25")
    restarted = brokers.start(follower.broker_id)
    _wait_for(lambda: _start_checkpoint(restarted.folder, "t", 0) == 25, "the restarted follower kept its start")


def test_confluent_delete_records_and_consumer_from_the_beginning(brokers, two):
    ck = pytest.importorskip("confluent_kafka")
    admin_mod = pytest.importorskip("confluent_kafka.admin")
    leader, _follower = _leader_of(brokers, two, "t", 0)
    admin = admin_mod.AdminClient({"bootstrap.servers": leader.bootstrap})
    futures = admin.delete_records([ck.TopicPartition("t", 0, 21)], request_timeout=20, operation_timeout=15)
    result = futures[ck.TopicPartition("t", 0)].result(timeout=30)
    assert result.low_watermark == 21
    consumer = ck.Consumer({"bootstrap.servers": leader.bootstrap, "group.id": "g", "auto.offset.reset": "earliest"})
    try:
        consumer.assign([ck.TopicPartition("t", 0)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 19 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append((msg.offset(), msg.value().decode()))
        assert got[0] == (21, "m21") and got[-1] == (39, "m39")
        low, high = consumer.get_watermark_offsets(ck.TopicPartition("t", 0), timeout=10)
        assert (low, high) == (21, 40)
    finally:
        consumer.close()
    bad = admin.delete_records([ck.TopicPartition("t", 0, 99)], request_timeout=20)
    with pytest.raises(ck.KafkaException) as err:
        bad[ck.TopicPartition("t", 0)].result(timeout=30)
    assert err.value.args[0].code() == ck.KafkaError.OFFSET_OUT_OF_RANGE


def test_kafka_python_delete_records(brokers, two):
    kafka_admin = pytest.importorskip("kafka.admin")
    from kafka.structs import TopicPartition

    leader, _follower = _leader_of(brokers, two, "t", 0)
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=leader.bootstrap, request_timeout_ms=20000)
    try:
        result = admin.delete_records({TopicPartition("t", 0): 9}, timeout_ms=15000)
    finally:
        admin.close()
    assert result[TopicPartition("t", 0)]["low_watermark"] == 9
    assert brokers.kcli("consume", "t", "-p", "0", "-b", "-e").stdout.split()[0] == "m9"


def test_a_follower_behind_the_new_start_starts_over_inside_a_batch(brokers):
    """A follower out of the ISR, behind a start that lies inside a batch: it starts over at that batch
    (Kafka's truncateFullyAndStartAt), appends it, moves its start to the leader's and rejoins."""
    brokers.init(2)
    lag = ("--replica-lag-time-max-ms", "1000")
    started = [brokers.start(0, *lag), brokers.start(1, *lag)]
    brokers.kcli("topic", "create", "t", "-r", "2")
    brokers.runner.produce_lines("t", "".join(f"m{i}\n" for i in range(10)), "--batch-size", 1)
    _wait_isr(brokers, "t", 0, 2)
    leader, follower = _leader_of(brokers, started, "t", 0)
    follower.proc.send_signal(__import__("signal").SIGSTOP)
    try:
        _wait_for(lambda: len(_describe(brokers.kcli, "t")[0]["isr"]) == 1, "the ISR never shrank")
        brokers.runner.produce_lines("t", "".join(f"m{i}\n" for i in range(10, 30)), "--batch-size", 100)
        assert brokers.kcli("topic", "delete-records", "t", "-p", "0", "--before", "25").stdout.endswith(": 25\n")
    finally:
        follower.proc.send_signal(__import__("signal").SIGCONT)
    _wait_isr(brokers, "t", 0, 2)
    _wait_for(lambda: _start_checkpoint(follower.folder, "t", 0) == 25, "the follower's start never moved")
    assert 10 <= _bases(follower.folder, "t", 0)[0] < 25  # it started over at the batch that holds the start
    for b in started:
        b.stop()
    verify = brokers.kcli("verify", ok=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert brokers.kcli("consume", "t", "-b", "-e").stdout.split() == [f"m{i}" for i in range(25, 30)]


@pytest.mark.parametrize("through", ["embedded", "broker"])
def test_a_consumer_positioned_below_the_new_start_skips_the_deleted_records_of_its_batch(tmp_path, brokers, through):
    """A reader whose position fell below the start (the records went while it read) gets nothing below
    the start, even from the batch that holds it (one batch of 20 records here)."""
    from kcli.client.consumer import Consumer
    from kcli.client.embedded import EmbeddedTransport
    from kcli.client.remote import RemoteTransport
    from kcli.cluster.datadir import DataDir

    run = brokers.kcli
    if through == "broker":
        brokers.start(0)
    run("topic", "create", "t")
    brokers.runner.produce_lines("t", "".join(f"m{i}\n" for i in range(20)))
    datadir = DataDir(str(brokers.data_dir))
    transport = EmbeddedTransport(datadir) if through == "embedded" else RemoteTransport(datadir)
    try:
        consumer = Consumer(transport)
        consumer.assign({("t", 0): 2})
        run("topic", "delete-records", "t", "-p", 0, "--before", 5)
        values = []
        for _ in range(3):
            values += consumer.fetch_values("t", 0)
        assert values == [f"m{i}".encode() for i in range(5, 20)]
    finally:
        transport.close()


def test_verify_reports_a_log_start_past_the_log_end(kcli):
    kcli("topic", "create", "t")
    kcli.produce_lines("t", "a\nb\n")
    kcli("topic", "delete-records", "t", "-p", 0, "--before", 1)
    assert kcli("verify", ok=False).returncode == 0
    path = kcli.data_dir / "broker-0" / "log-start-offset-checkpoint"
    path.write_text("0\n1\nt 0 9\n")
    bad = kcli("verify", ok=False)
    assert bad.returncode == 1 and "the checkpointed log start 9 is past the replica's log end 2" in bad.stdout
