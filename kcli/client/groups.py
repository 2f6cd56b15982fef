"""Which group code a command gets: the cluster's coordinator when a broker address is given (Kafka's
group protocol), else the data directory's own files; callers hold the result without asking which."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kcli.client.group_reader import GroupReader, MemberSettings
from kcli.cluster.datadir import DataDir
from kcli.groups.view import LocalGroups

if TYPE_CHECKING:
    from kcli.client.cluster_groups import ClusterGroups
    from kcli.client.transport import Transport


def open_group_member(transport: Transport, datadir: DataDir | None, group: str, topics: Sequence[str],
                      settings: MemberSettings) -> GroupReader:
    """A consuming member of ``group``: embedded on ``datadir``, or (``datadir`` None: the transport
    reaches a cluster by address) a member of the coordinator's group, over the classic protocol or
    KIP-848's (``settings.group_protocol``)."""
    if datadir is None:
        from kcli.client.group_member import GroupMember
        from kcli.client.remote import RemoteTransport

        assert isinstance(transport, RemoteTransport)
        if settings.group_protocol == "consumer":
            from kcli.client.consumer_protocol_member import ConsumerProtocolMember

            return ConsumerProtocolMember(transport, group, topics, settings)
        return GroupMember(transport, group, topics, settings)
    from kcli.client.embedded_group import GroupConsumer

    return GroupConsumer(transport, datadir, group, topics, settings)


def open_groups(datadir: DataDir | None, bootstrap: str | None = None) -> LocalGroups | ClusterGroups:
    """The groups a command shows: the cluster's at ``bootstrap`` when given, else ``datadir``'s."""
    if bootstrap:
        from kcli.client.cluster_groups import ClusterGroups

        return ClusterGroups(bootstrap)
    from kcli.client.connect import open_transport

    assert datadir is not None
    return LocalGroups(datadir, open_transport(datadir, auto_create=False))
