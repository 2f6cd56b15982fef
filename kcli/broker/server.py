"""Sockets: a Unix listener (always) and a TCP listener (when asked), one thread per connection.

A connection reads one size-prefixed frame at a time and answers it before reading the next, so
responses go back in request order as Kafka requires even when a client pipelines requests.  A
request that cannot be served but whose header reads (a version we do not speak, a truncated body)
gets an error answer and the connection goes on (see :mod:`kcli.broker.dispatch`).  Bad clients cost
only their own connection: a frame larger than the cap, a header that does not decode, an API key we
do not know, or a client that stalls mid-frame for too long all close it, and every other connection
keeps being served.  Nothing received is ever pickled, eval'd or executed.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
import time

from kcli.broker import peercred
from kcli.broker.dispatch import CloseConnection, Dispatcher
from kcli.broker.session import Session, serving
from kcli.errors import BrokerError, ProtocolError
from kcli.protocol import DEFAULT_MAX_FRAME_SIZE, decode_frame_size

log = logging.getLogger("kcli.broker")

IDLE_TIMEOUT = 600.0  # Kafka's connections.max.idle.ms
MAX_CONNECTIONS = 1024  # one thread each: beyond this, new connections are closed at once
FRAME_TIMEOUT = 60.0  # once a frame has started, the rest must arrive within this
_CHUNK = 1 << 20


class _Connection(socketserver.BaseRequestHandler):
    server: _Listener

    def setup(self) -> None:
        self.server.owner._opened(self.request)

    def finish(self) -> None:
        self.server.owner._closed(self.request)

    def handle(self) -> None:
        owner: Server = self.server.owner
        sock: socket.socket = self.request
        peer = self.server.peer_name(self.client_address)
        try:
            with serving(self.server.session_for(self.client_address)):
                self._serve(owner, sock, peer)
        except CloseConnection as exc:
            log.info("closing connection %s: %s", peer, exc)
        except ProtocolError as exc:
            log.info("closing connection %s: %s", peer, exc)
        except TimeoutError:
            log.info("closing connection %s: timed out", peer)
        except OSError as exc:
            if not owner.stopping:
                log.debug("connection %s: %s", peer, exc)
        except Exception:  # a bug in a handler: log it, drop this client, keep serving the others
            log.exception("internal error serving %s; closing its connection", peer)

    def _serve(self, owner: Server, sock: socket.socket, peer: str) -> None:
        """Read one frame, answer it, read the next, until the client or the broker stops."""
        while not owner.stopping:
            sock.settimeout(IDLE_TIMEOUT)
            prefix = _recv_exact(sock, 4)
            if prefix is None:
                return
            size = decode_frame_size(prefix, owner.max_frame_size)
            sock.settimeout(FRAME_TIMEOUT)
            payload = _recv_exact(sock, size)
            if payload is None:
                log.info("connection %s closed mid-request (%d-byte frame)", peer, size)
                return
            with owner.in_flight():
                answer = owner.dispatcher.handle(payload)
                if answer is not None:
                    sock.sendall(answer)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Exactly ``n`` bytes, or None at end of stream.  Grows the buffer as data arrives, so a client
    that announces a big frame and sends nothing makes us allocate nothing."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), _CHUNK))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class _Listener(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """Shared parts of the two listeners; ``owner`` is the :class:`Server`."""

    daemon_threads = True
    block_on_close = False
    owner: Server

    def peer_name(self, address: object) -> str:
        return str(address)

    def session_for(self, address: object) -> Session:
        """The session of a connection from ``address`` (who it is, by which listener)."""
        return Session("PLAINTEXT", "PLAINTEXT", str(address))

    def handle_error(self, request: object, client_address: object) -> None:  # pragma: no cover - handle() catches all
        log.exception("error serving %s", client_address)


class _UnixListener(_Listener, socketserver.UnixStreamServer):
    def peer_name(self, address: object) -> str:
        return "unix"

    def get_request(self) -> tuple[socket.socket, object]:
        sock, _address = self.socket.accept()
        try:
            return sock, peercred.session(sock)  # an unnamed client's address is "": keep who it is instead
        except OSError:  # gone already: socketserver drops the request
            sock.close()
            raise

    def session_for(self, address: object) -> Session:
        return address  # type: ignore[return-value]  # get_request made it

    def server_bind(self) -> None:
        path = str(self.server_address)  # a Unix listener's address is its socket path
        try:
            os.unlink(path)  # a socket left by a crashed broker; we hold the broker lock, so it is ours
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            super().server_bind()
        finally:
            os.umask(old)
        os.chmod(path, 0o600)


class _TCPListener(_Listener, socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def peer_name(self, address: object) -> str:
        host, port = address[:2]  # type: ignore[index]
        return f"{host}:{port}"

    def session_for(self, address: object) -> Session:
        return Session("PLAINTEXT", "PLAINTEXT", str(address[0]))  # type: ignore[index]

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]  # a stream server: always a socket
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(request, client_address)


class Server:
    """The broker's listeners and connections."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        socket_path: str,
        tcp: tuple[str, int] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.dispatcher = dispatcher
        self.socket_path = socket_path
        self.tcp = tcp
        self.max_frame_size = max_frame_size
        self.stopping = False
        self._listeners: list[_Listener] = []
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition(self._lock)

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        for listener in self._listeners:
            if isinstance(listener, _TCPListener):
                host, port = listener.server_address[:2]
                return str(host), int(port)
        return None

    def bind(self) -> None:
        """Take the addresses (bind and listen) without serving yet: a taken port or an address that is
        not local fails here, before the broker loads any partition.  Connections made between this and
        :meth:`serve` wait in the listen backlog."""
        if len(self.socket_path.encode()) > 107:
            raise BrokerError(
                f"socket path {self.socket_path} is longer than the 107 bytes Unix sockets allow",
                hint="use a shorter --data-dir",
            )
        where = self.socket_path
        try:
            self._listeners.append(_UnixListener(self.socket_path, _Connection))
            if self.tcp is not None:
                where = f"{self.tcp[0]}:{self.tcp[1]}"
                self._listeners.append(_TCPListener(self.tcp, _Connection))
        except OSError as exc:
            self.stop()
            raise BrokerError(f"cannot listen on {where}: {exc.strerror or exc}",
                              hint="give --listener a free port on a local address") from None

    def serve(self) -> None:
        """Start accepting connections on the bound listeners."""
        for listener in self._listeners:
            listener.owner = self
            thread = threading.Thread(
                target=listener.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"listener-{type(listener).__name__}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    # ------------------------------------------------------------ connection bookkeeping

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)
            crowded = len(self._connections) > MAX_CONNECTIONS
        if crowded:
            log.warning("more than %d connections; closing the newest", MAX_CONNECTIONS)
        if self.stopping or crowded:
            _shutdown(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

    def in_flight(self) -> _InFlight:
        return _InFlight(self)

    # ------------------------------------------------------------ stopping

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, cut every connection, and wait (bounded) for requests being handled."""
        self.stopping = True
        for listener in self._listeners:
            if self._threads:  # shutdown() waits for serve_forever, which a bound-only listener never ran
                listener.shutdown()
            listener.server_close()
        self._listeners = []
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            _shutdown(sock)
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            if self._busy:
                log.warning("%d request(s) still running after %gs; stopping anyway", self._busy, timeout)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


class _InFlight:
    """Counts a request being handled, so shutdown waits for it before closing the logs."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __enter__(self) -> None:
        with self.server._lock:
            self.server._busy += 1

    def __exit__(self, *exc: object) -> None:
        with self.server._idle:
            self.server._busy -= 1
            if not self.server._busy:
                self.server._idle.notify_all()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
