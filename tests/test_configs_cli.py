"""`kcli config describe|alter` as real subprocesses: embedded on the data dir and through live brokers
(the same answers either way), kcli's exit codes for bad input, validate-only, and `kcli topic alter -c`
as its shortcut."""

from __future__ import annotations

import json

import pytest


def _configs(kcli, *entity: str) -> dict[str, dict]:
    out = kcli("config", "describe", *entity, "--json").stdout
    return {c["name"]: c for c in json.loads(out)["configs"]}


def _run_everywhere(kcli, through_brokers: bool, brokers) -> None:
    if through_brokers:
        brokers.init(2)
        for b in range(2):
            brokers.start(b)
    else:
        kcli("cluster", "init", "--brokers", "2")
    kcli("topic", "create", "orders", "-c", "retention.ms=3600000")


@pytest.fixture(params=["embedded", "brokers"])
def where(request, brokers):
    """A data dir with topic ``orders`` and brokers 0-1, with or without running brokers; its kcli."""
    through = request.param == "brokers"
    kcli = brokers.kcli
    _run_everywhere(kcli, through, brokers)
    return kcli


def test_describe_topic_table_and_json(where) -> None:
    table = where("config", "describe", "--topic", "orders").stdout.splitlines()
    assert table[0].split("\t") == ["CONFIG", "VALUE", "SOURCE", "READ-ONLY"]
    assert "retention.ms\t3600000\tDYNAMIC_TOPIC_CONFIG\tno" in table
    configs = _configs(where, "--topic", "orders")
    assert configs["segment.bytes"]["source"] == "DEFAULT_CONFIG"
    assert [s["name"] for s in configs["retention.ms"]["synonyms"]] == ["retention.ms", "log.retention.hours"]
    synonyms = where("config", "describe", "--topic", "orders", "--name", "retention.ms", "--synonyms").stdout
    assert "  log.retention.hours\t168\tDEFAULT_CONFIG" in synonyms


def test_alter_topic_set_delete_and_topic_alter_shortcut(where) -> None:
    where("config", "alter", "--topic", "orders", "--set", "segment.ms=60000", "--delete", "retention.ms")
    configs = _configs(where, "--topic", "orders")
    assert configs["segment.ms"]["value"] == "60000"
    assert configs["retention.ms"]["source"] == "DEFAULT_CONFIG"
    where("topic", "alter", "orders", "-c", "retention.bytes=1048576", "--delete-config", "segment.ms")
    configs = _configs(where, "--topic", "orders")
    assert configs["retention.bytes"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["segment.ms"]["source"] == "DEFAULT_CONFIG"


def test_broker_and_cluster_defaults(where) -> None:
    where("config", "alter", "--broker-defaults", "--set", "log.retention.ms=600000")
    where("config", "alter", "--broker", "1", "--set", "log.segment.bytes=1048576")
    defaults = _configs(where, "--broker-defaults")
    assert list(defaults) == ["log.retention.ms"]
    one = _configs(where, "--broker", "1")
    assert (one["log.segment.bytes"]["value"], one["log.segment.bytes"]["source"]) == (
        "1048576",
        "DYNAMIC_BROKER_CONFIG",
    )
    assert one["log.retention.ms"]["source"] == "DYNAMIC_DEFAULT_BROKER_CONFIG"
    assert one["num.partitions"]["read_only"] is True
    zero = _configs(where, "--broker", "0")
    assert zero["log.segment.bytes"]["source"] == "DEFAULT_CONFIG"  # broker 1's own
    topic = _configs(where, "--topic", "orders")
    assert topic["retention.ms"]["value"] == "3600000"  # the topic's override still wins
    where("config", "alter", "--broker-defaults", "--delete", "log.retention.ms")
    assert _configs(where, "--broker-defaults") == {}


def test_validate_only_changes_nothing(where) -> None:
    where("config", "alter", "--topic", "orders", "--set", "segment.bytes=1048576", "--validate-only")
    assert _configs(where, "--topic", "orders")["segment.bytes"]["source"] == "DEFAULT_CONFIG"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--topic", "orders", "--set", "no.such.config=1"], 2),
        (["--topic", "orders", "--set", "segment.bytes=lots"], 2),
        (["--topic", "orders", "--set", "retention.ms=1", "--set", "segment.bytes=1"], 2),
        (["--topic", "orders", "--set", "justakey"], 2),
        (["--topic", "nope", "--set", "retention.ms=1"], 3),
        (["--broker", "0", "--set", "num.partitions=4"], 2),
        (["--broker-defaults", "--set", "log.retention.ms=soon"], 2),
        (["--broker-defaults", "--set", "no.such=1"], 2),
        (["--topic", "orders", "--broker", "0", "--set", "retention.ms=1"], 2),
        (["--topic", "orders"], 2),
    ],
)
def test_bad_alters_are_one_line_errors_and_change_nothing(where, args, code) -> None:
    before = _configs(where, "--topic", "orders")
    res = where("config", "alter", *args, ok=False)
    assert res.returncode == code, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("kcli: error:"), res.stderr
    assert _configs(where, "--topic", "orders") == before
    assert _configs(where, "--broker-defaults") == {}


def test_describe_unknown_topic_and_broker(where) -> None:
    res = where("config", "describe", "--topic", "nope", ok=False)
    assert res.returncode == 3 and res.stderr.count("\n") == 1, res.stderr
    res = where("config", "describe", "--broker", "7", ok=False)
    assert res.returncode != 0 and res.stderr.count("\n") == 1, res.stderr


def test_group_configs(where) -> None:
    # any group name has configs (the broker's group.consumer.* until the group sets its own)
    configs = _configs(where, "--group", "app")
    assert {n: (c["value"], c["source"]) for n, c in configs.items()} == {
        "consumer.heartbeat.interval.ms": ("5000", "DEFAULT_CONFIG"),
        "consumer.session.timeout.ms": ("45000", "DEFAULT_CONFIG"),
    }
    where("config", "alter", "--group", "app", "--set", "consumer.session.timeout.ms=50000",
          "--set", "consumer.heartbeat.interval.ms=6000")
    configs = _configs(where, "--group", "app")
    assert configs["consumer.session.timeout.ms"]["value"] == "50000"
    assert configs["consumer.heartbeat.interval.ms"]["source"] == "DYNAMIC_GROUP_CONFIG"
    assert _configs(where, "--group", "other")["consumer.session.timeout.ms"]["value"] == "45000"
    # outside Kafka's default bounds (45000..60000, 5000..15000): refused, nothing changed
    for good, bad in (("consumer.heartbeat.interval.ms=7000", "consumer.session.timeout.ms=44999"),
                      ("consumer.session.timeout.ms=55000", "consumer.heartbeat.interval.ms=15001")):
        res = where("config", "alter", "--group", "app", "--set", good, "--set", bad, ok=False)
        assert res.returncode == 2 and res.stderr.startswith("kcli: error:"), res.stderr
        assert res.stderr.count("\n") == 1 and "must be" in res.stderr, res.stderr
    configs = _configs(where, "--group", "app")
    assert (configs["consumer.heartbeat.interval.ms"]["value"], configs["consumer.session.timeout.ms"]["value"]) == (
        "6000", "50000")
    where("config", "alter", "--group", "app", "--delete", "consumer.session.timeout.ms")
    assert _configs(where, "--group", "app")["consumer.session.timeout.ms"]["source"] == "DEFAULT_CONFIG"
    res = where("config", "alter", "--group", "", "--set", "consumer.session.timeout.ms=50000", ok=False)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
