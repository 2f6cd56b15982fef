"""``kcli lag --watch``: the trend and scaling-advice rules on constructed samples, and the command's
refresh blocks while a producer keeps adding messages."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest
from support.waits import wait_for

from kcli.cluster.advice import scale_out_advice, suggested_partitions
from kcli.groups.trend import Snapshot, group_trends, judge_lag, partition_trends


def snapshots(
    series: dict[int, list[tuple[int | None, int | None]]],
    members: int = 2,
    partitions: int = 2,
    step: float = 1.0,
) -> list[Snapshot]:
    """Samples one ``step`` apart of group g on topic t: series[p][i] is partition p's (committed, end)."""
    length = len(next(iter(series.values())))
    return [
        Snapshot(
            i * step,
            {("g", "t", p): s[i] for p, s in series.items()},
            {("g", "t"): members},
            {"t": partitions},
        )
        for i in range(length)
    ]


def trends(history):
    parts = partition_trends(history)
    return parts, group_trends(history, parts)


# ---------------------------------------------------------------- the rules


def test_rates_are_offset_deltas_over_time():
    history = snapshots({0: [(10, 100), (40, 160)], 1: [(0, 0), (0, 20)]}, step=2.0)
    parts, (group,) = trends(history)
    assert [(p.in_rate, p.out_rate, p.lag) for p in parts] == [(30.0, 15.0, 120), (10.0, 0.0, 20)]
    assert (group.in_rate, group.out_rate, group.lag, group.span) == (40.0, 15.0, 140, 2.0)


def test_first_sample_has_no_trend_or_rates():
    parts, (group,) = trends(snapshots({0: [(5, 10)]}))
    assert (parts[0].direction, parts[0].in_rate, parts[0].out_rate) == ("-", None, None)
    assert group.direction == "-" and group.in_rate is None and not group.falling_behind


def test_lag_rising_at_every_commit_is_falling_behind():
    # every partition is committed at each sample, and is further behind each time
    history = snapshots(
        {0: [(0, 10), (10, 30), (30, 60), (60, 100)], 1: [(0, 10), (10, 25), (25, 45), (45, 70)]}
    )
    parts, (group,) = trends(history)
    assert all(p.direction == "growing" and p.keeps_growing for p in parts)
    assert group.falling_behind and group.direction == "growing"


def test_saw_tooth_between_commits_is_not_growth():
    # consumers keep up but commit every other sample: lag rises between commits, and returns at each
    history = snapshots({p: [(0, 0), (0, 10), (20, 20), (20, 30), (40, 40), (40, 50)] for p in (0, 1)})
    parts, (group,) = trends(history)
    assert [p.direction for p in parts] == ["steady", "steady"]
    assert not group.falling_behind


def test_uncommitted_lag_grows_but_is_not_a_capacity_problem():
    direction, keeps = judge_lag([(5, 10), (5, 20), (5, 30), (5, 40)])
    assert (direction, keeps) == ("growing", False)


def test_two_rises_are_needed_to_keep_growing():
    assert judge_lag([(0, 0), (10, 15), (20, 30)]) == ("growing", False)
    assert judge_lag([(0, 0), (10, 15), (20, 30), (30, 50)]) == ("growing", True)
    assert judge_lag([(0, 0), (10, 15), (20, 30), (40, 50)]) == ("steady", False)
    assert judge_lag([(0, 0), (10, 15), (20, 30), (45, 50)]) == ("shrinking", False)


def test_group_falls_behind_only_on_most_partitions():
    rising = [(0, 10), (10, 30), (30, 60), (60, 100)]
    flat = [(0, 10), (10, 20), (20, 30), (30, 40)]
    _parts, (one_of_two,) = trends(snapshots({0: rising, 1: flat}))
    assert not one_of_two.falling_behind
    _parts, (two_of_three,) = trends(snapshots({0: rising, 1: rising, 2: flat}, partitions=3))
    assert two_of_three.falling_behind


def test_advice_needs_a_consumer_on_every_partition():
    assert scale_out_advice("g", "t", members=2, partitions=3, falling_behind=True) is None
    assert scale_out_advice("g", "t", members=3, partitions=3, falling_behind=False) is None
    text = scale_out_advice(
        "g", "orders", members=3, partitions=3, falling_behind=True, in_rate=300.0, out_rate=200.0
    )
    assert text == (
        "group g: every partition has a consumer and lag is growing: add partitions "
        "(`kcli topic alter orders --partitions 5`) and consumers; a partition count can only grow"
    )


def test_suggested_partitions_follow_the_rates():
    assert suggested_partitions(3, 300.0, 200.0) == 5  # 3 * 1.5, rounded up
    assert suggested_partitions(4, 401.0, 400.0) == 5  # always at least one more
    assert suggested_partitions(3, 100.0, 0.0) == 6  # nothing consumed: double
    assert suggested_partitions(3, None, None) == 6


def test_advice_from_measured_trends():
    history = snapshots(
        {0: [(0, 10), (10, 30), (30, 60), (60, 100)], 1: [(0, 10), (10, 30), (30, 60), (60, 100)]}
    )
    _parts, (g,) = trends(history)
    advice = scale_out_advice(
        g.group, g.topic, g.members, g.partitions, g.falling_behind, g.in_rate, g.out_rate
    )
    # in: 90 per partition over 3 s, out: 60 -> 2 * 1.5 = 3 partitions
    assert advice is not None and "`kcli topic alter t --partitions 3`" in advice


# ---------------------------------------------------------------- the command


@pytest.fixture
def lagging_group(kcli):
    """Topic ev (2 partitions) whose group g committed everything, then a producer that keeps adding
    messages to partition 0 until the test ends."""
    kcli.in_process("topic", "create", "ev", "-p", 2)
    kcli.produce_lines("ev", "".join(f"m{i}\n" for i in range(20)), "-p", 0)
    kcli("consume", "ev", "--group", "g", "--reset", "earliest", "-e")
    producer = kcli.popen(
        "produce",
        "ev",
        "-p",
        0,
        "--linger-ms",
        1,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            producer.stdin.write(f"new{i}\n".encode())
            producer.stdin.flush()
            i += 1
            time.sleep(0.01)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_for("the producer delivering", lambda: '"total_lag":0' not in kcli("lag", "--json").stdout)
    yield
    stop.set()
    feeder.join()
    producer.stdin.close()
    producer.wait(timeout=20)


def test_watch_prints_a_block_per_refresh(kcli, lagging_group):
    out = kcli("lag", "--watch", "--count", 2, "--interval", 0.3).stdout
    assert out.endswith("\n\n")
    blocks = out[:-2].split("\n\n")
    assert len(blocks) == 2
    for n, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert re.fullmatch(rf"lag at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(refresh {n} of 2\)", lines[0])
        assert lines[1].split("\t") == [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "TREND",
            "IN/S",
            "OUT/S",
        ]
        assert [line.split("\t")[:3] for line in lines[2:4]] == [["g", "ev", "0"], ["g", "ev", "1"]]
        assert lines[4].startswith("group g, topic ev: lag ")
        assert lines[5].startswith("total lag: ")
    first = blocks[0].splitlines()[2].split("\t")
    assert first[6:] == ["-", "-", "-"]  # one sample: no trend yet
    row0, row1 = (line.split("\t") for line in blocks[1].splitlines()[2:4])
    assert row0[0:3] == ["g", "ev", "0"] and row0[3] == "20"
    assert int(row0[4]) > int(first[4])  # the producer added messages between the refreshes
    assert int(row0[5]) == int(row0[4]) - 20
    assert row0[6] == "growing" and float(row0[7]) > 0 and row0[8] == "0.0"
    assert row1[5:] == ["0", "steady", "0.0", "0.0"]
    summary = blocks[1].splitlines()[4]
    assert re.fullmatch(
        r"group g, topic ev: lag \d+ \(growing\), in \d+\.\d/s, out 0\.0/s over \d+\.\d s; "
        r"0 consumer\(s\) for 2 partition\(s\)",
        summary,
    ), summary
    assert blocks[1].splitlines()[5] == f"total lag: {row0[5]}"


def test_watch_json_is_one_line_per_refresh(kcli, lagging_group):
    import json

    lines = kcli("lag", "--watch", "--count", 2, "--interval", 0.3, "--json").stdout.splitlines()
    first, second = map(json.loads, lines)
    assert [p["trend"] for p in second["partitions"]] == ["growing", "steady"]
    assert second["groups"][0]["in_per_s"] > 0 and second["groups"][0]["falling_behind"] is False
    assert second["advice"] == [] and second["total_lag"] > first["total_lag"] > 0


def test_count_needs_watch(kcli):
    r = kcli("lag", "--count", 2, ok=False)
    assert r.returncode == 2 and "--count needs --watch" in r.stderr
