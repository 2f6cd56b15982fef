"""``kcli broker serve`` as a process: lifecycle, locks, and kcli commands routed through it."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from support.waits import wait_for

from kcli.client.embedded import EmbeddedTransport
from kcli.client.remote import REQUEST_TIMEOUT, RemoteTransport
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.errors import LockTimeoutError, NotFoundError
from kcli.storage.records import decode_records, encode_batch, iter_batches


def _read_all(transport, topic: str, partition: int) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    offset = transport.list_offset(topic, partition, "earliest")
    end = transport.list_offset(topic, partition, "latest")
    while offset < end:
        data, _resume = transport.fetch(topic, partition, offset)
        assert data, f"no data at offset {offset} < {end}"
        for pos, header in iter_batches(data):
            for rec in decode_records(data, pos, header):
                if rec.offset >= offset:
                    out.append((rec.offset, rec.key, rec.value))
            offset = max(offset, header.next_offset)
    return out


def test_serve_list_status_and_clean_stop(brokers):
    broker = brokers.start(0)
    folder = broker.folder
    assert stat.S_IMODE(os.stat(folder / "broker.sock").st_mode) == 0o600

    listed = json.loads(brokers.kcli("broker", "list", "--json").stdout)
    plaintext = {"listener": "PLAINTEXT", "host": "127.0.0.1", "port": broker.port, "security_protocol": "PLAINTEXT"}
    assert listed == [
        {
            "broker_id": 0,
            "pid": broker.proc.pid,
            "socket": broker.socket_path,
            "listener": broker.bootstrap,
            "endpoints": [plaintext],
            "listeners": [plaintext],
            "started_ms": broker.info["started_ms"],
        }
    ]
    status = json.loads(brokers.kcli("cluster", "status", "--json").stdout)
    assert status["live_brokers"] == [0] and status["mode"] == "brokers"

    brokers.kcli("produce", "t", input="a\nb\n")
    assert broker.stop() == 0
    assert "stopped cleanly" in broker.log()
    assert not (folder / "broker.json").exists()
    assert not (folder / "broker.sock").exists()
    assert DataDir(str(brokers.data_dir)).live_brokers() == []
    # logs were released cleanly (the next writer resumes without recovery) and checkpoints written
    assert (folder / "t-0" / "kcli-writer-state").exists()
    assert "t 0 2" in (folder / "recovery-point-offset-checkpoint").read_text()
    assert json.loads(brokers.kcli("broker", "list", "--json").stdout) == []


def test_sigint_also_stops_cleanly(brokers):
    import signal

    broker = brokers.start(0, listener=None)
    assert broker.info["listener"] is None
    assert broker.stop(signal.SIGINT) == 0
    assert not (broker.folder / "broker.json").exists()


def test_second_broker_with_same_id_is_refused(brokers):
    first = brokers.start(0)
    second = brokers.spawn(0)
    assert second.proc.wait(30) == 8
    assert "broker 0 is already running" in second.log()
    assert f"pid {first.proc.pid}" in second.log()
    assert first.proc.poll() is None  # the first one is untouched
    assert json.loads((first.folder / "broker.json").read_text())["pid"] == first.proc.pid


def test_unknown_broker_id_and_bad_listener(brokers):
    proc = brokers.kcli("broker", "serve", "--id", "3", ok=False)
    assert proc.returncode == 3 and "not part of the cluster" in proc.stderr and "--brokers 4" in proc.stderr
    proc = brokers.kcli("broker", "serve", "--id", "0", "--listener", "nope", ok=False)
    assert proc.returncode == 2 and "bad listener" in proc.stderr


def test_cli_produce_and_consume_go_through_the_broker(brokers):
    broker = brokers.start(0)
    lines = "".join(f"k{i % 7}:value {i}\n" for i in range(2000))
    brokers.runner.in_process("topic", "create", "orders", "-p", "3")
    assert "created topic 'orders'" in broker.log()
    # the broker holds the partition locks: with a zero lock timeout an embedded write would fail
    brokers.kcli("--lock-timeout", "0", "produce", "orders", "-K:", "-z", "zstd", input=lines)
    out = brokers.kcli("--lock-timeout", "0", "consume", "orders", "-b", "-e", "-f", "%p %o %k %s\\n").stdout
    got = out.splitlines()
    assert len(got) == 2000
    assert sorted(line.split(" ", 3)[3] for line in got) == sorted(f"value {i}" for i in range(2000))
    # per partition, offsets are dense and in order, and keys land where kcli's partitioner says
    from kcli.client.partitioner import DefaultPartitioner

    by_partition: dict[int, list[int]] = {}
    for line in got:
        p, o, k, _v = line.split(" ", 3)
        by_partition.setdefault(int(p), []).append(int(o))
        assert int(p) == DefaultPartitioner().partition("orders", k.encode(), 3)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))

    describe = json.loads(brokers.kcli("topic", "describe", "orders", "--json").stdout)
    assert sum(p["log_end_offset"] for p in describe[0]["partitions"]) == 2000


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_acks_through_the_broker(brokers, acks):
    """acks=1 and all answer with offsets; acks=0 gets no answer from the broker, so the offsets are
    unknown (-1, as librdkafka reports them) -- and the records still arrive."""
    brokers.start(0)
    out = brokers.kcli("produce", "acked", "--acks", acks, "--print-offsets", input="a\nb\nc\n").stdout
    expected = [-1, -1, -1] if acks == "0" else [0, 1, 2]
    assert [int(line.split()[2]) for line in out.splitlines()] == expected
    wait_for("the three records", lambda: brokers.kcli("consume", "acked", "-b", "-e").stdout == "a\nb\nc\n")


def test_embedded_writers_wait_for_the_broker(brokers, tmp_path):
    brokers.start(0)
    brokers.runner.in_process("topic", "create", "locked")
    embedded = EmbeddedTransport(DataDir(str(brokers.data_dir), lock_timeout=0.3))
    with pytest.raises(LockTimeoutError, match="replica of partition locked-0 on broker 0 lock held by pid"):
        embedded.produce("locked", 0, encode_batch([(None, b"x", [], 1)], 0))
    embedded.close()


def test_written_through_broker_read_embedded_after_stop(brokers):
    broker = brokers.start(0)
    datadir = DataDir(str(brokers.data_dir))
    remote = RemoteTransport(datadir)
    assert remote.partition_count("same", create=True) == 1
    sent = []
    for b in range(50):
        batch = [
            (f"k{b}-{i}".encode(), f"v{b}-{i}".encode() * 3, [("h", b"1")], 1_700_000_000_000 + b)
            for i in range(20)
        ]
        base = remote.produce("same", 0, encode_batch(batch, 0, codec=b % 5))
        assert base == b * 20
        sent += [(base + i, k, v) for i, (k, v, _h, _t) in enumerate(batch)]
    through_broker = _read_all(remote, "same", 0)
    assert remote.list_offset("same", 0, 1_700_000_000_010) == 200
    remote.close()
    assert broker.stop() == 0

    embedded = EmbeddedTransport(datadir)
    assert _read_all(embedded, "same", 0) == through_broker == sent
    # and the embedded writer resumes exactly where the broker left off
    assert embedded.produce("same", 0, encode_batch([(None, b"after", [], 1)], 0)) == 1000
    embedded.close()


def test_topics_created_after_start_are_picked_up(brokers):
    broker = brokers.start(0)
    datadir = DataDir(str(brokers.data_dir))
    # written straight into the metadata, as another tool (or a future controller) would
    Metadata(datadir).create_topic("late", 2, 1)
    wait_for("the broker to lead late-1", lambda: "leading partition late-1" in broker.log())
    remote = RemoteTransport(datadir, auto_create=False)
    assert remote.produce("late", 1, encode_batch([(b"k", b"v", [], 5)], 0)) == 0
    assert _read_all(remote, "late", 1) == [(0, b"k", b"v")]
    remote.close()


def test_topic_admin_through_broker(brokers):
    broker = brokers.start(0)
    brokers.kcli("topic", "create", "adm", "-p", "2", "-c", "retention.ms=1000000")
    proc = brokers.kcli("topic", "create", "adm", ok=False)
    assert proc.returncode == 4 and "already exists" in proc.stderr
    brokers.kcli("topic", "create", "adm", "--if-not-exists")
    proc = brokers.kcli("topic", "create", "bad/name", ok=False)
    assert proc.returncode == 2
    proc = brokers.kcli("topic", "create", "x", "-c", "retention.ms=abc", ok=False)
    assert proc.returncode == 2
    brokers.kcli("produce", "adm", "-p", "1", input="x\ny\n")
    brokers.kcli("topic", "alter", "adm", "-p", "4")
    assert "topic 'adm' now has 4 partitions" in broker.log()
    proc = brokers.kcli("topic", "alter", "adm", "-p", "2", ok=False)
    assert proc.returncode == 2 and "can only grow" in proc.stderr
    described = json.loads(brokers.kcli("topic", "describe", "adm", "--json").stdout)[0]
    assert len(described["partitions"]) == 4 and described["configs"] == {"retention.ms": 1000000}
    brokers.kcli("topic", "delete", "adm")
    assert "deleted topic 'adm'" in broker.log()
    assert not (broker.folder / "adm-0").exists() and not (broker.folder / "adm-3").exists()
    proc = brokers.kcli("topic", "delete", "adm", ok=False)
    assert proc.returncode == 3
    proc = brokers.kcli("consume", "adm", "-b", "-e", ok=False)
    assert proc.returncode == 3
    # the name can be used again at once
    brokers.kcli("produce", "adm", input="again\n")
    assert brokers.kcli("consume", "adm", "-b", "-e").stdout == "again\n"


def test_two_brokers_each_lead_their_partitions(brokers):
    brokers.init(2)
    b0 = brokers.start(0)
    b1 = brokers.start(1)
    brokers.runner.in_process("topic", "create", "rep", "-p", "2", "-r", "2")
    state = Metadata(DataDir(str(brokers.data_dir))).load()
    leaders = {p: meta.leader for p, meta in enumerate(state.topic("rep").partitions)}
    assert sorted(leaders.values()) == [0, 1]
    lines = "".join(f"k{i}:{i}\n" for i in range(500))
    brokers.kcli("--lock-timeout", "0", "produce", "rep", "-K:", input=lines)
    out = brokers.kcli("consume", "rep", "-b", "-e").stdout.split()
    assert sorted(map(int, out)) == list(range(500))
    for p, leader in leaders.items():
        assert f"leading partition rep-{p}" in (b0 if leader == 0 else b1).log()
    b0.stop()
    b1.stop()
    # the leader wrote every in-sync replica: both copies of each partition are byte-identical
    for p in range(2):
        a = (brokers.data_dir / "broker-0" / f"rep-{p}" / "00000000000000000000.log").read_bytes()
        b = (brokers.data_dir / "broker-1" / f"rep-{p}" / "00000000000000000000.log").read_bytes()
        assert a == b and a


def test_no_embedded_write_behind_a_leader_about_to_serve(tmp_path):
    """A broker's Metadata can answer "no leader" from a view older than the data dir's (the controller
    just elected one) -- the client must then wait for the new leader, not write embedded and take the
    partition lock from under it.  Embedded is for partitions nobody is about to lead."""
    datadir = DataDir(str(tmp_path / "data"))
    md = Metadata(datadir)
    md.add_brokers(2)
    md.create_topic("t", 1, 2)
    leader = md.load().partition("t", 0).leader
    transport = RemoteTransport(datadir)
    try:
        with datadir.broker_lock(leader):  # the elected leader runs
            assert transport._leader_coming("t", 0)
        assert not transport._leader_coming("t", 0)  # stopped cleanly: its partitions may go embedded
        md.update_partition("t", 0, leader=-1)
        assert not transport._leader_coming("t", 0)  # offline: nobody is coming
    finally:
        transport.close(durable=False)


def test_partitions_without_a_live_leader_are_written_embedded(brokers):
    brokers.init(2)
    brokers.start(0)  # broker 1 stays down
    brokers.runner.in_process("topic", "create", "half", "-p", "2")
    lines = "".join(f"key{i}:v{i}\n" for i in range(300))
    brokers.kcli("produce", "half", "-K:", input=lines)
    out = brokers.kcli("consume", "half", "-b", "-e").stdout.split()
    assert sorted(out) == sorted(f"v{i}" for i in range(300))
    status = json.loads(brokers.kcli("cluster", "status", "--json").stdout)
    assert len(status["offline_partitions"]) == 1


def test_remote_transport_over_tcp_without_a_data_dir(brokers):
    broker = brokers.start(0)
    remote = RemoteTransport(bootstrap=broker.bootstrap)
    assert remote.partition_count("tcp", create=True) == 1
    assert remote.produce("tcp", 0, encode_batch([(b"a", b"1", [], 10), (b"b", b"2", [], 20)], 0)) == 0
    assert _read_all(remote, "tcp", 0) == [(0, b"a", b"1"), (1, b"b", b"2")]
    assert remote.list_offset("tcp", 0, 15) == 1
    assert remote.list_offset("tcp", 0, 99) == 2  # nothing that new: the end, as embedded answers
    with pytest.raises(NotFoundError):
        remote.partition_count("missing")
    remote.close()


def test_no_broker_means_embedded_and_no_protocol_import(tmp_path):
    """Start-up stays light: without a live broker the wire protocol is never imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from kcli.cluster.datadir import DataDir\n"
        "from kcli.client.connect import open_transport\n"
        f"t = open_transport(DataDir({str(tmp_path / 'data')!r}))\n"
        "print(type(t).__name__, 'kcli.protocol' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["EmbeddedTransport", "False"]


def test_remote_transport_goes_embedded_when_the_brokers_stop(brokers):
    broker = brokers.start(0)
    datadir = DataDir(str(brokers.data_dir))
    remote = RemoteTransport(datadir)
    assert remote.partition_count("handover", create=True) == 1
    assert remote.produce("handover", 0, encode_batch([(None, b"via broker", [], 1)], 0)) == 0
    assert broker.stop() == 0
    started = time.monotonic()
    assert remote.produce("handover", 0, encode_batch([(None, b"embedded", [], 2)], 0)) == 1
    assert [v for _o, _k, v in _read_all(remote, "handover", 0)] == [b"via broker", b"embedded"]
    # at once, not after a request timeout spent on the broker that is gone (a bound on a hang, not a goal)
    assert time.monotonic() - started < REQUEST_TIMEOUT / 2
    remote.close()


def test_a_new_group_waits_the_initial_rebalance_delay_it_is_given(brokers):
    """--group-initial-rebalance-delay-ms reaches the coordinator: a new group's first join is held that
    long for more members (the tests' brokers use 0; Kafka's default is 3 s)."""
    brokers.init(1)
    broker = brokers.start(0, "--group-initial-rebalance-delay-ms", "4000")
    brokers.runner.produce_lines("t", "x\n")
    started = time.monotonic()
    result = brokers.kcli("--bootstrap-server", broker.bootstrap, "consume", "t", "--group", "g",
                          "--from-beginning", "-e")
    assert result.stdout == "x\n"
    assert time.monotonic() - started >= 4.0  # a lower bound: the delay was applied, however slow the box
