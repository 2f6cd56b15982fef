"""Log compaction from the shell and in brokers: ``kcli topic compact`` on the data directory (leader
cleaned, followers brought to its bytes), the brokers' own cleaner (log.cleaner.backoff.ms), and the
refusals (a topic that is not compacted, brokers running)."""

from __future__ import annotations

import json
import os

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
