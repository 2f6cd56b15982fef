"""Running real ``kcli broker serve`` processes in tests (the ``brokers`` and ``broker`` fixtures in
conftest.py), and raw Kafka-protocol calls to them.

Every broker listens on a TCP port the kernel picks (``--listener 127.0.0.1:0``) and is found through
the ``broker.json`` it writes, so parallel test workers never race for ports.  The fixture stops every
broker it started -- SIGTERM, then SIGKILL if it hangs -- whether the test passed or not.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from kcli.protocol import ApiKey, RequestHeader, decode_frame_size, decode_response, encode_request
from support.runner import KCLI, KcliRunner
from support.waits import stop_process

START_TIMEOUT = 30.0
# Kafka's default group.initial.rebalance.delay.ms, for brokers whose groups have kafka-python members:
# its group leader assigns with the topic metadata it holds at the first rebalance, and one that comes at
# once (the test brokers' 0) can come before it has any; it then assigns nothing until a later refresh.
KAFKA_REBALANCE_DELAY = ("--group-initial-rebalance-delay-ms", "3000")


class BrokerProcess:
    def __init__(self, data_dir: Path, broker_id: int, proc: subprocess.Popen, log_path: Path) -> None:
        self.data_dir = data_dir
        self.broker_id = broker_id
        self.proc = proc
        self.log_path = log_path
        self.info: dict = {}

    @property
    def folder(self) -> Path:
        return self.data_dir / f"broker-{self.broker_id}"

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> str:
        return str(self.info["socket"])

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        info_path = self.folder / "broker.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker {self.broker_id} exited {self.proc.returncode}:\n{self.log()}")
            try:
                info = json.loads(info_path.read_text())
                if info.get("pid") == self.proc.pid:
                    self.info = info
                    return
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"broker {self.broker_id} did not start within {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        return stop_process(self.proc, timeout, sig)


class Brokers:
    """Starts brokers on one data dir and remembers them so they can all be stopped."""

    def __init__(self, data_dir: Path, workdir: Path) -> None:
        self.data_dir = data_dir
        self.workdir = workdir
        self.runner = KcliRunner(data_dir)
        self.env = self.runner.env
        self.started: list[BrokerProcess] = []

    def kcli(
        self, *args: object, input: bytes | str | None = None, ok: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """``kcli ARGS...`` on this data dir, as the ``kcli`` fixture runs it."""
        return self.runner(*args, input=input, ok=ok, timeout=timeout)

    def init(self, brokers: int = 1) -> None:
        """``kcli cluster init`` as a setup step (in this process: see KcliRunner.in_process)."""
        self.runner.in_process("cluster", "init", "--brokers", brokers)

    def spawn(self, broker_id: int = 0, *extra: str, listener: str | None = "127.0.0.1:0") -> BrokerProcess:
        """Start a broker process without waiting for it.  A new group rebalances at once (as Kafka's
        own test setups have it) unless ``extra`` sets --group-initial-rebalance-delay-ms."""
        log_path = self.workdir / f"broker-{broker_id}-{len(self.started)}.log"
        args = [*KCLI, "broker", "serve", "--id", str(broker_id), *extra]
        if "--group-initial-rebalance-delay-ms" not in extra:
            args += ["--group-initial-rebalance-delay-ms", "0"]
        if listener is not None:
            args += ["--listener", listener]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        broker = BrokerProcess(self.data_dir, broker_id, proc, log_path)
        self.started.append(broker)
        return broker

    def start(self, broker_id: int = 0, *extra: str, listener: str | None = "127.0.0.1:0") -> BrokerProcess:
        broker = self.spawn(broker_id, *extra, listener=listener)
        broker.wait_ready()
        return broker

    def stop_all(self) -> None:
        for broker in self.started:
            broker.stop()

    def print_logs(self, lines: int = 80) -> None:
        """The tail of every broker's log, for the report of a failed test."""
        for broker in self.started:
            tail = broker.log().splitlines()[-lines:]
            print(f"----- {broker.log_path.name} (last {len(tail)} lines)", *tail, sep="\n")


# ---------------------------------------------------------------- raw protocol helpers


def connect(address: str | tuple[str, int], timeout: float = 10.0) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    return socket.create_connection(address, timeout=timeout)


def read_frame(sock: socket.socket) -> bytes | None:
    """One response payload, or None when the broker closed the connection."""

    def exact(n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    prefix = exact(4)
    if prefix is None:
        return None
    return exact(decode_frame_size(prefix))


def request_frame(api_key: int, version: int, body: dict, correlation_id: int = 1) -> bytes:
    return encode_request(RequestHeader(api_key, version, correlation_id, "test"), body)


def call(sock: socket.socket, api_key: int, version: int, body: dict, correlation_id: int = 1):
    sock.sendall(request_frame(api_key, version, body, correlation_id))
    payload = read_frame(sock)
    assert payload is not None, "broker closed the connection"
    response = decode_response(api_key, version, payload)
    assert response.correlation_id == correlation_id
    return response.body


def api_versions_ok(sock: socket.socket) -> bool:
    body = call(sock, ApiKey.API_VERSIONS, 2, {}, correlation_id=99)
    return body.error_code == 0 and any(k.api_key == ApiKey.PRODUCE for k in body.api_keys)


def closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
