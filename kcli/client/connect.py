"""Choosing a transport: the live leaders' brokers when any run, else the data directory itself."""

from __future__ import annotations

from kcli.cluster.datadir import DataDir


def open_transport(datadir: DataDir, auto_create: bool = True):
    """Embedded transport on ``datadir``.  (Broker routing plugs in here: commands never write behind a
    live broker's back.)"""
    from kcli.client.embedded import EmbeddedTransport

    return EmbeddedTransport(datadir, auto_create=auto_create)
