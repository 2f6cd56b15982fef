"""Bad cleaner configs by every way one comes in: `topic create -c`, `topic alter -c`, `config alter
--topic/--broker/--broker-defaults`, kcli.toml's [broker], `broker serve --override`, and CreateTopics,
AlterConfigs and IncrementalAlterConfigs from confluent-kafka.  Each is refused as Kafka refuses it
(INVALID_CONFIG on the wire; one `kcli: error:` line naming the config, the value and what is allowed,
exit 2) and stores nothing.  What Kafka accepts is accepted: a policy named twice counts once, and an
empty cleanup.policy means neither delete nor compact."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from support.runner import one_error_line

from kcli.cluster.metadata import LOG_NAME

TIMEOUT = 30

# (config, bad value, words the error line holds besides the config's name)
BAD_TOPIC_VALUES = [
    ("cleanup.policy", "compcat", ["'compcat'", "compact and delete"]),
    ("cleanup.policy", "compact,", ["'compact,'", "compact and delete"]),
    ("cleanup.policy", "Compact", ["'Compact'", "compact and delete"]),  # Kafka's names are lower case
    ("min.compaction.lag.ms", "-1", ["'-1'", "between 0 and"]),
    ("max.compaction.lag.ms", "0", ["'0'", "between 1 and"]),
    ("delete.retention.ms", "-5", ["'-5'", "between 0 and"]),
    ("min.cleanable.dirty.ratio", "1.5", ["'1.5'", "between 0.0 and 1.0"]),
    ("min.cleanable.dirty.ratio", "-0.1", ["'-0.1'", "between 0.0 and 1.0"]),
    ("min.cleanable.dirty.ratio", "abc", ["'abc'", "a number"]),
    ("min.cleanable.dirty.ratio", "nan", ["'nan'", "between 0.0 and 1.0"]),
]
BAD_BROKER_VALUES = [
    ("log.cleanup.policy", "compcat", ["'compcat'", "compact and delete"]),
    ("log.cleaner.min.compaction.lag.ms", "-1", ["'-1'", "between 0 and"]),
    ("log.cleaner.max.compaction.lag.ms", "0", ["'0'", "between 1 and"]),
    ("log.cleaner.delete.retention.ms", "-5", ["'-5'", "between 0 and"]),
    ("log.cleaner.min.cleanable.ratio", "1.5", ["'1.5'", "between 0.0 and 1.0"]),
]
LAGS = "min.compaction.lag.ms (100) must not be greater than max.compaction.lag.ms (50)"
BROKER_LAGS = "log.cleaner.min.compaction.lag.ms (100) must not be greater than log.cleaner.max.compaction.lag.ms (50)"


@pytest.fixture(params=["embedded", "broker"])
def where(request, brokers):
    """Topic ``t`` (cleanup.policy=compact) on a one-broker data dir, with or without its broker
    running (then every command goes through it: CreateTopics, IncrementalAlterConfigs)."""
    brokers.init(1)
    if request.param == "broker":
        brokers.start(0)
    brokers.kcli("topic", "create", "t", "-c", "cleanup.policy=compact")
    return brokers


def _metadata(brokers) -> bytes:
    return (brokers.data_dir / "cluster" / LOG_NAME).read_bytes()


def _configs(kcli, *entity: str) -> dict[str, str | None]:
    out = kcli("config", "describe", *entity, "--json").stdout
    return {c["name"]: c["value"] for c in json.loads(out)["configs"]}


def test_bad_topic_values_are_one_line_errors_by_every_cli_path(where) -> None:
    before = _metadata(where)
    for name, value, words in BAD_TOPIC_VALUES:
        for args in (["topic", "create", "u", "-c", f"{name}={value}"], ["topic", "alter", "t", "-c", f"{name}={value}"],
                     ["config", "alter", "--topic", "t", "--set", f"{name}={value}"]):
            one_error_line(where.kcli(*args, ok=False), 2, name, *words)
    assert _metadata(where) == before
    assert where.kcli("topic", "list").stdout.split() == ["t"]


def test_min_compaction_lag_above_max_is_refused_at_create_and_alter(where) -> None:
    before = _metadata(where)
    one_error_line(where.kcli("topic", "create", "u", "-c", "min.compaction.lag.ms=100", "-c", "max.compaction.lag.ms=50",
                         ok=False), 2, LAGS)
    where.kcli("config", "alter", "--topic", "t", "--set", "max.compaction.lag.ms=50")
    one_error_line(where.kcli("topic", "alter", "t", "-c", "min.compaction.lag.ms=100", ok=False), 2, LAGS)
    one_error_line(where.kcli("config", "alter", "--topic", "t", "--set", "min.compaction.lag.ms=100", ok=False), 2, LAGS)
    # deleting the max while setting the min is fine: the default max is Long.MAX_VALUE
    where.kcli("config", "alter", "--topic", "t", "--set", "min.compaction.lag.ms=100", "--delete", "max.compaction.lag.ms")
    assert _configs(where.kcli, "--topic", "t")["min.compaction.lag.ms"] == "100"
    # a broker default on the other side counts too, named as such
    where.kcli("config", "alter", "--broker-defaults", "--set", "log.cleaner.max.compaction.lag.ms=50")
    one_error_line(where.kcli("topic", "create", "u", "-c", "min.compaction.lag.ms=100", ok=False), 2,
                   "min.compaction.lag.ms (100) must not be greater than log.cleaner.max.compaction.lag.ms (50)")
    assert where.kcli("topic", "list").stdout.split() == ["t"]
    assert before != _metadata(where)  # (the good changes above were stored)


def test_bad_broker_values_are_one_line_errors(where) -> None:
    for name, value, words in BAD_BROKER_VALUES:
        for entity in (["--broker", "0"], ["--broker-defaults"]):
            one_error_line(where.kcli("config", "alter", *entity, "--set", f"{name}={value}", ok=False), 2, name, *words)
    for entity in (["--broker", "0"], ["--broker-defaults"]):
        one_error_line(where.kcli("config", "alter", *entity, "--set", "log.cleaner.min.compaction.lag.ms=100",
                             "--set", "log.cleaner.max.compaction.lag.ms=50", ok=False), 2, BROKER_LAGS)
    # the cluster-wide default may not conflict with a broker's own value either
    where.kcli("config", "alter", "--broker", "0", "--set", "log.cleaner.max.compaction.lag.ms=50")
    one_error_line(where.kcli("config", "alter", "--broker-defaults", "--set", "log.cleaner.min.compaction.lag.ms=100",
                         ok=False), 2, BROKER_LAGS)
    where.kcli("config", "alter", "--broker", "0", "--delete", "log.cleaner.max.compaction.lag.ms")
    # dynamic, as in Kafka: each pass reads it
    for entity in (["--broker", "0"], ["--broker-defaults"]):
        one_error_line(where.kcli("config", "alter", *entity, "--set", "log.cleaner.dedupe.buffer.size=1048576",
                                  ok=False), 2, "log.cleaner.dedupe.buffer.size", "'1048576'", "more than 1048576")
    # read-only here and in Kafka: refused whatever the value
    one_error_line(where.kcli("config", "alter", "--broker", "0", "--set", "log.cleaner.enable=maybe", ok=False),
                   2, "log.cleaner.enable", "read-only")
    one_error_line(where.kcli("config", "alter", "--broker", "0", "--set", "log.cleaner.threads=0", ok=False), 2,
                   "log.cleaner.threads", "unknown")
    assert _configs(where.kcli, "--broker-defaults") == {}
    configs = _configs(where.kcli, "--broker", "0")
    assert configs["log.cleaner.min.compaction.lag.ms"] == "0"
    assert configs["log.cleaner.max.compaction.lag.ms"] == str(2**63 - 1)
    assert configs["log.cleanup.policy"] == "delete"
    assert configs["log.cleaner.dedupe.buffer.size"] == str(128 << 20)
    where.kcli("config", "alter", "--broker", "0", "--set", "log.cleaner.dedupe.buffer.size=2097152")
    assert _configs(where.kcli, "--broker", "0")["log.cleaner.dedupe.buffer.size"] == "2097152"


def test_kafkas_duplicate_and_empty_cleanup_policies_are_accepted(where) -> None:
    """Kafka (4.2) drops a policy named twice; an empty list means neither: retention deletes nothing
    and the cleaner compacts nothing."""
    from kcli.storage.config import LogConfig

    where.kcli("topic", "create", "twice", "-c", "cleanup.policy=compact, compact,delete")
    assert _configs(where.kcli, "--topic", "twice")["cleanup.policy"] == "compact,delete"
    where.kcli("topic", "create", "neither", "-c", "cleanup.policy=")
    assert _configs(where.kcli, "--topic", "neither")["cleanup.policy"] == ""
    config = LogConfig.from_topic({"cleanup.policy": ""})
    assert not config.compact and not config.delete
    where.kcli("config", "alter", "--topic", "t", "--set", "cleanup.policy=delete,delete")
    assert _configs(where.kcli, "--topic", "t")["cleanup.policy"] == "delete"
    where.kcli("produce", "neither", input="keyless\n")  # not compacted: keys are not needed


# ---------------------------------------------------------------- static broker configs


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('"log.cleanup.policy" = "compcat"', ["log.cleanup.policy", "'compcat'", "compact and delete"]),
        ('"log.cleaner.min.cleanable.ratio" = 1.5', ["log.cleaner.min.cleanable.ratio", "'1.5'", "between 0.0"]),
        ('"log.cleaner.dedupe.buffer.size" = 1048576', ["log.cleaner.dedupe.buffer.size", "'1048576'",
                                                        "more than 1048576"]),
        ('"log.cleaner.min.compaction.lag.ms" = 100\n"log.cleaner.max.compaction.lag.ms" = 50', [BROKER_LAGS]),
    ],
    ids=["policy", "ratio", "dedupe buffer", "lags"],
)
def test_bad_static_values_in_kcli_toml_stop_every_command_and_the_broker(brokers, table, words) -> None:
    brokers.init(1)
    (brokers.data_dir / "kcli.toml").write_text(f"[broker]\n{table}\n")
    one_error_line(brokers.kcli("topic", "list", ok=False), 2, "[broker]", *words)
    proc = brokers.kcli("broker", "serve", "--id", "0", ok=False, timeout=30)
    one_error_line(proc, 2, *words)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["log.cleanup.policy=compcat"], ["log.cleanup.policy", "'compcat'"]),
        (["log.cleaner.delete.retention.ms=-5"], ["log.cleaner.delete.retention.ms", "'-5'", "between 0 and"]),
        (["log.cleaner.dedupe.buffer.size=1000"], ["log.cleaner.dedupe.buffer.size", "'1000'", "more than 1048576"]),
        (["log.cleaner.min.compaction.lag.ms=100", "log.cleaner.max.compaction.lag.ms=50"], [BROKER_LAGS]),
        (["log.cleaner.threads=0"], ["log.cleaner.threads", "unknown"]),
    ],
    ids=["policy", "delete retention", "dedupe buffer", "lags", "threads"],
)
def test_bad_broker_serve_override_stops_the_broker_at_start(brokers, overrides, words) -> None:
    brokers.init(1)
    args = [a for pair in overrides for a in ("--override", pair)]
    proc = brokers.kcli("broker", "serve", "--id", "0", "--listener", "127.0.0.1:0", *args, ok=False, timeout=30)
    one_error_line(proc, 2, *words)
    assert brokers.kcli("broker", "list", "--json").stdout.strip() == "[]"


def test_good_static_cleaner_values_start_a_broker(brokers) -> None:
    brokers.init(1)
    (brokers.data_dir / "kcli.toml").write_text('[broker]\n"log.cleaner.min.compaction.lag.ms" = 100\n')
    broker = brokers.start(0, "--override", "log.cleaner.dedupe.buffer.size=1048577",
                           "--override", "log.cleaner.max.compaction.lag.ms=100")
    configs = _configs(brokers.kcli, "--broker", "0")
    assert configs["log.cleaner.dedupe.buffer.size"] == "1048577"
    assert broker.proc.poll() is None


# ---------------------------------------------------------------- on the wire


def _invalid_config(future) -> str:
    with pytest.raises(KafkaException) as err:
        future.result(TIMEOUT)
    error = err.value.args[0]
    assert error.name() == "INVALID_CONFIG", error
    return error.str()


def test_confluent_create_topics_with_bad_cleaner_configs_creates_nothing(broker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    cases = [{name: value} for name, value, _words in BAD_TOPIC_VALUES]
    cases.append({"min.compaction.lag.ms": "100", "max.compaction.lag.ms": "50"})
    for i, configs in enumerate(cases):
        for validate_only in (True, False):
            futures = admin.create_topics([NewTopic(f"bad{i}", 1, 1, config=configs)],
                                          validate_only=validate_only, request_timeout=TIMEOUT)
            message = _invalid_config(futures[f"bad{i}"])
            assert next(iter(configs)) in message, message
    assert broker.kcli("topic", "list").stdout.split() == []


@pytest.mark.parametrize("incremental", [True, False], ids=["IncrementalAlterConfigs", "AlterConfigs"])
def test_confluent_alter_configs_with_bad_cleaner_configs_changes_nothing(broker, incremental) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    broker.kcli("topic", "create", "t", "-c", "cleanup.policy=compact", "-c", "max.compaction.lag.ms=50")
    before = _configs(broker.kcli, "--topic", "t")
    cases = [{name: value} for name, value, _words in BAD_TOPIC_VALUES]
    cases.append({"min.compaction.lag.ms": "100"} if incremental else
                 {"min.compaction.lag.ms": "100", "max.compaction.lag.ms": "50"})
    for configs in cases:
        if incremental:
            entries = [ConfigEntry(n, v, incremental_operation=AlterConfigOpType.SET) for n, v in configs.items()]
            resource = ConfigResource(ConfigResource.Type.TOPIC, "t", incremental_configs=entries)
            future = admin.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource]
        else:
            resource = ConfigResource(ConfigResource.Type.TOPIC, "t", set_config=configs)
            future = admin.alter_configs([resource], request_timeout=TIMEOUT)[resource]
        _invalid_config(future)
    assert _configs(broker.kcli, "--topic", "t") == before


def test_confluent_broker_cleaner_configs_bad_or_conflicting_change_nothing(broker) -> None:
    """Bad broker config values are Kafka's INVALID_REQUEST here, as the other broker configs are."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    before = _configs(broker.kcli, "--broker", "0")
    for configs in ({"log.cleaner.min.cleanable.ratio": "1.5"}, {"log.cleanup.policy": "compcat"},
                    {"log.cleaner.dedupe.buffer.size": "1024"},
                    {"log.cleaner.min.compaction.lag.ms": "100", "log.cleaner.max.compaction.lag.ms": "50"}):
        entries = [ConfigEntry(n, v, incremental_operation=AlterConfigOpType.SET) for n, v in configs.items()]
        resource = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=entries)
        with pytest.raises(KafkaException) as err:
            admin.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource].result(TIMEOUT)
        assert err.value.args[0].name() == "INVALID_REQUEST", configs
        assert next(iter(configs)) in err.value.args[0].str()
    assert _configs(broker.kcli, "--broker", "0") == before
