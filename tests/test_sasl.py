"""SASL on the broker (PLAIN, SCRAM-SHA-256/512), its credential store and `kcli user`.

Unit tests check the SCRAM exchange against RFC 7677's test vector and malformed messages; broker tests
speak SaslHandshake / SaslAuthenticate over a real socket to a real ``kcli broker serve`` with a
``SASL_PLAINTEXT://`` listener (the gate, v0 raw tokens, failures answered then closed, KIP-368
re-authentication and expiry, fuzzed tokens); interop tests log real clients in (confluent-kafka,
kafka-python, kcat) and manage users with confluent's AdminClient.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import stat
import struct
import subprocess
import time
from pathlib import Path

import pytest
from support.brokers import Brokers, api_versions_ok, call, closed_by_peer, connect, read_frame

from kcli.cluster.credentials import CredentialStore
from kcli.cluster.datadir import DataDir
from kcli.errors import AuthenticationError, UsageError
from kcli.net.client_config import ClientConfig
from kcli.net.connection import BrokerConnection
from kcli.protocol import ApiKey, ErrorCode, RequestHeader, encode_request
from kcli.security.sasl import PlainServer, SaslFailure, ScramSaslServer
from kcli.security.scram import ScramClient, ScramCredential, ScramError, ScramServer

FAILED_512 = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
USERS = {"alice": ("SCRAM-SHA-512", "alice-secret"), "bob": ("SCRAM-SHA-256", "bob-secret")}

# --- SCRAM and PLAIN, no broker ----------------------------------------------------------------------------

# RFC 7677 section 3
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_server(password: str = "pencil") -> ScramServer:
    cred = ScramCredential.from_password("SCRAM-SHA-256", password, 4096, RFC_SALT)
    return ScramServer("SCRAM-SHA-256", lambda u: cred if u == "user" else None, b"decoy", nonce=RFC_SERVER_NONCE)


def test_scram_client_matches_rfc7677() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first() == RFC_CLIENT_FIRST
    assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify(RFC_SERVER_FINAL)
    with pytest.raises(ScramError):
        client.verify(b"v=" + base64.b64encode(bytes(32)))  # a server that does not know the credential


def test_scram_client_salts_a_password_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command connects to several brokers (the bootstrap server, then each leader), each connection a
    SCRAM exchange with the same salt and iterations: PBKDF2 (4096+ rounds, the slow part) runs once."""
    import hashlib

    calls = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", lambda *args: calls.append(args) or real(*args))
    password = f"pencil-{random.random()}"  # not salted by an earlier test in this process
    cred = ScramCredential.from_password("SCRAM-SHA-512", password, 4096, RFC_SALT)
    calls.clear()
    for _ in range(3):
        server = ScramServer("SCRAM-SHA-512", lambda u: cred, b"decoy")
        client = ScramClient("SCRAM-SHA-512", "user", password)
        client.verify(server.final(client.final(server.first(client.first()))))
    assert len(calls) == 1
    # another password (or salt) is salted afresh, and fails
    server = ScramServer("SCRAM-SHA-512", lambda u: cred, b"decoy")
    client = ScramClient("SCRAM-SHA-512", "user", password + "!")
    with pytest.raises(ScramError, match="invalid credentials"):
        server.final(client.final(server.first(client.first())))
    assert len(calls) == 2


def test_scram_server_matches_rfc7677() -> None:
    server = rfc_server()
    assert server.first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.complete and server.user == "user"


def test_scram_server_refuses_a_wrong_password_and_an_unknown_user_alike() -> None:
    server = rfc_server("not-pencil")
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="invalid credentials"):
        server.final(RFC_CLIENT_FINAL)
    # an unknown user gets a salt that is stable (asking twice tells nothing) and fails at the proof
    firsts = [rfc_server().first(b"n,,n=nobody,r=abc") for _ in range(2)]
    assert firsts[0].split(b",")[1:] == firsts[1].split(b",")[1:]
    stranger = rfc_server()
    client = ScramClient("SCRAM-SHA-256", "nobody", "pencil")
    final = client.final(stranger.first(client.first()))
    with pytest.raises(ScramError, match="invalid credentials"):
        stranger.final(final)


def test_scram_server_takes_librdkafkas_doubled_nonce() -> None:
    """librdkafka before 2.6.1 sends its nonce again in front of the whole nonce (librdkafka #4895);
    Kafka accepts a client-final nonce that ends with the right one since 3.8.1, and so does kcli."""
    server = rfc_server()
    server.first(RFC_CLIENT_FIRST)
    doubled = RFC_CLIENT_FINAL.replace(b"r=", b"r=rOprNGfwEbeRWgbNEkqO", 1)
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    # the proof is over the message as sent, so build it as such a client does
    client_final = client.final(RFC_SERVER_FIRST)
    assert client_final == RFC_CLIENT_FINAL and doubled != client_final
    with pytest.raises(ScramError, match="invalid credentials"):  # the nonce passes; this proof is for the other text
        server.final(doubled)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_round_trip(mechanism: str) -> None:
    cred = ScramCredential.from_password(mechanism, "päss wörd", 4096)
    server = ScramServer(mechanism, lambda u: cred if u == "a,b=c" else None, b"k")
    client = ScramClient(mechanism, "a,b=c", "päss wörd")  # a name that needs RFC 5802's escapes
    client.verify(server.final(client.final(server.first(client.first()))))
    assert server.user == "a,b=c"


MALFORMED_FIRST = [b"", b"\xff\xfe", b"n,,", b"y,,n=user,r=abc", b"p=tls-unique,,n=user,r=abc", b"n,a=x,n=user,r=abc",
                   b"n,,r=abc,n=user", b"n,,n=,r=abc", b"n,,n=user", b"n,,n=user,r=", b"n,,n=user,r=a b",
                   b"n,,n=us=er,r=abc", b"n,,n=user,r=abc,x=1", b"n,,n=user,r=abc,garbage", b"n,," + b"x" * 10000]


@pytest.mark.parametrize("token", MALFORMED_FIRST, ids=range(len(MALFORMED_FIRST)))
def test_malformed_client_first_is_refused(token: bytes) -> None:
    with pytest.raises(ScramError):
        rfc_server().first(token)


def _final_variants() -> list[bytes]:
    nonce = b"rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    return [
        b"", RFC_CLIENT_FINAL[:40], RFC_CLIENT_FINAL.replace(b"p=", b"q="),
        b"c=biws,r=" + nonce[:-1] + b"X,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",  # wrong nonce
        b"c=biws,r=" + nonce + b",p=!!notbase64!!", b"c=biws,r=" + nonce + b",p=AAAA",  # short proof
        b"c=eSws,r=" + nonce + b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",  # channel binding y,,
        b"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",  # no nonce
    ]


@pytest.mark.parametrize("token", _final_variants(), ids=range(len(_final_variants())))
def test_malformed_client_final_is_refused(token: bytes) -> None:
    server = rfc_server()
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError):
        server.final(token)
    assert not server.complete


def test_random_tokens_only_ever_fail_cleanly() -> None:
    """Whatever bytes arrive, the mechanisms fail with SaslFailure and nothing else."""
    rng = random.Random(21)
    cred = ScramCredential.from_password("SCRAM-SHA-512", "pw", 4096)
    for _ in range(300):
        for server in (PlainServer(lambda u: [cred]), ScramSaslServer("SCRAM-SHA-512", lambda u: [cred], b"k")):
            try:
                for _step in range(2):
                    server.step(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80))))
            except SaslFailure:
                pass
            assert not server.complete


def test_plain_checks_the_scram_credential() -> None:
    creds = [ScramCredential.from_password("SCRAM-SHA-256", "pw", 4096)]

    def server() -> PlainServer:
        return PlainServer(lambda u: creds if u == "carol" else [])

    ok = server()
    assert ok.step(b"\0carol\0pw") == b"" and ok.complete and ok.user == "carol"
    assert server().step(b"carol\0carol\0pw") == b""
    for bad in (b"\0carol\0wrong", b"\0dave\0pw", b"eve\0carol\0pw", b"carol\0pw", b"\0carol\0", b"\0\0pw",
                b"\0carol\0" + b"p" * 300, b"\0\xff\0pw"):
        with pytest.raises(SaslFailure):
            server().step(bad)


# --- the credential store ----------------------------------------------------------------------------------


def test_credential_file_is_private_and_holds_no_password(tmp_path: Path) -> None:
    datadir = DataDir(str(tmp_path / "data"))
    store = CredentialStore(datadir)
    store.upsert("alice", ScramCredential.from_password("SCRAM-SHA-512", "hunter2-very-secret", 4096))
    path = Path(store.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert b"hunter2" not in raw and base64.b64encode(b"hunter2-very-secret") not in raw
    # a temp file left with looser permissions by a crash does not pass them on
    tmp = Path(store.path + ".tmp")
    tmp.write_text("junk")
    tmp.chmod(0o644)
    store.upsert("bob", ScramCredential.from_password("SCRAM-SHA-256", "pw", 4096))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not tmp.exists()
    # another store on the same data dir (another broker) sees the change at once
    other = CredentialStore(datadir)
    assert [c.mechanism for c in other.lookup("bob")] == ["SCRAM-SHA-256"]
    store.delete("bob")
    assert other.lookup("bob") == []
    assert other.lookup("alice")[0].matches_password("hunter2-very-secret")


def test_a_damaged_credential_file_is_one_line(kcli, tmp_path: Path) -> None:
    kcli("cluster", "init")
    (tmp_path / "data" / "cluster" / "credentials.json").write_text("{not json")
    res = kcli("user", "list", ok=False)
    assert res.returncode == 9 and "credential file" in res.stderr and "Traceback" not in res.stderr


# --- kcli user, embedded -----------------------------------------------------------------------------------


def test_user_commands_embedded(kcli, tmp_path: Path) -> None:
    kcli("cluster", "init")
    kcli("user", "create", "alice", input="s3cret-pw\n")
    (tmp_path / "pw").write_text("bob-pw\n")
    kcli("user", "create", "bob", "--mechanism", "SCRAM-SHA-256", "--iterations", "8192",
         "--password-file", tmp_path / "pw")
    kcli.env["BOB_PW"] = "bob-pw"
    kcli("user", "create", "bob", "--password-env", "BOB_PW")
    listed = json.loads(kcli("user", "list", "--json").stdout)
    assert listed == [
        {"user": "alice", "credentials": [{"mechanism": "SCRAM-SHA-512", "iterations": 4096}]},
        {"user": "bob", "credentials": [{"mechanism": "SCRAM-SHA-256", "iterations": 8192},
                                        {"mechanism": "SCRAM-SHA-512", "iterations": 4096}]},
    ]
    text = kcli("user", "list").stdout
    assert "alice" in text and "s3cret" not in text
    store = CredentialStore(DataDir(str(tmp_path / "data")))
    assert store.lookup("alice")[0].matches_password("s3cret-pw")
    assert store.lookup("bob")[0].matches_password("bob-pw")  # the newline of the file is not the password's
    kcli("user", "delete", "alice")
    res = kcli("user", "delete", "alice", ok=False)
    assert res.returncode == 3 and "no SCRAM credentials" in res.stderr
    for bad in (["user", "create", "x", "--iterations", "100"], ["user", "create", "x", "--mechanism", "MD5"]):
        assert kcli(*bad, input="pw\n", ok=False).returncode == 2
    assert kcli("user", "create", "x", input="\n", ok=False).returncode == 2  # an empty password


# --- a broker with a SASL_PLAINTEXT listener ---------------------------------------------------------------


# these tests are about authentication; with a secured listener nothing is allowed without ACLs
# (test_acl.py has those), so the brokers here allow what no ACL names
OPEN = ("--override", "allow.everyone.if.no.acl.found=true")


def sasl_broker(brokers: Brokers, *extra: str):
    brokers.init()
    for user, (mechanism, password) in USERS.items():
        brokers.kcli("user", "create", user, "--mechanism", mechanism, input=password + "\n")
    broker = brokers.start(0, *OPEN, *extra, listener="SASL_PLAINTEXT://127.0.0.1:0")
    broker.kcli = brokers.kcli
    return broker


@pytest.fixture
def sasl(brokers: Brokers):
    return sasl_broker(brokers)


class Raw:
    """A socket speaking kcli's codec, for the requests a test wants in the order it wants."""

    def __init__(self, port: int) -> None:
        self.sock = connect(("127.0.0.1", port))
        self.corr = 0

    def call(self, key: int, version: int, body: dict):
        self.corr += 1
        return call(self.sock, key, version, body, correlation_id=self.corr)

    def handshake(self, mechanism: str, version: int = 1):
        return self.call(ApiKey.SASL_HANDSHAKE, version, {"mechanism": mechanism})

    def authenticate(self, token: bytes, version: int = 2):
        return self.call(ApiKey.SASL_AUTHENTICATE, version, {"auth_bytes": token})

    def scram(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512", version: int = 2):
        """A whole SCRAM exchange; the last answer (a failure stops early)."""
        client = ScramClient(mechanism, user, password)
        assert self.handshake(mechanism).error_code == 0
        first = self.authenticate(client.first(), version)
        if first.error_code:
            return first
        final = self.authenticate(client.final(bytes(first.auth_bytes)), version)
        if final.error_code == 0:
            client.verify(bytes(final.auth_bytes))
        return final

    def metadata_ok(self) -> bool:
        return self.call(ApiKey.METADATA, 8, {"topics": None}).brokers != []

    def closed(self) -> bool:
        return closed_by_peer(self.sock)


def test_only_authentication_before_authenticating(sasl) -> None:
    conn = Raw(sasl.port)
    assert api_versions_ok(conn.sock)  # allowed before authenticating, as in Kafka
    conn.sock.sendall(encode_request(RequestHeader(ApiKey.METADATA, 8, 7, "t"), {"topics": None}))
    assert read_frame(conn.sock) is None  # closed without an answer
    conn = Raw(sasl.port)
    assert conn.scram("alice", "alice-secret").error_code == 0
    assert conn.metadata_ok()  # and now everything is served


@pytest.mark.parametrize(("user", "mechanism", "password"), [
    ("alice", "SCRAM-SHA-512", "alice-secret"), ("bob", "SCRAM-SHA-256", "bob-secret")])
def test_scram_over_the_wire(sasl, user: str, mechanism: str, password: str) -> None:
    conn = Raw(sasl.port)
    assert conn.scram(user, password, mechanism).error_code == 0
    assert conn.metadata_ok()


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "alice-secret")])
def test_a_failed_authentication_is_answered_then_closed(sasl, user: str, password: str) -> None:
    conn = Raw(sasl.port)
    answer = conn.scram(user, password)
    assert (answer.error_code, answer.error_message) == (ErrorCode.SASL_AUTHENTICATION_FAILED, FAILED_512)
    assert conn.closed()
    assert "alice-secret" not in sasl.log() and "wrong" not in sasl.log().replace("wrong mechanism", "")


def test_plain_over_the_wire(sasl) -> None:
    conn = Raw(sasl.port)
    assert conn.handshake("PLAIN").error_code == 0
    assert conn.authenticate(b"\0bob\0bob-secret", 1).session_lifetime_ms == 0
    assert conn.metadata_ok()
    conn = Raw(sasl.port)
    conn.handshake("PLAIN")
    answer = conn.authenticate(b"\0bob\0nope")
    assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED and "PLAIN" in answer.error_message
    assert conn.closed()


def test_an_unknown_mechanism_is_answered_then_closed(sasl) -> None:
    conn = Raw(sasl.port)
    answer = conn.handshake("GSSAPI")
    assert answer.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert sorted(answer.mechanisms) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    assert conn.closed()


def test_sasl_authenticate_out_of_turn_closes(sasl) -> None:
    conn = Raw(sasl.port)
    assert conn.authenticate(b"n,,n=alice,r=abc").error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert conn.closed()


def test_handshake_v0_then_raw_tokens(sasl) -> None:
    """The pre-KIP-152 form: after SaslHandshake v0 the tokens are bare frames."""
    conn = Raw(sasl.port)
    assert conn.handshake("SCRAM-SHA-512", version=0).error_code == 0
    client = ScramClient("SCRAM-SHA-512", "alice", "alice-secret")

    def exchange(token: bytes) -> bytes | None:
        conn.sock.sendall(struct.pack(">i", len(token)) + token)
        return read_frame(conn.sock)

    server_first = exchange(client.first())
    assert server_first is not None
    server_final = exchange(client.final(server_first))
    assert server_final is not None
    client.verify(server_final)
    assert conn.metadata_ok()
    # a wrong password over raw tokens: the connection is closed (there is no way to answer)
    conn = Raw(sasl.port)
    conn.handshake("SCRAM-SHA-512", version=0)
    client = ScramClient("SCRAM-SHA-512", "alice", "bad")
    first = exchange(client.first())
    assert first is not None and exchange(client.final(first)) is None


def test_malformed_tokens_do_not_hurt_the_broker(sasl) -> None:
    """Garbage tokens, a wrong nonce, a truncated client-final, a huge token: each an authentication
    failure on its own connection, and a client that logs in meanwhile is served throughout."""
    good = Raw(sasl.port)
    assert good.scram("alice", "alice-secret").error_code == 0
    rng = random.Random(5)
    tokens = [b"", b"\xff" * 40, b"n,,n=alice", b"n,,n=alice,r=" + b"\x00" * 10, b"y,,n=alice,r=abc",
              bytes(rng.getrandbits(8) for _ in range(300)), b"n,,n=alice,r=" + b"a" * 400_000]
    for token in tokens:
        conn = Raw(sasl.port)
        conn.handshake("SCRAM-SHA-512")
        answer = conn.authenticate(token)
        assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED, token[:20]
        assert conn.closed()
    for final in (lambda c, f: c.final(f)[:25], lambda c, f: c.final(f).replace(b"r=", b"r=X", 1),
                  lambda c, f: c.final(f) + b"=junk", lambda c, f: b"c=biws,r=,p="):
        conn = Raw(sasl.port)
        client = ScramClient("SCRAM-SHA-512", "alice", "alice-secret")
        conn.handshake("SCRAM-SHA-512")
        first = conn.authenticate(client.first())
        answer = conn.authenticate(final(client, bytes(first.auth_bytes)))
        assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert conn.closed()
    # a frame over Kafka's sasl.server.max.receive.size (512 KiB) before authenticating: closed unread
    conn = Raw(sasl.port)
    conn.handshake("SCRAM-SHA-512")
    conn.sock.sendall(struct.pack(">i", 50 << 20) + b"\0" * 1024)
    assert conn.closed()
    assert good.metadata_ok()
    assert Raw(sasl.port).scram("bob", "bob-secret", "SCRAM-SHA-256").error_code == 0
    assert "Traceback" not in sasl.log()


def test_session_lifetime_reauthentication_and_expiry(brokers: Brokers) -> None:
    """KIP-368: the session lasts connections.max.reauth.ms; the client re-authenticates on the same
    connection (same mechanism, same user), and a session left to expire is closed at its next request."""
    broker = sasl_broker(brokers, "--override", "connections.max.reauth.ms=1500")
    conn = Raw(broker.port)
    assert conn.scram("alice", "alice-secret").session_lifetime_ms == 1500
    time.sleep(1.0)
    assert conn.scram("alice", "alice-secret").session_lifetime_ms == 1500  # re-authenticated in time
    time.sleep(1.0)
    assert conn.metadata_ok()  # 2 s after the first login, but within the second session
    time.sleep(1.7)
    conn.sock.sendall(encode_request(RequestHeader(ApiKey.METADATA, 8, 99, "t"), {"topics": None}))
    assert read_frame(conn.sock) is None  # expired: closed
    # re-authenticating as someone else is refused and closes the connection
    conn = Raw(broker.port)
    assert conn.scram("alice", "alice-secret").error_code == 0
    answer = conn.scram("bob", "bob-secret", "SCRAM-SHA-512")
    assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert "re-authentication" in answer.error_message and conn.closed()
    # re-authentication needs SaslAuthenticate requests: a v0 handshake (raw tokens) is refused
    conn = Raw(broker.port)
    assert conn.scram("alice", "alice-secret").error_code == 0
    assert conn.handshake("SCRAM-SHA-512", version=0).error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert conn.closed()
    # a client that authenticated with SaslAuthenticate v0 cannot re-authenticate (Kafka's rule)
    conn = Raw(broker.port)
    assert conn.scram("alice", "alice-secret", version=0).error_code == 0
    assert conn.handshake("SCRAM-SHA-512").error_code == ErrorCode.ILLEGAL_SASL_STATE


# --- kcli's own client -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mechanism", "user", "password"), [
    ("SCRAM-SHA-512", "alice", "alice-secret"), ("SCRAM-SHA-256", "bob", "bob-secret"), ("PLAIN", "alice", "alice-secret")])
def test_kcli_client_authenticates(sasl, mechanism: str, user: str, password: str) -> None:
    settings = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism, "sasl.username": user,
                "sasl.password": password}
    conn = BrokerConnection(("127.0.0.1", sasl.port), config=ClientConfig(settings))
    try:
        assert conn.request(ApiKey.METADATA, {"topics": None}).brokers
    finally:
        conn.close()


def test_kcli_client_password_from_a_file_or_a_variable(sasl, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pw").write_text("alice-secret\n")
    monkeypatch.setenv("ALICE_PW", "alice-secret")
    base = {"security.protocol": "SASL_PLAINTEXT", "sasl.username": "alice"}
    jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";'
    for extra in ({"sasl.password.file": str(tmp_path / "pw")}, {"sasl.password.env": "ALICE_PW"},
                  {"sasl.username": "", "sasl.jaas.config": jaas}):  # a Java client's properties file
        BrokerConnection(("127.0.0.1", sasl.port), config=ClientConfig({**base, **extra})).close()


def test_kcli_client_reads_the_password_file_once_per_run(sasl, tmp_path: Path) -> None:
    """A command opens several connections; each must not read the password file again."""
    (tmp_path / "pw").write_text("alice-secret\n")
    config = ClientConfig({"security.protocol": "SASL_PLAINTEXT", "sasl.username": "alice",
                           "sasl.password.file": str(tmp_path / "pw")})
    BrokerConnection(("127.0.0.1", sasl.port), config=config).close()
    (tmp_path / "pw").unlink()
    BrokerConnection(("127.0.0.1", sasl.port), config=config).close()


def test_kcli_client_refused(sasl) -> None:
    base = {"security.protocol": "SASL_PLAINTEXT", "sasl.username": "alice", "sasl.password": "wrong-pw-123"}
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as refused:
        BrokerConnection(("127.0.0.1", sasl.port), config=ClientConfig(base))
    assert time.monotonic() - started < 10  # an answer, not a timeout
    assert "alice" in str(refused.value) and "wrong-pw-123" not in str(refused.value)
    assert refused.value.exit_code == 13
    with pytest.raises(UsageError, match="sasl.username"):
        BrokerConnection(("127.0.0.1", sasl.port), config=ClientConfig({"security.protocol": "SASL_PLAINTEXT"}))


def test_kcli_client_mechanism_not_enabled(brokers: Brokers) -> None:
    broker = sasl_broker(brokers, "--override", "sasl.enabled.mechanisms=SCRAM-SHA-512")
    settings = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "alice",
                "sasl.password": "alice-secret"}
    with pytest.raises(AuthenticationError, match="does not enable SASL mechanism PLAIN"):
        BrokerConnection(("127.0.0.1", broker.port), config=ClientConfig(settings))


def test_kcli_client_reauthenticates_before_the_session_ends(brokers: Brokers) -> None:
    broker = sasl_broker(brokers, "--override", "connections.max.reauth.ms=1000")
    settings = {"security.protocol": "SASL_PLAINTEXT", "sasl.username": "alice", "sasl.password": "alice-secret"}
    conn = BrokerConnection(("127.0.0.1", broker.port), config=ClientConfig(settings))
    try:
        for _ in range(6):
            time.sleep(0.5)
            assert conn.request(ApiKey.METADATA, {"topics": None}).brokers
    finally:
        conn.close()
    assert "re-authenticated User:alice" in broker.log()


# --- kcli user through a broker ----------------------------------------------------------------------------


def test_user_commands_through_the_broker(sasl) -> None:
    """With a broker running, `kcli user` goes through it (AlterUserScramCredentials, over the Unix
    socket), and the new user logs in over SASL at once."""
    sasl.kcli("user", "create", "carol", "--mechanism", "SCRAM-SHA-256", input="carol-pw\n")
    listed = {u["user"]: u for u in json.loads(sasl.kcli("user", "list", "--json").stdout)}
    assert set(listed) == {"alice", "bob", "carol"}
    assert listed["carol"]["credentials"] == [{"mechanism": "SCRAM-SHA-256", "iterations": 4096}]
    assert Raw(sasl.port).scram("carol", "carol-pw", "SCRAM-SHA-256").error_code == 0
    sasl.kcli("user", "delete", "carol")
    assert Raw(sasl.port).scram("carol", "carol-pw", "SCRAM-SHA-256").error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    res = sasl.kcli("user", "delete", "carol", ok=False)
    assert res.returncode == 3, res.stderr


def test_every_broker_sees_a_new_user_at_once(brokers: Brokers) -> None:
    """One credential store per data dir: a user created through broker 0 logs in at broker 1 at once,
    and a deleted one is refused there at once."""
    brokers.init(2)
    first = brokers.start(0, *OPEN, listener="SASL_PLAINTEXT://127.0.0.1:0")
    second = brokers.start(1, *OPEN, listener="SASL_PLAINTEXT://127.0.0.1:0")
    conn = Raw(first.port)
    assert conn.handshake("PLAIN").error_code == ErrorCode.NONE
    assert conn.authenticate(b"\0nobody\0x").error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    brokers.kcli("user", "create", "frank", input="frank-pw\n")  # through a live broker
    assert Raw(second.port).scram("frank", "frank-pw").error_code == ErrorCode.NONE
    brokers.kcli("user", "delete", "frank")
    assert Raw(second.port).scram("frank", "frank-pw").error_code == ErrorCode.SASL_AUTHENTICATION_FAILED


def test_describe_and_alter_errors_on_the_wire(sasl) -> None:
    conn = Raw(sasl.port)
    conn.scram("alice", "alice-secret")
    got = conn.call(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": [{"name": "alice"}, {"name": "zed"},
                                                                          {"name": "bob"}, {"name": "bob"}]})
    by_user = {r.user: r for r in got.results}
    assert by_user["alice"].error_code == 0 and [(i.mechanism, i.iterations) for i in by_user["alice"].credential_infos] == [(2, 4096)]
    assert by_user["zed"].error_code == ErrorCode.RESOURCE_NOT_FOUND
    assert by_user["bob"].error_code == ErrorCode.DUPLICATE_RESOURCE
    up = {"name": "dan", "mechanism": 1, "iterations": 4096, "salt": b"s" * 16, "salted_password": b"p" * 32}
    got = conn.call(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, {
        "deletions": [{"name": "ghost", "mechanism": 1}, {"name": "bob", "mechanism": 7}],
        "upsertions": [up, {**up, "name": "few", "iterations": 100}, {**up, "name": "", "mechanism": 2}]})
    codes = {r.user: r.error_code for r in got.results}
    assert codes == {"ghost": ErrorCode.RESOURCE_NOT_FOUND, "bob": ErrorCode.UNSUPPORTED_SASL_MECHANISM, "dan": 0,
                     "few": ErrorCode.UNACCEPTABLE_CREDENTIAL, "": ErrorCode.UNACCEPTABLE_CREDENTIAL}


# --- real clients ------------------------------------------------------------------------------------------

LOGINS = [("SCRAM-SHA-512", "alice", "alice-secret"), ("SCRAM-SHA-256", "bob", "bob-secret"),
          ("PLAIN", "alice", "alice-secret")]


@pytest.mark.interop
@pytest.mark.parametrize(("mechanism", "user", "password"), LOGINS)
def test_confluent_kafka_over_sasl(sasl, mechanism: str, user: str, password: str) -> None:
    ck = pytest.importorskip("confluent_kafka")
    conf = {"bootstrap.servers": sasl.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": mechanism,
            "sasl.username": user, "sasl.password": password}
    producer = ck.Producer(conf)
    for i in range(10):
        producer.produce("secured", f"m{i}".encode())
    assert producer.flush(30) == 0
    consumer = ck.Consumer({**conf, "group.id": f"g-{user}", "auto.offset.reset": "earliest"})
    consumer.subscribe(["secured"])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    consumer.close()
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(10))


@pytest.mark.interop
@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("nobody", "alice-secret")])
def test_confluent_kafka_refused(sasl, user: str, password: str) -> None:
    ck = pytest.importorskip("confluent_kafka")
    errors: list = []
    producer = ck.Producer({"bootstrap.servers": sasl.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
                            "error_cb": errors.append})
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors and errors[0].code() == ck.KafkaError._AUTHENTICATION, errors
    assert FAILED_512 in errors[0].str()


@pytest.mark.interop
@pytest.mark.parametrize(("mechanism", "user", "password"), LOGINS)
def test_kafka_python_over_sasl(sasl, mechanism: str, user: str, password: str) -> None:
    kafka = pytest.importorskip("kafka")
    conf = {"bootstrap_servers": sasl.bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
            "sasl_plain_username": user, "sasl_plain_password": password}
    producer = kafka.KafkaProducer(**conf)
    for i in range(5):
        producer.send("kp-secured", f"v{i}".encode()).get(timeout=30)
    producer.close()
    consumer = kafka.KafkaConsumer("kp-secured", auto_offset_reset="earliest", consumer_timeout_ms=10000, **conf)
    assert sorted(m.value for m in consumer)[:5] == [f"v{i}".encode() for i in range(5)]
    consumer.close()


@pytest.mark.interop
def test_kafka_python_refused(sasl, caplog: pytest.LogCaptureFixture) -> None:
    """kafka-python 3 retries a bootstrap that failed authentication until its bootstrap timeout, so
    the constructor ends with a timeout: what matters is that each attempt met SaslAuthenticationFailed
    (the broker's answer, read before the connection closed), not a silent hang-up."""
    kafka = pytest.importorskip("kafka")
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):
        kafka.KafkaProducer(bootstrap_servers=sasl.bootstrap, security_protocol="SASL_PLAINTEXT",
                            sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                            sasl_plain_password="wrong", bootstrap_timeout_ms=3000)
    failures = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
    assert failures and "invalid credentials" in failures[0]


KCAT = shutil.which("kcat")


@pytest.mark.interop
@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_over_sasl(sasl) -> None:
    auth = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
            "-X", "sasl.username=alice"]
    run = [KCAT, "-b", sasl.bootstrap, *auth]
    subprocess.run([*run, "-X", "sasl.password=alice-secret", "-P", "-t", "kc"], input=b"one\ntwo\n", check=True,
                   timeout=60)
    out = subprocess.run([*run, "-X", "sasl.password=alice-secret", "-C", "-t", "kc", "-o", "beginning", "-e", "-q"],
                         capture_output=True, check=True, timeout=60).stdout
    assert out == b"one\ntwo\n"
    bad = subprocess.run([*run, "-X", "sasl.password=nope", "-L"], capture_output=True, timeout=60)
    assert bad.returncode != 0 and b"Authentication failed" in bad.stderr


@pytest.mark.interop
def test_confluent_admin_manages_scram_users(sasl) -> None:
    ck = pytest.importorskip("confluent_kafka")
    admin_mod = pytest.importorskip("confluent_kafka.admin")
    conf = {"bootstrap.servers": sasl.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": "alice-secret"}
    admin = admin_mod.AdminClient(conf)
    info = admin_mod.ScramCredentialInfo(admin_mod.ScramMechanism.SCRAM_SHA_256, 8192)
    upsert = admin_mod.UserScramCredentialUpsertion("erin", info, b"erin-pw", b"some-salt-bytes!")
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    described = admin.describe_user_scram_credentials(["erin", "alice"]).items()
    got = {user: [(c.mechanism, c.iterations) for c in f.result(30).scram_credential_infos] for user, f in described}
    assert got == {"erin": [(admin_mod.ScramMechanism.SCRAM_SHA_256, 8192)],
                   "alice": [(admin_mod.ScramMechanism.SCRAM_SHA_512, 4096)]}
    # the new user logs in, with the password the admin client salted
    producer = ck.Producer({**conf, "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": "erin",
                            "sasl.password": "erin-pw"})
    producer.produce("by-erin", b"x")
    assert producer.flush(30) == 0
    deletion = admin_mod.UserScramCredentialDeletion("erin", admin_mod.ScramMechanism.SCRAM_SHA_256)
    for future in admin.alter_user_scram_credentials([deletion]).values():
        future.result(30)
    assert "erin" not in {u["user"] for u in json.loads(sasl.kcli("user", "list", "--json").stdout)}


def test_sasl_listener_flag_is_checked(kcli) -> None:
    kcli("cluster", "init")
    res = kcli("broker", "serve", "--id", "0", "--listener", "SASL_PLAINTEXT://127.0.0.1:99999", ok=False)
    assert res.returncode == 2 and "out of range" in res.stderr

