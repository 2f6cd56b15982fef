"""The brokers of one cluster as a client sees them: a connection per broker (reached by its socket in
the data dir, or by the address the last Metadata gave), the bootstrap servers, and the leaders and
partition counts from the last Metadata answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kcli.client.kafka_errors import raise_for
from kcli.cluster.datadir import DataDir
from kcli.errors import ProtocolError, UsageError
from kcli.net.connection import (
    Address,
    BrokerConnection,
    UnreachableError,
    address_label,
    parse_bootstrap_servers,
)
from kcli.protocol import ApiKey, ErrorCode, Struct

ATTEMPTS = 6  # requests tried this often before an error is final (each after a metadata refresh)


class BrokerPool:
    """Connections to the brokers of one cluster, and what the last Metadata said about it."""

    def __init__(self, datadir: DataDir | None, bootstrap: str | None, timeout: float) -> None:
        if datadir is None and bootstrap is None:
            raise UsageError("a remote transport needs a data dir or a broker address")
        self.datadir = datadir
        self.bootstrap = parse_bootstrap_servers(bootstrap) if bootstrap else None
        self.timeout = timeout
        self.conns: dict[int | str, BrokerConnection] = {}
        self.addresses: dict[int, tuple[str, int]] = {}
        self.leaders: dict[tuple[str, int], int] = {}
        self.counts: dict[str, int] = {}

    def _address(self, node: int) -> Address:
        if self.datadir is not None:
            from kcli.cluster.broker_info import socket_path

            return socket_path(self.datadir, node)
        address = self.addresses.get(node)
        if address is None or address[1] < 0:
            raise UnreachableError(f"broker {node} has no TCP listener that kcli can reach")
        return address

    def node(self, node: int) -> BrokerConnection:
        conn = self.conns.get(node)
        if conn is None:
            starting = None
            if self.datadir is not None:
                datadir = self.datadir

                def starting() -> bool:
                    return node in datadir.live_brokers()

            conn = self.conns[node] = BrokerConnection(self._address(node), self.timeout, starting=starting)
        return conn

    def all_down(self) -> bool:
        """With a data dir: no broker is alive any more (commands then go embedded, as at start)."""
        return self.datadir is not None and not self.datadir.live_brokers()

    def any(self) -> BrokerConnection:
        """A connection to some live broker (for Metadata and admin requests)."""
        for conn in self.conns.values():
            return conn
        if self.bootstrap is not None:
            conn = self.conns["bootstrap"] = self._bootstrap()
            return conn
        from kcli.cluster.liveness import freshest_first

        assert self.datadir is not None  # the constructor demands a data dir or bootstrap servers
        errors = []
        for node in freshest_first(self.datadir, self.datadir.live_brokers()):
            try:
                return self.node(node)
            except UnreachableError as exc:
                errors.append(str(exc))
        raise UnreachableError(
            "; ".join(errors) or "no broker is running", hint="start one with `kcli broker serve`"
        )

    def _bootstrap(self) -> BrokerConnection:
        """Like Kafka's clients: each bootstrap server in turn, then any broker the last Metadata named."""
        failures: list[str] = []
        bootstrap = self.bootstrap or []
        known = [a for a in self.addresses.values() if a[1] > 0 and a not in bootstrap]
        for address in bootstrap + known:
            try:
                return BrokerConnection(address, self.timeout)
            except UnreachableError as exc:
                failures.append(f"{address_label(address)} ({exc.reason})")
        raise UnreachableError(f"cannot reach any bootstrap server {', '.join(failures)}")

    def drop(self, conn: BrokerConnection) -> None:
        for key, value in list(self.conns.items()):
            if value is conn:
                del self.conns[key]
        conn.close()

    def send(self, conn: BrokerConnection, api_key: int, body: Mapping[str, Any], **kw: Any) -> Struct:
        try:
            return conn.request(api_key, body, **kw)
        except (UnreachableError, ProtocolError):
            self.drop(conn)
            raise

    def metadata(self, topics: list[str] | None, create: bool = False) -> Struct:
        conn = self.any()
        body = {
            "topics": None if topics is None else [{"name": t} for t in topics],
            "allow_auto_topic_creation": create,
        }
        resp = self.send(conn, ApiKey.METADATA, body)
        raise_for(resp.error_code, None, "metadata")  # v13's top-level error code (0 before v13)
        for b in resp.brokers:
            self.addresses[b.node_id] = (b.host, b.port)
        for t in resp.topics:
            if t.error_code != ErrorCode.NONE:
                self.counts.pop(t.name, None)
                continue
            self.counts[t.name] = len(t.partitions)
            for p in t.partitions:
                self.leaders[(t.name, p.partition_index)] = p.leader_id
        return resp

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()
