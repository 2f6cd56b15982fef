"""Where a running broker can be reached, as files in its folder.

``broker-N/broker.sock`` is its Unix socket (mode 0600: only the data dir's owner may talk to it).
``broker-N/broker.json`` says how else to reach it (its TCP listeners, each with the endpoint it
advertises to clients), its pid and since when it runs; it is written once the broker listens and
removed on a clean shutdown.  A broker is *alive* while it holds its
broker lock, never merely because these files exist (a crash leaves them behind).

Imported by the client too (to find sockets), so it depends on nothing heavier than the data dir.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kcli.cluster.datadir import DataDir
from kcli.errors import UsageError
from kcli.storage.fileio import write_file

SOCKET_NAME = "broker.sock"
INFO_NAME = "broker.json"
DEFAULT_HOST = "127.0.0.1"
# AF_UNIX paths are limited to 108 bytes including the terminating NUL
MAX_UNIX_PATH = 107


def socket_path(datadir: DataDir, broker_id: int) -> str:
    return os.path.join(datadir.broker_dir(broker_id), SOCKET_NAME)


def info_path(datadir: DataDir, broker_id: int) -> str:
    return os.path.join(datadir.broker_dir(broker_id), INFO_NAME)


def parse_listener(text: str) -> tuple[str, int]:
    """``PORT``, ``:PORT`` or ``HOST:PORT`` (IPv6 as ``[::1]:PORT``) -> (host, port); host defaults to
    127.0.0.1 so a broker is never exposed beyond this machine unless asked.  Port 0 picks a free one."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        raise UsageError(
            f"bad listener {text!r}", hint="use PORT, HOST:PORT or NAME://HOST:PORT, e.g. SSL://127.0.0.1:9093"
        ) from None
    if not 0 <= number <= 65535:
        raise UsageError(f"listener port {number} is out of range 0..65535")
    return host, number


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Kafka's listener.security.protocol.map default: each protocol is a listener name of its own
DEFAULT_PROTOCOL_MAP = {p: p for p in SECURITY_PROTOCOLS}


@dataclass(frozen=True)
class Endpoint:
    """One listener: its name (PLAINTEXT, SSL, or a custom name the protocol map gives a protocol),
    address and security protocol."""

    listener: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.listener}://{self.address}"

    def to_json(self) -> dict[str, object]:
        return {"listener": self.listener, "host": self.host, "port": self.port,
                "security_protocol": self.security_protocol}


def parse_protocol_map(text: str | None) -> dict[str, str]:
    """``listener.security.protocol.map``: ``NAME:PROTOCOL,...`` on top of Kafka's default (every
    protocol's own name)."""
    out = dict(DEFAULT_PROTOCOL_MAP)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, protocol = item.partition(":")
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not sep or not name or protocol not in SECURITY_PROTOCOLS:
            raise UsageError(f"bad listener.security.protocol.map entry {item.strip()!r}",
                             hint=f"use NAME:PROTOCOL with a protocol of {', '.join(SECURITY_PROTOCOLS)}")
        out[name] = protocol
    return out


def parse_endpoint(text: str, protocols: Mapping[str, str] = DEFAULT_PROTOCOL_MAP) -> Endpoint:
    """``NAME://HOST:PORT`` as Kafka's ``listeners`` (an empty host is 127.0.0.1 here, not every
    interface: give 0.0.0.0 for that), or kcli's older ``[HOST:]PORT`` for a PLAINTEXT listener."""
    name, sep, rest = text.strip().partition("://")
    if not sep:
        return Endpoint("PLAINTEXT", *parse_listener(text))
    name = name.strip().upper()
    protocol = protocols.get(name)
    if protocol is None:
        raise UsageError(f"listener {text.strip()!r} has no security protocol",
                         hint=f"use one of {', '.join(SECURITY_PROTOCOLS)}, or map the name in "
                              "--listener-security-protocol-map NAME:PROTOCOL")
    return Endpoint(name, *parse_listener(rest), protocol)


def parse_endpoints(texts: Iterable[str], protocols: Mapping[str, str] = DEFAULT_PROTOCOL_MAP) -> list[Endpoint]:
    """Listeners from several ``--listener`` values, each of which may hold a comma-separated list
    (Kafka's ``listeners``); a name may appear once, as in Kafka."""
    out: list[Endpoint] = []
    for text in texts:
        for item in text.split(","):
            if item.strip():
                endpoint = parse_endpoint(item, protocols)
                if any(e.listener == endpoint.listener for e in out):
                    raise UsageError(f"listener name {endpoint.listener} is given twice",
                                     hint="each listener needs its own name: map extra names with "
                                          "--listener-security-protocol-map NAME:PROTOCOL")
                out.append(endpoint)
    return out


@dataclass
class BrokerInfo:
    """The contents of ``broker.json``.  ``endpoints`` are the advertised endpoints of every TCP
    listener (what Metadata tells clients that came in by that listener), ``listeners`` where they are
    bound; ``host``/``port`` repeat the first advertised one's, for older readers."""

    broker_id: int
    pid: int
    socket: str
    host: str | None = None
    port: int | None = None
    started_ms: int = 0
    endpoints: list[Endpoint] = field(default_factory=list)
    listeners: list[Endpoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.endpoints and self.host is not None and self.port is not None:
            self.endpoints = [Endpoint("PLAINTEXT", self.host, self.port)]
        elif self.endpoints and self.host is None:
            self.host, self.port = self.endpoints[0].host, self.endpoints[0].port

    @property
    def listener(self) -> str | None:
        return self.endpoints[0].address if self.endpoints else None

    def endpoint(self, listener: str | None) -> Endpoint | None:
        """The advertised endpoint of ``listener`` (None if this broker has no such listener); with
        ``listener`` None (a client on the Unix socket), the first TCP one."""
        if listener is None:
            return self.endpoints[0] if self.endpoints else None
        return next((e for e in self.endpoints if e.listener == listener), None)

    def to_json(self) -> dict[str, object]:
        return {"broker_id": self.broker_id, "pid": self.pid, "socket": self.socket, "host": self.host,
                "port": self.port, "started_ms": self.started_ms, "listener": self.listener,
                "endpoints": [e.to_json() for e in self.endpoints],
                "listeners": [e.to_json() for e in self.listeners]}


def write_info(datadir: DataDir, info: BrokerInfo) -> None:
    """Write ``broker.json`` atomically (temp + rename): readers never see half a file."""
    path = info_path(datadir, info.broker_id)
    tmp = path + ".tmp"
    write_file(tmp, (json.dumps(info.to_json(), sort_keys=True) + "\n").encode())
    os.replace(tmp, path)


def read_info(datadir: DataDir, broker_id: int) -> BrokerInfo | None:
    """``broker.json`` of a broker, or None if missing or unreadable (it may be mid-start)."""
    try:
        with open(info_path(datadir, broker_id), encoding="utf-8") as fh:
            data = json.load(fh)
        endpoints, bound = (
            [Endpoint(str(e["listener"]), str(e["host"]), int(e["port"]), str(e["security_protocol"]))
             for e in data.get(name) or ()]
            for name in ("endpoints", "listeners")
        )
        return BrokerInfo(
            int(data["broker_id"]),
            int(data["pid"]),
            str(data["socket"]),
            data.get("host"),
            data.get("port"),
            int(data.get("started_ms", 0)),
            endpoints,
            bound,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_info(datadir: DataDir, broker_id: int) -> None:
    for path in (info_path(datadir, broker_id), socket_path(datadir, broker_id)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def live_brokers(datadir: DataDir) -> dict[int, BrokerInfo | None]:
    """Brokers holding their lock right now, with their ``broker.json`` (None while still starting)."""
    return {b: read_info(datadir, b) for b in datadir.live_brokers()}


class LiveBrokers:
    """A short-lived cache of :func:`live_brokers`: liveness costs a few syscalls per broker, and a
    Metadata request should not pay them for every partition."""

    def __init__(self, datadir: DataDir, ttl: float = 0.5) -> None:
        self.datadir = datadir
        self.ttl = ttl
        self._at = 0.0
        self._value: dict[int, BrokerInfo | None] = {}

    def get(self) -> dict[int, BrokerInfo | None]:
        now = time.monotonic()
        if now - self._at > self.ttl:
            self._value = live_brokers(self.datadir)
            self._at = now
        return self._value

    def invalidate(self) -> None:
        self._at = 0.0
