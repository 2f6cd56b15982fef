"""kcli's client side of SASL: SaslHandshake v1 then SaslAuthenticate with PLAIN or SCRAM-SHA-256/512,
on a connection whose ``security.protocol`` is SASL_PLAINTEXT or SASL_SSL.

Settings (the client properties, Kafka's and librdkafka's names): ``sasl.mechanism`` (or
``sasl.mechanisms``; default SCRAM-SHA-512), ``sasl.username``, and the password from ``sasl.password``,
``sasl.password.file`` (a file holding it; one trailing newline is dropped) or ``sasl.password.env`` (the
name of an environment variable holding it); a Java client's ``sasl.jaas.config`` with
``username="..." password="..."`` works too.  No message ever holds the
password: a refusal is an :class:`~kcli.errors.AuthenticationError` naming the broker, the user and
the mechanism.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kcli.errors import AuthenticationError, UsageError
from kcli.protocol import ApiKey, ErrorCode, Struct, error_name

DEFAULT_MECHANISM = "SCRAM-SHA-512"
REAUTH_AT = 0.85  # of the session lifetime: re-authenticate this far in, as Kafka's clients do (85-95%)


class Connection(Protocol):
    """What logging in needs of a connection (kcli.net.connection.BrokerConnection, which holds an
    authenticator and so imports this module: a protocol here, not an import back)."""

    label: str
    versions: dict[int, tuple[int, int]]

    def request(self, api_key: int, body: Mapping[str, Any], version: int | None = None,
                expect_response: bool = True, authenticating: bool = False) -> Struct: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SaslSettings:
    mechanism: str
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password, even in a traceback's locals
        return f"SaslSettings(mechanism={self.mechanism!r}, username={self.username!r})"


def sasl_settings(settings: Mapping[str, str]) -> SaslSettings:
    """The mechanism, user and password from client ``settings``; a usage error names what is missing."""
    from kcli.security.sasl import MECHANISMS  # the mechanisms only when SASL is asked for: no cost otherwise

    mechanism = (settings.get("sasl.mechanism") or settings.get("sasl.mechanisms") or DEFAULT_MECHANISM).upper()
    if mechanism not in MECHANISMS:
        raise UsageError(f"unsupported sasl.mechanism {mechanism!r}", hint=f"use one of {', '.join(MECHANISMS)}")
    jaas = _jaas(settings.get("sasl.jaas.config", ""))
    username = settings.get("sasl.username") or jaas.get("username", "")
    if not username:
        raise UsageError("security.protocol is SASL but sasl.username is not set")
    return SaslSettings(mechanism, username, _password(settings, jaas.get("password")))


def _jaas(text: str) -> dict[str, str]:
    """``username="..."`` and ``password="..."`` of a Java client's sasl.jaas.config (the login module
    itself does not matter here: the mechanism is sasl.mechanism's)."""
    return {m.group(1): m.group(2).replace('\\"', '"') for m in _JAAS_OPTION.finditer(text)}


_JAAS_OPTION = re.compile(r'\b(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _password(settings: Mapping[str, str], from_jaas: str | None) -> str:
    if settings.get("sasl.password"):
        return settings["sasl.password"]
    if from_jaas:
        return from_jaas
    path = settings.get("sasl.password.file")
    if path:
        return read_password_file(os.path.expanduser(path), "sasl.password.file", shown=path)
    var = settings.get("sasl.password.env")
    if var:
        value = os.environ.get(var)
        if value is None:
            raise UsageError(f"sasl.password.env names {var}, which is not set")
        return value
    raise UsageError("security.protocol is SASL but no password is set",
                     hint="set sasl.password, sasl.password.file or sasl.password.env")


def read_password_file(path: str, what: str, shown: str | None = None) -> str:
    """A password kept in a file: its text, one trailing newline dropped (``echo pw > file`` adds it); a
    file that cannot be read is a usage error naming ``what`` and the path (``shown``, as the user gave it)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {shown or path}: {getattr(exc, 'strerror', None) or exc}") from None
    return text.removesuffix("\n")


class Authenticator:
    """Authenticates one connection, and again before its session ends (KIP-368)."""

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings
        self.reauth_after: float | None = None  # time.monotonic() after which to re-authenticate

    def due(self) -> bool:
        return self.reauth_after is not None and time.monotonic() >= self.reauth_after

    def authenticate(self, conn: Connection) -> None:
        from kcli.security.sasl import SaslFailure, client_mechanism

        s = self.settings
        who = f"broker at {conn.label}"
        if conn.versions.get(ApiKey.SASL_HANDSHAKE, (0, 0))[1] < 1:
            raise AuthenticationError(f"{who} does not support SaslHandshake v1 (SASL authentication requests)")
        started = time.monotonic()
        try:
            shake = conn.request(ApiKey.SASL_HANDSHAKE, {"mechanism": s.mechanism}, version=1, authenticating=True)
            if shake.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM:
                raise AuthenticationError(f"{who} does not enable SASL mechanism {s.mechanism}",
                                          hint=f"it enables {', '.join(shake.mechanisms) or 'none'}; set sasl.mechanism")
            if shake.error_code != ErrorCode.NONE:
                raise AuthenticationError(f"{who} refused SaslHandshake: {error_name(shake.error_code)}")
            mechanism = client_mechanism(s.mechanism, s.username, s.password)
            token = mechanism.step(None)
            lifetime = 0
            while token is not None:
                answer = conn.request(ApiKey.SASL_AUTHENTICATE, {"auth_bytes": token}, authenticating=True)
                if answer.error_code != ErrorCode.NONE:
                    raise AuthenticationError(
                        f"{who} refused {s.mechanism} authentication as user {s.username!r}: "
                        f"{answer.error_message or error_name(answer.error_code)}",
                        hint="check sasl.username and the password")
                lifetime = answer.session_lifetime_ms
                token = mechanism.step(bytes(answer.auth_bytes))
        except SaslFailure as exc:
            conn.close()
            raise AuthenticationError(f"{who}: SASL {s.mechanism} exchange failed: {exc}") from None
        except AuthenticationError:
            conn.close()  # refused, also when re-authenticating mid-run: the broker is done with it too
            raise
        self.reauth_after = started + lifetime / 1000 * REAUTH_AT if lifetime > 0 else None
