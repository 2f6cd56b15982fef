"""A KIP-848 consumer group whose coordinator broker is killed (-9) on a two-broker cluster: the other
broker becomes the coordinator, continues the group from its stored state (members keep their ids,
epochs and partitions and go on heartbeating), and ``kcli group describe`` shows them again."""

from __future__ import annotations

import json
import signal

import pytest
from support.brokers import call, connect
from support.waits import wait_for

from kcli.protocol import ApiKey, ErrorCode

pytestmark = pytest.mark.faults

TOPIC = "orders"
GROUP = "g"
WAIT = 60.0
FLAGS = ("--group-consumer-session-timeout-ms", "30000", "--group-consumer-heartbeat-interval-ms", "500")


def coordinator(brokers, alive) -> tuple[int, tuple[str, int]]:
    with connect(alive.socket_path) as sock:
        found = call(sock, ApiKey.FIND_COORDINATOR, 2, {"key": GROUP, "key_type": 0})
    assert found.error_code == ErrorCode.NONE, found
    return found.node_id, (found.host, found.port)


def heartbeat(address, member_id: str, epoch: int, **fields):
    with connect(address) as sock:
        body = {"group_id": GROUP, "member_id": member_id, "member_epoch": epoch, **fields}
        return call(sock, ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, body)


def test_the_surviving_broker_continues_the_group(brokers):
    brokers.init(2)
    started = {i: brokers.start(i, *FLAGS) for i in (0, 1)}
    brokers.runner.in_process("topic", "create", TOPIC, "--partitions", 4, "--replication-factor", 2)
    node, address = coordinator(brokers, started[0])
    join = {"rebalance_timeout_ms": 30_000, "subscribed_topic_names": [TOPIC], "topic_partitions": []}
    a = heartbeat(address, "member-a", 0, **join)
    assert (a.error_code, a.member_epoch) == (0, 1)
    topic_id = a.assignment.topic_partitions[0].topic_id
    owned = [{"topic_id": topic_id, "partitions": [0, 1, 2, 3]}]
    assert heartbeat(address, "member-a", 1, topic_partitions=owned).member_epoch == 1

    started[node].stop(signal.SIGKILL)
    survivor = started[1 - node]

    def moved() -> bool:
        return coordinator(brokers, survivor)[0] == survivor.broker_id

    wait_for("the surviving broker coordinates the group", moved, WAIT)
    _, address = coordinator(brokers, survivor)
    again = heartbeat(address, "member-a", 1, topic_partitions=owned)
    assert (again.error_code, again.member_epoch) == (ErrorCode.NONE, 1)  # the same member, the same epoch
    view = json.loads(brokers.kcli("group", "describe", GROUP, "--json").stdout)[0]
    assert view["coordinator"] == f"broker {survivor.broker_id}"
    assert [(m["consumer_id"], m["member_epoch"], len(m["assignment"])) for m in view["members"]] == [
        ("member-a", 1, 4)
    ]
    b = heartbeat(address, "member-b", 0, **join)
    assert (b.error_code, b.member_epoch) == (ErrorCode.NONE, 2)  # the group epoch went on from 1
