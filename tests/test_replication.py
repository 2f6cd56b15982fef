"""Replication pieces: leader-epoch divergence, the leader's ISR and high-watermark rules, the
controller's decisions, the embedded writer's replica rules -- and, with real brokers, a returning leader
truncating its divergent tail (KIP-101), elections and reassignment while brokers run.

The fault-injection proof (leaders killed under load, clean shutdown, ISR shrink and expand,
NOT_ENOUGH_REPLICAS) is tests/faults/test_broker_failover.py.
"""

from __future__ import annotations

import os
import signal

import pytest
from support.brokers import call, connect
from support.waits import wait_for

from kcli.broker.isr import ReplicaTracker
from kcli.broker.partitions import LedPartition
from kcli.client.embedded import EmbeddedTransport
from kcli.cluster.controller import NO_LEADER, alter_isr, hand_over, on_brokers_lost
from kcli.cluster.datadir import DataDir
from kcli.cluster.liveness import BrokerStates
from kcli.cluster.metadata import Metadata, PartitionMeta
from kcli.protocol import ApiKey, ErrorCode
from kcli.replica.writer import PartitionWriter
from kcli.storage.config import LogConfig
from kcli.storage.divergence import divergence, end_offset_for_epoch, truncation_offset
from kcli.storage.log import PartitionLog
from kcli.storage.records import encode_batch

# ---------------------------------------------------------------- leader epochs (KIP-101)

EPOCHS = [(0, 0), (2, 10), (5, 20)]


@pytest.mark.parametrize(
    ("asked", "answer"),
    [
        (5, (5, 30)),  # the latest epoch ends at the log end
        (2, (2, 20)),  # an older one where the next starts
        (3, (2, 20)),  # unknown epoch: the largest older one, up to the next start
        (7, (-1, -1)),  # newer than anything known
        (-1, (-1, -1)),
    ],
)
def test_end_offset_for_epoch(asked, answer):
    assert end_offset_for_epoch(EPOCHS, 30, asked) == answer


def test_epoch_older_than_all_known_ends_where_the_first_starts():
    assert end_offset_for_epoch([(3, 5)], 9, 1) == (1, 5)


def test_follower_truncation_offset():
    # same epoch on both: keep what the leader has of it
    assert truncation_offset([(0, 0), (1, 10)], 14, 1, 12, 0) == 12
    # the leader never had our epoch 1: cut to where our epoch 1 began (= the end of 0 on the leader)
    assert truncation_offset([(0, 0), (1, 10)], 14, 0, 10, 0) == 10
    # the leader cannot answer: fall back to the high watermark
    assert truncation_offset([(0, 0)], 14, -1, -1, 7) == 7


def test_divergence_read_from_both_logs():
    assert divergence([(0, 0), (2, 10)], 15, [(0, 0), (1, 8)], 12) == 8
    assert divergence([(0, 0), (1, 10)], 15, [(0, 0), (1, 10)], 12) == 12
    assert divergence([(0, 0), (1, 10)], 15, [(0, 0)], 12) == 10
    assert divergence([(0, 0)], 5, [], 3) == 3  # no epochs to compare: by offsets, as before


# ---------------------------------------------------------------- the leader's follower tracking


def test_high_watermark_is_the_smallest_isr_log_end_and_never_moves_back():
    t = ReplicaTracker(leader=0, isr=[0, 1, 2], hw=0, lag_time=10, now=0)
    assert t.high_watermark(10, set()) == 0  # followers not heard from yet hold it
    t.on_fetch(1, 7, 10, now=1)
    assert t.high_watermark(10, set()) == 0
    t.on_fetch(2, 4, 10, now=1)
    assert t.high_watermark(10, set()) == 4
    assert t.high_watermark(10, {2}) == 7  # a replica the leader writes itself is at the leader's end
    t.isr = [0, 1]
    t.on_fetch(1, 3, 10, now=2)  # a restarted follower: the high watermark does not go back
    assert t.high_watermark(10, set()) == 7


def test_lagging_followers_and_rejoining():
    t = ReplicaTracker(leader=0, isr=[0, 1, 2], hw=0, lag_time=5, now=0)
    t.on_fetch(1, 10, 10, now=1)  # caught up at 1
    t.on_fetch(2, 3, 10, now=1)  # behind
    assert t.lagging(now=5.5, written_here=set()) == [2]
    t.on_fetch(2, 10, 12, now=6)  # reached what the leader had at its previous fetch: caught up as of then
    assert t.lagging(now=6.5, written_here=set()) == [1, 2]
    t.on_fetch(2, 12, 12, now=7)  # at the leader's end: caught up now
    assert t.lagging(now=7, written_here=set()) == [1]
    assert t.lagging(now=7, written_here={1}) == []
    t.isr = [0, 1]
    t.hw = 10
    assert t.may_join(2, epoch_start=5) and not t.may_join(2, epoch_start=13)


# ---------------------------------------------------------------- the controller's decisions


def _metadata(tmp_path, brokers: int = 3, rf: int = 3, configs=None) -> Metadata:
    md = Metadata(DataDir(str(tmp_path / "data")))
    md.add_brokers(brokers)
    md.create_topic("t", 1, rf, configs)
    return md


def _look(live: set[int], lost: set[int]):
    return lambda _state: (set(live), set(lost))


def test_lost_leader_moves_to_the_live_isr_member_with_the_highest_log_end(tmp_path):
    md = _metadata(tmp_path)
    first = md.load().partition("t", 0)
    leader, a, b = first.replicas
    leo = {leader: 9, a: 5, b: 7}
    changes = on_brokers_lost(md, _look({a, b}, {leader}), lambda _t, _p, x: leo[x], lambda _t: False)
    after = md.load().partition("t", 0)
    assert [c.new_leader for c in changes] == [b] == [after.leader]
    assert after.leader_epoch == 1 and after.isr == [a, b]


def test_stopped_replicas_keep_their_isr_place_and_lost_ones_lose_it(tmp_path):
    md = _metadata(tmp_path)
    leader, a, b = md.load().partition("t", 0).replicas
    # a is merely stopped (neither live nor lost): it stays; b crashed: it goes; the leader is untouched
    assert on_brokers_lost(md, _look({leader}, {b}), lambda *_: 0, lambda _t: False) == []
    assert md.load().partition("t", 0).isr == [leader, a]
    # the leader is lost and no in-sync replica runs: offline, the last ISR kept
    changes = on_brokers_lost(md, _look(set(), {leader, b}), lambda *_: 0, lambda _t: False)
    after = md.load().partition("t", 0)
    assert changes[0].new_leader == NO_LEADER and after.leader == NO_LEADER and after.isr == [a]
    # ... until a member runs again
    on_brokers_lost(md, _look({a}, {leader, b}), lambda *_: 0, lambda _t: False)
    assert md.load().partition("t", 0).leader == a


def test_unclean_election_only_when_the_topic_allows_it(tmp_path):
    md = _metadata(tmp_path, configs={"unclean.leader.election.enable": True})
    leader, a, b = md.load().partition("t", 0).replicas
    md.update_partition("t", 0, isr=[leader])
    changes = on_brokers_lost(md, _look({b}, {leader}), lambda *_: 0, lambda _t: True)
    assert changes[0].unclean and "may be lost" in changes[0].describe()
    assert md.load().partition("t", 0).isr == [b]


def test_hand_over_and_fenced_isr_changes(tmp_path):
    md = _metadata(tmp_path)
    meta = md.load().partition("t", 0)
    leader, a, b = meta.replicas
    leo = {a: 3, b: 4}
    changes = hand_over(md, leader, {a, b}, lambda _t, _p, x: leo[x])
    after = md.load().partition("t", 0)
    assert changes[0].new_leader == b == after.leader and after.isr == meta.isr  # it stays in sync
    # the deposed leader's ISR change is refused; the new leader's is recorded in replica order
    assert alter_isr(md, "t", 0, meta, [leader]) is None
    recorded = alter_isr(md, "t", 0, after, [b, leader])
    assert recorded is not None and recorded.isr == [leader, b] == md.load().partition("t", 0).isr
    assert recorded.version > after.version


def test_isr_change_from_an_old_view_is_refused_and_the_current_partition_returned(tmp_path):
    """The race behind a follower that never rejoined: the leader proposes an ISR from its view while the
    controller drops a lost broker; the proposal must not undo that, and the leader must learn of it."""
    md = _metadata(tmp_path)
    view = md.load().partition("t", 0)
    leader, a, b = view.replicas
    on_brokers_lost(md, _look({leader, a}, {b}), lambda *_: 0, lambda _t: False)  # the controller's change
    current = md.load().partition("t", 0)
    assert current.isr == [leader, a] and current.version > view.version
    answer = alter_isr(md, "t", 0, view, [leader, a, b])
    assert answer is not None and answer.isr == [leader, a] and answer.version == current.version
    assert md.load().partition("t", 0).isr == [leader, a]  # nothing recorded
    # from the current view the same change goes through -- once b runs again (KIP-841)
    assert alter_isr(md, "t", 0, current, [leader, a, b]).isr == [leader, a]
    with DataDir(str(tmp_path / "data")).broker_lock(b):
        answer = alter_isr(md, "t", 0, current, [leader, a, b])
    assert answer.isr == [leader, a, b] == md.load().partition("t", 0).isr


def test_controller_looks_again_under_the_metadata_lock(tmp_path):
    """A broker that came back between the controller's first look and its decision keeps its place."""
    md = _metadata(tmp_path)
    leader, a, b = md.load().partition("t", 0).replicas
    locked_while_looking = []

    def look(_state):
        locked_while_looking.append(DataDir(str(tmp_path / "data")).metadata_lock().is_locked())
        return {leader, a, b}, set()  # b, seen lost a moment ago, runs again

    assert on_brokers_lost(md, look, lambda *_: 0, lambda _t: False) == []
    assert locked_while_looking == [True] and md.load().partition("t", 0).isr == [leader, a, b]


# ---------------------------------------------------------------- the embedded writer's replica rules


def _append(log: PartitionLog, epoch: int, values: list[bytes]) -> None:
    for v in values:
        log.append(encode_batch([(None, v, [], 1)], 0), epoch)


def test_attach_cuts_a_divergent_follower_by_leader_epoch(tmp_path):
    """Offsets alone would keep the follower's epoch-1 records at 3..4, which the leader never had."""
    datadir = DataDir(str(tmp_path / "data"))
    config = LogConfig()
    leader = PartitionLog(datadir.partition_dir(0, "t", 0), config)
    follower = PartitionLog(datadir.partition_dir(1, "t", 0), config)
    for log in (leader, follower):
        log.open_for_append(None)
        _append(log, 0, [b"a", b"b", b"c"])
    _append(follower, 1, [b"x", b"y"])  # a leader in epoch 1 wrote these, then died unreplicated
    _append(leader, 2, [b"d", b"e", b"f"])
    for log in (leader, follower):
        log.release()
    writer = PartitionWriter(datadir, "t", 0, PartitionMeta([0, 1], 0, [0, 1], 2), config, followers=[1])
    writer.close(durable=True)
    read = [PartitionLog(datadir.partition_dir(b, "t", 0)).read(0, 1 << 20) for b in (0, 1)]
    assert read[0] == read[1] and len(read[0]) > 0
    assert PartitionLog(datadir.partition_dir(1, "t", 0)).epochs() == [(0, 0), (2, 3)]


def test_led_partition_keeps_the_newer_view_when_an_isr_change_and_a_refresh_cross(tmp_path):
    """A leader recorded "b rejoins", the controller then dropped b, and the refresh carrying that was
    applied before the answer to the leader's own change: the answer must not bring b back into the
    leader's view (it would then never ask to add b again), and b's next catch-up adds it for real."""
    datadir = DataDir(str(tmp_path / "data"))
    md = _metadata(tmp_path)
    leader, a, b = md.load().partition("t", 0).replicas
    md.update_partition("t", 0, isr=[leader, a])
    view = md.load().partition("t", 0)
    writer = PartitionWriter(datadir, "t", 0, view, LogConfig(), followers=[])
    led = LedPartition("t", 0, view, LogConfig(), writer, md)
    running_b = datadir.broker_lock(b).acquire()  # only a running broker rejoins
    try:
        ours = alter_isr(md, "t", 0, view, [leader, a, b])
        on_brokers_lost(md, _look({leader, a}, {b}), lambda *_: 0, lambda _t: False)
        led.update_meta(md.load().partition("t", 0))  # the refresh wins the race ...
        led.update_meta(ours)  # ... and the older answer arrives last
        assert led.meta.isr == [leader, a]
        led.replica_read(b, 0, 1 << 20)  # b fetches from the log end: caught up
        led.expand_isr(b)
        assert md.load().partition("t", 0).isr == [leader, a, b] == led.meta.isr
    finally:
        running_b.release()
        led.close()


def test_leader_writes_a_stopped_replica_only_if_its_broker_is_still_stopped(tmp_path):
    """The broker's look at who runs is up to a second old; a broker that started since may already
    follow (its folder is its own), so the leader checks the broker lock again before writing it."""
    datadir = DataDir(str(tmp_path / "data"))
    md = _metadata(tmp_path)
    meta = md.load().partition("t", 0)
    leader, a, b = meta.replicas
    stale = BrokerStates(running=frozenset({leader}), lost=frozenset(), stopped=frozenset({a, b}))
    writer = PartitionWriter(datadir, "t", 0, meta, LogConfig(), followers=[])
    led = LedPartition("t", 0, meta, LogConfig(), writer, md)
    try:
        with datadir.broker_lock(a):  # a started after the look
            led.maintain(stale)
        assert led.writer.followers == [b]
    finally:
        led.close()


def test_embedded_writes_leave_running_brokers_replicas_alone(tmp_path):
    """A running broker is the only writer of its replicas: an embedded writer drops it from the ISR."""
    datadir = DataDir(str(tmp_path / "data"))
    md = _metadata(tmp_path, brokers=2, rf=2)
    meta = md.load().partition("t", 0)
    follower = meta.replicas[1]
    with datadir.broker_lock(follower):  # as a running broker holds it
        transport = EmbeddedTransport(datadir)
        transport.produce("t", 0, encode_batch([(None, b"v", [], 1)], 0))
        transport.close()
    assert md.load().partition("t", 0).isr == [meta.leader]
    assert PartitionLog(datadir.partition_dir(follower, "t", 0)).log_end_offset == 0


def test_embedded_writer_drops_a_running_follower_even_from_an_old_view(tmp_path):
    """The partition changed between the writer's look and its ISR change (which is then refused): it
    tries again from the partition as it is now."""
    datadir = DataDir(str(tmp_path / "data"))
    md = _metadata(tmp_path, brokers=3, rf=3)
    view = md.load().partition("t", 0)
    leader, running, stopped = view.replicas
    md.update_partition("t", 0, isr=list(view.isr))  # someone else's change: same ISR, newer version
    with datadir.broker_lock(running):
        writer = PartitionWriter(datadir, "t", 0, view, LogConfig())
        writer.close(durable=True)
    assert md.load().partition("t", 0).isr == [leader, stopped]


# ---------------------------------------------------------------- with brokers running


def _meta(brokers, topic: str = "t") -> PartitionMeta:
    return Metadata(DataDir(str(brokers.data_dir))).load().partition(topic, 0)


def _start(brokers, count: int = 3) -> dict:
    brokers.init(count)
    running = {b: brokers.spawn(b) for b in range(count)}
    for broker in running.values():
        broker.wait_ready()
    return running


def _in_sync(brokers, replicas: int = 3):
    meta = _meta(brokers)
    return meta if meta.leader >= 0 and len(meta.isr) == replicas else None


def _replica_bytes(brokers, broker: int) -> bytes:
    log = PartitionLog(DataDir(str(brokers.data_dir)).partition_dir(broker, "t", 0))
    return log.read(0, 1 << 30)


def test_returning_leader_truncates_what_it_alone_had(brokers):
    """The old leader wrote a record no follower has, then died; an unclean election (allowed for this
    topic) gives the partition to a follower.  When the old leader returns, it asks the new leader where
    its epoch ends and cuts the record before following (KIP-101), so all replicas agree again."""
    running = _start(brokers)
    brokers.runner.in_process("topic", "create", "t", "-r", "3", "-c", "unclean.leader.election.enable=true")
    brokers.runner.produce_lines("t", "a\nb\nc\n")
    meta = wait_for("a full ISR", lambda: _in_sync(brokers))
    old = meta.leader
    followers = [b for b in meta.replicas if b != old]
    for b in followers:
        running[b].stop(signal.SIGKILL)
    wait_for("the followers dropped from the ISR", lambda: _meta(brokers).isr == [old])
    brokers.kcli("produce", "t", input="only on the old leader\n")
    running[old].stop(signal.SIGKILL)
    for b in followers:
        running[b] = brokers.start(b)
    new = wait_for("an unclean election", lambda: (m := _meta(brokers)).leader in followers and m)
    assert new.leader_epoch == meta.leader_epoch + 1
    # the controller logs its decision just after recording it
    wait_for("the unclean election logged", lambda: "UNCLEAN election" in "".join(running[b].log() for b in followers))
    brokers.kcli("produce", "t", input="d\ne\n")
    running[old] = brokers.start(old)
    wait_for("every replica back in the ISR", lambda: _in_sync(brokers))
    assert "truncated from 4 to 3" in running[old].log()
    assert brokers.kcli("consume", "t", "-b", "-e").stdout.split() == ["a", "b", "c", "d", "e"]
    brokers.stop_all()
    copies = {b: _replica_bytes(brokers, b) for b in range(3)}
    assert copies[0] == copies[1] == copies[2]


def test_preferred_election_while_brokers_run(brokers):
    running = _start(brokers)
    brokers.runner.in_process("topic", "create", "t", "-r", "3")
    brokers.runner.produce_lines("t", "1\n2\n")
    preferred = wait_for("a full ISR", lambda: _in_sync(brokers)).replicas[0]
    assert running[preferred].stop() == 0  # hands leadership over
    assert _meta(brokers).leader != preferred
    running[preferred] = brokers.start(preferred)
    wait_for("the preferred replica back in the ISR", lambda: _in_sync(brokers))
    out = brokers.kcli("leader-election", "--preferred", "--all").stdout
    assert f"t-0: leader {preferred}" in out
    assert _meta(brokers).leader == preferred
    brokers.runner.produce_lines("t", "3\n")
    assert brokers.kcli("consume", "t", "-b", "-e").stdout.split() == ["1", "2", "3"]


def test_reassign_while_brokers_run(brokers):
    _start(brokers)
    brokers.runner.in_process("topic", "create", "t", "-r", "2")
    brokers.runner.produce_lines("t", "".join(f"m{i}\n" for i in range(500)))
    meta = wait_for("a full ISR", lambda: _in_sync(brokers, 2))
    spare = next(b for b in range(3) if b not in meta.replicas)
    target = [spare, meta.replicas[1]]  # the leader's replica goes away
    res = brokers.kcli("reassign", "-t", "t", "-p", "0", "-r", ",".join(map(str, target)), "--execute")
    assert f"replicas {meta.replicas} -> {target}" in res.stderr
    after = _meta(brokers)
    assert after.replicas == target and sorted(after.isr) == sorted(target) and after.leader in target
    removed = DataDir(str(brokers.data_dir)).partition_dir(meta.replicas[0], "t", 0)
    wait_for("the removed replica deleted by its broker", lambda: not os.path.exists(removed))
    assert brokers.kcli("consume", "t", "-b", "-e").stdout.split() == [f"m{i}" for i in range(500)]
    status = brokers.kcli("topic", "describe", "--under-replicated-partitions").stdout
    assert "\nt\t0\t" not in status


def test_offset_for_leader_epoch_answers_consumers_too(brokers):
    broker = brokers.start(0)
    brokers.runner.produce_lines("t", "a\nb\n")
    with connect(broker.socket_path) as sock:
        body = {
            "replica_id": -1,
            "topics": [
                {"topic": "t", "partitions": [{"partition": 0, "current_leader_epoch": 0, "leader_epoch": 0}]}
            ],
        }
        part = call(sock, ApiKey.OFFSET_FOR_LEADER_EPOCH, 3, body).topics[0].partitions[0]
        assert (part.error_code, part.leader_epoch, part.end_offset) == (ErrorCode.NONE, 0, 2)
        body["topics"][0]["partitions"][0]["current_leader_epoch"] = 5
        part = call(sock, ApiKey.OFFSET_FOR_LEADER_EPOCH, 3, body).topics[0].partitions[0]
        assert part.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
        old = {"topics": [{"topic": "t", "partitions": [{"partition": 0, "leader_epoch": 0}]}]}
        assert call(sock, ApiKey.OFFSET_FOR_LEADER_EPOCH, 0, old).topics[0].partitions[0].end_offset == 2
