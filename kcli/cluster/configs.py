"""Broker configs and the resolution of every config a topic or broker sees (Kafka's synonym chain).

Kafka's broker configs (``server.properties``) are the defaults of the topic configs: ``log.retention.ms``
is the default of ``retention.ms``, and so on.  A value comes from the first of these that sets it:

1. the topic's own override (DYNAMIC_TOPIC_CONFIG, ``TopicMeta.configs``);
2. a dynamic config of this broker (DYNAMIC_BROKER_CONFIG, in the cluster metadata);
3. a dynamic cluster-wide default (DYNAMIC_DEFAULT_BROKER_CONFIG, in the cluster metadata);
4. the static broker config (STATIC_BROKER_CONFIG: ``kcli.toml``'s ``[broker]`` table and the flags of
   ``kcli broker serve``, held by this process, see :func:`set_static`);
5. Kafka's default (DEFAULT_CONFIG).

Groups have configs of their own too (Kafka 4.0's ``kafka-configs --entity-type groups``, KIP-848):
``consumer.session.timeout.ms`` and ``consumer.heartbeat.interval.ms``, each a group's override
(GROUP_CONFIG) of the broker config ``group.consumer.*`` of the same meaning, bounded by the broker's
``group.consumer.min/max.*``; :func:`group_configs` resolves them.

Where a topic config has several broker synonyms (``log.retention.ms``, ``.minutes``, ``.hours``) the
first one set anywhere wins, as in Kafka.  :func:`topic_configs` is the one place that merges them; the
log code gets its :class:`~kcli.storage.config.LogConfig` from there (:func:`log_config`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcli.errors import InvalidConfigError, NotFoundError, UsageError
from kcli.storage.config import TOPIC_CONFIGS, ConfigValue, LogConfig, boolean, int_range, parse_topic_config

if TYPE_CHECKING:
    from kcli.cluster.metadata import ClusterState, Metadata, MetaRecord, PartitionMeta, TopicMeta

# DescribeConfigs' config sources (Kafka's ConfigSource ids)
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
GROUP_CONFIG = 8
SOURCE_NAMES = {
    DYNAMIC_TOPIC_CONFIG: "DYNAMIC_TOPIC_CONFIG",
    DYNAMIC_BROKER_CONFIG: "DYNAMIC_BROKER_CONFIG",
    DYNAMIC_DEFAULT_BROKER_CONFIG: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    STATIC_BROKER_CONFIG: "STATIC_BROKER_CONFIG",
    DEFAULT_CONFIG: "DEFAULT_CONFIG",
    GROUP_CONFIG: "DYNAMIC_GROUP_CONFIG",
}

# DescribeConfigs' config types (Kafka's ConfigType ids)
BOOLEAN, STRING, INT, LONG, DOUBLE, LIST, PASSWORD = 1, 2, 3, 5, 6, 7, 9
TYPE_NAMES = {BOOLEAN: "BOOLEAN", STRING: "STRING", INT: "INT", LONG: "LONG", DOUBLE: "DOUBLE", LIST: "LIST",
              PASSWORD: "PASSWORD"}

TOPIC_CONFIG_TYPES: dict[str, int] = {
    "segment.bytes": INT,
    "segment.ms": LONG,
    "retention.ms": LONG,
    "retention.bytes": LONG,
    "index.interval.bytes": INT,
    "segment.index.bytes": INT,
    "max.message.bytes": INT,
    "min.insync.replicas": INT,
    "unclean.leader.election.enable": BOOLEAN,
    "compression.type": STRING,
    "cleanup.policy": LIST,
    "message.timestamp.type": STRING,
    "flush.messages": LONG,
    "flush.ms": LONG,
    "min.cleanable.dirty.ratio": DOUBLE,
    "min.compaction.lag.ms": LONG,
    "max.compaction.lag.ms": LONG,
    "delete.retention.ms": LONG,
}

CLUSTER_DEFAULT = ""  # the entity name of the cluster-wide dynamic defaults (kafka-configs --entity-default)


# group.consumer.migration.policy's values (kcli.groups.consumer_group applies them)
CONSUMER_MIGRATION_POLICIES = ("disabled", "upgrade", "downgrade", "bidirectional")


def _sasl_mechanisms(text: str) -> str:
    """A comma-separated list of the SASL mechanisms kcli's brokers serve, upper-cased."""
    from kcli.security.sasl import MECHANISMS

    names = [m.strip().upper() for m in str(text).split(",") if m.strip()]
    unknown = [m for m in names if m not in MECHANISMS]
    if unknown or not names:
        raise ValueError(f"must be a list of {', '.join(MECHANISMS)}")
    return ",".join(names)


def _one_of(text: str, choices: tuple[str, ...]) -> str:
    low = str(text).strip().lower()
    if low not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return low


def _dedupe_buffer_size(text: str) -> int:
    """Kafka refuses to start with 1 MiB or less of offset map per cleaner thread (a broker here runs one):
    a pass would hold too few keys to make progress."""
    value = int_range(1)(text)
    if value <= 1 << 20:
        raise ValueError("must be more than 1048576 (1 MiB, the least Kafka allows a cleaner thread)")
    return value


@dataclass(frozen=True)
class BrokerConfig:
    """One broker config: Kafka's default (None: unset, a later synonym decides), how a value parses,
    what it means, its type, whether it may change at run time (Kafka's dynamic configs), and the topic
    config it is the default of (``scale`` turns its unit into the topic config's: hours to ms)."""

    default: ConfigValue | None
    parse: Callable[[str], ConfigValue]
    doc: str
    type: int
    dynamic: bool = False
    topic: str | None = None
    scale: int = 1

    @property
    def sensitive(self) -> bool:
        """A secret (Kafka's PASSWORD type): DescribeConfigs answers null for it, as Kafka does."""
        return self.type == PASSWORD


class _TopicsDefault:
    """The default of a broker config that is the topic config's own default (most synonyms)."""


_AS_TOPIC = _TopicsDefault()


def _topic_synonym(topic: str, default: ConfigValue | None | _TopicsDefault = _AS_TOPIC, scale: int = 1,
                   dynamic: bool = True) -> BrokerConfig:
    """A broker config that defaults topic config ``topic``: parsed and documented as that config, and
    by default with its default (None: unset, a later synonym decides)."""
    parse = TOPIC_CONFIGS[topic][1]
    if scale != 1:
        parse = int_range(1)
    type_ = TOPIC_CONFIG_TYPES[topic] if scale == 1 else INT
    unit = {3_600_000: " (hours)", 60_000: " (minutes)"}.get(scale, "")
    value = TOPIC_CONFIGS[topic][0] if isinstance(default, _TopicsDefault) else default
    return BrokerConfig(value, parse, f"default of the topic config {topic}{unit}: {TOPIC_CONFIGS[topic][2]}",
                        type_, dynamic, topic, scale)


def _super_users(text: str) -> str:
    from kcli.security.acl import parse_super_users

    try:
        parse_super_users(text)
    except UsageError as exc:
        raise ValueError(exc.message) from None
    return text.strip()


# Kafka's names and defaults; the order of the synonyms of one topic config is Kafka's (the first set wins)
BROKER_CONFIGS: dict[str, BrokerConfig] = {
    "num.partitions": BrokerConfig(1, int_range(1, 100_000), "partitions of a topic created without a count "
                                   "(auto-created, or CreateTopics with -1)", INT),
    "default.replication.factor": BrokerConfig(1, int_range(1, 32767), "replication factor of a topic created "
                                               "without one (auto-created, or CreateTopics with -1)", INT),
    "auto.create.topics.enable": BrokerConfig(True, boolean, "create a missing topic when a client asks for "
                                              "its metadata or produces to it", BOOLEAN),
    "log.segment.bytes": _topic_synonym("segment.bytes"),
    "log.roll.ms": _topic_synonym("segment.ms", None),
    "log.roll.hours": _topic_synonym("segment.ms", 168, 3_600_000, dynamic=False),
    "log.retention.ms": _topic_synonym("retention.ms", None),
    "log.retention.minutes": _topic_synonym("retention.ms", None, 60_000, dynamic=False),
    "log.retention.hours": _topic_synonym("retention.ms", 168, 3_600_000, dynamic=False),
    "log.retention.bytes": _topic_synonym("retention.bytes"),
    "log.index.interval.bytes": _topic_synonym("index.interval.bytes"),
    "log.index.size.max.bytes": _topic_synonym("segment.index.bytes"),
    "message.max.bytes": _topic_synonym("max.message.bytes"),
    "min.insync.replicas": _topic_synonym("min.insync.replicas"),
    "unclean.leader.election.enable": _topic_synonym("unclean.leader.election.enable"),
    "compression.type": _topic_synonym("compression.type"),
    "log.cleanup.policy": _topic_synonym("cleanup.policy"),
    "log.cleaner.min.cleanable.ratio": _topic_synonym("min.cleanable.dirty.ratio"),
    "log.cleaner.min.compaction.lag.ms": _topic_synonym("min.compaction.lag.ms"),
    "log.cleaner.max.compaction.lag.ms": _topic_synonym("max.compaction.lag.ms"),
    "log.cleaner.delete.retention.ms": _topic_synonym("delete.retention.ms"),
    "log.cleaner.dedupe.buffer.size": BrokerConfig(134_217_728, _dedupe_buffer_size, "memory the cleaner's "
                                                   "offset map may use per pass (bounds how much dirty log one "
                                                   "pass cleans); more than 1 MiB", LONG, dynamic=True),
    "log.cleaner.backoff.ms": BrokerConfig(15_000, int_range(0), "how long the cleaner sleeps when no log is "
                                           "due for cleaning", LONG),
    "log.cleaner.enable": BrokerConfig(True, boolean, "run the log cleaner (compacts topics whose cleanup.policy "
                                       "holds compact)", BOOLEAN),
    "log.message.timestamp.type": _topic_synonym("message.timestamp.type"),
    "log.retention.check.interval.ms": BrokerConfig(300_000, int_range(1), "how often old segments are looked "
                                                    "for to delete", LONG),
    "log.flush.interval.messages": _topic_synonym("flush.messages"),
    "log.flush.interval.ms": _topic_synonym("flush.ms"),
    "replica.lag.time.max.ms": BrokerConfig(30_000, int_range(1), "drop a follower from the ISR once it has not "
                                            "caught up for this long", LONG),
    "broker.session.timeout.ms": BrokerConfig(9_000, int_range(1), "the controller treats a broker whose "
                                              "heartbeat is older than this as lost", INT),
    "group.initial.rebalance.delay.ms": BrokerConfig(3_000, int_range(0), "how long a new consumer group waits "
                                                     "for more members before its first rebalance", INT),
    "transaction.max.timeout.ms": BrokerConfig(900_000, int_range(1, 2**31 - 1), "the longest transaction "
                                               "timeout a producer may ask for", INT),
    "transactional.id.expiration.ms": BrokerConfig(604_800_000, int_range(1, 2**31 - 1), "forget a transactional "
                                                   "id whose producer has been silent this long", INT),
    "group.consumer.session.timeout.ms": BrokerConfig(45_000, int_range(1, 2**31 - 1), "a KIP-848 consumer "
                                                      "group member silent this long is removed", INT),
    "group.consumer.heartbeat.interval.ms": BrokerConfig(5_000, int_range(1, 2**31 - 1), "how often KIP-848 "
                                                         "consumer group members heartbeat", INT),
    "group.consumer.min.session.timeout.ms": BrokerConfig(45_000, int_range(1, 2**31 - 1), "the least "
                                                          "consumer.session.timeout.ms a group may set", INT),
    "group.consumer.max.session.timeout.ms": BrokerConfig(60_000, int_range(1, 2**31 - 1), "the most "
                                                          "consumer.session.timeout.ms a group may set", INT),
    "group.consumer.min.heartbeat.interval.ms": BrokerConfig(5_000, int_range(1, 2**31 - 1), "the least "
                                                             "consumer.heartbeat.interval.ms a group may set", INT),
    "group.consumer.max.heartbeat.interval.ms": BrokerConfig(15_000, int_range(1, 2**31 - 1), "the most "
                                                             "consumer.heartbeat.interval.ms a group may set", INT),
    # names are checked where the assignors are known (kcli.groups.server_assignors.parse_assignors)
    "group.consumer.assignors": BrokerConfig("uniform,range", str, "the server assignors of KIP-848 consumer "
                                             "groups, the default first", LIST),
    # which online conversions between classic and KIP-848 groups happen (kcli.groups.consumer_group)
    "group.consumer.migration.policy": BrokerConfig("bidirectional", lambda text: _one_of(
        text, CONSUMER_MIGRATION_POLICIES), "converting classic groups to consumer "
        "groups when a consumer-protocol member joins (upgrade), back when only classic members remain "
        "(downgrade), both, or neither", STRING),
    "sasl.enabled.mechanisms": BrokerConfig("SCRAM-SHA-512,SCRAM-SHA-256,PLAIN", _sasl_mechanisms, "the SASL "
                                            "mechanisms SASL listeners accept", LIST),
    "connections.max.reauth.ms": BrokerConfig(0, int_range(0), "the longest a SASL session lasts before the "
                                              "client must re-authenticate on its connection (KIP-368; 0: "
                                              "forever)", LONG),
    "connection.failed.authentication.delay.ms": BrokerConfig(100, int_range(0, 60_000), "how long a "
                                                              "connection whose authentication failed stays "
                                                              "open after the answer", INT),
    "super.users": BrokerConfig("", _super_users, "principals that may do everything, whatever the ACLs say, "
                                "separated by ';' (User:admin;User:alice)", LIST),
    "allow.everyone.if.no.acl.found": BrokerConfig(None, boolean, "allow what no ACL names the resource of "
                                                   "(unset: true while every listener is PLAINTEXT, false "
                                                   "once an SSL or SASL listener is configured)", BOOLEAN),
    "socket.request.max.bytes": BrokerConfig(100 * 1024 * 1024, int_range(1024, 2**31 - 1), "close connections "
                                             "that send a larger request frame", INT),
    # listeners and TLS (checked together where the broker's settings are made: kcli.broker.settings)
    "listeners": BrokerConfig(None, str, "the TCP listeners, NAME://HOST:PORT,... (besides the Unix socket)", LIST),
    "advertised.listeners": BrokerConfig(None, str, "the endpoints told to clients, per listener name "
                                         "(default: the listeners' own)", LIST),
    "listener.security.protocol.map": BrokerConfig(
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", str,
        "the security protocol of each listener name, NAME:PROTOCOL,...", LIST),
    "ssl.keystore.location": BrokerConfig(None, str, "PEM file with the broker's certificate chain (and its key "
                                          "unless ssl.key.location is set)", STRING),
    "ssl.key.location": BrokerConfig(None, str, "PEM file with the broker's private key", STRING),
    "ssl.key.password": BrokerConfig(None, str, "the passphrase of an encrypted private key", PASSWORD),
    "ssl.truststore.location": BrokerConfig(None, str, "PEM file with the CA certificates that client "
                                            "certificates are checked against", STRING),
    "ssl.client.auth": BrokerConfig("none", lambda text: _one_of(text, ("required", "requested", "none")),
                                    "whether SSL listeners ask clients for a certificate: required, requested "
                                    "or none", STRING),
    "ssl.principal.mapping.rules": BrokerConfig("DEFAULT", str, "how a client certificate's subject becomes a "
                                                "user name: RULE:pattern/replacement/[L|U],...,DEFAULT", STRING),
}

# topic config -> its broker synonyms, in Kafka's order
TOPIC_SYNONYMS: dict[str, list[str]] = {}
for _name, _cfg in BROKER_CONFIGS.items():
    if _cfg.topic is not None:
        TOPIC_SYNONYMS.setdefault(_cfg.topic, []).append(_name)


# ---------------------------------------------------------------- values


def parse_broker_config(key: str, value: object) -> ConfigValue:
    """Validate one broker config (a string, or a TOML number/bool) and return the typed value."""
    cfg = BROKER_CONFIGS.get(key)
    if cfg is None:
        raise InvalidConfigError(f"unknown broker config {key!r}", hint="see `kcli config describe --broker 0`")
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    try:
        return cfg.parse(text)
    except ValueError as exc:
        raise InvalidConfigError(f"invalid value {text!r} for {key}: {exc}") from None


def parse_broker_configs(pairs: Mapping[str, object]) -> dict[str, ConfigValue]:
    return {key: parse_broker_config(key, value) for key, value in pairs.items()}


def config_text(value: object) -> str | None:
    """A config value as Kafka writes it (``true``, ``604800000``); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_static: dict[str, ConfigValue] = {}


def set_static(configs: Mapping[str, ConfigValue]) -> None:
    """This process's static broker configs (Kafka's server.properties): ``kcli.toml``'s ``[broker]`` for
    every command, plus ``kcli broker serve``'s flags in a broker.  Checked as a whole, as Kafka checks
    server.properties when a broker starts (InvalidConfigError, and the previous ones stay)."""
    from kcli.cluster.metadata import ClusterState

    previous = dict(_static)
    _static.clear()
    _static.update(configs)
    try:
        check_topic_configs(ClusterState(), {})
    except InvalidConfigError:
        _static.clear()
        _static.update(previous)
        raise


def static_configs() -> dict[str, ConfigValue]:
    return dict(_static)


def _entity(broker_id: int | None) -> str:
    return CLUSTER_DEFAULT if broker_id is None else str(broker_id)


def _chain(state: ClusterState, broker_id: int | None, name: str) -> list[tuple[str, object, int]]:
    """(name, value, source) of every layer that sets broker config ``name``, the winning one first."""
    out: list[tuple[str, object, int]] = []
    dynamic = state.broker_configs
    if broker_id is not None and name in dynamic.get(str(broker_id), {}):
        out.append((name, dynamic[str(broker_id)][name], DYNAMIC_BROKER_CONFIG))
    if name in dynamic.get(CLUSTER_DEFAULT, {}):
        out.append((name, dynamic[CLUSTER_DEFAULT][name], DYNAMIC_DEFAULT_BROKER_CONFIG))
    if name in _static:
        out.append((name, _static[name], STATIC_BROKER_CONFIG))
    default = BROKER_CONFIGS[name].default
    if default is not None:
        out.append((name, default, DEFAULT_CONFIG))
    return out


def broker_value(state: ClusterState, name: str, broker_id: int | None = None) -> object:
    """The value broker ``broker_id`` (None: any broker of this process) has for broker config ``name``."""
    chain = _chain(state, broker_id, name)
    return chain[0][1]


def _topic_default_chain(state: ClusterState, broker_id: int | None,
                         key: str) -> list[tuple[str, object, int]]:
    """The broker-level layers behind topic config ``key``: every synonym's chain in Kafka's order."""
    out: list[tuple[str, object, int]] = []
    for name in TOPIC_SYNONYMS.get(key, []):
        out.extend(_chain(state, broker_id, name))
    return out


def _scaled(name: str, value: object) -> object:
    scale = BROKER_CONFIGS[name].scale if name in BROKER_CONFIGS else 1
    return value if scale == 1 else int(value) * scale  # type: ignore[call-overload]


def _resolved(state: ClusterState, overrides: Mapping[str, object], broker_id: int | None,
              key: str) -> tuple[object, str]:
    """Topic config ``key``'s value for a topic with ``overrides`` on ``broker_id``, and the name of the
    config that set it (``key`` itself, or the broker synonym the value came from)."""
    if key in overrides:
        return overrides[key], key
    chain = _topic_default_chain(state, broker_id, key)
    if chain:
        return _scaled(chain[0][0], chain[0][1]), chain[0][0]
    return TOPIC_CONFIGS[key][0], key


def topic_configs(state: ClusterState, topic: TopicMeta, broker_id: int | None = None) -> dict[str, object]:
    """Every topic config's effective value for ``topic`` on ``broker_id``: its override, else the broker
    default (the chain above), else Kafka's."""
    return {key: _resolved(state, topic.configs, broker_id, key)[0] for key in TOPIC_CONFIGS}


def check_topic_configs(state: ClusterState, overrides: Mapping[str, object], broker_id: int | None = None,
                        error: type[UsageError] = InvalidConfigError) -> None:
    """Kafka's LogConfig.validateValues, the rule across configs, on the values a topic with ``overrides``
    gets on ``broker_id`` (its own, else the broker defaults): min.compaction.lag.ms must not exceed
    max.compaction.lag.ms.  With no overrides it checks the broker defaults themselves, as Kafka does
    when a broker starts.  Every path that stores a topic's or a broker's configs runs it."""
    low, low_name = _resolved(state, overrides, broker_id, "min.compaction.lag.ms")
    high, high_name = _resolved(state, overrides, broker_id, "max.compaction.lag.ms")
    if int(low) > int(high):  # type: ignore[call-overload]
        raise error(f"{low_name} ({low}) must not be greater than {high_name} ({high})")


PartitionKey = tuple[str, int]


def hosted_configs(state: ClusterState, broker_id: int,
                   keep: Callable[[PartitionKey, PartitionMeta], bool]) -> dict[PartitionKey, tuple[PartitionMeta, dict[str, object]]]:
    """The partitions ``keep`` picks, each with its topic's effective configs on ``broker_id`` (resolved
    once per topic): what a broker's leaders and followers open their logs with, and compare against
    on every metadata change to follow a config change without a restart."""
    out: dict[PartitionKey, tuple[PartitionMeta, dict[str, object]]] = {}
    for topic in state.topics.values():
        configs: dict[str, object] | None = None
        for p, meta in enumerate(topic.partitions):
            if keep((topic.name, p), meta):
                configs = configs if configs is not None else topic_configs(state, topic, broker_id)
                out[(topic.name, p)] = (meta, configs)
    return out


def log_config(state: ClusterState, topic: TopicMeta, broker_id: int | None = None) -> LogConfig:
    """The :class:`LogConfig` a log of ``topic`` opens with on ``broker_id``."""
    return LogConfig.from_topic(topic_configs(state, topic, broker_id))


def new_topic_shape(state: ClusterState, partitions: int | None, replication_factor: int | None,
                    broker_id: int | None = None) -> tuple[int, int]:
    """A new topic's partition count and replication factor: the ones asked for, else (None)
    num.partitions and default.replication.factor."""
    if partitions is None:
        partitions = int(broker_value(state, "num.partitions", broker_id))  # type: ignore[call-overload]
    if replication_factor is None:
        replication_factor = int(broker_value(state, "default.replication.factor", broker_id))  # type: ignore[call-overload]
    return partitions, replication_factor


# ---------------------------------------------------------------- groups


@dataclass(frozen=True)
class GroupConfig:
    """A group config: the broker config it overrides for one group (its default there), and the broker
    configs bounding the values a group may set (Kafka's GroupConfig)."""

    broker: str
    low: str
    high: str
    doc: str
    type: int = INT


GROUP_CONFIGS: dict[str, GroupConfig] = {
    "consumer.session.timeout.ms": GroupConfig(
        "group.consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms",
        "group.consumer.max.session.timeout.ms", "a member of this KIP-848 consumer group silent this long is removed"),
    "consumer.heartbeat.interval.ms": GroupConfig(
        "group.consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms",
        "group.consumer.max.heartbeat.interval.ms", "how often the members of this KIP-848 consumer group heartbeat"),
}
SESSION_TIMEOUT, HEARTBEAT_INTERVAL = GROUP_CONFIGS


def group_configs(state: ClusterState, group: str, broker_id: int | None = None) -> dict[str, int]:
    """Group ``group``'s effective configs on ``broker_id``: its own, else the broker's ``group.consumer.*``
    (any group name has them, as in Kafka: a group's configs may be set before it exists)."""
    merged = {**_group_defaults(state, broker_id), **state.group_configs.get(group, {})}
    return {name: int(value) for name, value in merged.items()}  # type: ignore[call-overload]


def _group_defaults(state: ClusterState, broker_id: int | None) -> dict[str, object]:
    return {name: broker_value(state, c.broker, broker_id) for name, c in GROUP_CONFIGS.items()}


def _check_group_name(group: str) -> None:
    if not group:
        raise UsageError("a group name must not be empty (Kafka has no default group resource)")


# ---------------------------------------------------------------- describing


@dataclass
class ConfigEntry:
    """One config as DescribeConfigs reports it."""

    name: str
    value: str | None
    source: int
    read_only: bool
    type: int
    doc: str
    sensitive: bool = False
    synonyms: list[tuple[str, str | None, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "source": SOURCE_NAMES.get(self.source, "UNKNOWN"),
                "read_only": self.read_only, "sensitive": self.sensitive, "type": TYPE_NAMES.get(self.type),
                "synonyms": [{"name": n, "value": v, "source": SOURCE_NAMES.get(s, "UNKNOWN")}
                             for n, v, s in self.synonyms]}


def _selected(names: Iterable[str], wanted: Iterable[str] | None) -> list[str]:
    if wanted is None:
        return sorted(names)
    keep = set(wanted)
    return [n for n in sorted(names) if n in keep]


def describe_topic(state: ClusterState, topic: str | TopicMeta, broker_id: int | None = None,
                   keys: Iterable[str] | None = None) -> list[ConfigEntry]:
    """Every topic config of ``topic`` (a name, or a topic not created yet) or the ``keys`` asked for,
    with where its value comes from."""
    if isinstance(topic, str):
        topic = state.topic(topic)
    out = []
    for key in _selected(TOPIC_CONFIGS, keys):
        default, _parse, doc = TOPIC_CONFIGS[key]
        chain = _topic_default_chain(state, broker_id, key)
        synonyms = [(n, config_text(v), s) for n, v, s in chain]
        if key in topic.configs:
            value, source = config_text(topic.configs[key]), DYNAMIC_TOPIC_CONFIG
            synonyms.insert(0, (key, value, source))
        elif chain:
            value, source = config_text(_scaled(chain[0][0], chain[0][1])), chain[0][2]
        else:
            value, source = config_text(default), DEFAULT_CONFIG
        out.append(ConfigEntry(key, value, source, False, TOPIC_CONFIG_TYPES[key], doc, synonyms=synonyms))
    return out


def describe_broker(state: ClusterState, broker_id: int | None,
                    keys: Iterable[str] | None = None) -> list[ConfigEntry]:
    """Broker ``broker_id``'s configs; for None (the cluster default entity) only the dynamic defaults set,
    as Kafka answers ``--entity-default``."""
    out = []
    defaults = state.broker_configs.get(CLUSTER_DEFAULT, {})
    names = BROKER_CONFIGS if broker_id is not None else [n for n in BROKER_CONFIGS if n in defaults]
    for name in _selected(names, keys):
        cfg = BROKER_CONFIGS[name]
        if broker_id is None:
            chain = [(name, defaults[name], DYNAMIC_DEFAULT_BROKER_CONFIG)]
        else:
            chain = _chain(state, broker_id, name)
        synonyms = [(n, config_text(v), s) for n, v, s in chain]
        if cfg.topic is not None:  # the other broker names of the same topic config
            for other in TOPIC_SYNONYMS[cfg.topic]:
                if other != name:
                    synonyms += [(n, config_text(v), s) for n, v, s in _chain(state, broker_id, other)]
        value, source = (config_text(chain[0][1]), chain[0][2]) if chain else (None, DEFAULT_CONFIG)
        if cfg.sensitive:
            value, synonyms = None, [(n, None, s) for n, _v, s in synonyms]
        out.append(ConfigEntry(name, value, source, not cfg.dynamic, cfg.type, cfg.doc, cfg.sensitive, synonyms))
    return out


def describe_group(state: ClusterState, group: str, broker_id: int | None = None,
                   keys: Iterable[str] | None = None) -> list[ConfigEntry]:
    """Group ``group``'s configs (any name, as Kafka answers): its own value (GROUP_CONFIG) or the broker
    config's (DEFAULT_CONFIG, the broker's chain as synonyms)."""
    _check_group_name(group)
    own = state.group_configs.get(group, {})
    values = group_configs(state, group, broker_id)
    out = []
    for name in _selected(GROUP_CONFIGS, keys):
        c = GROUP_CONFIGS[name]
        value = config_text(values[name])
        source = GROUP_CONFIG if name in own else DEFAULT_CONFIG
        synonyms = [(name, value, source)] + [(n, config_text(v), s) for n, v, s in _chain(state, broker_id, c.broker)]
        out.append(ConfigEntry(name, value, source, False, c.type, c.doc, synonyms=synonyms))
    return out


# ---------------------------------------------------------------- altering

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3  # IncrementalAlterConfigs' operations
OPERATION_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}


@dataclass(frozen=True)
class ConfigOp:
    """One change: ``op`` (SET/DELETE/APPEND/SUBTRACT) of config ``name`` with ``value``."""

    name: str
    op: int
    value: str | None = None


class BrokerConfigError(UsageError):
    """A broker-config change Kafka refuses as an invalid request (unknown or read-only name, bad value)."""


def _list_values(value: object) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _apply_ops(current: Mapping[str, object], ops: list[ConfigOp], known: Mapping[str, object],
               parse: Callable[[str, str], ConfigValue], what: str,
               error: type[UsageError]) -> dict[str, object]:
    """The configs after ``ops``; every op is checked before any is applied, so a bad one changes
    nothing."""
    names = [op.name for op in ops]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"duplicate config keys for {what}: {', '.join(dupes)}")
    out = dict(current)
    for op in ops:
        if op.name not in known:
            raise error(f"unknown config {op.name!r} for {what}")
        if op.op == DELETE:
            out.pop(op.name, None)
            continue
        if op.op not in (SET, APPEND, SUBTRACT):
            raise UsageError(f"unknown config operation {op.op} for {op.name}")
        if op.value is None:  # Kafka: an invalid request, for any resource
            raise UsageError(f"config {op.name} of {what}: a null value is not allowed with "
                             f"{OPERATION_NAMES[op.op]}")
        text = op.value
        if op.op in (APPEND, SUBTRACT):
            kind = TOPIC_CONFIG_TYPES.get(op.name) or getattr(known.get(op.name), "type", None)
            if kind != LIST:
                raise error(f"config {op.name} is not a list: {OPERATION_NAMES[op.op]} is not allowed")
            base = _list_values(out[op.name]) if op.name in out else _list_values(_known_default(known, op.name))
            given = _list_values(text)
            if op.op == APPEND:
                merged = base + [v for v in given if v not in base]
            else:
                merged = [v for v in base if v not in given]
            text = ",".join(merged)
        out[op.name] = parse(op.name, text)
    return out


def _known_default(known: Mapping[str, object], name: str) -> object:
    entry = known[name]
    if isinstance(entry, BrokerConfig):
        return entry.default or ""
    return entry[0]  # type: ignore[index]


def _parse_topic(name: str, text: str) -> ConfigValue:
    return parse_topic_config(name, text)


def _parse_dynamic_broker(name: str, text: str) -> ConfigValue:
    if not BROKER_CONFIGS[name].dynamic:
        raise BrokerConfigError(f"cannot update broker config {name} dynamically: it is read-only",
                                hint=f"set it in kcli.toml's [broker] table or with `kcli broker serve "
                                     f"--override {name}=...`")
    try:
        return parse_broker_config(name, text)
    except InvalidConfigError as exc:
        raise BrokerConfigError(str(exc)) from None


def _change_configs(metadata: Metadata, validate_only: bool,
                    new: Callable[[ClusterState], tuple[Mapping[str, object], dict[str, object]]],
                    record: Callable[[dict[str, object]], MetaRecord]) -> dict[str, object]:
    """Store what ``new(state)`` makes of one entity's configs -- (its configs now, the checked new
    ones) -- as ``record(new configs)``, atomically under the metadata lock, unless only validating or
    nothing changes; returns the new configs.  Nothing changes on any error ``new`` raises."""
    result: dict[str, object] = {}

    def fn(state: ClusterState) -> list[MetaRecord]:
        current, configs = new(state)
        result.update(configs)
        return [] if validate_only or configs == current else [record(dict(configs))]

    if validate_only:
        fn(metadata.ensure())
    else:
        metadata.change(fn)
    return result


def alter_topic(metadata: Metadata, name: str, ops: list[ConfigOp], validate_only: bool = False,
                replace: bool = False, broker_id: int | None = None) -> dict[str, object]:
    """Apply ``ops`` to topic ``name``'s overrides atomically (``replace``: the ops are the whole new set,
    AlterConfigs' semantics), checked against the defaults of broker ``broker_id`` (None: this
    process's); returns the new overrides.  Nothing changes on any error."""
    def new(state: ClusterState) -> tuple[Mapping[str, object], dict[str, object]]:
        topic = state.topics.get(name)
        if topic is None:
            raise NotFoundError(f"topic {name!r} does not exist", hint="see `kcli topic list`")
        base = {} if replace else topic.configs
        configs = _apply_ops(base, ops, TOPIC_CONFIGS, _parse_topic, f"topic {name!r}", InvalidConfigError)
        check_topic_configs(state, configs, broker_id)
        return topic.configs, configs

    return _change_configs(metadata, validate_only, new,
                           lambda configs: {"type": "topic_config", "name": name, "configs": configs})


def alter_broker(metadata: Metadata, broker_id: int | None, ops: list[ConfigOp], validate_only: bool = False,
                 replace: bool = False) -> dict[str, object]:
    """Apply ``ops`` to the dynamic configs of broker ``broker_id`` (None: the cluster-wide defaults)
    atomically; returns the new dynamic configs of that entity.  Nothing changes on any error."""
    entity = _entity(broker_id)
    what = "the cluster-wide broker defaults" if broker_id is None else f"broker {broker_id}"

    def new(state: ClusterState) -> tuple[Mapping[str, object], dict[str, object]]:
        if broker_id is not None and broker_id not in state.brokers:
            raise NotFoundError(f"broker {broker_id} does not exist", hint="see `kcli cluster status`")
        current = state.broker_configs.get(entity, {})
        configs = _apply_ops({} if replace else current, ops, BROKER_CONFIGS, _parse_dynamic_broker, what,
                             BrokerConfigError)
        _check_broker_defaults(state, entity, configs)
        return current, configs

    return _change_configs(metadata, validate_only, new,
                           lambda configs: {"type": "broker_config", "entity": entity, "configs": configs})


def _check_broker_defaults(state: ClusterState, entity: str, configs: dict[str, object]) -> None:
    """The topic defaults of every broker that dynamic entity ``entity`` would get ``configs`` for (one
    broker, or all of them and this process for the cluster-wide defaults) pass check_topic_configs."""
    from kcli.cluster.metadata import ClusterState

    after = ClusterState()
    after.broker_configs = {**state.broker_configs, entity: configs}
    for broker_id in [None, *state.brokers] if entity == CLUSTER_DEFAULT else [int(entity)]:
        check_topic_configs(after, {}, broker_id, BrokerConfigError)


def _parse_group(name: str, text: str) -> ConfigValue:
    try:
        return int_range(1, 2**31 - 1)(text)
    except ValueError as exc:
        why = exc if text.strip().lstrip("+-").isdigit() else "not an integer"
        raise InvalidConfigError(f"invalid value {text!r} for group config {name}: {why}") from None


def _check_group_values(state: ClusterState, configs: Mapping[str, object], broker_id: int | None) -> None:
    """Kafka's GroupConfig checks: a value a group sets lies within the broker's bounds, and the
    session timeout stays above the heartbeat interval."""
    for name, value in configs.items():
        c = GROUP_CONFIGS[name]
        if int(value) < int(broker_value(state, c.low, broker_id)):  # type: ignore[call-overload]
            raise InvalidConfigError(f"{name} must be greater than or equal to {c.low} "
                                     f"({broker_value(state, c.low, broker_id)})")
        if int(value) > int(broker_value(state, c.high, broker_id)):  # type: ignore[call-overload]
            raise InvalidConfigError(f"{name} must be less than or equal to {c.high} "
                                     f"({broker_value(state, c.high, broker_id)})")
    effective = {**_group_defaults(state, broker_id), **configs}
    if int(effective[SESSION_TIMEOUT]) <= int(effective[HEARTBEAT_INTERVAL]):  # type: ignore[call-overload]
        raise InvalidConfigError(f"{SESSION_TIMEOUT} must be greater than {HEARTBEAT_INTERVAL}")


def alter_group(metadata: Metadata, group: str, ops: list[ConfigOp], validate_only: bool = False,
                replace: bool = False, broker_id: int | None = None) -> dict[str, object]:
    """Apply ``ops`` to group ``group``'s configs atomically, checked against the bounds of broker
    ``broker_id`` (None: this process's); returns the group's new configs.  Nothing changes on any error.
    The group need not exist (Kafka keeps configs of any group name)."""
    _check_group_name(group)

    def new(state: ClusterState) -> tuple[Mapping[str, object], dict[str, object]]:
        current = state.group_configs.get(group, {})
        configs = _apply_ops({} if replace else current, ops, GROUP_CONFIGS, _parse_group, f"group {group!r}",
                             InvalidConfigError)
        _check_group_values(state, configs, broker_id)
        return current, configs

    return _change_configs(metadata, validate_only, new,
                           lambda configs: {"type": "group_config", "group": group, "configs": configs})
