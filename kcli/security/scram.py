"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: credentials, and the
server's and the client's side of one exchange.

A stored credential is what RFC 5802 calls the server's: salt, iteration count, StoredKey and ServerKey --
never the password, and nothing from which a client proof can be made without an exchange to replay.
The exchange carries no channel binding (gs2 header ``n,,``), as Kafka's clients send.  Kafka's SCRAM
extensions (``tokenauth=true`` for delegation tokens) are parsed; kcli has no delegation tokens, so a
client asking for token authentication fails like one with a bad password.

Every comparison of secret-derived bytes is constant-time (:func:`hmac.compare_digest`).  An unknown
user gets a made-up credential (stable per name) and fails at the proof, like a wrong password, so the
exchange does not tell who exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from kcli.errors import UsageError

# Kafka's ScramMechanism: its numeric type on the wire (DescribeUserScramCredentials etc.), and the
# iteration bounds a credential must keep (the minimum is RFC 7677's; the maximum Kafka's)
MECHANISMS: dict[str, tuple[int, str]] = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
DEFAULT_ITERATIONS = 4096
SALT_BYTES = 32
NONCE_BYTES = 24
MAX_MESSAGE = 8192  # no legitimate SCRAM message comes near this: anything larger is refused unread


class ScramError(Exception):
    """A SCRAM message that is malformed, out of order, or whose proof does not verify.  The text is
    for logs only: clients are told just that authentication failed."""


def mechanism_of_type(number: int) -> str | None:
    """The mechanism name of Kafka's numeric ScramMechanism type (None for UNKNOWN or another)."""
    return next((name for name, (num, _h) in MECHANISMS.items() if num == number), None)


def check_mechanism(name: str) -> str:
    """``name`` upper-cased if it is a SCRAM mechanism kcli knows, else a usage error."""
    upper = name.strip().upper()
    if upper not in MECHANISMS:
        raise UsageError(f"unknown SCRAM mechanism {name!r}", hint=f"use one of {', '.join(MECHANISMS)}")
    return upper


def check_iterations(iterations: int) -> None:
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise UsageError(f"SCRAM iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {iterations}")


def _hash(mechanism: str) -> str:
    return MECHANISMS[mechanism][1]


def _hmac(mechanism: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, _hash(mechanism)).digest()


def _h(mechanism: str, data: bytes) -> bytes:
    return hashlib.new(_hash(mechanism), data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def normalize(password: str) -> bytes:
    """The password as SCRAM hashes it.  RFC 5802 asks for SASLprep; Kafka's clients hash the UTF-8 of
    the password as given, and so does kcli, so that passwords set by either work with both.  NFC is the
    identity for the passwords people type, and keeps composed and decomposed accents the same."""
    return unicodedata.normalize("NFC", password).encode("utf-8")


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """RFC 5802's SaltedPassword: Hi(password, salt, i), i.e. PBKDF2 with the mechanism's HMAC."""
    return hashlib.pbkdf2_hmac(_hash(mechanism), normalize(password), salt, iterations)


@lru_cache(maxsize=8)
def _client_salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """The client's SaltedPassword, computed once per process: a command opens a connection to each
    broker it needs (the bootstrap server, then the leaders), all answering with the same salt and
    iterations, and PBKDF2 is most of an exchange's cost (some 4 ms at 4096 rounds of SHA-512).  The
    password it is keyed by is held by the client's settings for the whole run anyway."""
    return salted_password(mechanism, password, salt, iterations)


@dataclass(frozen=True)
class ScramCredential:
    """What the server keeps for one user and mechanism.  The keys stay out of its repr: with the
    ServerKey one can pose as the broker, and StoredKey is what an offline guess is checked against."""

    mechanism: str
    salt: bytes
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    iterations: int

    @classmethod
    def from_salted_password(cls, mechanism: str, salted: bytes, salt: bytes, iterations: int) -> ScramCredential:
        """The credential of a salted password (what AlterUserScramCredentials carries: the client salts,
        so the password itself never reaches the broker)."""
        client_key = _hmac(mechanism, salted, b"Client Key")
        return cls(mechanism, salt, _h(mechanism, client_key), _hmac(mechanism, salted, b"Server Key"), iterations)

    @classmethod
    def from_password(cls, mechanism: str, password: str, iterations: int = DEFAULT_ITERATIONS,
                      salt: bytes | None = None) -> ScramCredential:
        salt = os.urandom(SALT_BYTES) if salt is None else salt
        return cls.from_salted_password(mechanism, salted_password(mechanism, password, salt, iterations), salt, iterations)

    def matches_password(self, password: str) -> bool:
        """Whether ``password`` is this credential's (PLAIN checks passwords this way: one store)."""
        other = ScramCredential.from_password(self.mechanism, password, self.iterations, self.salt)
        return hmac.compare_digest(other.stored_key, self.stored_key)


def _escape(name: str) -> str:
    """RFC 5802's saslname: ``=`` and ``,`` escaped."""
    return name.replace("=", "=3D").replace(",", "=2C")


def _unescape(name: str) -> str:
    if "=" in name.replace("=3D", "").replace("=2C", ""):
        raise ScramError("bad escape in user name")
    return name.replace("=2C", ",").replace("=3D", "=")


def _attributes(message: str) -> list[tuple[str, str]]:
    """``a=v,b=w`` -> [(a, v), (b, w)]; every attribute a single letter or an extension name."""
    out = []
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ScramError(f"malformed attribute {part[:32]!r}")
        out.append((key, value))
    return out


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ScramError("bad base64") from None


def _text(data: bytes) -> str:
    if len(data) > MAX_MESSAGE:
        raise ScramError(f"message of {len(data)} bytes is too large")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("message is not UTF-8") from None


def _printable(nonce: str) -> bool:
    """RFC 5802's nonce: printable ASCII other than ','."""
    return bool(nonce) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce)


GS2_HEADER = "n,,"  # no channel binding, no authorization identity


class ScramServer:
    """The server's side of one exchange: :meth:`first` answers client-first, :meth:`final` checks
    client-final and answers server-final.  ``lookup(user)`` gives the user's credential or None."""

    def __init__(self, mechanism: str, lookup: Callable[[str], ScramCredential | None], decoy_key: bytes,
                 nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.server_nonce = nonce or base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")
        self.lookup = lookup
        self.decoy_key = decoy_key
        self.user: str | None = None
        self.extensions: dict[str, str] = {}
        self._credential: ScramCredential | None = None
        self._known = False
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self.complete = False

    def _decoy(self, user: str) -> ScramCredential:
        """A credential for a user who does not exist: the same for every attempt, so its salt cannot
        be told from a real one's by asking twice; no password matches it."""
        salt = _hmac(self.mechanism, self.decoy_key, b"salt:" + user.encode())[:SALT_BYTES]
        junk = _hmac(self.mechanism, self.decoy_key, b"key:" + user.encode())
        return ScramCredential(self.mechanism, salt, junk, junk, DEFAULT_ITERATIONS)

    def first(self, data: bytes) -> bytes:
        """client-first-message -> server-first-message."""
        if self._server_first:
            raise ScramError("client-first-message received twice")
        text = _text(data)
        if not text.startswith(GS2_HEADER):
            # 'y'/'p' (channel binding) or an authorization identity: Kafka's clients send neither
            raise ScramError("unsupported GS2 header (channel binding or authzid)")
        bare = text[len(GS2_HEADER):]
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
            raise ScramError("client-first-message must start with n= and r=")
        if attrs[0][1] == "" or not _printable(attrs[1][1]):
            raise ScramError("empty user name or bad nonce")
        self.user = _unescape(attrs[0][1])
        self.extensions = dict(attrs[2:])
        if any(len(k) < 2 for k in self.extensions):  # single letters are RFC 5802's, none other is allowed here
            raise ScramError("unexpected attribute in client-first-message")
        found = self.lookup(self.user)
        self._known = found is not None and found.mechanism == self.mechanism
        self._credential = found if self._known else self._decoy(self.user)
        assert self._credential is not None
        self._nonce = attrs[1][1] + self.server_nonce
        salt = base64.b64encode(self._credential.salt).decode("ascii")
        self._client_first_bare = bare
        self._server_first = f"r={self._nonce},s={salt},i={self._credential.iterations}"
        return self._server_first.encode("ascii")

    def final(self, data: bytes) -> bytes:
        """client-final-message -> server-final-message, or ScramError when the proof does not verify."""
        if not self._server_first or self.complete or self._credential is None:
            raise ScramError("client-final-message out of order")
        text = _text(data)
        attrs = _attributes(text)
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise ScramError("client-final-message must be c=,r=,...,p=")
        if _b64(attrs[0][1]) != GS2_HEADER.encode():
            raise ScramError("channel binding does not match the GS2 header")
        # "ends with", as Kafka since 3.8.1: librdkafka before 2.6.1 sends its own nonce once more in front
        # of the whole one (librdkafka #4895); the proof still covers the server's part, so replay is not helped
        nonce = attrs[1][1].encode()
        if len(nonce) < len(self._nonce) or not hmac.compare_digest(nonce[len(nonce) - len(self._nonce):],
                                                                     self._nonce.encode()):
            raise ScramError("nonce does not match")
        proof = _b64(attrs[-1][1])
        without_proof = text[: text.rindex(",p=")]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        cred = self._credential
        signature = _hmac(self.mechanism, cred.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("proof has the wrong length")
        client_key = _xor(proof, signature)
        verified = hmac.compare_digest(_h(self.mechanism, client_key), cred.stored_key)
        if not (verified and self._known):
            raise ScramError("invalid credentials")
        if self.extensions.get("tokenauth", "").lower() == "true":
            raise ScramError("delegation tokens are not supported")
        self.complete = True
        server_signature = _hmac(self.mechanism, cred.server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)


class ScramClient:
    """The client's side of one exchange: :meth:`first`, :meth:`final` with the server-first message,
    :meth:`verify` with the server-final message (the server must prove it knows the credential too)."""

    def __init__(self, mechanism: str, user: str, password: str, nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.user = user
        self.password = password
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")
        self._bare = f"n={_escape(user)},r={self.nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return (GS2_HEADER + self._bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = _text(server_first)
        attrs = dict(_attributes(text))
        if "e" in attrs:
            raise ScramError(f"server refused: {attrs['e']}")
        nonce, salt_text, iters = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce) or not iters.isdigit():
            raise ScramError("bad server-first-message")
        iterations = int(iters)
        if iterations < MIN_ITERATIONS:  # a server asking for fewer weakens what an eavesdropper must do
            raise ScramError(f"server asked for {iterations} iterations, fewer than {MIN_ITERATIONS}")
        salted = _client_salted_password(self.mechanism, self.password, _b64(salt_text), iterations)
        client_key = _hmac(self.mechanism, salted, b"Client Key")
        stored_key = _h(self.mechanism, client_key)
        without_proof = f"c={base64.b64encode(GS2_HEADER.encode()).decode()},r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        proof = _xor(client_key, _hmac(self.mechanism, stored_key, auth_message))
        self._server_signature = _hmac(self.mechanism, _hmac(self.mechanism, salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        attrs = dict(_attributes(_text(server_final)))
        if "e" in attrs:
            raise ScramError(f"server refused: {attrs['e']}")
        if not hmac.compare_digest(_b64(attrs.get("v", "")), self._server_signature):
            raise ScramError("the server's signature does not verify")

