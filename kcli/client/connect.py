"""Choosing a transport: the live leaders' brokers when any run, else the data directory itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kcli.cluster.datadir import DataDir

if TYPE_CHECKING:
    from kcli.client.transport import Transport

_Admin = TypeVar("_Admin")


def live_brokers(datadir: DataDir) -> list[int]:
    """Brokers alive on ``datadir``; none when the data dir cannot even be listed, so the embedded path
    runs and reports what is wrong with it."""
    try:
        return datadir.live_brokers()
    except OSError:
        return []


def open_transport(datadir: DataDir, auto_create: bool = True, acks: int = -1) -> Transport:
    """The remote transport when any broker is alive (commands never write behind a live broker's
    back), else the embedded one.  Liveness is a lock probe per broker folder, and the protocol code is
    imported only when a broker runs, so a brokerless ``kcli produce`` starts as fast as before.
    ``acks`` is for writes through brokers; an embedded write always reaches every in-sync replica."""
    if live_brokers(datadir):
        from kcli.client.remote import RemoteTransport

        return RemoteTransport(datadir, auto_create=auto_create, acks=acks)
    from kcli.client.embedded import EmbeddedTransport

    return EmbeddedTransport(datadir, auto_create=auto_create)


def open_admin(datadir: DataDir | None, bootstrap: str | None, remote: Callable[..., _Admin],
               embedded: Callable[[DataDir], _Admin]) -> _Admin:
    """An admin API's side to use: through ``bootstrap``'s cluster (``remote(bootstrap=...)``), or the
    data dir's live brokers (``remote(datadir)``), else the data dir itself (``embedded(datadir)``)."""
    if bootstrap:
        return remote(bootstrap=bootstrap)
    assert datadir is not None
    if live_brokers(datadir):
        return remote(datadir)
    return embedded(datadir)
