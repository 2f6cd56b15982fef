"""confluent-kafka consumers with ``group.protocol=consumer`` (KIP-848) against ``kcli broker serve``:
two members split 4 partitions, the survivor takes all 4 when one closes, committed offsets resume after
a restart, a static member keeps its partitions over a quick restart, the group survives kill -9 of
its coordinator -- all while a classic-protocol consumer in another group of the same cluster works.

Each consumer polls in its own thread: librdkafka reconciles (revokes, then takes new partitions) from
its poll loop."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from support.group_members import PollingConsumer, stop_all
from support.runner import KCLI
from support.waits import stop_process, wait_for

confluent_kafka = pytest.importorskip("confluent_kafka")

TOPIC = "orders"
PARTITIONS = 4
PER_PARTITION = 25
ALL = frozenset(range(PARTITIONS))
WAIT = 60.0
FLAGS = ("--group-consumer-session-timeout-ms", "10000", "--group-consumer-heartbeat-interval-ms", "500")


@pytest.fixture
def broker(brokers):
    b = brokers.start(0, *FLAGS)
    b.kcli = brokers.kcli
    b.runner = brokers.runner
    b.runner.in_process("topic", "create", TOPIC, "--partitions", PARTITIONS)
    producer = confluent_kafka.Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(TOPIC, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(30) == 0
    return b


def member(bootstrap: str, group: str = "g", protocol: str = "consumer", **conf) -> PollingConsumer:
    """A confluent-kafka member of ``group`` reading TOPIC in its own thread."""
    return PollingConsumer(bootstrap, TOPIC, group, protocol, **conf)


@pytest.fixture
def members():
    started: list[PollingConsumer] = []
    yield started
    stop_all(started)


def describe(broker, group: str) -> dict:
    return json.loads(broker.kcli("group", "describe", group, "--json").stdout)[0]


def test_two_members_split_then_the_survivor_takes_all_and_offsets_resume(broker, members):
    classic = member(broker.bootstrap, group="classic-group", protocol="classic")
    members.append(classic)
    a = member(broker.bootstrap)
    members.append(a)
    wait_for("a owns every partition", lambda: a.owned == ALL, WAIT)
    b = member(broker.bootstrap)
    members.append(b)
    wait_for("a and b own two each", lambda: len(a.owned) == 2 and len(b.owned) == 2, WAIT)
    assert not a.owned & b.owned
    view = describe(broker, "g")
    assert (view["type"], view["state"], view["assignor"]) == ("consumer", "Stable", "uniform")
    assert sorted(m["member_epoch"] for m in view["members"]) == [view["generation"]] * 2
    assert view["generation"] >= 2
    b.close()
    wait_for("the survivor owns all four", lambda: a.owned == ALL, WAIT)
    wait_for("every record read", lambda: len(set(a.read) | set(b.read)) == PARTITIONS * PER_PARTITION, WAIT)
    a.close()
    # a restart resumes from the commits: nothing is read again
    again = member(broker.bootstrap)
    members.append(again)
    wait_for("the restarted member owns all four", lambda: again.owned == ALL, WAIT)
    time.sleep(2)
    assert again.read == [] and not a.errors and not b.errors
    rows = describe(broker, "g")["partitions"]
    assert {(r["partition"], r["current_offset"], r["lag"]) for r in rows} == {
        (p, PER_PARTITION, 0) for p in range(PARTITIONS)
    }
    # the classic-protocol consumer of the other group read everything at the same time
    wait_for("the classic member read all", lambda: len(set(classic.read)) == PARTITIONS * PER_PARTITION, WAIT)
    assert describe(broker, "classic-group")["type"] == "classic"


def test_static_member_keeps_its_partitions_over_a_restart(broker, members):
    a = member(broker.bootstrap, **{"group.instance.id": "static-a"})
    members.append(a)
    b = member(broker.bootstrap)
    members.append(b)
    wait_for("two each", lambda: len(a.owned) == 2 and len(b.owned) == 2, WAIT)
    kept = a.owned
    a.close()  # a static member leaves with epoch -2: its partitions wait for it
    time.sleep(2)
    assert len(b.owned) == 2
    back = member(broker.bootstrap, **{"group.instance.id": "static-a"})
    members.append(back)
    wait_for("the static member has its partitions again", lambda: back.owned == kept, WAIT)
    assert len(b.owned) == 2


@pytest.mark.faults
def test_members_recover_from_kill_9_of_the_coordinator(brokers, broker, members):
    a = member(broker.bootstrap)
    b = member(broker.bootstrap)
    members += [a, b]
    wait_for("two each", lambda: len(a.owned) == 2 and len(b.owned) == 2, WAIT)
    port = broker.port
    broker.stop(signal.SIGKILL)
    brokers.start(0, *FLAGS, listener=f"127.0.0.1:{port}")
    wait_for(
        "both members own two again, everything read",
        lambda: len(a.owned) == 2 and len(b.owned) == 2 and len(set(a.read) | set(b.read)) == PARTITIONS * PER_PARTITION,
        WAIT,
    )
    assert not a.owned & b.owned


def test_a_kcli_member_and_a_confluent_member_share_the_group(brokers, broker, members, tmp_path):
    """kcli's own KIP-848 member (``consume --group-protocol consumer``) next to librdkafka's."""
    out = tmp_path / "kcli.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [*KCLI, "--data-dir", str(brokers.data_dir), "--bootstrap-server", broker.bootstrap, "consume", TOPIC,
             "--group", "g", "--group-protocol", "consumer", "--reset", "earliest", "--commit-interval-ms", "200"],
            stdout=fh, stderr=subprocess.DEVNULL, env=brokers.env,
        )
    try:
        c = member(broker.bootstrap)
        members.append(c)

        def kcli_owns() -> int:
            view = describe(broker, "g")
            return sum(len(m["assignment"]) for m in view["members"] if m["client_id"] == "kcli")

        wait_for("two partitions each", lambda: len(c.owned) == 2 and kcli_owns() == 2, WAIT)
        wait_for(
            "every record read once between them",
            lambda: len(out.read_text().split()) + len(set(c.read)) == PARTITIONS * PER_PARTITION,
            WAIT,
        )
    finally:
        stop_process(proc)
