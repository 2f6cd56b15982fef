"""Kafka's synonym chain in :mod:`kcli.cluster.configs`, in-process: topic override > dynamic per-broker >
dynamic cluster default > static > Kafka's default, synonyms in Kafka's order (ms > minutes > hours), and
dynamic configs surviving a metadata snapshot."""

from __future__ import annotations

import pytest

from kcli.cluster import configs as cfg
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.errors import InvalidConfigError, NotFoundError


@pytest.fixture(autouse=True)
def no_static():
    cfg.set_static({})
    yield
    cfg.set_static({})


@pytest.fixture
def metadata(tmp_path) -> Metadata:
    meta = Metadata(DataDir(str(tmp_path / "data")))
    meta.ensure(2)
    meta.create_topic("t", 1, 1, {"retention.bytes": 100})
    return meta


def _retention(state: ClusterState, broker_id: int | None = 0) -> int:
    return cfg.log_config(state, state.topic("t"), broker_id).retention_ms


def test_the_chain_in_order(metadata: Metadata) -> None:
    assert _retention(metadata.load()) == 7 * 24 * 3_600_000  # log.retention.hours = 168
    cfg.set_static({"log.retention.hours": 2})
    assert _retention(metadata.load()) == 2 * 3_600_000
    cfg.set_static({"log.retention.hours": 2, "log.retention.minutes": 3})
    assert _retention(metadata.load()) == 3 * 60_000  # minutes before hours
    cfg.alter_broker(metadata, None, [cfg.ConfigOp("log.retention.ms", cfg.SET, "5000")])
    assert _retention(metadata.load()) == 5000  # a dynamic ms beats the static minutes
    cfg.alter_broker(metadata, 0, [cfg.ConfigOp("log.retention.ms", cfg.SET, "4000")])
    assert _retention(metadata.load(), 0) == 4000
    assert _retention(metadata.load(), 1) == 5000  # broker 1 has no config of its own
    cfg.alter_topic(metadata, "t", [cfg.ConfigOp("retention.ms", cfg.SET, "3000")])
    assert _retention(metadata.load(), 0) == 3000
    entry = {e.name: e for e in cfg.describe_topic(metadata.load(), "t", 0)}["retention.ms"]
    assert [(n, s) for n, _v, s in entry.synonyms] == [
        ("retention.ms", cfg.DYNAMIC_TOPIC_CONFIG),
        ("log.retention.ms", cfg.DYNAMIC_BROKER_CONFIG),
        ("log.retention.ms", cfg.DYNAMIC_DEFAULT_BROKER_CONFIG),
        ("log.retention.minutes", cfg.STATIC_BROKER_CONFIG),
        ("log.retention.hours", cfg.STATIC_BROKER_CONFIG),
        ("log.retention.hours", cfg.DEFAULT_CONFIG),
    ]


def test_bad_changes_change_nothing(metadata: Metadata) -> None:
    before = metadata.load().offset
    with pytest.raises(InvalidConfigError):
        cfg.alter_topic(metadata, "t", [cfg.ConfigOp("segment.ms", cfg.SET, "1000"),
                                        cfg.ConfigOp("segment.bytes", cfg.SET, "x")])
    with pytest.raises(NotFoundError):
        cfg.alter_topic(metadata, "nope", [cfg.ConfigOp("segment.ms", cfg.SET, "1000")])
    with pytest.raises(cfg.BrokerConfigError):
        cfg.alter_broker(metadata, None, [cfg.ConfigOp("num.partitions", cfg.SET, "4")])
    with pytest.raises(NotFoundError):
        cfg.alter_broker(metadata, 9, [cfg.ConfigOp("log.retention.ms", cfg.SET, "4")])
    cfg.alter_topic(metadata, "t", [cfg.ConfigOp("segment.ms", cfg.SET, "1000")], validate_only=True)
    assert metadata.load().offset == before


def test_new_topics_take_num_partitions_and_default_replication_factor(metadata: Metadata) -> None:
    cfg.set_static({"num.partitions": 4, "default.replication.factor": 2})
    assert cfg.new_topic_shape(metadata.load(), None, None) == (4, 2)
    assert cfg.new_topic_shape(metadata.load(), 1, None) == (1, 2)


def test_dynamic_configs_survive_a_snapshot(metadata: Metadata) -> None:
    cfg.alter_broker(metadata, 1, [cfg.ConfigOp("min.insync.replicas", cfg.SET, "2")])
    state = metadata.load()
    metadata._snapshot(state)
    again = metadata.load()
    assert again.broker_configs == {"1": {"min.insync.replicas": 2}}
    cfg.alter_broker(metadata, 1, [cfg.ConfigOp("min.insync.replicas", cfg.DELETE)])
    assert metadata.load().broker_configs == {}


def test_static_configs_parse_like_kcli_toml_values() -> None:
    assert cfg.parse_broker_configs({"auto.create.topics.enable": False, "num.partitions": 3}) == {
        "auto.create.topics.enable": False,
        "num.partitions": 3,
    }
    with pytest.raises(InvalidConfigError):
        cfg.parse_broker_config("num.partitions", "0")
    with pytest.raises(InvalidConfigError):
        cfg.parse_broker_config("log.cleanup.policy", "compact,shred")
    assert cfg.parse_broker_config("log.cleanup.policy", " compact, delete") == "compact,delete"
    assert cfg.parse_broker_config("log.cleaner.min.cleanable.ratio", "0.25") == 0.25
    with pytest.raises(InvalidConfigError):
        cfg.parse_broker_config("log.cleaner.min.cleanable.ratio", "1.5")


def test_broker_settings_defaults_are_the_broker_configs_defaults() -> None:
    """BrokerSettings() (what tests and embedded brokers use) and a broker started with no configs agree:
    the modules' own default constants and BROKER_CONFIGS name the same values."""
    from kcli.broker.settings import BrokerSettings

    assert BrokerSettings() == BrokerSettings.from_configs({})
