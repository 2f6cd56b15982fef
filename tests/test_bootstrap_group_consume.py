"""``consume --group`` through ``--bootstrap-server``: a member speaking Kafka's classic group protocol
to kcli's broker coordinator -- cron runs that pick up where the last one committed, members that split
the partitions and hand them over on SIGTERM, a kafka-python consumer in the same group, and one line
with exit code 8 when the cluster cannot be reached.

Members run as subprocesses writing to files; every wait has a generous deadline (the suite runs in
parallel on small machines) and nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from support.runner import KCLI
from support.waits import stop_process, wait_for

from kcli.protocol import assignment_bytes, decode_assignment

TOPIC = "orders"
PARTITIONS = 3
WAIT = 90.0


def keyed(start: int, count: int) -> str:
    """Lines ``key-N:value-N``: keys spread the records over every partition."""
    return "".join(f"key-{i}:value-{i}\n" for i in range(start, start + count))


def values(start: int, count: int) -> list[str]:
    return [f"value-{i}" for i in range(start, start + count)]


@pytest.fixture
def cluster(brokers):
    brokers.init(1)
    broker = brokers.start(0)
    brokers.runner.in_process("topic", "create", TOPIC, "--partitions", PARTITIONS)
    return broker


def produce(brokers, text: str) -> None:
    brokers.runner.produce_lines(TOPIC, text, "-K", ":")


def group_consume(brokers, bootstrap: str, group: str, *extra: object) -> subprocess.CompletedProcess:
    return brokers.kcli("--bootstrap-server", bootstrap, "consume", TOPIC, "--group", group, *extra, timeout=180)


def describe(brokers, group: str, bootstrap: str | None = None, missing_ok: bool = False) -> dict | None:
    """The group as ``kcli group describe --json`` shows it; None when ``missing_ok`` and it is unknown
    (yet: members are still joining).  In this process: tests polling for a state are not tests of
    ``group describe`` (tests/test_groups_admin.py and test_bootstrap_groups.py run it)."""
    server = ("--bootstrap-server", bootstrap) if bootstrap else ()
    result = brokers.runner.in_process(*server, "group", "describe", group, "--json", ok=False)
    if missing_ok and result.returncode == 3:
        return None
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def test_cron_runs_read_each_record_once(brokers, cluster) -> None:
    produce(brokers, keyed(0, 60))
    first = group_consume(brokers, cluster.bootstrap, "cron", "-e", "--reset", "earliest")
    assert sorted(first.stdout.splitlines()) == sorted(values(0, 60))
    second = group_consume(brokers, cluster.bootstrap, "cron", "-e", "--reset", "earliest")
    assert second.stdout == ""

    produce(brokers, keyed(60, 25))
    third = group_consume(brokers, cluster.bootstrap, "cron", "-e", "--reset", "earliest")
    assert sorted(third.stdout.splitlines()) == sorted(values(60, 25))

    for view in (describe(brokers, "cron"), describe(brokers, "cron", cluster.bootstrap)):
        assert view["total_lag"] == 0
        assert {(r["partition"], r["current_offset"] is not None) for r in view["partitions"]} == {
            (p, True) for p in range(PARTITIONS)
        }


def test_cron_runs_against_another_kafka_implementation(brokers, tansu) -> None:
    """tansu is not kcli: the member (its own group's leader) assigns, commits and resumes there too."""
    remote = ("--bootstrap-server", tansu.bootstrap)
    brokers.kcli(*remote, "topic", "create", TOPIC, "--partitions", PARTITIONS)
    brokers.kcli(*remote, "produce", TOPIC, "-K", ":", input=keyed(0, 40))
    first = group_consume(brokers, tansu.bootstrap, "cron", "-e", "--reset", "earliest")
    assert sorted(first.stdout.splitlines()) == sorted(values(0, 40))
    brokers.kcli(*remote, "produce", TOPIC, "-K", ":", input=keyed(40, 7))
    second = group_consume(brokers, tansu.bootstrap, "cron", "-e", "--reset", "earliest")
    assert sorted(second.stdout.splitlines()) == sorted(values(40, 7))
    assert describe(brokers, "cron", tansu.bootstrap)["total_lag"] == 0


def test_no_commit_and_latest_reset(brokers, cluster) -> None:
    produce(brokers, keyed(0, 10))
    peek = group_consume(brokers, cluster.bootstrap, "peek", "-e", "--reset", "earliest", "--no-commit")
    assert sorted(peek.stdout.splitlines()) == sorted(values(0, 10))
    again = group_consume(brokers, cluster.bootstrap, "peek", "-e", "--reset", "earliest", "--no-commit")
    assert sorted(again.stdout.splitlines()) == sorted(values(0, 10))
    # latest: a partition with no committed offset starts at the end
    assert group_consume(brokers, cluster.bootstrap, "fresh", "-e").stdout == ""
    produce(brokers, keyed(10, 5))
    assert sorted(group_consume(brokers, cluster.bootstrap, "fresh", "-e").stdout.splitlines()) == values(10, 5)


class Member:
    """A ``kcli consume --group`` process printing ``partition value`` lines to a file."""

    def __init__(self, brokers, bootstrap: str, group: str, path: Path) -> None:
        self.path = path
        args = ["--bootstrap-server", bootstrap, "consume", TOPIC, "--group", group, "--reset", "earliest",
                "--commit-interval-ms", "500", "-f", "%p %s\\n"]
        with open(path, "wb") as out:
            self.proc = subprocess.Popen([*KCLI, *args], env=brokers.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.PIPE)

    def lines(self) -> list[tuple[int, str]]:
        rows = []
        for line in self.path.read_text().splitlines():
            partition, value = line.split(" ", 1)
            rows.append((int(partition), value))
        return rows

    def stop(self) -> int:
        return stop_process(self.proc, 60)


def assigned(brokers, group: str, members: int) -> bool:
    """``members`` members are in the group, stable, with every partition assigned and each member
    owning some (a view that still shows the last generation's owners is not settled yet)."""
    view = describe(brokers, group, missing_ok=True)
    if view is None:
        return False
    owners = {r["partition"]: r["consumer_id"] for r in view["partitions"]}
    return (
        view["state"] == "Stable"
        and len(view["members"]) == members
        and len(owners) == PARTITIONS
        and None not in owners.values()
        and len(set(owners.values())) == members
    )


def test_two_members_split_the_partitions(brokers, cluster, tmp_path: Path) -> None:
    members = [Member(brokers, cluster.bootstrap, "split", tmp_path / f"member-{i}.out") for i in range(2)]
    try:
        wait_for("two members sharing the partitions", lambda: assigned(brokers, "split", 2), WAIT)
        produce(brokers, keyed(0, 90))
        wait_for("all records delivered", lambda: sum(len(m.lines()) for m in members) >= 90, WAIT)
    finally:
        codes = [m.stop() for m in members]
    assert codes == [128 + signal.SIGTERM] * 2, [m.proc.stderr.read() for m in members]
    got = [m.lines() for m in members]
    everything = [value for rows in got for _, value in rows]
    assert sorted(everything) == sorted(values(0, 90))  # none lost, none twice
    partitions = [{p for p, _ in rows} for rows in got]
    assert partitions[0] and partitions[1] and not partitions[0] & partitions[1]
    # SIGTERM committed what was printed: nothing is left for the group
    assert describe(brokers, "split")["total_lag"] == 0
    assert group_consume(brokers, cluster.bootstrap, "split", "-e").stdout == ""


def test_a_member_leaving_hands_its_partitions_over(brokers, cluster, tmp_path: Path) -> None:
    first = Member(brokers, cluster.bootstrap, "handover", tmp_path / "first.out")
    second = Member(brokers, cluster.bootstrap, "handover", tmp_path / "second.out")
    try:
        wait_for("two members", lambda: assigned(brokers, "handover", 2), WAIT)
        produce(brokers, keyed(0, 30))
        wait_for("the first records", lambda: len(first.lines()) + len(second.lines()) >= 30, WAIT)
        assert first.stop() == 128 + signal.SIGTERM
        wait_for("the second member owning every partition", lambda: assigned(brokers, "handover", 1), WAIT)
        produce(brokers, keyed(30, 30))
        wait_for("the records after the handover", lambda: len(first.lines()) + len(second.lines()) >= 60, WAIT)
    finally:
        first.stop()
        assert second.stop() == 128 + signal.SIGTERM
    delivered = [v for _, v in first.lines()] + [v for _, v in second.lines()]
    assert sorted(delivered) == sorted(values(0, 60))
    assert {p for p, v in second.lines() if v in values(30, 30)} == set(range(PARTITIONS))


def test_kafka_python_and_kcli_share_a_group(brokers, cluster, tmp_path: Path) -> None:
    kafka = pytest.importorskip("kafka")
    kcli_member = Member(brokers, cluster.bootstrap, "mixed", tmp_path / "kcli.out")
    got: list[tuple[int, str]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            consumer = kafka.KafkaConsumer(
                TOPIC, bootstrap_servers=cluster.bootstrap, group_id="mixed", auto_offset_reset="earliest",
                session_timeout_ms=10000, heartbeat_interval_ms=1000, enable_auto_commit=True,
                auto_commit_interval_ms=500,
            )
            try:
                while not stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        got.extend((r.partition, r.value.decode()) for r in records)
            finally:
                consumer.close()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        wait_for("kafka-python and kcli in one group", lambda: errors or assigned(brokers, "mixed", 2), WAIT)
        assert not errors, errors
        produce(brokers, keyed(0, 60))
        wait_for("all records delivered", lambda: errors or len(got) + len(kcli_member.lines()) >= 60, WAIT)
        assert not errors, errors
    finally:
        stop.set()
        thread.join(60)
        code = kcli_member.stop()
    assert code == 128 + signal.SIGTERM
    ours = kcli_member.lines()
    assert sorted(v for _, v in got + ours) == sorted(values(0, 60))
    kafka_partitions, kcli_partitions = {p for p, _ in got}, {p for p, _ in ours}
    assert kafka_partitions and kcli_partitions and not kafka_partitions & kcli_partitions


def test_assignment_bytes_round_trip() -> None:
    data = assignment_bytes([("a", 2), ("b", 0), ("a", 0)])
    decoded = decode_assignment(data)
    assert decoded.version == 0
    assert [(tp.topic, list(tp.partitions)) for tp in decoded.assigned_partitions] == [("a", [2, 0]), ("b", [0])]
    assert decode_assignment(assignment_bytes([])).assigned_partitions == []


def test_unreachable_bootstrap_server_is_one_line_and_exit_8(brokers) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = brokers.kcli("--bootstrap-server", f"127.0.0.1:{port}", "consume", TOPIC, "--group", "g", "-e",
                          ok=False)
    assert result.returncode == 8
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
