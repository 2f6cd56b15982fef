"""SASL on a broker connection: SaslHandshake (v0-1) and SaslAuthenticate (v0-2), as Kafka's
SaslServerAuthenticator does it.

A connection that came in by a SASL_* listener starts unauthenticated; the dispatcher serves it only
ApiVersions, SaslHandshake and SaslAuthenticate until a mechanism (PLAIN, SCRAM-SHA-256/512, those in
``sasl.enabled.mechanisms``) has verified the client against the data dir's credential store
(:mod:`kcli.cluster.credentials`).  Then the session's principal is ``User:<name>``.

Failures are answered and then the connection is closed, as Kafka does: an unknown mechanism
(UNSUPPORTED_SASL_MECHANISM), a request out of turn (ILLEGAL_SASL_STATE), a token that does not verify
(SASL_AUTHENTICATION_FAILED with Kafka's fixed message, which tells nothing of why -- the reason goes to
the broker's log at INFO, never a password or proof).

SaslHandshake v0 is the pre-KIP-152 form: the SASL tokens then come as bare size-prefixed frames, not
SaslAuthenticate requests (:func:`raw_token`), and a failure can only close the connection.

KIP-368: with ``connections.max.reauth.ms`` > 0 a session lasts that long; SaslAuthenticate v1+ tells
the client, which re-authenticates on the same connection (SaslHandshake then SaslAuthenticate again,
same mechanism and same user) before it ends.  A request on an expired session closes the connection.

On listeners that are not SASL ones both APIs answer ILLEGAL_SASL_STATE, as Kafka's do.
"""

from __future__ import annotations

import logging
import struct
import time

from kcli.broker.context import BrokerContext, made_once
from kcli.broker.handlers import Body
from kcli.broker.session import Session, current
from kcli.broker.settings import config_value
from kcli.cluster.credentials import CredentialStore
from kcli.errors import KcliError
from kcli.protocol import ApiKey, ErrorCode, RequestHeader, Struct
from kcli.security.sasl import SaslFailure, server_mechanism

log = logging.getLogger("kcli.broker")

# what an unauthenticated SASL connection may ask (Kafka's SaslServerAuthenticator)
BEFORE_AUTHENTICATION = frozenset({ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE})


class AnswerThenClose(Exception):
    """Send ``body`` as the answer to this request, then close the connection (``reason`` is logged)."""

    def __init__(self, body: Body, reason: str) -> None:
        super().__init__(reason)
        self.body = body


class CloseNow(Exception):
    """Close the connection without an answer (``str(exc)`` is logged)."""


def credentials(ctx: BrokerContext) -> CredentialStore:
    return made_once(ctx, "credentials", lambda c: CredentialStore(c.datadir))


def _config(ctx: BrokerContext, name: str) -> object:
    return config_value(ctx.settings.configs, name)


def _int_config(ctx: BrokerContext, name: str) -> int:
    value = _config(ctx, name)
    assert isinstance(value, int), name  # the config's parser made it one
    return value


def enabled_mechanisms(ctx: BrokerContext) -> list[str]:
    return [m for m in str(_config(ctx, "sasl.enabled.mechanisms")).split(",") if m]


def failure_linger(ctx: BrokerContext) -> float:
    """How long a connection whose authentication failed stays open after the answer, waiting for the
    client to hang up (Kafka's connection.failed.authentication.delay.ms, which also slows guessing)."""
    return _int_config(ctx, "connection.failed.authentication.delay.ms") / 1000


def gate(session: Session, api_key: int) -> None:
    """Raise CloseNow unless ``session`` may make a request of ``api_key`` now."""
    if not session.uses_sasl:
        return
    state = session.sasl
    if not state.authenticated:
        if api_key not in BEFORE_AUTHENTICATION:
            raise CloseNow(f"request of api key {api_key} before SASL authentication")
        return
    if state.expires_at is not None and time.monotonic() >= state.expires_at and not state.reauthenticating \
            and api_key != ApiKey.SASL_HANDSHAKE:
        raise CloseNow(f"SASL session of {session.principal} expired without re-authentication")


# ---------------------------------------------------------------- SaslHandshake


def sasl_handshake(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    session = current()
    enabled = enabled_mechanisms(ctx)
    if not session.uses_sasl:
        return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": enabled}
    state = session.sasl
    if state.exchange is not None:
        raise AnswerThenClose({"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": enabled},
                              "SaslHandshake during a SASL exchange")
    if state.authenticated and not state.can_reauthenticate:
        # a client that did not say it can re-authenticate (SaslAuthenticate v0): Kafka's API layer answers
        return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": enabled}
    mechanism = req.mechanism
    if mechanism not in enabled:
        raise AnswerThenClose({"error_code": ErrorCode.UNSUPPORTED_SASL_MECHANISM, "mechanisms": enabled},
                              f"client asked for SASL mechanism {mechanism[:64]!r}, which is not enabled")
    if state.authenticated and header.api_version == 0:  # re-authentication needs SaslAuthenticate requests
        raise AnswerThenClose({"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": enabled},
                              "re-authentication with SaslHandshake v0")
    state.reauthenticating = state.authenticated
    if state.reauthenticating and mechanism != state.mechanism:
        state.exchange = _WrongMechanism(mechanism, state.mechanism or "")
    else:
        store = credentials(ctx)
        state.exchange = server_mechanism(mechanism, store.lookup, store.decoy_key())
        state.mechanism = mechanism
    state.raw_tokens = header.api_version == 0
    return {"error_code": ErrorCode.NONE, "mechanisms": enabled}


class _WrongMechanism:
    """A re-authentication with another mechanism than the session's: Kafka fails it at the first token."""

    complete = False
    user = None

    def __init__(self, asked: str, had: str) -> None:
        self.mechanism = asked
        self.why = f"SASL mechanism '{asked}' requested by client is not supported for re-authentication " \
                   f"of mechanism '{had}'"

    def step(self, token: bytes) -> bytes:
        raise SaslFailure(self.why)


# ---------------------------------------------------------------- SaslAuthenticate


def sasl_authenticate(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    session = current()
    state = session.sasl
    if not session.uses_sasl or state.exchange is None or state.raw_tokens:
        what = "after successful authentication" if session.authenticated else "before SaslHandshake"
        body = {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "error_message": f"SaslAuthenticate request received {what}"}
        if not session.uses_sasl or session.authenticated:
            return body  # Kafka's API layer answers it on an authenticated connection, which goes on
        raise AnswerThenClose(body, "SaslAuthenticate out of turn")
    if header.api_version >= 1:
        state.can_reauthenticate = True
    try:
        token = _step(session, bytes(req.auth_bytes))
    except SaslFailure as exc:
        text = "re-authentication" if state.reauthenticating else "authentication"
        message = f"Authentication failed during {text} due to invalid credentials with SASL mechanism " \
                  f"{state.exchange.mechanism}"
        raise AnswerThenClose({"error_code": ErrorCode.SASL_AUTHENTICATION_FAILED, "error_message": message},
                              f"SASL {text} failed: {exc}") from None
    lifetime = _finish(ctx, session) if state.exchange is None else 0
    return {"error_code": ErrorCode.NONE, "error_message": None, "auth_bytes": token, "session_lifetime_ms": lifetime}


def raw_token(ctx: BrokerContext, session: Session, payload: bytes) -> bytes:
    """One bare SASL token after SaslHandshake v0: the mechanism's answer as a bare frame."""
    try:
        token = _step(session, payload)
    except SaslFailure as exc:
        raise CloseNow(f"SASL authentication failed: {exc}") from None
    if session.sasl.exchange is None:
        _finish(ctx, session)
    return struct.pack(">i", len(token)) + token


def _step(session: Session, token: bytes) -> bytes:
    """Feed ``token`` to the exchange; when it completes, the session is authenticated (the exchange is
    cleared).  A store that cannot be read fails the attempt (logged), it does not crash the thread."""
    state = session.sasl
    exchange = state.exchange
    if exchange is None:
        raise SaslFailure("a SASL token before SaslHandshake")
    try:
        answer = exchange.step(token)
    except KcliError as exc:
        log.error("cannot check SASL credentials: %s", exc)
        raise SaslFailure(str(exc)) from None
    if not exchange.complete:
        return answer
    principal = f"User:{exchange.user}"
    if state.reauthenticating and principal != session.principal:
        raise SaslFailure(f"Cannot change principals during re-authentication from {session.principal}: {principal}")
    state.exchange = None
    state.authenticated = True
    session.principal = principal
    return answer


def _finish(ctx: BrokerContext, session: Session) -> int:
    """Start the session's lifetime (KIP-368); the lifetime in ms, 0 for none."""
    state = session.sasl
    lifetime = _int_config(ctx, "connections.max.reauth.ms")
    state.expires_at = time.monotonic() + lifetime / 1000 if lifetime > 0 else None
    log.info("%s %s with %s from %s", "re-authenticated" if state.reauthenticating else "authenticated",
             session.principal, state.mechanism, session.host or "unix")
    state.reauthenticating = False
    state.raw_tokens = False
    return lifetime
