"""The cluster's ACLs for ``kcli acl``: in the data dir's metadata when no broker runs, else through a
broker's CreateAcls / DescribeAcls / DeleteAcls (which any Kafka cluster serves too)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from kcli.cluster.datadir import DataDir
from kcli.security.acl import Acl, AclFilter, Operation, PatternType, Permission, ResourceType

if TYPE_CHECKING:
    from kcli.protocol import Struct


class Acls(Protocol):
    def create(self, acls: list[Acl]) -> None: ...

    def find(self, acl_filter: AclFilter) -> list[Acl]: ...

    def delete(self, filters: list[AclFilter]) -> list[Acl]: ...


class EmbeddedAcls:
    def __init__(self, datadir: DataDir) -> None:
        from kcli.cluster.acls import AclStore
        from kcli.cluster.metadata import Metadata

        self.store = AclStore(Metadata(datadir))

    def create(self, acls: list[Acl]) -> None:
        self.store.create(acls)

    def find(self, acl_filter: AclFilter) -> list[Acl]:
        return self.store.find(acl_filter)

    def delete(self, filters: list[AclFilter]) -> list[Acl]:
        return list(dict.fromkeys(a for found in self.store.delete(filters) for a in found))


def _filter_body(f: AclFilter) -> dict[str, object]:
    return {"resource_type_filter": f.resource_type, "resource_name_filter": f.name, "pattern_type_filter": f.pattern,
            "principal_filter": f.principal, "host_filter": f.host, "operation": f.operation,
            "permission_type": f.permission}


def _acl(kind: int, name: str, pattern: int, entry: Struct) -> Acl:
    return Acl(ResourceType(kind), name, PatternType(pattern), entry.principal, entry.host,
               Operation(entry.operation), Permission(entry.permission_type))


class RemoteAcls:
    def __init__(self, datadir: DataDir | None = None, bootstrap: str | None = None) -> None:
        from kcli.client.broker_pool import BrokerPool
        from kcli.net.connection import REQUEST_TIMEOUT

        self.pool = BrokerPool(datadir, bootstrap, 2 * REQUEST_TIMEOUT)

    def _send(self, api_key: int, body: Mapping[str, object]) -> Struct:
        try:
            return self.pool.send(self.pool.any(), api_key, body)
        finally:
            self.pool.close()

    def create(self, acls: list[Acl]) -> None:
        from kcli.client.kafka_errors import raise_for
        from kcli.protocol import ApiKey

        body = {"creations": [{"resource_type": a.resource_type, "resource_name": a.name,
                               "resource_pattern_type": a.pattern, "principal": a.principal, "host": a.host,
                               "operation": a.operation, "permission_type": a.permission} for a in acls]}
        for acl, result in zip(acls, self._send(ApiKey.CREATE_ACLS, body).results, strict=False):
            raise_for(result.error_code, result.error_message, f"adding ACL {acl.describe()}")

    def find(self, acl_filter: AclFilter) -> list[Acl]:
        from kcli.client.kafka_errors import raise_for
        from kcli.protocol import ApiKey

        answer = self._send(ApiKey.DESCRIBE_ACLS, _filter_body(acl_filter))
        raise_for(answer.error_code, answer.error_message, "listing ACLs")
        return [_acl(r.resource_type, r.resource_name, r.pattern_type, e) for r in answer.resources for e in r.acls]

    def delete(self, filters: list[AclFilter]) -> list[Acl]:
        from kcli.client.kafka_errors import raise_for
        from kcli.protocol import ApiKey

        answer = self._send(ApiKey.DELETE_ACLS, {"filters": [_filter_body(f) for f in filters]})
        gone: list[Acl] = []
        for result in answer.filter_results:
            raise_for(result.error_code, result.error_message, "removing ACLs")
            for m in result.matching_acls:
                raise_for(m.error_code, m.error_message, "removing ACLs")
                gone.append(_acl(m.resource_type, m.resource_name, m.pattern_type, m))
        return list(dict.fromkeys(gone))


def open_acls(datadir: DataDir | None, bootstrap: str | None = None) -> Acls:
    """Through ``bootstrap``'s cluster, or the data dir's live brokers, else the data dir itself."""
    from kcli.client.connect import open_admin

    remote: Callable[..., Acls] = RemoteAcls  # typed as the protocol both sides meet
    return open_admin(datadir, bootstrap, remote, EmbeddedAcls)
