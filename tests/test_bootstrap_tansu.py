"""``--bootstrap-server`` against tansu, a Kafka-compatible broker kcli did not write: topic admin,
produce and consume with every codec, keyed placement, offsets and formats -- all without a data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.runner import KcliRunner

from kcli.client.partitioner import partition_for_key

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture
def remote(tmp_path: Path, tansu) -> KcliRunner:
    """kcli pointed at tansu through KCLI_BOOTSTRAP_SERVER, with a data dir path that must stay unused."""
    runner = KcliRunner(tmp_path / "untouched")
    runner.env["KCLI_BOOTSTRAP_SERVER"] = tansu.bootstrap
    yield runner
    assert not runner.data_dir.exists(), "--bootstrap-server touched the data dir"


def records(runner: KcliRunner, topic: str, *args: str) -> list[dict]:
    out = runner("consume", topic, "-e", "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_topic_create_list_describe_delete(remote: KcliRunner) -> None:
    created = remote("topic", "create", "orders", "-p", "3")
    assert "Created topic orders with 3 partition(s)" in created.stderr
    remote("topic", "create", "audit", "-p", "1")  # without -p: the cluster's num.partitions
    assert remote("topic", "list").stdout.split() == ["audit", "orders"]
    assert json.loads(remote("topic", "list", "--json").stdout) == [
        {"name": "audit", "partitions": 1, "replication_factor": 1},
        {"name": "orders", "partitions": 3, "replication_factor": 1},
    ]
    remote("produce", "orders", "-p", "1", input="a\nb\n")
    (desc,) = json.loads(remote("topic", "describe", "orders", "--json").stdout)
    ends = [(p["partition"], p["log_start_offset"], p["log_end_offset"]) for p in desc["partitions"]]
    assert ends == [(0, 0, 0), (1, 0, 2), (2, 0, 0)]
    assert all(p["leader"] >= 0 and p["isr"] == p["replicas"] for p in desc["partitions"])
    again = remote("topic", "create", "orders", ok=False)
    assert again.returncode == 4 and "already exists" in again.stderr
    remote("topic", "create", "orders", "--if-not-exists")
    remote("topic", "delete", "audit")
    assert remote("topic", "list").stdout.split() == ["orders"]
    missing = remote("topic", "describe", "audit", ok=False)
    assert missing.returncode == 3


@pytest.mark.parametrize("codec", CODECS)
def test_produce_and_consume_every_codec(remote: KcliRunner, codec: str) -> None:
    remote.in_process("topic", "create", "c", "-p", "2")
    lines = "".join(f"key{i}:value {i} {'x' * (i % 50)}\n" for i in range(300))
    remote("produce", "c", "-K:", "-H", "origin=test", "-z", codec, "--batch-size", "2048", input=lines)
    got = records(remote, "c", "-b")
    assert len(got) == 300
    by_key = {r["key"]: r for r in got}
    for i in range(300):
        rec = by_key[f"key{i}"]
        assert rec["value"] == f"value {i} {'x' * (i % 50)}"
        assert rec["headers"] == [["origin", "test"]]
    for p in (0, 1):
        offsets = [r["offset"] for r in got if r["partition"] == p]
        assert offsets == list(range(len(offsets))), "offsets of a partition are dense and in order"


def test_keyed_records_land_where_kcli_puts_them(remote: KcliRunner, kcli) -> None:
    """murmur2 placement: the cluster's partition for a key is the one kcli's data dir would choose."""
    keys = [f"user-{i}" for i in range(60)]
    text = "".join(f"{k}:{i}\n" for i, k in enumerate(keys))
    remote.in_process("topic", "create", "users", "-p", "5")
    remote("produce", "users", "-K:", input=text)
    kcli.in_process("topic", "create", "users", "-p", "5")
    kcli.produce_lines("users", text, "-K:")
    there = {
        line.split()[1]: int(line.split()[0])
        for line in remote("consume", "users", "-b", "-e", "-f", "%p %k\\n").stdout.splitlines()
    }
    here = {
        line.split()[1]: int(line.split()[0])
        for line in kcli("consume", "users", "-b", "-e", "-f", "%p %k\\n").stdout.splitlines()
    }
    assert there == here == {k: partition_for_key(k.encode(), 5) for k in keys}


def test_consume_offsets_formats_and_limits(remote: KcliRunner) -> None:
    remote.in_process("topic", "create", "t", "-p", "1")
    remote.produce_lines("t", "".join(f"m{i}\n" for i in range(10)))
    assert remote("consume", "t", "-b", "-e").stdout.split() == [f"m{i}" for i in range(10)]
    assert remote("consume", "t", "-o", "7", "-e").stdout.split() == ["m7", "m8", "m9"]
    assert remote("consume", "t", "-o", "-2", "-e").stdout.split() == ["m8", "m9"]
    assert remote("consume", "t", "-b", "-c", "3").stdout.split() == ["m0", "m1", "m2"]
    assert remote("consume", "t", "-o", "latest", "-e").stdout == ""
    assert (
        remote("consume", "t", "-o", "4", "-c", "2", "-f", "%t/%p/%o=%s\\n").stdout == "t/0/4=m4\nt/0/5=m5\n"
    )


def test_produce_json_keeps_headers_timestamps_and_partitions(remote: KcliRunner) -> None:
    remote.in_process("topic", "create", "j", "-p", "3")
    sent = [
        {"key": "a", "value": "1", "partition": 2, "timestamp": 1_600_000_000_000, "headers": [["h", "x"]]},
        {"key": None, "value": "2", "partition": 0, "timestamp": 1_600_000_000_500, "headers": []},
        {"key": "c", "value": None, "partition": 1, "timestamp": 1_600_000_001_000, "headers": [["n", None]]},
    ]
    remote("produce", "j", "--json", input="".join(json.dumps(r) + "\n" for r in sent))
    got = sorted(records(remote, "j", "-b"), key=lambda r: r["timestamp"])
    assert [(r["key"], r["value"], r["partition"], r["timestamp"]) for r in got] == [
        (r["key"], r["value"], r["partition"], r["timestamp"]) for r in sent
    ]
    assert [len(r["headers"]) for r in got] == [1, 0, 1]


def test_produce_creates_a_missing_topic_when_the_cluster_does(remote: KcliRunner) -> None:
    remote("produce", "fresh", input="hello\n")
    assert remote("consume", "fresh", "-b", "-e").stdout == "hello\n"


def test_bootstrap_tries_every_server(remote: KcliRunner, tansu) -> None:
    from support.waits import free_port

    dead = f"127.0.0.1:{free_port()}"
    remote("--bootstrap-server", f"{dead},{tansu.bootstrap}", "topic", "create", "x")
    assert "x" in remote("--bootstrap-server", f"{dead},{tansu.bootstrap}", "topic", "list").stdout.split()


def test_data_dir_only_commands_refuse_bootstrap(remote: KcliRunner) -> None:
    remote("topic", "create", "t")
    for args in (
        ["group", "delete", "g"],
        ["log-dirs"],
    ):
        proc = remote.in_process(*args, ok=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "--bootstrap-server" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_transactional_produce_commits_through_the_flexible_versions(remote: KcliRunner) -> None:
    """tansu 0.6 answers the classic transaction APIs with UNKNOWN_SERVER_ERROR but serves the flexible
    ones (InitProducerId v2+, FindCoordinator v3+, ...) that kcli now negotiates: a transactional
    produce there commits, and a read_committed consumer sees it."""
    remote("topic", "create", "tx", "-p", "1")
    remote("produce", "tx", "--transactional-id", "t1", input="a\nb\n")
    assert remote("consume", "tx", "-b", "-e", "--isolation-level", "read_committed").stdout == "a\nb\n"


def test_topic_configs_through_another_cluster(remote: KcliRunner) -> None:
    """`kcli config` and `kcli topic alter -c` speak IncrementalAlterConfigs / DescribeConfigs, so they
    work on a cluster kcli did not write."""
    remote("topic", "create", "cfg", "-p", "1")
    remote("topic", "alter", "cfg", "-c", "retention.ms=120000")
    remote("config", "alter", "--topic", "cfg", "--set", "max.message.bytes=2048")
    shown = {c["name"]: c["value"] for c in json.loads(remote("config", "describe", "--topic", "cfg", "--json").stdout)["configs"]}
    assert shown["retention.ms"] == "120000" and shown["max.message.bytes"] == "2048"
