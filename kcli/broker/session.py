"""Who is on the other end of one connection: the listener it came in by, that listener's security
protocol, the peer's host and the principal it is known as.

A connection's thread (one thread per connection) makes its session when the connection opens and
sets it for every request it serves; handlers that need the caller (authorization, SASL) read it with
:func:`current` rather than have every handler's signature carry it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcli.security.principal import ANONYMOUS  # Kafka's principal for an unauthenticated client

if TYPE_CHECKING:
    from kcli.security.sasl import ServerMechanism


@dataclass
class SaslState:
    """Where a SASL_* connection is in authenticating (kcli.broker.sasl_handlers drives it).

    ``exchange`` is the mechanism's server side while tokens are being exchanged; ``raw_tokens``: the client shook hands with v0, so
    its tokens come as bare size-prefixed frames rather than SaslAuthenticate requests.  Once
    authenticated, ``expires_at`` (time.monotonic(); None: never) is when the session ends unless the
    client re-authenticates (KIP-368); ``reauthenticating`` while it does."""

    mechanism: str | None = None
    exchange: ServerMechanism | None = None
    raw_tokens: bool = False
    authenticated: bool = False
    can_reauthenticate: bool = False  # it used SaslAuthenticate v1+, so it knows its session lifetime
    reauthenticating: bool = False
    expires_at: float | None = None


@dataclass
class Session:
    listener: str  # the listener's name ("PLAINTEXT", "SSL", ...), or "unix" for the Unix socket
    security_protocol: str  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    host: str  # the peer's address; "" on the Unix socket
    principal: str = ANONYMOUS
    sasl: SaslState = field(default_factory=SaslState)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def authenticated(self) -> bool:
        """Whether requests other than ApiVersions and SASL's own may be served: always, unless the
        listener is a SASL one and the client has not authenticated yet."""
        return not self.uses_sasl or self.sasl.authenticated


# requests served without a connection (tests driving a Dispatcher directly) run as an anonymous client
_OUTSIDE = Session("internal", "PLAINTEXT", "")
_current: ContextVar[Session] = ContextVar("kcli_broker_session", default=_OUTSIDE)


def current() -> Session:
    """The session of the connection whose request this thread is serving."""
    return _current.get()


@contextmanager
def serving(session: Session) -> Iterator[Session]:
    """Make ``session`` the current one while its connection's requests are served."""
    token = _current.set(session)
    try:
        yield session
    finally:
        _current.reset(token)
