"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), KIP-554: the users of the
credential store, by wire.  Neither ever carries a password: Describe answers mechanisms and iteration
counts, Alter receives what the client salted (salt + SaltedPassword), as Kafka's tools send it.

Errors are per user, with Kafka's codes and messages: a user named twice (DUPLICATE_RESOURCE), a user
or credential that does not exist (RESOURCE_NOT_FOUND), an unknown mechanism
(UNSUPPORTED_SASL_MECHANISM), an empty name, salt or too few or many iterations
(UNACCEPTABLE_CREDENTIAL).  A user with any bad change gets none of its changes; the good users' changes
are written together in one atomic rewrite of the store.

As in Kafka, Describe needs DESCRIBE on the cluster and Alter needs ALTER; without it every user asked
about gets CLUSTER_AUTHORIZATION_FAILED (and Describe's top-level error too) and nothing is read or written.
"""

from __future__ import annotations

from collections import Counter

from kcli.broker.authorize import authorize, denied
from kcli.broker.context import BrokerContext
from kcli.broker.handlers import Body
from kcli.broker.sasl_handlers import credentials
from kcli.errors import KcliError, NotFoundError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.error_codes import code_for
from kcli.security.acl import Operation, ResourceType
from kcli.security.scram import (
    MAX_ITERATIONS,
    MECHANISMS,
    MIN_ITERATIONS,
    ScramCredential,
    mechanism_of_type,
)


def _result(user: str, code: int = ErrorCode.NONE, message: str | None = None) -> dict[str, object]:
    return {"user": user, "error_code": code, "error_message": message}


def describe_user_scram_credentials(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    if not authorize(ctx, Operation.DESCRIBE, ResourceType.CLUSTER):
        refused = denied(ResourceType.CLUSTER, Operation.DESCRIBE)
        return {"throttle_time_ms": 0, "error_code": refused.code, "error_message": str(refused),
                "results": [{**_result(u.name, refused.code, str(refused)), "credential_infos": []}
                            for u in req.users or []]}
    try:
        users = credentials(ctx).users()
    except KcliError as exc:
        return {"throttle_time_ms": 0, "error_code": code_for(exc), "error_message": exc.message, "results": []}
    asked = [u.name for u in req.users] if req.users else list(users)
    counts = Counter(asked)
    results = []
    for name in dict.fromkeys(asked):
        if counts[name] > 1:
            results.append({**_result(name, ErrorCode.DUPLICATE_RESOURCE, "Cannot describe SCRAM credentials "
                                      f"for the same user twice in a single request: {name}"), "credential_infos": []})
        elif name not in users:
            results.append({**_result(name, ErrorCode.RESOURCE_NOT_FOUND, "Attempt to describe a user credential "
                                      f"that does not exist: {name}"), "credential_infos": []})
        else:
            infos = [{"mechanism": MECHANISMS[c.mechanism][0], "iterations": c.iterations} for c in users[name]]
            results.append({**_result(name), "credential_infos": infos})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None, "results": results}


def _upsertion_error(up: Struct) -> tuple[int, str] | None:
    if mechanism_of_type(up.mechanism) is None:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    if up.iterations < MIN_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if up.iterations > MAX_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    if not up.salt or not up.salted_password:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty"
    return None


def alter_user_scram_credentials(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    if not authorize(ctx, Operation.ALTER, ResourceType.CLUSTER):
        refused = denied(ResourceType.CLUSTER, Operation.ALTER)
        users = sorted({d.name for d in req.deletions} | {u.name for u in req.upsertions})
        return {"throttle_time_ms": 0, "results": [_result(u, refused.code, str(refused)) for u in users]}
    store = credentials(ctx)
    errors: dict[str, tuple[int, str]] = {}
    seen: Counter[tuple[str, int]] = Counter(
        [(d.name, d.mechanism) for d in req.deletions] + [(u.name, u.mechanism) for u in req.upsertions]
    )
    order = list(dict.fromkeys([d.name for d in req.deletions] + [u.name for u in req.upsertions]))

    def fail(user: str, code: int, message: str) -> None:
        errors.setdefault(user, (code, message))

    try:
        existing = {user: {c.mechanism for c in creds} for user, creds in store.users().items()}
    except KcliError as exc:
        return {"throttle_time_ms": 0, "results": [_result(u, code_for(exc), exc.message) for u in order]}
    for (user, _mechanism), n in seen.items():
        if n > 1:
            fail(user, ErrorCode.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request")
        if not user:
            fail(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
    for d in req.deletions:
        mechanism = mechanism_of_type(d.mechanism)
        if mechanism is None:
            fail(d.name, ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")
        elif mechanism not in existing.get(d.name, set()):
            fail(d.name, ErrorCode.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist")
    for up in req.upsertions:
        problem = _upsertion_error(up)
        if problem is not None:
            fail(up.name, *problem)
    deletions = [(d.name, mechanism_of_type(d.mechanism) or "") for d in req.deletions if d.name not in errors]
    upsertions = [
        (u.name, ScramCredential.from_salted_password(mechanism_of_type(u.mechanism) or "", bytes(u.salted_password),
                                                      bytes(u.salt), u.iterations))
        for u in req.upsertions
        if u.name not in errors
    ]
    if deletions or upsertions:
        try:
            store.alter(deletions, upsertions)
        except NotFoundError as exc:  # deleted by someone else meanwhile: nothing of this request was written
            for user in {u for u, _m in deletions} | {u for u, _c in upsertions}:
                fail(user, ErrorCode.RESOURCE_NOT_FOUND, exc.message)
        except KcliError as exc:
            for user in {u for u, _m in deletions} | {u for u, _c in upsertions}:
                fail(user, code_for(exc), exc.message)
    return {"throttle_time_ms": 0, "results": [_result(u, *errors[u]) if u in errors else _result(u) for u in order]}
