"""How one broker runs: what `kcli broker serve` is told, as one typed object the broker's parts read
(Kafka's broker configs of the same names in parentheses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kcli.broker.coordinator import INITIAL_REBALANCE_DELAY_MS
from kcli.broker.partitions import DEFAULT_REPLICA_LAG_TIME_MS
from kcli.cluster.broker_info import Endpoint
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
class TlsSettings:
    """What SSL and SASL_SSL listeners serve: the broker's certificate (PEM; the key in ``certfile`` too
    when ``keyfile`` is None), the CA that client certificates are checked against, whether clients
    must send one (ssl.client.auth) and how its subject becomes a principal."""

    certfile: str
    keyfile: str | None = None
    password: str | None = field(default=None, repr=False)  # ssl.key.password: never in a log line
    cafile: str | None = None
    client_auth: str = "none"
    principal_rules: str = "DEFAULT"


@dataclass(frozen=True)
class BrokerSettings:
    """``listeners``: the TCP listeners to serve besides the Unix socket (none: the socket only), and
    ``advertised``: the endpoints to tell clients of, by listener name (a listener without one
    advertises its own address).  ``tls``: for SSL and SASL_SSL listeners.
    ``configs``: the static broker configs it was started with (kcli.toml's [broker] and the flags),
    the STATIC_BROKER_CONFIG layer of :mod:`kcli.cluster.configs`."""

    listeners: tuple[Endpoint, ...] = ()
    advertised: tuple[Endpoint, ...] = ()
    tls: TlsSettings | None = None
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

    @property
    def secured(self) -> bool:
        """A listener is SSL or SASL_*: then allow.everyone.if.no.acl.found defaults to false
        (kcli.broker.authorize)."""
        return any(e.security_protocol != "PLAINTEXT" for e in self.listeners)

    @classmethod
    def from_configs(cls, configs: Mapping[str, ConfigValue]) -> BrokerSettings:
        """Settings from static broker configs by Kafka name (the rest keep Kafka's defaults)."""
        def value(name: str) -> ConfigValue:
            return config_value(configs, name)

        def get(name: str) -> int:
            return int(value(name))

        listeners, advertised = _listeners(configs)
        return cls(
            listeners=listeners,
            advertised=advertised,
            tls=_tls(configs, listeners),
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


def config_value(configs: Mapping[str, ConfigValue], name: str) -> ConfigValue:
    """Static broker config ``name`` (Kafka's name) as ``configs`` set it, else its default."""
    from kcli.cluster.configs import BROKER_CONFIGS

    return configs.get(name, BROKER_CONFIGS[name].default)  # type: ignore[arg-type]


def _listeners(configs: Mapping[str, ConfigValue]) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
    """``listeners`` and ``advertised.listeners`` under ``listener.security.protocol.map``; an advertised
    name must be a listener's, as in Kafka."""
    from kcli.cluster.broker_info import parse_endpoints, parse_protocol_map
    from kcli.errors import UsageError

    protocols = parse_protocol_map(str(configs.get("listener.security.protocol.map") or ""))
    listeners = parse_endpoints([str(configs.get("listeners") or "")], protocols)
    advertised = parse_endpoints([str(configs.get("advertised.listeners") or "")], protocols)
    names = {e.listener for e in listeners}
    for endpoint in advertised:
        if endpoint.listener not in names:
            raise UsageError(f"advertised listener {endpoint} names no listener",
                             hint=f"listeners: {', '.join(sorted(names)) or 'none'}")
        if endpoint.port == 0:
            raise UsageError(f"advertised listener {endpoint} needs a port")
    return tuple(listeners), tuple(advertised)


def _tls(configs: Mapping[str, ConfigValue], listeners: tuple[Endpoint, ...]) -> TlsSettings | None:
    """The TLS settings, required once a listener is SSL or SASL_SSL (and only then used)."""
    from kcli.errors import UsageError
    from kcli.security.principal import parse_rules

    def text(name: str) -> str | None:
        found = configs.get(name)
        return str(found) if found not in (None, "") else None

    secured = [e for e in listeners if e.security_protocol in ("SSL", "SASL_SSL")]
    certfile = text("ssl.keystore.location")
    if not secured:
        return None
    if certfile is None:
        raise UsageError(f"listener {secured[0]} needs a certificate",
                         hint="give --ssl-certfile (and --ssl-keyfile), or ssl.keystore.location in [broker]")
    rules = text("ssl.principal.mapping.rules") or "DEFAULT"
    parse_rules(rules)  # a bad rule is a usage error before the broker starts
    return TlsSettings(certfile, text("ssl.key.location"), text("ssl.key.password"),
                       text("ssl.truststore.location"), text("ssl.client.auth") or "none", rules)
