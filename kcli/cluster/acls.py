"""The cluster's ACLs: kept in the cluster metadata (an ``acls`` record per change, replayed into
``ClusterState.acls``), so every broker and every embedded command sees the same set, and a change is
atomic and durable like any other metadata change.

Brokers decide with an :class:`~kcli.security.acl.Authorizer` built from the state they already hold
(:mod:`kcli.broker.authorize`): nothing here is read per request.
"""

from __future__ import annotations

from collections.abc import Iterable

from kcli.cluster.metadata import ClusterState, Metadata, MetaRecord
from kcli.security.acl import Acl, AclFilter


def acls_record(add: Iterable[Acl] = (), remove: Iterable[Acl] = ()) -> MetaRecord:
    return {"type": "acls", "add": [a.to_json() for a in add], "remove": [a.to_json() for a in remove]}


class AclStore:
    """Creates, lists and deletes the ACLs of one data dir."""

    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata

    def find(self, acl_filter: AclFilter | None = None) -> list[Acl]:
        return matching(self.metadata.load(), (acl_filter or AclFilter()).validate())

    def create(self, acls: Iterable[Acl]) -> list[Acl]:
        """Store ``acls`` (each validated first: none is stored if one is invalid); returns those that
        were new (creating an ACL that exists succeeds and changes nothing, as in Kafka)."""
        wanted = list(dict.fromkeys(a.validate() for a in acls))
        new: list[Acl] = []

        def fn(state: ClusterState) -> list[MetaRecord]:
            have = set(state.acls)
            new[:] = [a for a in wanted if a not in have]
            return [acls_record(add=new)] if new else []

        self.metadata.change(fn)
        return new

    def delete(self, filters: Iterable[AclFilter]) -> list[list[Acl]]:
        """Delete every ACL one of ``filters`` matches, in one change; returns each filter's matches."""
        filters = [f.validate() for f in filters]
        found: list[list[Acl]] = []

        def fn(state: ClusterState) -> list[MetaRecord]:
            found[:] = [matching(state, f) for f in filters]
            gone = {a for acls in found for a in acls}
            return [acls_record(remove=sorted(gone))] if gone else []

        self.metadata.change(fn)
        return found


def matching(state: ClusterState, acl_filter: AclFilter) -> list[Acl]:
    return [a for a in state.acls if acl_filter.matches(a)]
