"""Log compaction from the shell and in brokers: ``kcli topic compact`` on the data directory (leader
cleaned, followers brought to its bytes), the brokers' own cleaner (log.cleaner.backoff.ms), and the
refusals (a topic that is not compacted, brokers running)."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
from support.runner import one_error_line

KEYS, VERSIONS, TOMBSTONES = 1000, 5, 100
SEGMENT = "segment.bytes=16384"


def _lines() -> str:
    """KEYS keys x VERSIONS versions, then TOMBSTONES of the first keys."""
    out = [f"k{k}:v{k}.{v}\n" for v in range(VERSIONS) for k in range(KEYS)]
    return "".join(out) + "".join(f"k{k}:DEL\n" for k in range(TOMBSTONES))


def _records() -> list[tuple[str, str | None]]:
    return [(k, None if v == "DEL" else v) for k, v in (line.split(":") for line in _lines().splitlines())]


def _expected(active: int) -> dict[int, tuple[str, str | None]]:
    """offset -> (key, value) a pass leaves: below the active segment (never cleaned) the newest record
    of each key there (tombstones stay: delete.retention.ms), from it on every record."""
    latest: dict[str, int] = {}
    for offset, (key, _value) in enumerate(_records()[:active]):
        latest[key] = offset
    keep = set(latest.values()) | set(range(active, KEYS * VERSIONS + TOMBSTONES))
    return {o: r for o, r in enumerate(_records()) if o in keep}


def _bases(folder, topic: str, partition: int) -> list[int]:
    return sorted(int(n[:20]) for n in os.listdir(folder / f"{topic}-{partition}") if n.endswith(".log"))


def _read(run, topic: str, *args: object) -> dict[int, tuple[str, str | None]]:
    out = run("consume", topic, "-b", "-e", "--json", *args).stdout
    return {r["offset"]: (r["key"], r["value"]) for r in map(json.loads, out.splitlines())}


@pytest.mark.parametrize("rf", [1, 2])
def test_embedded_compact_keeps_the_newest_value_of_each_key(kcli, rf):
    if rf > 1:
        kcli("cluster", "init", "-n", rf)
    kcli("topic", "create", "t", "-r", rf, "-c", "cleanup.policy=compact", "-c", SEGMENT)
    kcli("produce", "t", "-K:", "--null-value", "DEL", "--batch-size", 50, input=_lines())
    assert len(_read(kcli, "t")) == KEYS * VERSIONS + TOMBSTONES
    out = json.loads(kcli("topic", "compact", "t", "--json").stdout)
    assert len(out) == 1 and out[0]["bytes_after"] < out[0]["bytes_before"]
    assert out[0]["records_removed"] > 0 and out[0]["followers"] == list(range(1, rf))
    got = _read(kcli, "t")
    assert got == _expected(_bases(kcli.data_dir / "broker-0", "t", 0)[-1])
    assert len(got) < KEYS * VERSIONS // 2
    assert sum(v is None for _k, v in got.values()) >= TOMBSTONES
    kcli("verify")
    text = kcli("topic", "compact", "t").stdout  # a second pass: nothing dirty, nothing to remove
    assert "removed: 0" in text and "t-0" in text
    assert _read(kcli, "t") == got
    kcli("verify")


def test_compact_refuses_a_topic_that_is_not_compacted(kcli):
    kcli("topic", "create", "plain")
    kcli("produce", "plain", "-K:", input="a:1\n")
    one_error_line(kcli("topic", "compact", "plain", ok=False), 2, "not compacted")
    one_error_line(kcli("topic", "compact", "nosuch", ok=False), 3)


# ---------------------------------------------------------------- through brokers

CLEANER = ("--override", "log.cleaner.backoff.ms=200")
CLEANED = 100_000  # bytes: the produced log is about 185 KB, compacted about 45 KB


def _log_bytes(folder, topic: str, partition: int) -> int:
    path = folder / f"{topic}-{partition}"
    return sum(os.path.getsize(path / n) for n in os.listdir(path) if n.endswith(".log"))


def _wait_for(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _leader(run, topic: str) -> int:
    return json.loads(run("topic", "describe", topic, "--json").stdout)[0]["partitions"][0]["leader"]


def _confluent_read(bootstrap: str, topic: str) -> dict[int, tuple[str, str | None]]:
    ck = pytest.importorskip("confluent_kafka")
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "auto.offset.reset": "earliest",
                            "enable.auto.commit": False})
    try:
        consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        _low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=10)
        got: dict[int, tuple[str, str | None]] = {}
        deadline = time.monotonic() + 30
        while (not got or max(got) < high - 1) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                value = msg.value()
                got[msg.offset()] = (msg.key().decode(), None if value is None else value.decode())
        return got
    finally:
        consumer.close()


def test_brokers_compact_the_replicas_they_lead_and_follow(brokers):
    brokers.init(2)
    started = [brokers.start(b, *CLEANER) for b in (0, 1)]
    # nothing is cleanable while producing (min.compaction.lag.ms), so the one state to expect is a pass
    # over the whole log
    brokers.kcli("topic", "create", "t", "-r", 2, "-c", "cleanup.policy=compact", "-c", SEGMENT,
                 "-c", "min.compaction.lag.ms=3600000")
    brokers.kcli("produce", "t", "-K:", "--null-value", "DEL", "--batch-size", 50, input=_lines())
    _wait_for(lambda: all(_log_bytes(b.folder, "t", 0) > 150_000 for b in started), "the follower to catch up")
    brokers.kcli("config", "alter", "--topic", "t", "--set", "min.compaction.lag.ms=0")
    _wait_for(lambda: all(_log_bytes(b.folder, "t", 0) < CLEANED for b in started), "both replicas compacted")
    leader = next(b for b in started if b.broker_id == _leader(brokers.kcli, "t"))
    assert "log cleaner: t-0 (leader)" in leader.log()
    assert "log cleaner: t-0 (follower)" in next(b for b in started if b is not leader).log()
    got = _confluent_read(leader.bootstrap, "t")
    assert got == _expected(_bases(leader.folder, "t", 0)[-1])
    one_error_line(brokers.kcli("topic", "compact", "t", ok=False), 2, "running", "min.cleanable.dirty.ratio",
                   "kcli config alter --topic t")
    for b in started:
        b.stop()
    assert _read(brokers.kcli, "t") == got
    brokers.kcli("verify")


def _all_records() -> dict[int, tuple[str, str | None]]:
    return dict(enumerate(_records()))


def _kill_when(broker, folder, suffix: str | None, delay: float) -> bool:
    """SIGKILL ``broker`` once a file ending in ``suffix`` shows up in ``folder`` (a pass in progress: its
    rewritten group before or after its commit point), or after ``delay`` seconds.  True if it was seen."""
    deadline = time.monotonic() + (10.0 if suffix else delay)
    seen = False
    while time.monotonic() < deadline and not seen:
        seen = bool(suffix) and any(n.endswith(suffix) for n in os.listdir(folder))  # type: ignore[arg-type]
        time.sleep(0 if suffix else 0.01)
    broker.stop(signal.SIGKILL)
    return seen


@pytest.mark.faults
@pytest.mark.slow
def test_broker_killed_while_cleaning_keeps_every_newest_record(brokers):
    """kill -9 while a pass rewrites a group (before its commit point: ``.cleaned``; after it: ``.swap``)
    or at a seeded moment: with the broker dead the replica reads, straight from the files, as a mix of
    whole groups from before and after the pass -- each record read is the one produced at its offset and
    the newest record of every key is there -- and verify is clean; the restarted broker finishes the pass."""
    rng = random.Random(20)
    brokers.init(1)
    broker = brokers.start(0, *CLEANER)
    home = broker.folder
    outcomes: dict[str, int] = {}
    for i, suffix in enumerate([".cleaned", ".swap", None, ".cleaned", ".swap", None]):
        topic = f"t{i}"
        brokers.kcli("topic", "create", topic, "-c", "cleanup.policy=compact", "-c", SEGMENT,
                     "-c", "min.compaction.lag.ms=3600000")
        brokers.kcli("produce", topic, "-K:", "--null-value", "DEL", "--batch-size", 50, input=_lines())
        brokers.kcli("config", "alter", "--topic", topic, "--set", "min.compaction.lag.ms=0")
        seen = _kill_when(broker, home / f"{topic}-0", suffix, rng.uniform(0.0, 0.5))
        got = _read(brokers.kcli, topic)
        after = _expected(_bases(home, topic, 0)[-1])
        produced = _all_records()
        assert all(produced[o] == r for o, r in got.items()), f"{topic}: a record that was not produced there"
        assert {o: got.get(o) for o in after} == after, f"{topic}: the newest record of a key went"
        state = "before" if got == produced else "after" if got == after else "between groups"
        moment = f"at {suffix}" if seen else "at random" if suffix is None else f"{suffix} missed"
        outcomes[f"{moment}: {state}"] = outcomes.get(f"{moment}: {state}", 0) + 1
        brokers.kcli("verify")
        broker = brokers.start(0, *CLEANER)
        _wait_for(lambda t=topic: _log_bytes(home, t, 0) < CLEANED, f"{topic} compacted after the restart")
        assert _confluent_read(broker.bootstrap, topic) == after
    print("kills:", outcomes)
    broker.stop()
    brokers.kcli("verify")


def test_compact_after_a_kill_that_left_the_swap_installed_but_not_removed(kcli):
    """A kill -9 right after a cleaned segment was renamed over its namesake, before its ``.swap`` went,
    leaves two links of one file: recovery installs it again (a rename between two links of one file does
    nothing, so the temporary link stayed and the next pass could not install its own group)."""
    kcli("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", SEGMENT)
    kcli("produce", "t", "-K:", "--null-value", "DEL", "--batch-size", 50, input=_lines())
    kcli("topic", "compact", "t")
    folder = kcli.data_dir / "broker-0" / "t-0"
    kcli("produce", "t", "-K:", "--batch-size", 50, input=_lines())  # more to clean
    os.link(folder / f"{0:020d}.log", folder / f"{0:020d}.log.swap")  # the state the kill left
    kcli("topic", "compact", "t")  # recovery, then a pass that rewrites the first segment again
    assert not [n for n in os.listdir(folder) if n.endswith((".swap", ".swapping", ".cleaned"))]
    got = _read(kcli, "t")
    assert len({k for k, _v in got.values()}) == KEYS and len(got) < KEYS * VERSIONS // 2
    kcli("verify")
