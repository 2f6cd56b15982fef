"""``kcli consume --group --group-protocol consumer``: kcli's own KIP-848 member against a kcli broker --
cron runs that resume from their commits, two members that split the partitions (reconciling through
heartbeats) and a hand-over when one stops, and the usage errors of the option."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from support.runner import KCLI
from support.waits import stop_process, wait_for

TOPIC = "orders"
PARTITIONS = 4
WAIT = 90.0
FLAGS = ("--group-consumer-heartbeat-interval-ms", "300", "--group-consumer-session-timeout-ms", "10000")


@pytest.fixture
def cluster(brokers):
    brokers.init(1)
    broker = brokers.start(0, *FLAGS)
    brokers.runner.in_process("topic", "create", TOPIC, "--partitions", PARTITIONS)
    return broker


def produce(brokers, start: int, count: int) -> None:
    brokers.runner.produce_lines(TOPIC, "".join(f"key-{i}:value-{i}\n" for i in range(start, start + count)), "-K", ":")


def consume(brokers, bootstrap: str, *extra: object, ok: bool = True) -> subprocess.CompletedProcess:
    return brokers.kcli(
        "--bootstrap-server", bootstrap, "consume", TOPIC, "--group", "g", "--group-protocol", "consumer", *extra,
        ok=ok, timeout=180,
    )


def test_cron_runs_resume_from_their_commits(brokers, cluster):
    produce(brokers, 0, 40)
    first = consume(brokers, cluster.bootstrap, "--reset", "earliest", "-e")
    assert sorted(first.stdout.split()) == sorted(f"value-{i}" for i in range(40))
    produce(brokers, 40, 10)
    second = consume(brokers, cluster.bootstrap, "-e")
    assert sorted(second.stdout.split()) == sorted(f"value-{i}" for i in range(40, 50))
    view = json.loads(brokers.kcli("group", "describe", "g", "--json").stdout)[0]
    assert view["type"] == "consumer" and view["members"] == []
    assert sum(r["current_offset"] for r in view["partitions"]) == 50


def test_two_members_split_and_hand_over(brokers, cluster, tmp_path):
    produce(brokers, 0, 40)
    outs, procs = [], []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.out"
        outs.append(out)
        with open(out, "wb") as fh:
            procs.append(
                subprocess.Popen(
                    [*KCLI, "--data-dir", str(brokers.data_dir), "--bootstrap-server", cluster.bootstrap, "consume",
                     TOPIC, "--group", "g", "--group-protocol", "consumer", "--reset", "earliest",
                     "--commit-interval-ms", "200", "--client-id", name],
                    stdout=fh, stderr=subprocess.PIPE, env=brokers.env,
                )
            )
    try:

        def members() -> list[dict]:
            described = brokers.kcli("group", "describe", "g", "--json", ok=False)
            if described.returncode == 3:  # no member joined yet
                return []
            assert described.returncode == 0, described.stderr
            return json.loads(described.stdout)[0]["members"]

        wait_for(
            "two members with two partitions each",
            lambda: sorted(len(m["assignment"]) for m in members()) == [2, 2],
            WAIT,
        )
        assert {m["client_id"] for m in members()} == {"a", "b"}
        assert stop_process(procs[1]) == 128 + signal.SIGTERM
        wait_for("a takes all four", lambda: [len(m["assignment"]) for m in members()] == [4], WAIT)
        produce(brokers, 40, 20)
        want = {f"value-{i}" for i in range(60)}
        wait_for("every record read", lambda: set(outs[0].read_text().split()) | set(outs[1].read_text().split()) >= want, WAIT)
    finally:
        for p in procs:
            stop_process(p)


def test_usage_errors(brokers, cluster):
    local = brokers.kcli("consume", TOPIC, "--group", "g", "--group-protocol", "consumer", "-e", ok=False)
    assert local.returncode == 2 and "--bootstrap-server" in local.stderr
    assigned = consume(brokers, cluster.bootstrap, "--assignor", "range", "-e", ok=False)
    assert assigned.returncode == 2 and "the coordinator assigns" in assigned.stderr
    no_group = brokers.kcli("consume", TOPIC, "--group-protocol", "consumer", "-e", ok=False)
    assert no_group.returncode == 2 and "needs --group" in no_group.stderr


def test_a_cron_run_with_nothing_assigned_exits(brokers, cluster, tmp_path):
    """More members than partitions: the member left without any ends its -e run (exit 0, nothing read)
    once its assignment stays empty, instead of waiting forever."""
    brokers.runner.in_process("topic", "create", "single", "--partitions", 1)
    brokers.runner.produce_lines("single", "one\ntwo\n")
    with open(tmp_path / "holder.out", "wb") as fh:
        holder = subprocess.Popen(
            [*KCLI, "--data-dir", str(brokers.data_dir), "--bootstrap-server", cluster.bootstrap, "consume", "single",
             "--group", "g", "--group-protocol", "consumer", "--reset", "earliest"],
            stdout=fh, stderr=subprocess.DEVNULL, env=brokers.env,
        )
    try:
        wait_for("the holder read both", lambda: (tmp_path / "holder.out").read_text().split() == ["one", "two"], WAIT)
        idle = brokers.kcli("--bootstrap-server", cluster.bootstrap, "consume", "single", "--group", "g",
                            "--group-protocol", "consumer", "-e", timeout=120)
        assert idle.stdout == ""
    finally:
        stop_process(holder)
