"""Where a running broker can be reached, as files in its folder.

``broker-N/broker.sock`` is its Unix socket (mode 0600: only the data dir's owner may talk to it).
``broker-N/broker.json`` says how else to reach it (TCP listener), its pid and since when it runs; it is
written once the broker listens and removed on a clean shutdown.  A broker is *alive* while it holds its
broker lock, never merely because these files exist (a crash leaves them behind).

Imported by the client too (to find sockets), so it depends on nothing heavier than the data dir.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

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
            f"bad listener {text!r}", hint="use PORT or HOST:PORT, e.g. 127.0.0.1:9092"
        ) from None
    if not 0 <= number <= 65535:
        raise UsageError(f"listener port {number} is out of range 0..65535")
    return host, number


@dataclass
class BrokerInfo:
    """The contents of ``broker.json``."""

    broker_id: int
    pid: int
    socket: str
    host: str | None = None
    port: int | None = None
    started_ms: int = 0

    @property
    def listener(self) -> str | None:
        if self.host is None or self.port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "listener": self.listener}


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
        return BrokerInfo(
            int(data["broker_id"]),
            int(data["pid"]),
            str(data["socket"]),
            data.get("host"),
            data.get("port"),
            int(data.get("started_ms", 0)),
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
