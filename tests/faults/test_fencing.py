"""A hung leader is fenced by its leader epoch, not waited for (the issue: "a hung leader takes its
partitions down").

Three ``kcli broker serve`` processes, a topic with replication factor 3 and min.insync.replicas=2.  The
leader is stopped with SIGSTOP: it still exists and holds every lock it had, but does nothing.  The
contract:

- after the session timeout the controller moves the leadership, and the new leader serves at once:
  acks=all and acks=1 writes through another broker, and ``kcli produce``, are accepted again;
- the old leader, woken with SIGCONT, appends nothing: a produce request that waited in its socket all
  along is refused (NOT_LEADER_OR_FOLLOWER), so no record it acknowledged after the new leader took over
  exists only on it; it truncates to the new leader as a follower, rejoins the ISR, and its replica ends
  byte-identical to the new leader's;
- every acknowledged record is read back at its offset.

The unit tests below pin the two guards one at a time: the leader-epoch check right before an append,
and the per-replica lock that keeps two leaders out of one stopped broker's replica folder.
"""

from __future__ import annotations

import signal
import time

import pytest
from support.brokers import connect, read_frame

from kcli.broker.partitions import LedPartitions
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.errors import LockTimeoutError
from kcli.protocol import ApiKey, ErrorCode, RequestHeader, decode_response, encode_request
from kcli.protocol.error_codes import ApiError
from kcli.replica.writer import PartitionWriter
from kcli.storage.config import LogConfig
from kcli.storage.records import encode_batch

from .harness import replica_batches, wait_for
from .test_broker_failover import (
    TOPIC,
    all_in_sync,
    all_threads_stopped,
    check_acked,
    consumed,
    partition_meta,
    start_cluster,
)
from .test_broker_failover import _produce_raw as produce_raw

SESSION_TIMEOUT_MS = 2000
# the controller looks 4 times a second; the new leader opens the partition on its next metadata tick
TAKEOVER_SLACK = 8.0


def _produce_request(acks: int, value: bytes) -> bytes:
    body = {
        "acks": acks,
        "timeout_ms": 5000,
        "topic_data": [
            {"name": TOPIC, "partition_data": [{"index": 0, "records": encode_batch([(None, value, [], 1)], 0)}]}
        ],
    }
    return encode_request(RequestHeader(ApiKey.PRODUCE, 8, 7, "zombie-test"), body)


def _accepted(sock, acks: int, value: bytes):
    """The answer's base offset if the broker accepted the write, else None."""
    answer = produce_raw(sock, acks, value, timeout_ms=2000)
    return answer.base_offset if answer.error_code == ErrorCode.NONE else None


@pytest.mark.faults
def test_hung_leader_is_fenced_and_rejoins_as_a_follower(brokers):
    running = start_cluster(brokers, "--session-timeout-ms", str(SESSION_TIMEOUT_MS))
    meta = wait_for("a full ISR", lambda: all_in_sync(brokers))
    old = meta.leader
    acked: dict[int, str] = {}
    for line in brokers.kcli("produce", TOPIC, "--print-offsets", input="a\nb\nc\n").stdout.splitlines():
        acked[int(line.split()[2])] = "abc"[len(acked)]
    zombie = connect(running[old].socket_path, timeout=60)
    running[old].proc.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_for("every thread of the leader to stop", lambda: all_threads_stopped(running[old].proc.pid))
        # sent to the hung leader: it waits in the socket until SIGCONT, long after the takeover
        zombie.sendall(_produce_request(1, b"zombie"))
        moved = wait_for(
            "the controller to move the leadership",
            lambda: (m := partition_meta(brokers)).leader not in (old, -1) and m,
        )
        assert moved.leader_epoch > meta.leader_epoch and old not in moved.isr
        with connect(running[moved.leader].socket_path) as sock:
            offset = wait_for("the new leader to accept acks=all", lambda: _accepted(sock, -1, b"all"))
            acked[offset] = "all"
            offset = _accepted(sock, 1, b"one")
            assert offset is not None
            acked[offset] = "one"
        took = time.monotonic() - stopped_at
        assert took < SESSION_TIMEOUT_MS / 1000 + TAKEOVER_SLACK, f"writes resumed only after {took:.1f}s"
        for acks in ("all", "1"):
            out = brokers.kcli("produce", TOPIC, "--acks", acks, "--print-offsets", input=f"cli-{acks}\n")
            acked[int(out.stdout.split()[2])] = f"cli-{acks}"
    finally:
        running[old].proc.send_signal(signal.SIGCONT)
    payload = read_frame(zombie)
    zombie.close()
    assert payload is not None, "the old leader closed the connection instead of answering"
    answer = decode_response(ApiKey.PRODUCE, 8, payload).body.responses[0].partition_responses[0]
    assert answer.error_code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH), (
        f"the old leader accepted a write after the takeover (offset {answer.base_offset})"
    )
    # back as a follower: it truncates to the new leader, catches up and rejoins the ISR
    wait_for("the old leader to rejoin the ISR", lambda: all_in_sync(brokers))
    assert partition_meta(brokers).leader == moved.leader
    for line in brokers.kcli("produce", TOPIC, "--print-offsets", input="after\n").stdout.splitlines():
        acked[int(line.split()[2])] = "after"
    stored = consumed(brokers)
    check_acked(acked, stored)
    assert "zombie" not in stored.values()
    datadir = DataDir(str(brokers.data_dir))
    brokers.stop_all()
    logs = {b: replica_batches(datadir.partition_dir(b, TOPIC, 0))[1] for b in range(3)}
    assert logs[old] == logs[moved.leader], "the old leader's replica differs from the new leader's"


@pytest.mark.faults
def test_hung_leader_keeps_a_stopped_brokers_replica_but_not_the_partition(brokers):
    """The hung leader was writing a stopped broker's replica for it, so it holds that replica's lock:
    the new leader leaves that replica alone, the broker, started meanwhile, waits to follow without
    holding up acks=all (the leader drops it from the ISR), and all three agree once the hung one wakes."""
    options = ("--session-timeout-ms", str(SESSION_TIMEOUT_MS), "--replica-lag-time-max-ms", "3000")
    running = start_cluster(brokers, *options, configs=("min.insync.replicas=1",))
    meta = wait_for("a full ISR", lambda: all_in_sync(brokers))
    old, stopped, other = meta.leader, *(b for b in meta.replicas if b != meta.leader)
    assert running[stopped].stop(signal.SIGTERM) == 0  # stopped cleanly: in the ISR, written by the leader
    wait_for("the leader to write the stopped broker's replica", lambda: "writing its replica" in running[old].log())
    acked: dict[int, str] = {}
    for line in brokers.kcli("produce", TOPIC, "--print-offsets", input="a\nb\n").stdout.splitlines():
        acked[int(line.split()[2])] = "ab"[len(acked)]
    running[old].proc.send_signal(signal.SIGSTOP)
    try:
        wait_for("every thread of the leader to stop", lambda: all_threads_stopped(running[old].proc.pid))
        wait_for("the controller to move the leadership", lambda: partition_meta(brokers).leader == other)
        held = f"replica of partition {TOPIC}-0 on broker {stopped} lock held by pid {running[old].proc.pid}"
        wait_for("the new leader to find the replica held", lambda: held in running[other].log())
        running[stopped] = brokers.start(stopped, *options)
        wait_for("the leader to drop the broker that cannot follow", lambda: partition_meta(brokers).isr == [other])
        with connect(running[other].socket_path) as sock:
            offset = wait_for("the new leader to accept acks=all", lambda: _accepted(sock, -1, b"all"))
            acked[offset] = "all"
    finally:
        running[old].proc.send_signal(signal.SIGCONT)
    wait_for("every broker to be back in the ISR", lambda: all_in_sync(brokers))
    for line in brokers.kcli("produce", TOPIC, "--print-offsets", input="after\n").stdout.splitlines():
        acked[int(line.split()[2])] = "after"
    check_acked(acked, consumed(brokers))
    datadir = DataDir(str(brokers.data_dir))
    brokers.stop_all()
    logs = {b: replica_batches(datadir.partition_dir(b, TOPIC, 0))[1] for b in range(3)}
    assert logs[old] == logs[other] == logs[stopped], "the replicas differ"


# ---------------------------------------------------------------- the two guards, one at a time


def _cluster(tmp_path, brokers: int = 3) -> tuple[DataDir, Metadata]:
    datadir = DataDir(str(tmp_path / "data"), lock_timeout=0.2)
    md = Metadata(datadir)
    md.add_brokers(brokers)
    md.create_topic("t", 1, brokers)
    return datadir, md


@pytest.mark.faults
def test_a_deposed_leader_refuses_the_append_before_it_notices(tmp_path):
    """The metadata moved the leadership while the old leader was not looking (no refresh ran): its next
    append is refused all the same, because it checks its leader epoch right before appending."""
    datadir, md = _cluster(tmp_path)
    leader = md.load().partition("t", 0).leader
    partitions = LedPartitions(datadir, leader)
    partitions.refresh(force=True)
    led = partitions.get("t", 0)
    batch = memoryview(encode_batch([(None, b"before", [], 1)], 0))
    assert led.append([batch])[0] == 0
    other = next(b for b in range(3) if b != leader)
    md.update_partition("t", 0, leader=other, isr=[other], leader_epoch=led.leader_epoch + 1)
    with pytest.raises(ApiError) as refused:
        led.append([memoryview(encode_batch([(None, b"zombie", [], 2)], 0))])
    assert refused.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert led.writer.leader.log_end_offset == 1  # nothing appended
    partitions.close_all()


@pytest.mark.faults
def test_two_leaders_never_write_one_replica_folder(tmp_path):
    """A leader writes a stopped broker's replica under that replica's lock; a newer leader that finds
    the lock held (the old leader hung) leaves the replica alone instead of waiting or sharing it."""
    datadir, md = _cluster(tmp_path)
    meta = md.load().partition("t", 0)
    _leader, b, stopped = meta.replicas
    config = LogConfig.from_topic({})
    first = PartitionWriter(datadir, "t", 0, meta, config, followers=[stopped])
    try:
        newer = md.update_partition("t", 0, leader=b, isr=[b, stopped], leader_epoch=meta.leader_epoch + 1)
        second = PartitionWriter(datadir, "t", 0, newer, config, followers=[])
        try:
            with pytest.raises(LockTimeoutError, match=f"broker {stopped}"):
                second.attach(stopped)
            assert second.followers == []
        finally:
            second.close(durable=False)
    finally:
        first.close(durable=False)


def test_cluster_status_names_a_hung_broker_and_the_controller(brokers):
    """An operator sees a hung broker as hung, not live, and which broker acts as the controller."""
    import json
    import os

    brokers.init(2)
    first = brokers.start(0)
    brokers.start(1)

    def status() -> dict:
        return json.loads(brokers.kcli("cluster", "status", "--json").stdout)

    assert (status()["hung_brokers"], status()["controller"]) == ([], 0)
    first.proc.send_signal(signal.SIGSTOP)
    try:
        stale = time.time() - 60  # as if it had hung for a minute (past any session timeout)
        os.utime(first.folder / "heartbeat", (stale, stale))
        now = status()
        assert (now["live_brokers"], now["hung_brokers"], now["controller"]) == ([0, 1], [0], 1)
        table = brokers.kcli("cluster", "status").stdout
        assert "hung (no heartbeat for 6" in table and "live, controller" in table, table
    finally:
        first.proc.send_signal(signal.SIGCONT)
