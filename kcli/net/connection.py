"""One connection to one broker over Kafka's protocol: connect (Unix socket or TCP, TLS over TCP when
the client settings say SSL or SASL_SSL), negotiate API versions, then requests and responses in
order.  Both sides use it: a client reaching leaders and a follower broker fetching from its leader, so
it sits beside the codec, beneath broker and client."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from kcli import __version__
from kcli.errors import BrokerError, ProtocolError, UsageError
from kcli.net import client_config
from kcli.net.client_config import ClientConfig
from kcli.net.sasl_client import Authenticator
from kcli.protocol import (
    SUPPORTED,
    ApiKey,
    ErrorCode,
    RequestHeader,
    Struct,
    api_name,
    decode_frame_size,
    decode_response,
    encode_request,
    error_name,
)
from kcli.protocol.apis import CLIENT_MAX

CLIENT_ID = "kcli"
# KIP-511: what ApiVersions v3+ tells the broker about the client software
SOFTWARE = ("kcli", __version__)
CONNECT_WAIT = 5.0  # a broker that holds its lock may still be binding its socket
REQUEST_TIMEOUT = 60.0
Address = str | tuple[str, int]  # a Unix socket path, or (host, port)


class UnreachableError(BrokerError):
    """A connection could not be made or was lost: worth a retry after refreshing metadata.

    ``reason`` is the bare cause ("connection refused"), for a message that names several servers."""

    def __init__(self, message: str, hint: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, hint)
        self.reason = reason or message


class TlsError(BrokerError):
    """A TLS handshake failed or the broker refused the connection's certificate: not worth a retry."""


def _reason(exc: OSError) -> str:
    """An OSError as a short lower-case cause: "connection refused", "timed out"."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def parse_bootstrap(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad broker address {text!r}", hint="use HOST:PORT, e.g. 127.0.0.1:9092")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_bootstrap_servers(text: str) -> list[tuple[str, int]]:
    """``HOST:PORT[,HOST:PORT...]``, as Kafka's ``bootstrap.servers``: any one of them is enough to find
    the whole cluster, so several are given for when some are down."""
    servers = [parse_bootstrap(part) for part in text.split(",") if part.strip()]
    if not servers:
        raise UsageError("no broker address given", hint="use HOST:PORT[,HOST:PORT], e.g. 127.0.0.1:9092")
    return servers


def address_label(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BrokerConnection:
    """One socket to one broker: negotiated API versions, then request/response in order."""

    def __init__(
        self,
        address: Address,
        timeout: float = REQUEST_TIMEOUT,
        client_id: str = CLIENT_ID,
        starting: Callable[[], bool] | None = None,
        config: ClientConfig | None = None,
    ) -> None:
        """``config``: client properties by Kafka's names (``security.protocol``, ``ssl.*``, ``sasl.*``;
        the run's default when None); they apply to TCP connections only -- the Unix socket needs none."""
        self.address = address
        self.starting = starting
        self.config = config or client_config.default()
        self.secured = False
        self.label = f"unix:{address}" if isinstance(address, str) else f"{address[0]}:{address[1]}"
        self.timeout = timeout
        self.client_id = client_id
        self._next_id = 0
        sasl = None if isinstance(address, str) else self.config.sasl()
        self._authenticator = Authenticator(sasl) if sasl is not None else None
        self.sock = self._connect()
        self.versions: dict[int, tuple[int, int]] = {}
        try:
            self._negotiate()
            if self._authenticator is not None:
                self._authenticator.authenticate(self)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + CONNECT_WAIT
        delay = 0.01
        while True:
            try:
                if isinstance(self.address, str):
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(self.timeout)
                    try:
                        sock.connect(self.address)
                    except BaseException:
                        sock.close()
                        raise
                else:
                    sock = socket.create_connection(self.address, timeout=min(self.timeout, 10.0))
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if self.config.uses_tls:
                        sock = self._wrap_tls(sock, self.address[0])
                    sock.settimeout(self.timeout)
                return sock
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                # worth waiting for only while the broker is alive but not yet listening
                if self.starting is None or time.monotonic() >= deadline or not self.starting():
                    raise UnreachableError(
                        f"cannot connect to broker at {self.label}: {exc.strerror or exc}",
                        reason=_reason(exc),
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
            except OSError as exc:
                raise UnreachableError(
                    f"cannot connect to broker at {self.label}: {exc.strerror or exc}", reason=_reason(exc)
                ) from None

    def _wrap_tls(self, sock: socket.socket, host: str) -> socket.socket:
        """The TLS layer of an SSL or SASL_SSL connection, its handshake done; a failed one is a
        :class:`TlsError` naming OpenSSL's reason (never a key's passphrase)."""
        import ssl

        context = self.config.tls_context()
        try:
            secured = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLError as exc:
            sock.close()
            raise TlsError(f"TLS handshake with broker at {self.label} failed: {_tls_reason(exc)}",
                           hint=_TLS_HINT) from None
        except BaseException:
            sock.close()
            raise
        self.secured = True
        return secured

    def _negotiate(self) -> None:
        """ApiVersions first, like every Kafka client, so we use versions the broker speaks: our newest;
        a broker that does not know it answers UNSUPPORTED_VERSION in a v0 body naming its own range,
        and we ask again at the newest version both speak."""
        newest = SUPPORTED[ApiKey.API_VERSIONS][1]
        hello = {"client_software_name": SOFTWARE[0], "client_software_version": SOFTWARE[1]}
        body = self.request(ApiKey.API_VERSIONS, hello, version=newest)
        if body.error_code == ErrorCode.UNSUPPORTED_VERSION:
            theirs = {k.api_key: k.max_version for k in body.api_keys}.get(ApiKey.API_VERSIONS, 0)
            body = self.request(ApiKey.API_VERSIONS, hello, version=max(0, min(theirs, newest)))
        if body.error_code != ErrorCode.NONE:
            raise BrokerError(f"broker at {self.label} refused ApiVersions: {error_name(body.error_code)}")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}

    def version(self, api_key: int) -> int:
        ours = SUPPORTED[api_key]
        theirs = self.versions.get(api_key)
        if theirs is None or theirs[1] < ours[0] or theirs[0] > ours[1]:
            raise BrokerError(
                f"broker at {self.label} does not support {api_name(api_key)} "
                f"in a version kcli speaks (v{ours[0]}-v{ours[1]})"
            )
        return min(ours[1], CLIENT_MAX.get(api_key, ours[1]), theirs[1])

    def request(
        self, api_key: int, body: Mapping[str, Any], version: int | None = None, expect_response: bool = True,
        authenticating: bool = False,
    ) -> Struct:
        if not authenticating and self._authenticator is not None and self._authenticator.due():
            self._authenticator.authenticate(self)  # KIP-368: before the broker ends the session
        version = self.version(api_key) if version is None else version
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF
        corr = self._next_id
        frame = encode_request(RequestHeader(api_key, version, corr, self.client_id), body)
        try:
            self.sock.sendall(frame)
            if not expect_response:
                return Struct()
            payload = self._read(decode_frame_size(self._read(4)))
        except OSError as exc:
            self.close()
            # a TLS failure before the first answer is the broker refusing us (TLS 1.3 checks a client
            # certificate after the client's handshake is done); later, a lost connection worth a retry
            if self.secured and not self.versions and type(exc).__module__ == "ssl":
                raise TlsError(f"broker at {self.label} ended the TLS connection: {_tls_reason(exc)}",
                               hint=_TLS_HINT) from None
            raise UnreachableError(f"lost connection to broker at {self.label}: {exc.strerror or exc}") from None
        except ProtocolError:
            self.close()
            raise
        response = decode_response(api_key, version, payload)
        if response.correlation_id != corr:
            self.close()
            raise ProtocolError(
                f"broker at {self.label} answered request {response.correlation_id}, not {corr}"
            )
        return response.body

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionResetError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


_TLS_HINT = ("check security.protocol and ssl.cafile (the broker's CA), and ssl.certfile/ssl.keyfile if the "
             "broker wants a client certificate; ssl.endpoint.identification.algorithm= (empty) skips the "
             "host name check")


def _tls_reason(exc: OSError) -> str:
    """OpenSSL's reason for a TLS failure ("CERTIFICATE_VERIFY_FAILED", "TLSV13_ALERT_CERTIFICATE_REQUIRED")
    with its detail where it has one."""
    if type(exc).__name__ == "SSLEOFError":  # no alert, just a closed connection
        return "closed without a TLS alert (the broker may have refused the client certificate)"
    reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
    detail = getattr(exc, "verify_message", None)
    return f"{reason} ({detail})" if detail else str(reason)
