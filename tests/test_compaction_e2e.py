"""Log compaction end to end, through running brokers: three brokers (rf=3, two partitions) compact their
own replicas of a topic holding 10,000 keys x 10 versions and 1,000 tombstones; ``kcli consume``,
confluent-kafka and kafka-python then read exactly the newest record of every key with its original offset,
headers and timestamp -- the tombstones too until delete.retention.ms has passed, then none -- a consumer
group commits the log end across the gaps, and ``kcli verify`` finds the independently cleaned replicas in
agreement.  The brokers clean while the records come in (min.compaction.lag.ms=0, any dirty ratio), and
segment.ms rolls make the last records cleanable."""

from __future__ import annotations

import json
import os
import time
import warnings

import pytest
from support.segments import read_segment
from support.waits import wait_for

from kcli.storage import checkpoint, records

TOPIC = "changelog"
KEYS, VERSIONS, PARTITIONS, BROKERS = 10_000, 10, 2, 3
SEGMENT_MS = 1000
RETENTION_MS = 10_000  # delete.retention.ms: long enough for the reads that must still see the tombstones
CONFIGS = {
    "cleanup.policy": "compact",
    "segment.bytes": 65536,  # ~40 segments a partition before cleaning
    "segment.ms": SEGMENT_MS,
    "min.cleanable.dirty.ratio": 0.0,  # any closed dirty segment is due: the roll records make passes happen
    "delete.retention.ms": RETENTION_MS,
    "min.compaction.lag.ms": 0,  # the brokers clean while the records come in and are replicated
}
CLEANER = ("--override", "log.cleaner.backoff.ms=100")
TS0 = 1_700_000_000_000  # the explicit timestamps are below any create time


def _deleted(k: int) -> bool:
    return k % 20 in (4, 7)  # 1,000 keys, 500 in each partition


def _key(k: int) -> str:
    return f"k{k:05d}"


def _record(k: int, v: int | None) -> dict:
    """Version ``v`` of key ``k`` (None: its tombstone), as ``produce --json`` takes it: partition k % 2,
    a header on every 5th key and on tombstones, an explicit timestamp on every 3rd key."""
    rec: dict = {"key": _key(k), "value": None if v is None else f"{_key(k)}.v{v}", "partition": k % PARTITIONS}
    if v is None:
        rec["headers"] = [["deleted", "yes"]]
    elif k % 5 == 0:
        rec["headers"] = [["version", str(v)], ["key", _key(k)]]
    if k % 3 == 0:
        rec["timestamp"] = TS0 + k * 100 + (VERSIONS if v is None else v)
    return rec


def _produced() -> list[dict]:
    out = [_record(k, v) for v in range(VERSIONS) for k in range(KEYS)]
    return out + [_record(k, None) for k in range(KEYS) if _deleted(k)]


# (partition, offset) -> (key, value, headers, explicit timestamp or None)
Expected = dict[tuple[int, int], tuple[str, str | None, list[tuple[str, str]], int | None]]


def _newest(produced: list[dict]) -> Expected:
    """The newest record of every key, at the offset it was written to (one producer, in order: each
    partition's records take consecutive offsets in input order)."""
    next_offset = [0] * PARTITIONS
    newest: dict[tuple[int, str], tuple[int, int, dict]] = {}
    for rec in produced:
        p = rec["partition"]
        newest[(p, rec["key"])] = (p, next_offset[p], rec)
        next_offset[p] += 1
    return {(p, o): (r["key"], r["value"], [tuple(h) for h in r.get("headers", [])], r.get("timestamp"))
            for p, o, r in newest.values()}


Read = dict[tuple[int, int], tuple[str, str | None, list[tuple[str, str]], int]]


def _now() -> int:
    return int(time.time() * 1000)


def _check(got: Read, expected: Expected, window: tuple[int, int], who: str) -> None:
    """``got`` holds exactly the ``expected`` records: keys, values, headers, and their timestamps (the
    explicit one, or a create time within ``window``)."""
    assert sorted(got) == sorted(expected), f"{who}: other offsets than the newest of each key"
    for at, (key, value, headers, ts) in got.items():
        want_key, want_value, want_headers, want_ts = expected[at]
        assert (key, value, headers) == (want_key, want_value, want_headers), f"{who}: record at {at}"
        if want_ts is not None:
            assert ts == want_ts, f"{who}: timestamp at {at}"
        else:
            assert window[0] <= ts <= window[1], f"{who}: create time at {at} outside the produce window"


def _kcli_read(brokers, bootstrap: str) -> Read:
    out = brokers.kcli("--bootstrap-server", bootstrap, "consume", TOPIC, "-b", "-e", "--json").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    return {(r["partition"], r["offset"]): (r["key"], r["value"], [tuple(h) for h in r["headers"]], r["timestamp"])
            for r in rows}


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _confluent_read(bootstrap: str) -> Read:
    from support.confluent import read_to_end

    got, _watermarks = read_to_end(bootstrap, TOPIC, PARTITIONS)
    return {(m.partition(), m.offset()): (_text(m.key()), _text(m.value()),
                                          [(k, _text(v)) for k, v in (m.headers() or [])], m.timestamp()[1])
            for m in got}


def _kafka_python_read(bootstrap: str, ends: dict[int, int]) -> Read:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got: Read = {}
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < ends[tp.partition] for tp in tps) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
            for m in batch:
                got[(m.partition, m.offset)] = (_text(m.key), _text(m.value),
                                                [(k, _text(v)) for k, v in m.headers], m.timestamp)
    consumer.close()
    return got


def _cleaned_to(brokers, offsets: dict[int, int]) -> bool:
    """Whether every broker's cleaner checkpoint has every partition at ``offsets`` (a pass got there)."""
    for b in range(BROKERS):
        path = os.path.join(brokers.data_dir, f"broker-{b}", checkpoint.CLEANER_OFFSET)
        try:
            done = checkpoint.read_offsets(path)
        except FileNotFoundError:
            return False
        if any(done.get((TOPIC, p), 0) < offsets[p] for p in range(PARTITIONS)):
            return False
    return True


def _delete_horizon(brokers) -> int:
    """The latest delete horizon stamped on any replica's batches (-1: none)."""
    latest = -1
    for b in range(BROKERS):
        for p in range(PARTITIONS):
            folder = os.path.join(brokers.data_dir, f"broker-{b}", f"{TOPIC}-{p}")
            for name in sorted(os.listdir(folder)):
                if name.endswith(".log"):
                    for _pos, h in read_segment(os.path.join(folder, name))[1]:
                        if h.attributes & records.ATTR_DELETE_HORIZON:
                            latest = max(latest, h.base_timestamp)
    return latest


def _roll(brokers, value: str) -> dict[int, int]:
    """One record of key ``roll`` to each partition, after segment.ms: it starts a new active segment, so
    everything before it may be cleaned (the cleaner never touches the active one).  Returns each
    partition's roll offset."""
    time.sleep(SEGMENT_MS / 1000 + 0.1)  # segment.ms counts record timestamps: nothing to poll
    lines = "".join(json.dumps({"key": "roll", "value": value, "partition": p}) + "\n" for p in range(PARTITIONS))
    out = brokers.kcli("produce", TOPIC, "--json", "--print-offsets", input=lines).stdout
    return {int(p): int(o) for _t, p, o in (line.split() for line in out.splitlines())}


def _read_all(brokers, started, expected: Expected, window: tuple[int, int], ends: dict[int, int]) -> None:
    _check(_kcli_read(brokers, started[0].bootstrap), expected, window, "kcli consume")
    _check(_confluent_read(started[1].bootstrap), expected, window, "confluent-kafka")
    _check(_kafka_python_read(started[2].bootstrap, ends), expected, window, "kafka-python")


@pytest.mark.interop
@pytest.mark.slow
def test_brokers_compact_and_every_client_reads_the_newest_record_of_each_key(brokers):
    pytest.importorskip("confluent_kafka")
    pytest.importorskip("kafka")
    brokers.init(BROKERS)
    started = [brokers.start(b, *CLEANER) for b in range(BROKERS)]
    brokers.kcli("topic", "create", TOPIC, "-p", PARTITIONS, "-r", BROKERS,
                 *[a for name, value in CONFIGS.items() for a in ("-c", f"{name}={value}")])
    produced = _produced()
    t0 = _now()
    brokers.kcli("produce", TOPIC, "--json", input="".join(json.dumps(r) + "\n" for r in produced), timeout=600)
    first_roll = _roll(brokers, "r1")
    produced += [{"key": "roll", "value": "r1", "partition": p} for p in range(PARTITIONS)]
    ends = {p: o + 1 for p, o in first_roll.items()}
    # each broker's checkpoint moves only by its own passes: it cleaned its replicas, led or followed
    wait_for("every replica cleaned up to the roll", lambda: _cleaned_to(brokers, first_roll), timeout=300,
             interval=0.5)

    newest = _newest(produced)
    tombstones = {at for at, r in newest.items() if r[1] is None}
    assert len(newest) == KEYS + PARTITIONS and len(tombstones) == 1000
    _read_all(brokers, started, newest, (t0, _now()), ends)
    horizon = _delete_horizon(brokers)
    assert horizon > 0, "no delete horizon was stamped on the tombstones"

    # a group reads to the end across the gaps and commits the log end
    remote = ("--bootstrap-server", started[1].bootstrap)
    read = brokers.kcli(*remote, "consume", TOPIC, "-g", "reader", "--reset", "earliest", "-e", "-f", "%p %o\n")
    assert sorted(tuple(map(int, line.split())) for line in read.stdout.splitlines()) == sorted(newest)
    (desc,) = json.loads(brokers.kcli(*remote, "group", "describe", "reader", "--json").stdout)
    assert {r["partition"]: (r["current_offset"], r["log_end_offset"]) for r in desc["partitions"]} == \
        {p: (end, end) for p, end in ends.items()}, desc

    # after delete.retention.ms, the next pass removes the tombstones
    wait_for("the delete horizon to pass", lambda: _now() > horizon, timeout=RETENTION_MS / 1000 + 30, interval=0.2)
    second_roll = _roll(brokers, "r2")
    wait_for("every replica cleaned up to the second roll", lambda: _cleaned_to(brokers, second_roll),
             timeout=300, interval=0.5)
    gone = {at: r for at, r in newest.items() if at not in tombstones}
    gone.update({(p, o): ("roll", "r2", [], None) for p, o in second_roll.items()})
    _read_all(brokers, started, gone, (t0, _now()), {p: o + 1 for p, o in second_roll.items()})

    for b in started:
        b.stop()
    proc = brokers.kcli("verify", "--deep", ok=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
