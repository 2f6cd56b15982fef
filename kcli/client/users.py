"""SCRAM users of a cluster: list, create (or change the password of) and delete them.

Two ways, one interface, as for configs: straight on the data dir's credential store
(:class:`EmbeddedUsers`), or through a cluster's brokers with DescribeUserScramCredentials /
AlterUserScramCredentials (:class:`RemoteUsers`: kcli's own brokers while they run, or any Kafka
cluster at ``--bootstrap-server``).  Either way the password is salted and hashed here, on the client,
as Kafka's tools do: it never leaves this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from kcli.cluster.credentials import CredentialStore, check_user_name
from kcli.cluster.datadir import DataDir
from kcli.errors import NotFoundError
from kcli.security.scram import (
    MECHANISMS,
    SALT_BYTES,
    ScramCredential,
    check_iterations,
    check_mechanism,
    mechanism_of_type,
    salted_password,
)

if TYPE_CHECKING:
    from kcli.protocol import Struct

# user -> [(mechanism, iterations)]
Listing = dict[str, list[tuple[str, int]]]


class Users(Protocol):
    def describe(self, names: list[str] | None = None) -> Listing: ...

    def upsert(self, user: str, mechanism: str, password: str, iterations: int) -> None: ...

    def delete(self, user: str, mechanisms: list[str] | None = None) -> list[str]: ...


def _checked(user: str, mechanism: str, iterations: int) -> str:
    check_user_name(user)
    check_iterations(iterations)
    return check_mechanism(mechanism)


class EmbeddedUsers:
    def __init__(self, datadir: DataDir) -> None:
        self.store = CredentialStore(datadir)

    def describe(self, names: list[str] | None = None) -> Listing:
        users = self.store.users()
        missing = [n for n in names or [] if n not in users]
        if missing:
            raise NotFoundError(f"user {missing[0]!r} has no SCRAM credentials", hint="see `kcli user list`")
        return {u: [(c.mechanism, c.iterations) for c in creds] for u, creds in users.items()
                if names is None or u in names}

    def upsert(self, user: str, mechanism: str, password: str, iterations: int) -> None:
        mechanism = _checked(user, mechanism, iterations)
        self.store.upsert(user, ScramCredential.from_password(mechanism, password, iterations))

    def delete(self, user: str, mechanisms: list[str] | None = None) -> list[str]:
        return self.store.delete(user, mechanisms)


class RemoteUsers:
    def __init__(self, datadir: DataDir | None = None, bootstrap: str | None = None) -> None:
        from kcli.client.broker_pool import BrokerPool
        from kcli.net.connection import REQUEST_TIMEOUT

        self.pool = BrokerPool(datadir, bootstrap, REQUEST_TIMEOUT)

    def _send(self, api_key: int, body: Mapping[str, object]) -> Struct:
        try:
            return self.pool.send(self.pool.any(), api_key, body)
        finally:
            self.pool.close()

    def describe(self, names: list[str] | None = None) -> Listing:
        from kcli.client.kafka_errors import raise_for
        from kcli.protocol import ApiKey

        answer = self._send(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS,
                            {"users": None if names is None else [{"name": n} for n in names]})
        raise_for(answer.error_code, answer.error_message, "users")
        out: Listing = {}
        for r in answer.results:
            raise_for(r.error_code, r.error_message, f"user {r.user!r}")
            out[r.user] = [(mechanism_of_type(i.mechanism) or f"type {i.mechanism}", i.iterations)
                           for i in r.credential_infos]
        return dict(sorted(out.items()))

    def _alter(self, user: str, deletions: list[dict[str, object]], upsertions: list[dict[str, object]]) -> None:
        from kcli.client.kafka_errors import raise_for
        from kcli.protocol import ApiKey

        answer = self._send(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, {"deletions": deletions, "upsertions": upsertions})
        for r in answer.results:
            raise_for(r.error_code, r.error_message, f"user {r.user!r}")

    def upsert(self, user: str, mechanism: str, password: str, iterations: int) -> None:
        mechanism = _checked(user, mechanism, iterations)
        salt = os.urandom(SALT_BYTES)
        salted = salted_password(mechanism, password, salt, iterations)
        self._alter(user, [], [{"name": user, "mechanism": MECHANISMS[mechanism][0], "iterations": iterations,
                                "salt": salt, "salted_password": salted}])

    def delete(self, user: str, mechanisms: list[str] | None = None) -> list[str]:
        wanted = [m for m, _i in self.describe([user])[user]] if mechanisms is None else [check_mechanism(m) for m in mechanisms]
        self._alter(user, [{"name": user, "mechanism": MECHANISMS[m][0]} for m in wanted], [])
        return wanted


def open_users(datadir: DataDir | None, bootstrap: str | None = None) -> Users:
    """Through ``bootstrap``'s cluster, or the data dir's live brokers, else the data dir itself."""
    from kcli.client.connect import open_admin

    remote: Callable[..., Users] = RemoteUsers  # typed as the protocol both sides meet
    return open_admin(datadir, bootstrap, remote, EmbeddedUsers)
