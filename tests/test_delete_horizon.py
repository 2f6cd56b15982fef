"""Tombstones on an idle compacted topic (KIP-534): a pass stamps them with a delete horizon and a later
pass drops them; with nothing new coming in, no replica is ever due by dirty ratio, so the broker's
cleaner runs that later pass because the replica's latest delete horizon passed -- once, on the leader and
on the follower (each cleans its own), and not again while nothing is left to drop.  ``kcli topic
compact`` always runs a pass: the second one drops them too."""

from __future__ import annotations

import json
import os
import time

from support.segments import all_records, read_segment, segment_files
from support.waits import wait_for

from kcli.storage import records
from kcli.storage.cleaner import clean
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog

NOW = 1_700_000_000_000
RETENTION_MS = 3000  # delete.retention.ms
SEGMENT_MS = 1000


# ---------------------------------------------------------------- the pass reports its latest horizon


def _log(tmp_path) -> PartitionLog:
    config = LogConfig(segment_bytes=1 << 20, compact=True, delete=False, delete_retention_ms=RETENTION_MS)
    log = PartitionLog(str(tmp_path / "broker-0" / "t-0"), config)
    log.open_for_append(None)
    return log


def _horizons(log: PartitionLog) -> list[int]:
    return [h.base_timestamp for base in log.segment_bases for _p, h in log.segment(base).headers()
            if h.attributes & records.ATTR_DELETE_HORIZON]


def test_a_pass_reports_the_latest_delete_horizon_still_ahead(tmp_path) -> None:
    log = _log(tmp_path)
    log.append(records.encode_batch([(b"a", b"1", (), NOW), (b"b", b"1", (), NOW)]))
    # one batch: a's tombstone with b's newest value, then c's tombstone alone a moment later
    log.append(records.encode_batch([(b"a", None, (), NOW), (b"b", b"2", (), NOW)]))
    log.roll()
    log.append(records.encode_batch([(b"c", b"1", (), NOW)]))
    log.roll()
    log.append(records.encode_batch([(b"c", None, (), NOW)]))
    log.roll()
    log.append(records.encode_batch([(b"z", b"active", (), NOW)]))
    config = log.config

    first = clean(log, config, upper=log.log_end_offset, now_ms=NOW)
    assert sorted(set(_horizons(log))) == [NOW + RETENTION_MS] and first.latest_delete_horizon == NOW + RETENTION_MS
    # a pass before the horizon keeps it, and says so again
    assert clean(log, config, upper=log.log_end_offset, now_ms=NOW + RETENTION_MS - 1).latest_delete_horizon \
        == NOW + RETENTION_MS
    # the pass at the horizon drops both tombstones; b's record keeps its batch's horizon, which has passed
    # and which nothing can be dropped for: not reported (a broker would pick the log again and again)
    done = clean(log, config, upper=log.log_end_offset, now_ms=NOW + RETENTION_MS)
    assert done.latest_delete_horizon == -1
    assert [(r.key, r.value) for r in all_records(log.directory)] == [(b"b", b"2"), (b"z", b"active")]
    assert _horizons(log) == [NOW + RETENTION_MS]
    log.release()


def test_the_horizon_is_counted_on_rewritten_and_untouched_groups_alike(tmp_path) -> None:
    """A batch left as it was (its group byte for byte the same) counts as much as one rewritten."""
    log = _log(tmp_path)
    log.append(records.encode_batch([(b"a", None, (), NOW)]))
    log.roll()
    log.append(records.encode_batch([(b"z", b"active", (), NOW)]))
    assert clean(log, log.config, upper=log.log_end_offset, now_ms=NOW).latest_delete_horizon == NOW + RETENTION_MS
    stamped = open(segment_files(log.directory)[0], "rb").read()
    later = clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 1)
    assert open(segment_files(log.directory)[0], "rb").read() == stamped  # left in place
    assert later.latest_delete_horizon == NOW + RETENTION_MS
    log.release()


def test_a_marker_whose_transaction_emptied_reports_its_horizon(tmp_path) -> None:
    from kcli.storage import control

    log = _log(tmp_path)
    log.append(records.encode_batch([(b"x", b"aborted", (), NOW)], producer_id=9, producer_epoch=0, base_sequence=0,
                                    transactional=True))
    log.append(control.control_batch(9, 0, commit=False, timestamp=NOW))
    log.append(records.encode_batch([(b"x", b"later", (), NOW)], producer_id=9, producer_epoch=0, base_sequence=1))
    log.roll()
    log.append(records.encode_batch([(b"z", b"active", (), NOW)]))
    assert clean(log, log.config, upper=log.log_end_offset, now_ms=NOW).latest_delete_horizon == -1  # data went
    assert clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 1).latest_delete_horizon \
        == NOW + 1 + RETENTION_MS  # the marker's transaction is empty: stamped
    assert clean(log, log.config, upper=log.log_end_offset, now_ms=NOW + 1 + RETENTION_MS).latest_delete_horizon == -1
    assert _horizons(log) == []
    log.release()


# ---------------------------------------------------------------- kcli topic compact

LINES = "".join(f"k{k}:v{k}\n" for k in range(10)) + "".join(f"k{k}:DEL\n" for k in range(5))
LIVE = {f"k{k}": f"v{k}" for k in range(5, 10)}
CONFIGS = ("-c", "cleanup.policy=compact", "-c", f"delete.retention.ms={RETENTION_MS}",
           "-c", f"segment.ms={SEGMENT_MS}", "-c", "min.cleanable.dirty.ratio=0.01", "-c", "min.compaction.lag.ms=0")


def _read(run, topic: str) -> dict[str, str | None]:
    out = run("consume", topic, "-b", "-e", "--json").stdout
    return {r["key"]: r["value"] for r in map(json.loads, out.splitlines())}


def _roll(run, topic: str) -> None:
    """A record after segment.ms (counted on record timestamps: nothing to poll): it starts a new active
    segment, so everything before it may be cleaned."""
    time.sleep(SEGMENT_MS / 1000 + 0.1)
    run("produce", topic, "-K:", input="roll:r\n")


def _tombstones(folder) -> int:
    return sum(r.value is None for r in all_records(folder))


def _stamped(folder) -> bool:
    return any(h.attributes & records.ATTR_DELETE_HORIZON
               for path in segment_files(folder) for _p, h in read_segment(path)[1])


def test_embedded_compact_drops_expired_tombstones_with_nothing_new(kcli) -> None:
    kcli("topic", "create", "t", *CONFIGS)
    kcli("produce", "t", "-K:", "--null-value", "DEL", input=LINES)
    _roll(kcli, "t")
    kcli("topic", "compact", "t")
    folder = kcli.data_dir / "broker-0" / "t-0"
    assert _tombstones(folder) == 5 and _stamped(folder)
    status = json.loads((kcli.data_dir / "broker-0" / "cleaner-status.json").read_text())
    horizon = status["partitions"]["t-0"]["last"]["latest_delete_horizon"]
    assert horizon > 0
    wait_for("the delete horizon to pass", lambda: time.time() * 1000 > horizon, timeout=RETENTION_MS / 1000 + 10)
    out = json.loads(kcli("topic", "compact", "t", "--json").stdout)
    assert out[0]["records_removed"] == 5
    assert _tombstones(folder) == 0
    assert _read(kcli, "t") == {**LIVE, "roll": "r"}
    status = json.loads((kcli.data_dir / "broker-0" / "cleaner-status.json").read_text())
    assert status["partitions"]["t-0"]["last"]["latest_delete_horizon"] == -1
    kcli("verify")


# ---------------------------------------------------------------- through brokers

CLEANER = ("--override", "log.cleaner.backoff.ms=200")


def _passes(broker, role: str) -> list[str]:
    return [line for line in broker.log().splitlines() if f"log cleaner: t-0 ({role})" in line]


def test_brokers_drop_expired_tombstones_of_an_idle_topic_once(brokers) -> None:
    brokers.init(2)
    started = [brokers.start(b, *CLEANER) for b in (0, 1)]
    brokers.kcli("topic", "create", "t", "-r", 2, *CONFIGS)
    brokers.kcli("produce", "t", "-K:", "--null-value", "DEL", input=LINES)
    _roll(brokers.kcli, "t")
    folders = [b.folder / "t-0" for b in started]
    # the first passes (due by dirty ratio) stamp the tombstones; then nothing more is produced
    wait_for("both replicas' tombstones stamped", lambda: all(_stamped(f) for f in folders), timeout=60,
             interval=0.1)
    assert all(_tombstones(f) == 5 for f in folders)
    # the horizon passes: each broker's cleaner drops the tombstones of its own replica
    wait_for("the tombstones gone from both replicas", lambda: not any(map(_tombstones, folders)),
             timeout=RETENTION_MS / 1000 + 30, interval=0.2)
    assert _read(brokers.kcli, "t") == {**LIVE, "roll": "r"}
    leader_id = json.loads(brokers.kcli("topic", "describe", "t", "--json").stdout)[0]["partitions"][0]["leader"]
    leader, follower = sorted(started, key=lambda b: b.broker_id != leader_id)
    # one pass each for the passed horizon, and none after: nothing is left to drop
    counts = [len(_passes(leader, "leader")), len(_passes(follower, "follower"))]
    time.sleep(3.0)  # 15 backoffs
    assert [len(_passes(leader, "leader")), len(_passes(follower, "follower"))] == counts
    for b, role in ((leader, "leader"), (follower, "follower")):
        expired = [line for line in _passes(b, role) if "delete horizon passed" in line]
        assert len(expired) == 1 and "removed 5 records" in expired[0], b.log()
    for b in started:
        b.stop()
    brokers.kcli("verify")


def test_a_restarted_broker_still_drops_tombstones_stamped_before(brokers) -> None:
    """The latest horizon lives in memory, and in cleaner-status.json for a broker restarted before it
    passed (a pass over every replica at start-up would cost more; scanning clean parts too)."""
    brokers.init(1)
    broker = brokers.start(0, *CLEANER)
    brokers.kcli("topic", "create", "t", *CONFIGS)
    brokers.kcli("produce", "t", "-K:", "--null-value", "DEL", input=LINES)
    _roll(brokers.kcli, "t")
    folder = broker.folder / "t-0"
    wait_for("the tombstones stamped", lambda: _stamped(folder), timeout=60, interval=0.1)
    broker.stop()
    broker = brokers.start(0, *CLEANER)
    wait_for("the tombstones gone", lambda: not _tombstones(folder), timeout=RETENTION_MS / 1000 + 30, interval=0.2)
    assert _read(brokers.kcli, "t") == {**LIVE, "roll": "r"}
    assert len([line for line in broker.log().splitlines() if "delete horizon passed" in line]) == 1
    broker.stop()


# ---------------------------------------------------------------- topic describe


def test_describe_reads_each_compacted_leader_log_once(kcli, monkeypatch) -> None:
    """``kcli topic describe`` shows offsets and the cleaner's view of each leader replica: one opening
    of its log gives both."""
    from kcli.cluster.datadir import DataDir
    from kcli.cluster.topics import TopicAdmin
    from kcli.storage import log as storage_log

    kcli("topic", "create", "t", "-p", 3, *CONFIGS)
    kcli("produce", "t", "-K:", "--null-value", "DEL", "-p", 1, input=LINES)
    opened = []
    real_init = storage_log.PartitionLog.__init__

    def counting_init(self, directory, *args, **kw):  # type: ignore[no-untyped-def]
        opened.append(os.path.basename(directory))
        real_init(self, directory, *args, **kw)

    monkeypatch.setattr(storage_log.PartitionLog, "__init__", counting_init)
    offsets, cleanables = TopicAdmin(DataDir(str(kcli.data_dir))).leader_offsets("t", int(time.time() * 1000))
    assert sorted(opened) == ["t-0", "t-1", "t-2"]
    assert offsets == [(0, 0, 0), (0, 15, 15), (0, 0, 0)]
    assert [c is not None and c.first_dirty == 0 for c in cleanables] == [True, True, True]
    described = json.loads(kcli("topic", "describe", "t", "--json").stdout)[0]["partitions"]
    assert [(p["log_end_offset"], p["dirty_ratio"]) for p in described] == [(0, 0.0), (15, 0.0), (0, 0.0)]
