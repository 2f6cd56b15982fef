"""Group tools end to end: describe, lag, reset-offsets, delete, list, and consume's group options."""

from __future__ import annotations

import json
import signal

import test_groups
from test_groups import TOPIC, consume_cron, describe, produce, stable_with

# the same fixtures as test_groups (pytest finds fixtures by module attribute)
topic = test_groups.topic
members = test_groups.members


def lag_json(kcli, *args: object) -> dict:
    return json.loads(kcli("lag", *args, "--json").stdout)


def test_describe_and_lag_match_what_was_consumed(kcli, topic):
    produce(kcli, {0: 10, 1: 20, 2: 30})
    got = kcli(
        "consume", TOPIC, "-g", "g", "--reset", "earliest", "-c", 25, "-f", r"%p %o\n"
    ).stdout.splitlines()
    per_partition = {p: sum(1 for line in got if line.split()[0] == str(p)) for p in range(3)}
    assert per_partition == {0: 10, 1: 15, 2: 0}
    view = describe(kcli)
    rows = {r["partition"]: r for r in view["partitions"]}
    assert {p: r["current_offset"] for p, r in rows.items()} == {0: 10, 1: 15, 2: 0}
    assert {p: r["log_end_offset"] for p, r in rows.items()} == {0: 10, 1: 20, 2: 30}
    assert {p: r["lag"] for p, r in rows.items()} == {0: 0, 1: 5, 2: 30}
    assert view["state"] == "Empty" and view["members"] == [] and rows[0]["consumer_id"] is None

    table = kcli("group", "describe", "g").stdout.splitlines()
    assert table[0].split("\t") == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    assert table[2].split("\t") == ["g", TOPIC, "1", "15", "20", "5", "-", "-", "-"]

    lag = lag_json(kcli, "--group", "g")
    assert lag["total_lag"] == 35 and lag["groups"] == {"g": 35}
    assert [r["lag"] for r in lag["partitions"]] == [0, 5, 30]
    assert kcli("lag", "--max-lag", 35).returncode == 0
    over = kcli("lag", "--group", "g", "--max-lag", 34, ok=False)
    assert over.returncode == 1 and "total lag 35 is above --max-lag 34" in over.stderr
    assert over.stdout.splitlines()[0].split("\t")[:6] == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
    ]
    assert lag_json(kcli, "--topic", "other")["total_lag"] == 0
    assert kcli("lag", "--group", "nope", ok=False).returncode == 3
    assert kcli("group", "describe", "nope", ok=False).returncode == 3
    assert kcli("group", "list").stdout.split() == ["g"]


def test_describe_members_and_state_of_a_live_group(kcli, topic, members):
    produce(kcli, {0: 3, 1: 3, 2: 3})
    one = members("one", "g", "--client-id", "alpha", "--commit-interval-ms", 100)
    two = members("two", "g", "--client-id", "beta", "--commit-interval-ms", 100)
    view = stable_with(kcli, 2)
    assert sorted(m["client_id"] for m in view["members"]) == ["alpha", "beta"]
    assert sorted(r["consumer_id"] for r in view["partitions"]) == sorted(
        m["consumer_id"] for m in view["members"] for _ in m["assignment"]
    )
    state = kcli("group", "describe", "g", "--state").stdout.splitlines()
    assert state[1].split("\t")[:5] == ["g", "classic", "embedded", "range", "Stable"]
    assert state[1].split("\t")[6] == "2"
    rows = [line.split("\t") for line in kcli("group", "describe", "g", "--members").stdout.splitlines()[1:]]
    assert sorted(r[5] for r in rows) == ["1", "2"] and {r[3] for r in rows} == {"alpha", "beta"}
    assert {r[4] for r in rows} == {"-"}  # member epochs are a consumer group's
    listed = json.loads(kcli("group", "list", "--json").stdout)
    assert listed == [{"group": "g", "type": "classic", "state": "Stable", "members": 2}]
    mismatch = kcli("consume", TOPIC, "-g", "g", "--assignor", "roundrobin", "-e", ok=False)
    assert mismatch.returncode == 2 and "range" in mismatch.stderr
    for member in (one, two):
        assert member.terminate() == 128 + signal.SIGTERM


def test_reset_offsets_dry_run_execute_and_refusal_while_live(kcli, topic, members):
    produce(kcli, {0: 10, 1: 10, 2: 10})
    assert len(consume_cron(kcli, "g", "--reset", "earliest")) == 30

    def committed() -> dict[int, int]:
        return {r["partition"]: r["current_offset"] for r in describe(kcli.in_process)["partitions"]}

    dry = kcli("group", "reset-offsets", "g", "--topic", TOPIC, "--to-earliest")
    assert dry.stdout.splitlines() == [
        "GROUP\tTOPIC\tPARTITION\tNEW-OFFSET",
        f"g\t{TOPIC}\t0\t0",
        f"g\t{TOPIC}\t1\t0",
        f"g\t{TOPIC}\t2\t0",
    ]
    assert "Dry run" in dry.stderr and committed() == {0: 10, 1: 10, 2: 10}

    plan = json.loads(
        kcli(
            "group", "reset-offsets", "g", "--topic", f"{TOPIC}:1", "--shift-by", -4, "--execute", "--json"
        ).stdout
    )
    assert plan == [{"group": "g", "topic": TOPIC, "partition": 1, "new_offset": 6}]
    assert committed() == {0: 10, 1: 6, 2: 10}
    assert consume_cron(kcli, "g") == [(1, o) for o in range(6, 10)]

    kcli("group", "reset-offsets", "g", "--all-topics", "--to-offset", 99, "--execute")  # clamped to the end
    assert committed() == {0: 10, 1: 10, 2: 10}
    kcli("group", "reset-offsets", "g", "--topic", f"{TOPIC}:0,2", "--by-duration", "P1D", "--execute")
    assert committed() == {0: 0, 1: 10, 2: 0}
    kcli("group", "reset-offsets", "g", "--all-topics", "--to-datetime", "2999-01-01T00:00:00Z", "--execute")
    assert committed() == {0: 10, 1: 10, 2: 10}

    bad = kcli("group", "reset-offsets", "g", "--topic", TOPIC, "--to-earliest", "--to-offset", 1, ok=False)
    assert bad.returncode == 2
    assert (
        kcli("group", "reset-offsets", "g", "--topic", TOPIC, "--by-duration", "1 day", ok=False).returncode
        == 2
    )

    live = members("live", "g")
    stable_with(kcli, 1)
    refused = kcli("group", "reset-offsets", "g", "--topic", TOPIC, "--to-earliest", "--execute", ok=False)
    assert refused.returncode == 1 and "live member" in refused.stderr
    refused = kcli("group", "delete", "g", ok=False)
    assert refused.returncode == 1 and "live member" in refused.stderr
    assert live.terminate() == 128 + signal.SIGTERM
    assert committed() == {0: 10, 1: 10, 2: 10}

    kcli("group", "delete", "g")
    assert kcli("group", "describe", "g", ok=False).returncode == 3
    assert kcli("group", "delete", "g", ok=False).returncode == 3
    assert kcli("group", "list").stdout == ""


def test_group_options_are_checked(kcli, topic):
    assert kcli("consume", TOPIC, "--reset", "earliest", "-e", ok=False).returncode == 2
    assert kcli("consume", TOPIC, "--no-commit", "-e", ok=False).returncode == 2
    assert kcli("consume", TOPIC, "-g", "g", "-p", 0, "-e", ok=False).returncode == 2
    assert kcli("consume", TOPIC, "-g", "g", "-o", "earliest", "-e", ok=False).returncode == 2
    assert kcli("consume", TOPIC, "-g", "g", "-b", "--reset", "latest", "-e", ok=False).returncode == 2
    assert kcli("consume", "missing", "-g", "g", "-e", ok=False).returncode == 3
    produce(kcli, {0: 2})
    # --from-beginning in a group means "reset to earliest", as in kafka-console-consumer
    assert consume_cron(kcli, "g", "-b") == [(0, 0), (0, 1)]
