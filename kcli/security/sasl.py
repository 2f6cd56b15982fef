"""The SASL mechanisms kcli speaks, both sides, as token-in/token-out steps: PLAIN (RFC 4616) and
SCRAM-SHA-256/512 (:mod:`kcli.security.scram`).

A server mechanism is fed the client's tokens one at a time (:meth:`ServerMechanism.step`) and is
``complete`` once the client proved who it is; any failure is a :class:`SaslFailure` whose text is for
the broker's log, never for the client.  PLAIN checks the password against the user's stored SCRAM
credential (derived again with its salt and iterations), so there is one credential store for all three.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kcli.security.scram import MECHANISMS as SCRAM_MECHANISMS
from kcli.security.scram import ScramClient, ScramCredential, ScramError, ScramServer

PLAIN = "PLAIN"
MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", PLAIN)
MAX_PLAIN_FIELD = 255  # RFC 4616: authcid and passwd are at most 255 octets


_DECOY = ScramCredential("SCRAM-SHA-512", b"\0" * 32, b"", b"", 4096)


class SaslFailure(Exception):
    """Authentication did not succeed (bad token, bad order, bad credentials)."""


# user -> every stored SCRAM credential of that user
CredentialLookup = Callable[[str], list[ScramCredential]]


class ServerMechanism(Protocol):
    mechanism: str

    @property
    def user(self) -> str | None: ...

    @property
    def complete(self) -> bool: ...

    def step(self, token: bytes) -> bytes: ...


class PlainServer:
    """RFC 4616: one token, ``[authzid] NUL authcid NUL passwd``; an authzid other than the user is
    refused, as Kafka does."""

    mechanism = PLAIN

    def __init__(self, lookup: CredentialLookup) -> None:
        self.lookup = lookup
        self.user: str | None = None
        self.complete = False

    def step(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslFailure("PLAIN takes one token")
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise SaslFailure("PLAIN token is not authzid NUL authcid NUL passwd")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise SaslFailure("PLAIN token is not UTF-8") from None
        if not user or not password or len(parts[1]) > MAX_PLAIN_FIELD or len(parts[2]) > MAX_PLAIN_FIELD:
            raise SaslFailure("PLAIN user name or password empty or too long")
        if authzid and authzid != user:
            raise SaslFailure("PLAIN authorization id differs from the user name")
        # every credential of the user is tried (a user may have one of each SCRAM mechanism)
        found = self.lookup(user)
        matched = False
        for credential in found or [_DECOY]:  # an unknown user costs the same time as a wrong password
            matched |= credential.matches_password(password) and bool(found)
        if not matched:
            raise SaslFailure("invalid credentials")
        self.user = user
        self.complete = True
        return b""


class ScramSaslServer:
    """SCRAM as two steps: client-first, then client-final."""

    def __init__(self, mechanism: str, lookup: CredentialLookup, decoy_key: bytes) -> None:
        self.mechanism = mechanism

        def one(user: str) -> ScramCredential | None:
            return next((c for c in lookup(user) if c.mechanism == mechanism), None)

        self._server = ScramServer(mechanism, one, decoy_key)
        self._steps = 0

    @property
    def user(self) -> str | None:
        return self._server.user if self._server.complete else None

    @property
    def complete(self) -> bool:
        return self._server.complete

    def step(self, token: bytes) -> bytes:
        self._steps += 1
        try:
            if self._steps == 1:
                return self._server.first(token)
            return self._server.final(token)
        except ScramError as exc:
            raise SaslFailure(str(exc)) from None


def server_mechanism(mechanism: str, lookup: CredentialLookup, decoy_key: bytes) -> ServerMechanism:
    if mechanism == PLAIN:
        return PlainServer(lookup)
    if mechanism in SCRAM_MECHANISMS:
        return ScramSaslServer(mechanism, lookup, decoy_key)
    raise ValueError(f"unknown SASL mechanism {mechanism}")


class ClientMechanism(Protocol):
    def step(self, challenge: bytes | None) -> bytes | None:
        """The next token to send given the server's last one (None before the first); None when done."""
        ...


class PlainClient:
    def __init__(self, user: str, password: str) -> None:
        self._token: bytes | None = b"\0" + user.encode() + b"\0" + password.encode()

    def step(self, challenge: bytes | None) -> bytes | None:
        token, self._token = self._token, None
        return token


class ScramSaslClient:
    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self._client = ScramClient(mechanism, user, password)
        self._steps = 0

    def step(self, challenge: bytes | None) -> bytes | None:
        self._steps += 1
        try:
            if self._steps == 1:
                return self._client.first()
            if self._steps == 2:
                return self._client.final(challenge or b"")
            self._client.verify(challenge or b"")
            return None
        except ScramError as exc:
            raise SaslFailure(str(exc)) from None


def client_mechanism(mechanism: str, user: str, password: str) -> ClientMechanism:
    if mechanism == PLAIN:
        return PlainClient(user, password)
    if mechanism in SCRAM_MECHANISMS:
        return ScramSaslClient(mechanism, user, password)
    raise ValueError(f"unknown SASL mechanism {mechanism}")
