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
from dataclasses import dataclass

ANONYMOUS = "User:ANONYMOUS"  # Kafka's principal for an unauthenticated PLAINTEXT client


@dataclass
class Session:
    listener: str  # the listener's name ("PLAINTEXT", "SSL", ...), or "unix" for the Unix socket
    security_protocol: str  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    host: str  # the peer's address; "" on the Unix socket
    principal: str = ANONYMOUS


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
