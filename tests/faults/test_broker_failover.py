"""Replication with running brokers, under faults: three ``kcli broker serve`` processes on one data dir,
a topic with replication factor 3 and min.insync.replicas=2, acks=all writes.

The contract (docs/design.md, "Replication and durability"):

- an acknowledged record is never lost while one in-sync replica survives: leaders are killed (-9) and
  restarted while a producer runs, and every acknowledged value is read back at the offset it was
  acknowledged with;
- replicas agree: after the brokers stop, every replica holds the same batches at the same offsets up to
  the high watermark (no replica has a record the others lack below it);
- a clean shutdown (SIGTERM) moves leadership to another in-sync replica without losing a record;
- a follower that stops (SIGSTOP) leaves the ISR after replica.lag.time.max.ms, an acks=all write waits
  for it until then (or times out), and it rejoins once it runs and catches up;
- acks=all is refused with NOT_ENOUGH_REPLICAS while the ISR is smaller than min.insync.replicas.

Every wait polls for a condition with a generous deadline: these tests share two cores with others.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from support.brokers import Brokers, call, connect

from kcli.client.remote import RemoteTransport
from kcli.cluster.controller import replica_leo
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata, PartitionMeta
from kcli.protocol import ApiKey, ErrorCode
from kcli.storage import records
from kcli.storage.records import encode_batch

from .harness import replica_batches, wait_for

TOPIC = "ha"
DEADLINE = 60.0


def partition_meta(brokers: Brokers, topic: str = TOPIC) -> PartitionMeta:
    return Metadata(DataDir(str(brokers.data_dir))).load().partition(topic, 0)


def start_cluster(
    brokers: Brokers, *options: str, configs: tuple[str, ...] = ("min.insync.replicas=2",)
) -> dict:
    brokers.init(3)
    running = {b: brokers.spawn(b, *options) for b in range(3)}
    for broker in running.values():
        broker.wait_ready()
    args = ["topic", "create", TOPIC, "-p", "1", "-r", "3"]
    for config in configs:
        args += ["-c", config]
    brokers.kcli(*args)
    return running


def all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in the stopped state.  SIGSTOP is delivered to one thread, which
    then stops the others: until it has, another thread may still be answering requests."""
    task = f"/proc/{pid}/task"
    states = []
    for tid in os.listdir(task):
        try:
            with open(f"{task}/{tid}/stat", encoding="ascii") as fh:
                states.append(fh.read().rpartition(")")[2].split()[0])
        except FileNotFoundError:
            continue
    return bool(states) and all(state in "tT" for state in states)


def all_in_sync(brokers: Brokers) -> PartitionMeta | None:
    meta = partition_meta(brokers)
    return meta if meta.leader >= 0 and sorted(meta.isr) == [0, 1, 2] else None


class Producer:
    """Writes ``v0, v1, ...`` one acks=all batch at a time through the brokers (kcli's remote client,
    over the brokers' Unix sockets), retrying a value until it is acknowledged.  A retry after a lost
    answer may store a value twice; what matters is that every acknowledged one is there."""

    def __init__(self, data_dir) -> None:
        self.transport = RemoteTransport(DataDir(str(data_dir)))
        self.acked: dict[int, str] = {}
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            value = f"v{n}"
            try:
                offset = self.transport.produce(TOPIC, 0, encode_batch([(None, value.encode(), [], n)], 0))
            except Exception as exc:  # a failover longer than the client's retries: try again
                self.errors.append(f"{value}: {exc}")
                time.sleep(0.1)
                continue
            self.acked[offset] = value
            n += 1

    def wait_acks(self, more: int, timeout: float = DEADLINE) -> None:
        target = len(self.acked) + more
        wait_for(
            f"{more} more acknowledged records (errors: {self.errors[-3:]})",
            lambda: len(self.acked) >= target,
            timeout,
        )

    def stop(self) -> dict[int, str]:
        self.stopping.set()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "producer did not stop"
        self.transport.close()
        return dict(self.acked)


def consumed(brokers: Brokers) -> dict[int, str]:
    """offset -> value of every record, read through the brokers."""
    out = {}
    for line in brokers.kcli("consume", TOPIC, "-b", "-e", "-f", "%o %s\\n").stdout.splitlines():
        offset, _, value = line.partition(" ")
        out[int(offset)] = value
    return out


def check_acked(acked: dict[int, str], stored: dict[int, str]) -> None:
    wrong = {o: (v, stored.get(o)) for o, v in acked.items() if stored.get(o) != v}
    assert not wrong, f"{len(wrong)} acknowledged records lost or changed, e.g. {sorted(wrong.items())[:5]}"


def check_replicas_agree(brokers: Brokers, acked: dict[int, str]) -> None:
    """With every broker stopped: the replicas hold identical batches at identical offsets up to the
    high watermark, which covers every acknowledged record."""
    datadir = DataDir(str(brokers.data_dir))
    logs = {b: replica_batches(datadir.partition_dir(b, TOPIC, 0)) for b in range(3)}
    ends = {
        b: (batches[-1][0] + records.parse_header(batches[-1][1]).records_count if batches else 0)
        for b, (_start, batches) in logs.items()
    }
    hw = min(ends.values())
    assert hw > max(acked), f"replica ends {ends} do not all cover the last acknowledged offset {max(acked)}"
    below = {b: [(o, bytes(data)) for o, data in batches if o < hw] for b, (_s, batches) in logs.items()}
    for b in (1, 2):
        assert below[b] == below[0], f"replica on broker {b} differs from broker 0 below offset {hw}"


def test_acknowledged_records_survive_leaders_killed_and_restarted(brokers):
    running = start_cluster(brokers)
    producer = Producer(brokers.data_dir)
    try:
        producer.wait_acks(20)
        for _round in range(3):
            meta = wait_for("a full ISR", lambda: all_in_sync(brokers))
            old = meta.leader
            running[old].stop(signal.SIGKILL)
            moved = wait_for(
                "the controller to elect a new leader",
                lambda old=old: (m := partition_meta(brokers)).leader not in (old, -1) and m,
            )
            assert moved.leader_epoch > meta.leader_epoch and old not in moved.isr
            producer.wait_acks(20)  # the new leader takes writes
            running[old] = brokers.start(old)  # back as a follower: truncates, catches up, rejoins
        wait_for("a full ISR", lambda: all_in_sync(brokers))
        producer.wait_acks(10)
    finally:
        acked = producer.stop()
    check_acked(acked, consumed(brokers))
    brokers.stop_all()
    check_replicas_agree(brokers, acked)


def test_clean_shutdown_moves_leadership_without_loss(brokers):
    running = start_cluster(brokers)
    producer = Producer(brokers.data_dir)
    try:
        producer.wait_acks(20)
        meta = wait_for("a full ISR", lambda: all_in_sync(brokers))
        old = meta.leader
        assert running[old].stop(signal.SIGTERM) == 0
        after = partition_meta(brokers)  # the hand-over was recorded before the process exited
        assert after.leader not in (old, -1) and after.leader_epoch == meta.leader_epoch + 1
        assert "controlled shutdown" in running[old].log()
        producer.wait_acks(20)
        # the stopped broker's replica stays in sync: the new leader writes it while it is down
        assert sorted(partition_meta(brokers).isr) == [0, 1, 2]
        running[old] = brokers.start(old)
        producer.wait_acks(10)
    finally:
        acked = producer.stop()
    check_acked(acked, consumed(brokers))
    brokers.stop_all()
    check_replicas_agree(brokers, acked)


def _produce_raw(sock, acks: int, value: bytes, timeout_ms: int = 30000):
    body = {
        "acks": acks,
        "timeout_ms": timeout_ms,
        "topic_data": [
            {
                "name": TOPIC,
                "partition_data": [{"index": 0, "records": encode_batch([(None, value, [], 1)], 0)}],
            }
        ],
    }
    return call(sock, ApiKey.PRODUCE, 8, body).responses[0].partition_responses[0]


def _visible(sock) -> tuple[int, int]:
    """(high watermark, end of the records a consumer's Fetch returns) of partition 0."""
    body = {
        "replica_id": -1,
        "max_wait_ms": 0,
        "min_bytes": 0,
        "topics": [
            {
                "topic": TOPIC,
                "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}],
            }
        ],
    }
    part = call(sock, ApiKey.FETCH, 11, body).responses[0].partitions[0]
    assert part.error_code == 0
    data = bytes(part.records or b"")
    end = 0
    for _pos, header in records.iter_batches(data):
        end = header.next_offset
    return part.high_watermark, end


def test_stopped_follower_leaves_and_rejoins_the_isr(brokers):
    running = start_cluster(brokers, "--replica-lag-time-max-ms", "3000")
    meta = wait_for("a full ISR", lambda: all_in_sync(brokers))
    leader, follower = meta.leader, next(b for b in meta.replicas if b != meta.leader)
    brokers.kcli("produce", TOPIC, input="a\nb\nc\n")
    with connect(running[leader].socket_path) as sock:
        wait_for("the high watermark to reach 3", lambda: _visible(sock)[0] == 3)
        running[follower].proc.send_signal(signal.SIGSTOP)
        try:
            wait_for("every thread of the follower to stop", lambda: all_threads_stopped(running[follower].proc.pid))
            # acks=all waits for the stopped in-sync follower: a short timeout runs out first, and
            # consumers do not see the record yet (below the high watermark only)
            answer = _produce_raw(sock, -1, b"waiting", timeout_ms=300)
            assert answer.error_code == ErrorCode.REQUEST_TIMED_OUT and answer.base_offset == 3
            assert _visible(sock) == (3, 3)
            assert replica_leo(DataDir(str(brokers.data_dir)), TOPIC, 0, leader) == 4  # on the leader
            # after replica.lag.time.max.ms the leader drops it: the ISR (2) still meets min.insync.replicas
            shrunk = wait_for(
                "the ISR to shrink", lambda: (m := partition_meta(brokers)).isr != meta.isr and m
            )
            assert follower not in shrunk.isr and len(shrunk.isr) == 2
            assert _produce_raw(sock, -1, b"after shrink").error_code == ErrorCode.NONE
            assert _visible(sock) == (5, 5)
            under = brokers.kcli("topic", "describe", "--under-replicated-partitions").stdout
            assert f"\n{TOPIC}\t0\t" in under
        finally:
            running[follower].proc.send_signal(signal.SIGCONT)
        wait_for("the follower to rejoin", lambda: all_in_sync(brokers))
    assert f"\n{TOPIC}\t0\t" not in brokers.kcli("topic", "describe", "--under-replicated-partitions").stdout
    brokers.stop_all()
    check_replicas_agree(brokers, {0: "a"})


def test_acks_all_refused_while_the_isr_is_below_min_insync(brokers):
    running = start_cluster(brokers, configs=("min.insync.replicas=3",))
    meta = wait_for("a full ISR", lambda: all_in_sync(brokers))
    follower = next(b for b in meta.replicas if b != meta.leader)
    running[follower].stop(signal.SIGKILL)
    wait_for("the controller to drop the lost follower", lambda: follower not in partition_meta(brokers).isr)
    under = brokers.kcli("topic", "describe", "--under-min-isr-partitions").stdout
    assert f"\n{TOPIC}\t0\t" in under
    with connect(running[meta.leader].socket_path) as sock:

        def refused() -> bool:
            # until the leader has read the new ISR it appends, then finds the ISR too small (as Kafka)
            code = _produce_raw(sock, -1, b"refused").error_code
            assert code in (ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
            return code == ErrorCode.NOT_ENOUGH_REPLICAS

        wait_for("the leader to refuse acks=all", refused)
        assert _produce_raw(sock, 1, b"acks=1 is fine").error_code == ErrorCode.NONE
    cli = brokers.kcli("produce", TOPIC, input="x\n", ok=False)
    assert cli.returncode == 10 and "2 in-sync replicas, min.insync.replicas=3" in cli.stderr
    # acks=1 asks the leader alone: min.insync.replicas does not apply
    assert brokers.kcli("produce", TOPIC, "--acks", "1", "--print-offsets", input="leader only\n").stdout
    running[follower] = brokers.start(follower)
    wait_for("the follower to rejoin", lambda: all_in_sync(brokers))
    brokers.kcli("produce", TOPIC, input="accepted again\n")
