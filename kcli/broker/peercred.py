"""Who is on the other end of a Unix-socket connection, as the kernel says (SO_PEERCRED): the
principal ``User:<login name of the peer's uid>`` (``User:<uid>`` for a uid without a name).

The kernel vouches for it, so no password is needed; the broker's own uid is a super user on this
socket (:mod:`kcli.broker.authorize`): it owns the files anyway, and it is how brokers replicate from
each other and how the local operator's commands reach the broker.
"""

from __future__ import annotations

import functools
import os
import pwd
import socket
import struct

from kcli.broker.session import Session

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process that connected ``sock`` (when it connected)."""
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return int(uid)


@functools.lru_cache(maxsize=256)
def principal_of(uid: int) -> str:
    try:
        return f"User:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"User:{uid}"


def own_principal() -> str:
    """The principal of this process's uid on the Unix socket."""
    return principal_of(os.geteuid())


def session(sock: socket.socket) -> Session:
    """The session of a Unix-socket connection: its peer's principal, PLAINTEXT, no host."""
    return Session("unix", "PLAINTEXT", "", principal_of(peer_uid(sock)))
