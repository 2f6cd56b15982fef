"""SCRAM credentials of the cluster's users: ``cluster/credentials.json`` in the data dir, mode 0600.

Each user has at most one credential per SCRAM mechanism: salt, iterations, StoredKey and ServerKey
(RFC 5802) -- never the password, which nothing here ever sees in plain form except PLAIN's check.
Changes are whole-file rewrites (temp file + fsync + rename) under ``cluster/credentials.lock``, so
readers see the old set or the new one, never half; every broker reads the file again when it changed
(a stat per authentication), so a new or deleted user counts at every broker from the next login.

The credentials live in their own file rather than the metadata log because the log is replayed and
dumped by tools that are not meant to hold secrets, and a 0600 file says exactly who may read them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import threading
from dataclasses import dataclass

from kcli.cluster.datadir import DataDir, FileLock
from kcli.errors import DataDirError, NotFoundError, StorageError, UsageError
from kcli.security.scram import ScramCredential, check_iterations, check_mechanism
from kcli.storage.checkpoint import write_secret

FILE_NAME = "credentials.json"
LOCK_NAME = "credentials.lock"
MAX_USER_NAME = 255


def check_user_name(name: str) -> None:
    """Kafka refuses empty names; kcli also refuses control characters (they would garble listings)."""
    if not name:
        raise UsageError("user name is empty")
    if len(name.encode()) > MAX_USER_NAME:
        raise UsageError(f"user name is longer than {MAX_USER_NAME} bytes")
    if not name.isprintable():
        raise UsageError(f"user name {name!r} has control characters")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class _Snapshot:
    signature: tuple[int, int, int]  # (inode, size, mtime_ns) of the file it was read from
    users: dict[str, dict[str, ScramCredential]]
    decoy_key: bytes


class CredentialStore:
    """The credential file of one data dir; safe to share between a broker's connection threads."""

    def __init__(self, datadir: DataDir) -> None:
        self.datadir = datadir
        self.path = os.path.join(datadir.cluster_dir, FILE_NAME)
        self._cache: _Snapshot | None = None
        self._cache_lock = threading.Lock()
        self._process_key = secrets.token_bytes(32)  # stands in for decoy_key while no file exists

    # ------------------------------------------------------------ reading

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _read(self) -> _Snapshot:
        """The file as it is now (cached while it does not change)."""
        with self._cache_lock:
            signature = self._signature()
            if signature is None:
                return _Snapshot((0, 0, 0), {}, self._process_key)
            if self._cache is not None and self._cache.signature == signature:
                return self._cache
            self._cache = _parse(self.path, signature)
            return self._cache

    def lookup(self, user: str) -> list[ScramCredential]:
        """Every credential of ``user`` (empty if unknown)."""
        return list(self._read().users.get(user, {}).values())

    def users(self) -> dict[str, list[ScramCredential]]:
        """Every user and their credentials, by name."""
        return {user: list(creds.values()) for user, creds in sorted(self._read().users.items())}

    def decoy_key(self) -> bytes:
        """The secret that makes up stable fake salts for unknown users (see kcli.security.scram)."""
        return self._read().decoy_key

    # ------------------------------------------------------------ changing

    def _lock(self) -> FileLock:
        try:
            os.makedirs(self.datadir.cluster_dir, exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"cannot create {self.datadir.cluster_dir}: {exc.strerror or exc}") from None
        return FileLock(os.path.join(self.datadir.cluster_dir, LOCK_NAME), self.datadir.lock_timeout, "credentials")

    def alter(self, deletions: list[tuple[str, str]], upsertions: list[tuple[str, ScramCredential]]) -> None:
        """Delete ``(user, mechanism)`` pairs and set ``(user, credential)`` pairs in one atomic rewrite.
        Deleting a credential that does not exist is a NotFoundError and changes nothing."""
        for user, mechanism in deletions:
            check_user_name(user)
            check_mechanism(mechanism)
        for user, credential in upsertions:
            check_user_name(user)
            check_iterations(credential.iterations)
        with self.datadir.locked(self._lock()):
            signature = self._signature()
            current = _parse(self.path, signature) if signature is not None else None
            users = {u: dict(c) for u, c in current.users.items()} if current else {}
            decoy = current.decoy_key if current else secrets.token_bytes(32)
            for user, mechanism in deletions:
                if mechanism not in users.get(user, {}):
                    raise NotFoundError(f"user {user!r} has no {mechanism} credential")
                del users[user][mechanism]
                if not users[user]:
                    del users[user]
            for user, credential in upsertions:
                users.setdefault(user, {})[credential.mechanism] = credential
            self._write(users, decoy)

    def upsert(self, user: str, credential: ScramCredential) -> None:
        self.alter([], [(user, credential)])

    def delete(self, user: str, mechanisms: list[str] | None = None) -> list[str]:
        """Delete ``user``'s credentials of ``mechanisms`` (all of them when None); the mechanisms deleted."""
        have = [c.mechanism for c in self.lookup(user)]
        wanted = have if mechanisms is None else [check_mechanism(m) for m in mechanisms]
        if not wanted:
            raise NotFoundError(f"user {user!r} has no SCRAM credentials")
        self.alter([(user, m) for m in wanted], [])
        return wanted

    def _write(self, users: dict[str, dict[str, ScramCredential]], decoy: bytes) -> None:
        doc = {
            "version": 1,
            "decoy_key": _b64(decoy),
            "users": {
                user: {
                    mech: {"salt": _b64(c.salt), "stored_key": _b64(c.stored_key), "server_key": _b64(c.server_key),
                           "iterations": c.iterations}
                    for mech, c in sorted(creds.items())
                }
                for user, creds in sorted(users.items())
            },
        }
        try:
            try:
                os.unlink(self.path + ".tmp")  # a temp file left by a crash may carry another mode: start afresh
            except FileNotFoundError:
                pass
            write_secret(self.path, json.dumps(doc, indent=1).encode() + b"\n")
        except OSError as exc:  # a full or failing disk (the lock beside it proved the folder writable)
            raise StorageError.of(exc, self.path) from None


def _parse(path: str, signature: tuple[int, int, int]) -> _Snapshot:
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read())
        users = {
            user: {
                mech: ScramCredential(check_mechanism(mech), base64.b64decode(c["salt"]),
                                      base64.b64decode(c["stored_key"]), base64.b64decode(c["server_key"]),
                                      int(c["iterations"]))
                for mech, c in creds.items()
            }
            for user, creds in doc["users"].items()
        }
        return _Snapshot(signature, users, base64.b64decode(doc["decoy_key"]))
    except OSError as exc:
        raise DataDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UsageError):
        raise DataDirError(f"credential file {path} is damaged",
                           hint="restore it from a backup, or delete it and create the users again") from None
