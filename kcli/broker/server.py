"""Sockets: a Unix listener (always) and TCP listeners (when asked), one thread per connection.

Each TCP listener has a name and a security protocol (Kafka's ``listeners``); an SSL or SASL_SSL
listener does its TLS handshake in the connection's own thread, bounded by a timeout, so a client that
stalls or cuts the handshake short never holds up the accept loop or anyone else.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kcli.broker import peercred
from kcli.broker.dispatch import CloseConnection, Dispatcher
from kcli.broker.session import Session, current, serving
from kcli.cluster.broker_info import Endpoint
from kcli.errors import BrokerError, ProtocolError
from kcli.protocol import DEFAULT_MAX_FRAME_SIZE, decode_frame_size

if TYPE_CHECKING:
    import ssl

    from kcli.broker.settings import TlsSettings
    from kcli.security.principal import PrincipalMapper

log = logging.getLogger("kcli.broker")

IDLE_TIMEOUT = 600.0  # Kafka's connections.max.idle.ms
MAX_CONNECTIONS = 1024  # one thread each: beyond this, new connections are closed at once
FRAME_TIMEOUT = 60.0  # once a frame has started, the rest must arrive within this
HANDSHAKE_TIMEOUT = 10.0  # a TLS handshake must be done within this (Kafka bounds it by its request timeout)
_CHUNK = 1 << 20
SASL_MAX_RECEIVE = 524_288  # Kafka's sasl.server.max.receive.size: the largest frame before authentication


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
            sock = self.server.secure(sock)
            if sock is not self.request:
                owner._swap(self.request, sock)
            with serving(self.server.session_for(self.client_address, sock)):
                self._serve(owner, sock, peer)
        except _Refused as exc:
            log.info("closing connection %s: %s", peer, exc)
        except CloseConnection as exc:
            log.info("closing connection %s: %s", peer, exc)
            if exc.answer is not None:
                _send_last(sock, exc.answer, exc.linger)
        except ProtocolError as exc:
            log.info("closing connection %s: %s", peer, exc)
        except TimeoutError:
            log.info("closing connection %s: timed out", peer)
        except OSError as exc:
            if not owner.stopping:
                log.debug("connection %s: %s", peer, exc)
        except Exception:  # a bug in a handler: log it, drop this client, keep serving the others
            log.exception("internal error serving %s; closing its connection", peer)
        finally:
            if sock is not self.request:  # the TLS socket took over the connection: close it ourselves
                owner._swap(sock, self.request)
                sock.close()

    def _serve(self, owner: Server, sock: socket.socket, peer: str) -> None:
        """Read one frame, answer it, read the next, until the client or the broker stops.  Until a
        SASL listener's client has authenticated, its frames are capped much lower (Kafka's
        sasl.server.max.receive.size), so strangers cannot make the broker hold big buffers."""
        session = current()
        while not owner.stopping:
            sock.settimeout(IDLE_TIMEOUT)
            prefix = _recv_exact(sock, 4)
            if prefix is None:
                return
            size = decode_frame_size(prefix, owner.max_frame_size if session.authenticated else SASL_MAX_RECEIVE)
            sock.settimeout(FRAME_TIMEOUT)
            payload = _recv_exact(sock, size)
            if payload is None:
                log.info("connection %s closed mid-request (%d-byte frame)", peer, size)
                return
            with owner.in_flight():
                answer = owner.dispatcher.handle(payload)
                if answer is not None:
                    sock.sendall(answer)


def _send_last(sock: socket.socket, answer: bytes, linger: float) -> None:
    """The answer before a close (a client told why it failed), then up to ``linger`` seconds for the
    client to hang up first: a client that reads the answer and the end of the stream at once may drop
    the answer unread (kafka-python does).  A client already gone is not an error."""
    try:
        sock.sendall(answer)
        deadline = time.monotonic() + linger
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(_CHUNK):
                return
    except OSError:
        pass


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


class _Refused(Exception):
    """A connection the listener does not let in (a failed TLS handshake, an unmapped certificate)."""


class _Listener(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """Shared parts of the listeners; ``owner`` is the :class:`Server`."""

    daemon_threads = True
    block_on_close = False
    owner: Server

    def peer_name(self, address: object) -> str:
        return str(address)

    def secure(self, sock: socket.socket) -> socket.socket:
        """The socket to serve the connection on (a TLS one after its handshake, for SSL listeners)."""
        return sock

    def session_for(self, address: object, sock: socket.socket) -> Session:
        """The session of a connection from ``address`` (who it is, by which listener)."""
        return Session("PLAINTEXT", "PLAINTEXT", str(address))

    def handle_error(self, request: object, client_address: object) -> None:  # pragma: no cover - handle() catches all
        log.exception("error serving %s", client_address)


class _UnixListener(_Listener, socketserver.UnixStreamServer):
    def peer_name(self, address: object) -> str:
        return "unix"

    def session_for(self, address: object, sock: socket.socket) -> Session:
        return peercred.session(sock)  # the kernel says who connected

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

    def __init__(self, endpoint: Endpoint, handler: type, tls: ssl.SSLContext | None = None,
                 principals: PrincipalMapper | None = None) -> None:
        if ":" in endpoint.host:
            self.address_family = socket.AF_INET6
        self.endpoint = endpoint
        self.tls = tls
        self.principals = principals
        super().__init__((endpoint.host, endpoint.port), handler)

    @property
    def bound(self) -> Endpoint:
        """This listener with the port it got (port 0 asks the kernel for a free one)."""
        host, port = self.server_address[:2]
        return Endpoint(self.endpoint.listener, str(host), int(port), self.endpoint.security_protocol)

    def peer_name(self, address: object) -> str:
        host, port = address[:2]  # type: ignore[index]
        return f"{host}:{port}"

    def secure(self, sock: socket.socket) -> socket.socket:
        if self.tls is None:
            return sock
        import ssl

        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            secured = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as exc:
            raise _Refused(f"TLS setup failed: {exc}") from None
        try:
            secured.do_handshake()
        except ssl.SSLError as exc:
            _close_gently(secured)
            raise _Refused(f"TLS handshake failed: {exc.reason or exc}") from None
        except (TimeoutError, OSError) as exc:
            secured.close()
            raise _Refused(f"TLS handshake not finished: {exc.strerror or exc or 'timed out'}") from None
        return secured

    def session_for(self, address: object, sock: socket.socket) -> Session:
        host = str(address[0])  # type: ignore[index]
        session = Session(self.endpoint.listener, self.endpoint.security_protocol, host)
        if self.endpoint.security_protocol == "SSL" and self.principals is not None:
            from kcli.security.principal import NoMatchingRule, subject_dn

            try:
                session.principal = self.principals.principal(subject_dn(sock.getpeercert()))  # type: ignore[attr-defined]
            except NoMatchingRule as exc:
                raise _Refused(str(exc)) from None
            log.debug("connection %s on %s: TLS, principal %s", self.peer_name(address), self.endpoint.listener,
                      session.principal)
        return session

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]  # a stream server: always a socket
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(request, client_address)


class Server:
    """The broker's listeners and connections."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        socket_path: str,
        listeners: Sequence[Endpoint] = (),
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        tls: TlsSettings | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.socket_path = socket_path
        self.listeners = list(listeners)
        self.tls = tls
        self.max_frame_size = max_frame_size
        self.stopping = False
        self._listeners: list[_Listener] = []
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition(self._lock)

    @property
    def endpoints(self) -> list[Endpoint]:
        """The TCP listeners as bound (with the ports the kernel picked for port 0)."""
        return [listener.bound for listener in self._listeners if isinstance(listener, _TCPListener)]

    def bind(self) -> None:
        """Take the addresses (bind and listen) without serving yet: a taken port or an address that is
        not local fails here, before the broker loads any partition.  Connections made between this and
        :meth:`serve` wait in the listen backlog."""
        if len(self.socket_path.encode()) > 107:
            raise BrokerError(
                f"socket path {self.socket_path} is longer than the 107 bytes Unix sockets allow",
                hint="use a shorter --data-dir",
            )
        contexts, principals = self._tls()
        where = self.socket_path
        try:
            self._listeners.append(_UnixListener(self.socket_path, _Connection))
            for endpoint in self.listeners:
                where = str(endpoint)
                tls = contexts.get(endpoint.security_protocol)
                self._listeners.append(_TCPListener(endpoint, _Connection, tls, principals))
        except OSError as exc:
            self.stop()
            raise BrokerError(f"cannot listen on {where}: {exc.strerror or exc}",
                              hint="give --listener a free port on a local address") from None

    def _tls(self) -> tuple[dict[str, ssl.SSLContext], PrincipalMapper | None]:
        """The TLS contexts of SSL and SASL_SSL listeners, by security protocol, and their principal
        mapping (a bad certificate or key is a usage error here, before anything listens).  As in Kafka,
        ``ssl.client.auth`` is for SSL listeners: a SASL_SSL client authenticates by SASL and is not
        asked for a certificate."""
        protocols = {e.security_protocol for e in self.listeners} & {"SSL", "SASL_SSL"}
        if self.tls is None or not protocols:
            return {}, None
        from kcli.security.principal import PrincipalMapper
        from kcli.security.tls import server_context

        t = self.tls
        return ({p: server_context(t.certfile, t.keyfile, t.password, t.cafile,
                                   t.client_auth if p == "SSL" else "none") for p in protocols},
                PrincipalMapper(t.principal_rules))

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

    def _swap(self, old: socket.socket, new: socket.socket) -> None:
        """A connection now served on ``new`` (its TLS socket), so that stop() cuts that one."""
        with self._lock:
            if old in self._connections:
                self._connections.discard(old)
                self._connections.add(new)

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


def _close_gently(sock: socket.socket) -> None:
    """Close after a refused TLS handshake so that the client reads the alert OpenSSL sent (a refused
    certificate, say) rather than a reset: stop sending, read off what the client still sends (for a
    second at most), then close.  Closing with unread data would make the kernel reset the connection,
    and the client lose the alert."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
