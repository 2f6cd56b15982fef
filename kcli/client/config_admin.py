"""Describe and change configs of topics, brokers, the cluster-wide broker defaults and groups.

Two ways, one interface: straight on the data directory's metadata (:class:`EmbeddedConfigs`, which is
what brokers read too), or through a cluster's brokers with DescribeConfigs / IncrementalAlterConfigs
(:class:`RemoteConfigs`: kcli's own brokers while they run -- only a broker knows its static configs --
or any Kafka cluster at ``--bootstrap-server``).  :func:`open_configs` chooses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kcli.cluster import configs as cfg
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.errors import InvalidConfigError, NotFoundError

if TYPE_CHECKING:
    from kcli.client.broker_pool import BrokerPool
    from kcli.net.connection import BrokerConnection

TOPIC, BROKER, GROUP = 2, 4, 32  # Kafka's config resource types


@dataclass(frozen=True)
class Resource:
    """What configs belong to: a topic, a broker (``name`` its id), the cluster-wide broker defaults
    (a broker resource named "", Kafka's ``--entity-default``) or a group."""

    type: int
    name: str

    @property
    def broker_id(self) -> int | None:
        return int(self.name) if self.type == BROKER and self.name else None

    def label(self) -> str:
        if self.type == TOPIC:
            return f"topic {self.name!r}"
        if self.type == GROUP:
            return f"group {self.name!r}"
        return f"broker {self.name}" if self.name else "the cluster-wide broker defaults"


def topic(name: str) -> Resource:
    return Resource(TOPIC, name)


def group(name: str) -> Resource:
    return Resource(GROUP, name)


def broker(broker_id: int | None) -> Resource:
    """Broker ``broker_id``; None for the cluster-wide defaults."""
    return Resource(BROKER, "" if broker_id is None else str(broker_id))


def parse_ops(sets: list[str] | tuple[str, ...], deletes: list[str] | tuple[str, ...]) -> list[cfg.ConfigOp]:
    """``--set KEY=VALUE`` and ``--delete KEY`` options as changes (validated by whoever applies them)."""
    ops = []
    for pair in sets:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidConfigError(f"config {pair!r} is not KEY=VALUE")
        ops.append(cfg.ConfigOp(key.strip(), cfg.SET, value.strip()))
    ops += [cfg.ConfigOp(key.strip(), cfg.DELETE) for key in deletes]
    return ops


class Configs(Protocol):
    def describe(self, resource: Resource, keys: list[str] | None = None) -> list[cfg.ConfigEntry]: ...

    def alter(self, resource: Resource, ops: list[cfg.ConfigOp], validate_only: bool = False) -> None: ...


class EmbeddedConfigs:
    """Configs in the data directory's metadata (an atomic change under the metadata lock, which every
    broker follows)."""

    def __init__(self, datadir: DataDir) -> None:
        self.metadata = Metadata(datadir)

    def describe(self, resource: Resource, keys: list[str] | None = None) -> list[cfg.ConfigEntry]:
        state = self.metadata.ensure()
        if resource.type == TOPIC:
            return cfg.describe_topic(state, resource.name, None, keys)
        if resource.type == GROUP:
            return cfg.describe_group(state, resource.name, None, keys)
        _check_broker(state.brokers, resource)
        return cfg.describe_broker(state, resource.broker_id, keys)

    def alter(self, resource: Resource, ops: list[cfg.ConfigOp], validate_only: bool = False) -> None:
        if resource.type == TOPIC:
            cfg.alter_topic(self.metadata, resource.name, ops, validate_only)
        elif resource.type == GROUP:
            cfg.alter_group(self.metadata, resource.name, ops, validate_only)
        else:
            cfg.alter_broker(self.metadata, resource.broker_id, ops, validate_only)


def _check_broker(brokers: list[int], resource: Resource) -> None:
    if resource.broker_id is not None and resource.broker_id not in brokers:
        raise NotFoundError(f"broker {resource.broker_id} does not exist",
                            hint=f"the cluster's brokers are {', '.join(map(str, brokers))}")


class RemoteConfigs:
    """Configs through a cluster's brokers: a broker's own resource goes to that broker, as Kafka's
    clients do; the rest to any broker."""

    def __init__(self, datadir: DataDir | None = None, bootstrap: str | None = None) -> None:
        from kcli.client.broker_pool import BrokerPool
        from kcli.net.connection import REQUEST_TIMEOUT

        self.pool: BrokerPool = BrokerPool(datadir, bootstrap, 2 * REQUEST_TIMEOUT)

    def _conn(self, resource: Resource) -> BrokerConnection:
        node = resource.broker_id
        if node is None:
            return self.pool.any()
        if self.pool.datadir is None and node not in self.pool.addresses:
            self.pool.metadata([])  # learn the brokers' addresses
            if node not in self.pool.addresses:
                raise NotFoundError(f"broker {node} is not in the cluster")
        return self.pool.node(node)

    def describe(self, resource: Resource, keys: list[str] | None = None) -> list[cfg.ConfigEntry]:
        from kcli.client.kafka_errors import raise_for
        from kcli.protocol import ApiKey

        body = {
            "resources": [{"resource_type": resource.type, "resource_name": resource.name,
                           "configuration_keys": keys}],
            "include_synonyms": True,
            "include_documentation": True,
        }
        try:
            result = self.pool.send(self._conn(resource), ApiKey.DESCRIBE_CONFIGS, body).results[0]
        finally:
            self.pool.close()
        raise_for(result.error_code, result.error_message, resource.label())
        out = []
        for c in result.configs:
            source = c.config_source
            if source == -1:  # v0: only whether it is a default
                source = cfg.DEFAULT_CONFIG if c.is_default else cfg.STATIC_BROKER_CONFIG
            out.append(cfg.ConfigEntry(c.name, c.value, source, c.read_only, c.config_type, c.documentation or "",
                                       c.is_sensitive, [(s.name, s.value, s.source) for s in c.synonyms]))
        return out

    def alter(self, resource: Resource, ops: list[cfg.ConfigOp], validate_only: bool = False) -> None:
        from kcli.client.kafka_errors import raise_for
        from kcli.protocol import ApiKey

        body = {
            "resources": [{"resource_type": resource.type, "resource_name": resource.name,
                           "configs": [{"name": o.name, "config_operation": o.op, "value": o.value} for o in ops]}],
            "validate_only": validate_only,
        }
        try:
            result = self.pool.send(self._conn(resource), ApiKey.INCREMENTAL_ALTER_CONFIGS, body).responses[0]
        finally:
            self.pool.close()
        raise_for(result.error_code, result.error_message, resource.label())


def open_configs(datadir: DataDir | None, bootstrap: str | None = None) -> Configs:
    """Through ``bootstrap``'s cluster, or the data dir's live brokers, else the data dir itself."""
    from kcli.client.connect import open_admin

    remote: Callable[..., Configs] = RemoteConfigs  # typed as the protocol both sides meet
    return open_admin(datadir, bootstrap, remote, EmbeddedConfigs)
