"""How one broker runs: what `kcli broker serve` is told, as one typed object the broker's parts read
(Kafka's broker configs of the same names in parentheses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kcli.broker.coordinator import INITIAL_REBALANCE_DELAY_MS
from kcli.broker.partitions import DEFAULT_REPLICA_LAG_TIME_MS
from kcli.cluster.liveness import DEFAULT_SESSION_TIMEOUT_MS
from kcli.groups.consumer_group import DEFAULT_HEARTBEAT_INTERVAL_MS as CONSUMER_HEARTBEAT_INTERVAL_MS
from kcli.groups.consumer_group import DEFAULT_MIGRATION_POLICY
from kcli.groups.consumer_group import DEFAULT_SESSION_TIMEOUT_MS as CONSUMER_SESSION_TIMEOUT_MS
from kcli.groups.server_assignors import DEFAULT_ASSIGNORS as CONSUMER_ASSIGNORS
from kcli.groups.server_assignors import parse_assignors
from kcli.protocol import DEFAULT_MAX_FRAME_SIZE
from kcli.storage.config import ConfigValue
from kcli.transactions.coordinator import DEFAULT_ID_EXPIRATION_MS, DEFAULT_MAX_TIMEOUT_MS


@dataclass(frozen=True)
class BrokerSettings:
    """``listener``: the TCP address to serve besides the Unix socket (None: the socket only).
    ``configs``: the static broker configs it was started with (kcli.toml's [broker] and the flags),
    the STATIC_BROKER_CONFIG layer of :mod:`kcli.cluster.configs`."""

    listener: tuple[str, int] | None = None
    auto_create: bool = True  # auto.create.topics.enable
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE  # socket.request.max.bytes
    replica_lag_time_ms: int = DEFAULT_REPLICA_LAG_TIME_MS  # replica.lag.time.max.ms
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS  # broker.session.timeout.ms (KRaft)
    # group.initial.rebalance.delay.ms: how long a new group waits for more members before its first
    # rebalance (Kafka's test setups use 0)
    group_initial_rebalance_delay_ms: int = INITIAL_REBALANCE_DELAY_MS
    transaction_max_timeout_ms: int = DEFAULT_MAX_TIMEOUT_MS  # transaction.max.timeout.ms
    transactional_id_expiration_ms: int = DEFAULT_ID_EXPIRATION_MS  # transactional.id.expiration.ms
    # KIP-848 consumer groups (kcli.groups.consumer_group)
    group_consumer_session_timeout_ms: int = CONSUMER_SESSION_TIMEOUT_MS  # group.consumer.session.timeout.ms
    group_consumer_heartbeat_interval_ms: int = CONSUMER_HEARTBEAT_INTERVAL_MS  # group.consumer.heartbeat.interval.ms
    group_consumer_assignors: tuple[str, ...] = CONSUMER_ASSIGNORS  # group.consumer.assignors
    group_consumer_migration_policy: str = DEFAULT_MIGRATION_POLICY  # group.consumer.migration.policy
    retention_check_interval_ms: int = 300_000  # log.retention.check.interval.ms
    configs: Mapping[str, ConfigValue] = field(default_factory=dict)
    # a listener is SSL or SASL_*: then allow.everyone.if.no.acl.found defaults to false (kcli.broker.authorize)
    secured: bool = False

    @classmethod
    def from_configs(cls, listener: tuple[str, int] | None, configs: Mapping[str, ConfigValue]) -> BrokerSettings:
        """Settings from static broker configs by Kafka name (the rest keep Kafka's defaults)."""
        from kcli.cluster.configs import BROKER_CONFIGS

        def value(name: str) -> ConfigValue:
            return configs.get(name, BROKER_CONFIGS[name].default)  # type: ignore[arg-type]

        def get(name: str) -> int:
            return int(value(name))

        return cls(
            listener=listener,
            auto_create=bool(value("auto.create.topics.enable")),
            max_frame_size=get("socket.request.max.bytes"),
            replica_lag_time_ms=get("replica.lag.time.max.ms"),
            session_timeout_ms=get("broker.session.timeout.ms"),
            group_initial_rebalance_delay_ms=get("group.initial.rebalance.delay.ms"),
            transaction_max_timeout_ms=get("transaction.max.timeout.ms"),
            transactional_id_expiration_ms=get("transactional.id.expiration.ms"),
            retention_check_interval_ms=get("log.retention.check.interval.ms"),
            group_consumer_session_timeout_ms=get("group.consumer.session.timeout.ms"),
            group_consumer_heartbeat_interval_ms=get("group.consumer.heartbeat.interval.ms"),
            group_consumer_assignors=parse_assignors(str(value("group.consumer.assignors"))),
            group_consumer_migration_policy=str(value("group.consumer.migration.policy")),
            configs=dict(configs),
        )
