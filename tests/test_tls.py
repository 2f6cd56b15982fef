"""Kafka-named listeners and TLS: several listeners per broker, Metadata answering with the endpoints of
the listener a client came in by, SSL listeners with client certificates (principals by Kafka's
``ssl.principal.mapping.rules``), kcli's own client over TLS, and real clients (confluent-kafka,
kafka-python, kcat) with and without a trusted certificate."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from support.brokers import request_frame
from support.tls import PKI, make_pki

from kcli.errors import UsageError
from kcli.protocol import ApiKey

KCAT = shutil.which("kcat")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def endpoint(broker, name: str) -> int:
    """The port listener ``name`` of a started broker is bound to, from its broker.json."""
    return next(e["port"] for e in broker.info["listeners"] if e["listener"] == name)


# these tests are about TLS; with a secured listener nothing is allowed without ACLs (test_acl.py has
# those), so the brokers here allow what no ACL names
OPEN = ("--override", "allow.everyone.if.no.acl.found=true")


def start_tls(brokers, pki: PKI, client_auth: str = "required", *extra: str):
    """A broker with a PLAINTEXT and an SSL listener."""
    return brokers.start(0, "--listener", "PLAINTEXT://127.0.0.1:0", "--listener", "SSL://127.0.0.1:0",
                         *pki.broker_args(client_auth), *OPEN, *extra, listener=None)


def properties(path: Path, **props: object) -> Path:
    path.write_text("".join(f"{k.replace('_', '.')}={v}\n" for k, v in props.items()))
    return path


def client_props(pki: PKI, cert: bool = True) -> dict[str, str]:
    props = {"security.protocol": "SSL", "ssl.cafile": str(pki.ca.cert)}
    if cert:
        props |= {"ssl.certfile": str(pki.client.cert), "ssl.keyfile": str(pki.client.key)}
    return props


# ---------------------------------------------------------------- principal mapping (unit)


def test_principal_mapping_rules_as_kafka_applies_them():
    from kcli.security.principal import PrincipalMapper

    mapper = PrincipalMapper(", ".join([
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
        "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
        "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
        "DEFAULT",
    ]))
    assert mapper.name("CN=Duke,OU=ServiceUsers,O=Org,C=US") == "duke"
    assert mapper.name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US") == "duke@sme"
    assert mapper.name("cn=duke,ou=sme,dc=mycp,dc=com") == "DUKE@SME"
    assert mapper.name("cN=duke,OU=JavaSoft,O=Sun Microsystems") == "DUKE"
    assert mapper.name("OU=JavaSoft,O=Sun Microsystems,C=US") == "OU=JavaSoft,O=Sun Microsystems,C=US"
    # an escaped comma inside the CN stays part of it
    escaped = PrincipalMapper(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT")
    assert escaped.name(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz") == r"Tkac\, Adam"
    # a back reference beyond the groups stays literal, as in Kafka
    assert PrincipalMapper("RULE:^CN=(\\w+).*$/$1-$2/").name("CN=alice,O=x") == "alice-$2"


def test_principal_mapping_without_a_matching_rule_refuses_and_no_certificate_is_anonymous():
    from kcli.security.principal import ANONYMOUS, NoMatchingRule, PrincipalMapper

    mapper = PrincipalMapper("RULE:^CN=(bob),.*$/$1/")
    assert mapper.principal("CN=bob,O=kcli") == "User:bob"
    with pytest.raises(NoMatchingRule):
        mapper.principal("CN=alice,O=kcli")
    assert mapper.principal(None) == ANONYMOUS
    assert PrincipalMapper().principal("CN=alice,O=kcli") == "User:CN=alice,O=kcli"  # DEFAULT: the whole name
    assert PrincipalMapper(",  ,DEFAULT,, ").principal("CN=x") == "User:CN=x"  # empty entries are skipped


@pytest.mark.parametrize("rules", [
    "default", "DEFAUL", "DEFAULT/L", "RULE:CN=(.*?),OU=ServiceUsers.*/$1", "rule:^CN=(.*?)$/$1/",
    "RULE:^CN=(.*?)$/$1/L/U", "RULE:^CN=(.*?)$/L", "RULE:^CN=(.*?)$/$1/LU", "RULE:^CN=((.*$/$1/",
])
def test_bad_principal_mapping_rules_are_usage_errors(rules):
    from kcli.security.principal import PrincipalMapper

    with pytest.raises(UsageError):
        PrincipalMapper(rules)


def test_certificate_subject_as_rfc2253_most_specific_first():
    from kcli.security.principal import subject_dn

    cert = {"subject": ((("countryName", "US"),), (("organizationName", "Acme, Inc."),),
                        (("organizationalUnitName", "eng"),), (("commonName", "alice"), ("userId", "a1")))}
    assert subject_dn(cert) == r"CN=alice+UID=a1,OU=eng,O=Acme\, Inc.,C=US"
    assert subject_dn({}) is None and subject_dn(None) is None


# ---------------------------------------------------------------- listener and client settings (unit)


def test_listeners_by_kafka_names_and_the_old_forms():
    from kcli.cluster.broker_info import Endpoint, parse_endpoints, parse_protocol_map

    got = parse_endpoints(["PLAINTEXT://127.0.0.1:9092", "ssl://:9093", "SASL_SSL://[::1]:9095"])
    assert got == [Endpoint("PLAINTEXT", "127.0.0.1", 9092), Endpoint("SSL", "127.0.0.1", 9093, "SSL"),
                   Endpoint("SASL_SSL", "::1", 9095, "SASL_SSL")]
    assert parse_endpoints(["9092"]) == [Endpoint("PLAINTEXT", "127.0.0.1", 9092)]  # kcli's older form
    assert parse_endpoints(["0.0.0.0:9092"]) == [Endpoint("PLAINTEXT", "0.0.0.0", 9092)]
    protocols = parse_protocol_map("INTERNAL:SSL, EXTERNAL:SASL_SSL")
    both = parse_endpoints(["INTERNAL://127.0.0.1:1,EXTERNAL://127.0.0.1:2"], protocols)
    assert [(e.listener, e.security_protocol) for e in both] == [("INTERNAL", "SSL"), ("EXTERNAL", "SASL_SSL")]
    for bad in (["INTERNAL://127.0.0.1:1"], ["SSL://127.0.0.1:1", "SSL://127.0.0.1:2"], ["SSL://host:port"]):
        with pytest.raises(UsageError):
            parse_endpoints(bad)
    with pytest.raises(UsageError):
        parse_protocol_map("X:TLS")


def test_broker_settings_check_listeners_and_tls_before_start(tmp_path):
    from kcli.broker.settings import BrokerSettings

    plain = BrokerSettings.from_configs({"listeners": "PLAINTEXT://127.0.0.1:0"})
    assert plain.tls is None and [e.listener for e in plain.listeners] == ["PLAINTEXT"]
    with pytest.raises(UsageError, match="needs a certificate"):
        BrokerSettings.from_configs({"listeners": "SSL://127.0.0.1:0"})
    with pytest.raises(UsageError, match="names no listener"):
        BrokerSettings.from_configs({"listeners": "PLAINTEXT://127.0.0.1:0",
                                     "advertised.listeners": "SSL://kafka.example:9093"})
    with pytest.raises(UsageError, match="ssl.principal.mapping.rules"):
        BrokerSettings.from_configs({"listeners": "SSL://127.0.0.1:0", "ssl.keystore.location": "x.pem",
                                     "ssl.principal.mapping.rules": "RULE:nope"})


def test_java_properties_as_kafka_tools_read_them():
    from kcli.net.client_config import parse_properties

    text = ("# comment\n! another\nsecurity.protocol=SSL\nssl.cafile : /etc/ca.pem\n"
            "ssl.key.password = p\\=w\\u0021rd  \nlong.value=a,\\\n    b\nspaced value\n\n")
    assert parse_properties(text) == {"security.protocol": "SSL", "ssl.cafile": "/etc/ca.pem",
                                      "ssl.key.password": "p=w!rd  ", "long.value": "a,b", "spaced": "value"}


def test_client_config_aliases_and_secrets_never_shown():
    from kcli.net.client_config import ClientConfig

    config = ClientConfig({"security.protocol": "ssl", "ssl.ca.location": "/ca.pem",
                           "ssl.certificate.location": "/c.pem", "ssl.key.location": "/k.pem",
                           "ssl.key.password": "hunter2", "sasl.mechanism": "PLAIN"})
    assert config.security_protocol == "SSL" and config.uses_tls
    assert (config.get("ssl.cafile"), config.get("ssl.certfile"), config.get("ssl.keyfile")) == (
        "/ca.pem", "/c.pem", "/k.pem")
    assert config.get("sasl.mechanism") == "PLAIN"  # kept for whoever reads it
    assert "hunter2" not in repr(config)
    with pytest.raises(UsageError):
        ClientConfig({"security.protocol": "TLS"})


def test_wrong_key_passphrase_is_an_error_that_does_not_echo_it(tmp_path):
    from support.tls import CA

    from kcli.security.tls import client_context, server_context

    issued = CA(tmp_path).issue("locked", password="correct-horse")
    server_context(str(issued.cert), str(issued.key), "correct-horse")  # the right one opens it
    for make in (lambda: server_context(str(issued.cert), str(issued.key), "s3cret-wrong"),
                 lambda: client_context(None, str(issued.cert), str(issued.key), "s3cret-wrong")):
        with pytest.raises(UsageError) as failure:
            make()
        assert "s3cret-wrong" not in str(failure.value) + str(failure.value.hint)


def test_key_password_is_sensitive_in_describe_configs():
    from kcli.cluster.configs import describe_broker, set_static
    from kcli.cluster.metadata import ClusterState

    set_static({"ssl.key.password": "hunter2", "ssl.client.auth": "required"})
    try:
        entries = {e.name: e for e in describe_broker(ClusterState(), 0)}
    finally:
        set_static({})
    assert entries["ssl.key.password"].sensitive and entries["ssl.key.password"].value is None
    assert "hunter2" not in json.dumps(entries["ssl.key.password"].to_json())
    assert entries["ssl.client.auth"].value == "required"


# ---------------------------------------------------------------- brokers with several listeners


def _metadata_brokers(conn) -> dict[int, tuple[str, int]]:
    body = conn.request(ApiKey.METADATA, {"topics": None, "allow_auto_topic_creation": False})
    return {b.node_id: (b.host, b.port) for b in body.brokers}


def test_each_client_gets_the_endpoints_of_its_own_listener(brokers, pki):
    """PLAINTEXT and SSL on one broker: Metadata (and FindCoordinator) answer each client with the
    endpoint of the listener it came in by; advertised.listeners replaces a listener's own address."""
    from kcli.net.client_config import ClientConfig
    from kcli.net.connection import BrokerConnection

    broker = start_tls(brokers, pki, "required", "--advertised-listener", "PLAINTEXT://kafka.example:19092")
    plain, tls = endpoint(broker, "PLAINTEXT"), endpoint(broker, "SSL")
    assert broker.info["endpoints"][0] == {"listener": "PLAINTEXT", "host": "kafka.example", "port": 19092,
                                           "security_protocol": "PLAINTEXT"}
    assert (broker.info["host"], broker.info["port"]) == ("kafka.example", 19092)  # older readers
    over_plain = BrokerConnection(("127.0.0.1", plain))
    over_tls = BrokerConnection(("127.0.0.1", tls), config=ClientConfig(client_props(pki)))
    try:
        assert _metadata_brokers(over_plain) == {0: ("kafka.example", 19092)}
        assert _metadata_brokers(over_tls) == {0: ("127.0.0.1", tls)}
        found = over_tls.request(ApiKey.FIND_COORDINATOR, {"key": "g", "key_type": 0, "coordinator_keys": ["g"]})
        ports = [c.port for c in found.coordinators] if found.coordinators else [found.port]
        assert ports == [tls]
    finally:
        over_plain.close()
        over_tls.close()
    listed = json.loads(brokers.kcli("broker", "list", "--json").stdout)
    assert [(e["listener"], e["host"]) for e in listed[0]["endpoints"]] == [("PLAINTEXT", "kafka.example"),
                                                                           ("SSL", "127.0.0.1")]
    assert [e["port"] for e in listed[0]["listeners"]] == [plain, tls]
    table = brokers.kcli("broker", "list").stdout
    assert f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}" in table


def test_metadata_names_every_broker_by_the_clients_listener(brokers, pki):
    from kcli.net.client_config import ClientConfig
    from kcli.net.connection import BrokerConnection

    brokers.init(2)
    started = [brokers.start(b, "--listener", "PLAINTEXT://127.0.0.1:0", "--listener", "SSL://127.0.0.1:0",
                             *pki.broker_args(), *OPEN, listener=None) for b in (0, 1)]
    over_tls = BrokerConnection(("127.0.0.1", endpoint(started[1], "SSL")), config=ClientConfig(client_props(pki)))
    over_plain = BrokerConnection(("127.0.0.1", endpoint(started[1], "PLAINTEXT")))
    try:
        deadline = time.monotonic() + 10  # a peer's broker.json is read through a short-lived cache
        while len(_metadata_brokers(over_tls)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _metadata_brokers(over_tls) == {b: ("127.0.0.1", endpoint(started[b], "SSL")) for b in (0, 1)}
        assert _metadata_brokers(over_plain) == {b: ("127.0.0.1", endpoint(started[b], "PLAINTEXT")) for b in (0, 1)}
    finally:
        over_tls.close()
        over_plain.close()
    # kcli's client follows those endpoints to each partition's leader, over TLS to both brokers
    brokers.runner.in_process("topic", "create", "spread", "-p", "2", "-r", "2")
    described = json.loads(brokers.kcli("topic", "describe", "spread", "--json").stdout)
    leaders = {p["leader"] for p in described[0]["partitions"]}
    assert leaders == {0, 1}
    config = properties(brokers.workdir / "client.properties", **client_props(pki))
    secure = ("--bootstrap-server", f"127.0.0.1:{endpoint(started[0], 'SSL')}", "--command-config", config)
    for partition in (0, 1):
        brokers.kcli(*secure, "produce", "spread", "-p", partition, input=f"to {partition}\n")
    out = brokers.kcli(*secure, "consume", "spread", "-b", "-c", "2").stdout
    assert sorted(out.splitlines()) == ["to 0", "to 1"]


def test_custom_listener_names_by_the_protocol_map(brokers, pki):
    """listener.security.protocol.map names listeners (INTERNAL over SSL, EXTERNAL in plain text), and
    each answers its clients with its own endpoints."""
    from kcli.net.client_config import ClientConfig
    from kcli.net.connection import BrokerConnection

    broker = brokers.start(0, "--listener-security-protocol-map", "INTERNAL:SSL,EXTERNAL:PLAINTEXT",
                           "--listener", "EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
                           *pki.broker_args(), *OPEN, listener=None)
    assert [(e["listener"], e["security_protocol"]) for e in broker.info["listeners"]] == [
        ("EXTERNAL", "PLAINTEXT"), ("INTERNAL", "SSL")]
    internal = BrokerConnection(("127.0.0.1", endpoint(broker, "INTERNAL")), config=ClientConfig(client_props(pki)))
    external = BrokerConnection(("127.0.0.1", endpoint(broker, "EXTERNAL")))
    try:
        assert _metadata_brokers(internal) == {0: ("127.0.0.1", endpoint(broker, "INTERNAL"))}
        assert _metadata_brokers(external) == {0: ("127.0.0.1", endpoint(broker, "EXTERNAL"))}
    finally:
        internal.close()
        external.close()


def test_kcli_client_over_ssl_from_command_config(brokers, pki, tmp_path):
    broker = start_tls(brokers, pki)
    bootstrap = f"127.0.0.1:{endpoint(broker, 'SSL')}"
    config = properties(tmp_path / "client.properties", **{
        "security.protocol": "SSL", "ssl.truststore.location": pki.ca.cert,
        "ssl.keystore.location": pki.client.cert, "ssl.key.location": pki.client.key})
    lines = "".join(f"m{i}\n" for i in range(50))
    brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config, "produce", "secure", input=lines)
    out = brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config,
                      "consume", "secure", "-b", "-c", "50").stdout
    assert out == lines
    # as a group member: the coordinator is found and reached over TLS too
    grouped = brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config,
                           "consume", "secure", "-g", "readers", "--reset", "earliest", "-c", "50").stdout
    assert grouped == lines


def test_kcli_client_over_ssl_from_kcli_toml(brokers, pki, tmp_path):
    broker = start_tls(brokers, pki)
    toml = tmp_path / "kcli.toml"
    toml.write_text(f'bootstrap_server = "127.0.0.1:{endpoint(broker, "SSL")}"\n[client]\n'
                    f'security.protocol = "SSL"\nssl.cafile = "{pki.ca.cert}"\n'
                    f'ssl.certfile = "{pki.client.cert}"\nssl.keyfile = "{pki.client.key}"\n')
    brokers.kcli("--config", toml, "produce", "fromtoml", input="a\nb\n")
    assert brokers.kcli("--config", toml, "consume", "fromtoml", "-b", "-c", "2").stdout == "a\nb\n"


def test_kcli_client_without_a_trusted_certificate_fails_with_a_tls_error(brokers, pki, tmp_path):
    """No client certificate, one from another CA, or no trust in the broker's CA: exit 8 at once with
    OpenSSL's reason, not a timeout; PLAINTEXT spoken to the SSL port is not let in either."""
    broker = start_tls(brokers, pki)
    bootstrap = f"127.0.0.1:{endpoint(broker, 'SSL')}"
    cases = {
        "nocert": client_props(pki, cert=False),
        "stranger": {**client_props(pki, cert=False), "ssl.certfile": pki.stranger.cert,
                     "ssl.keyfile": pki.stranger.key},
        "untrusted": {**client_props(pki), "ssl.cafile": pki.stranger.cert},
    }
    for name, props in cases.items():
        config = properties(tmp_path / f"{name}.properties", **props)
        started = time.monotonic()
        proc = brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config, "topic", "list", ok=False,
                           timeout=60)
        assert proc.returncode == 8, (name, proc.stderr)
        assert "TLS" in proc.stderr and proc.stderr.count("\n") == 1, (name, proc.stderr)
        assert time.monotonic() - started < 15, name
    plain = brokers.kcli("--bootstrap-server", bootstrap, "topic", "list", ok=False, timeout=90)
    assert plain.returncode == 8
    assert broker.proc.poll() is None


def test_the_broker_host_name_is_checked_unless_switched_off(brokers, pki, tmp_path):
    """The broker's certificate must name the host connected to (ssl.endpoint.identification.algorithm
    https, the default); empty switches the check off, as in Kafka."""
    nameless = pki.ca.issue("nameless", server=False)
    broker = brokers.start(0, "--ssl-certfile", str(nameless.cert), "--ssl-keyfile", str(nameless.key), *OPEN,
                           listener="SSL://127.0.0.1:0")
    bootstrap = f"127.0.0.1:{endpoint(broker, 'SSL')}"
    checked = properties(tmp_path / "checked.properties", **client_props(pki, cert=False))
    proc = brokers.kcli("--bootstrap-server", bootstrap, "--command-config", checked, "topic", "list", ok=False)
    assert proc.returncode == 8 and "CERTIFICATE_VERIFY_FAILED" in proc.stderr, proc.stderr
    unchecked = properties(tmp_path / "unchecked.properties", **client_props(pki, cert=False),
                           **{"ssl.endpoint.identification.algorithm": ""})
    brokers.kcli("--bootstrap-server", bootstrap, "--command-config", unchecked, "topic", "list")


def test_listeners_and_tls_from_kcli_toml_broker_table(brokers, pki, tmp_path):
    """kcli.toml's [broker] takes Kafka's names (listeners, ssl.keystore.location, ...); an encrypted
    broker key's passphrase may come from $KCLI_SSL_KEY_PASSWORD, and never shows in the log."""
    locked = pki.ca.issue("locked-broker", server=True, password="open-sesame")
    (brokers.data_dir).mkdir(parents=True, exist_ok=True)
    (brokers.data_dir / "kcli.toml").write_text(
        '[broker]\nlisteners = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"\n'
        f'ssl.keystore.location = "{locked.cert}"\nssl.key.location = "{locked.key}"\n'
        f'ssl.truststore.location = "{pki.ca.cert}"\nssl.client.auth = "required"\n'
        'allow.everyone.if.no.acl.found = true\n')
    brokers.env["KCLI_SSL_KEY_PASSWORD"] = "open-sesame"
    broker = brokers.start(0, listener=None)
    assert [e["listener"] for e in broker.info["listeners"]] == ["PLAINTEXT", "SSL"]
    config = properties(tmp_path / "client.properties", **client_props(pki))
    brokers.kcli("--bootstrap-server", f"127.0.0.1:{endpoint(broker, 'SSL')}", "--command-config", config,
                 "produce", "t", input="x\n")
    described = brokers.kcli("config", "describe", "--broker", "0", "--json").stdout
    assert "open-sesame" not in described and "open-sesame" not in broker.log()


def test_principal_from_the_client_certificate(brokers, pki, tmp_path):
    """ssl.principal.mapping.rules turn the certificate's subject into the session's principal; a
    subject no rule maps is not let in."""
    broker = start_tls(brokers, pki, "required", "-v",
                       "--ssl-principal-mapping-rules", "RULE:^CN=([a-z]+),OU=clients,.*$/$1/U")
    bootstrap = f"127.0.0.1:{endpoint(broker, 'SSL')}"
    config = properties(tmp_path / "alice.properties", **client_props(pki))
    brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config, "topic", "list")
    assert "principal User:ALICE" in broker.log()
    other = pki.ca.issue("svc")  # signed by the trusted CA, but no OU=clients: no rule maps it
    refused = properties(tmp_path / "svc.properties", **{
        **client_props(pki), "ssl.certfile": other.cert, "ssl.keyfile": other.key})
    proc = brokers.kcli("--bootstrap-server", bootstrap, "--command-config", refused, "topic", "list", ok=False)
    assert proc.returncode == 8
    assert "no ssl.principal.mapping.rules rule applies" in broker.log()


def test_requested_client_auth_lets_clients_without_a_certificate_in_as_anonymous(brokers, pki, tmp_path):
    broker = start_tls(brokers, pki, "requested", "-v")
    bootstrap = f"127.0.0.1:{endpoint(broker, 'SSL')}"
    for name, props in (("anon", client_props(pki, cert=False)), ("alice", client_props(pki))):
        config = properties(tmp_path / f"{name}.properties", **props)
        brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config, "topic", "list")
    log = broker.log()
    assert "principal User:ANONYMOUS" in log and "principal User:CN=alice,OU=clients,O=kcli,C=US" in log
    stranger = properties(tmp_path / "stranger.properties", **{
        **client_props(pki), "ssl.certfile": pki.stranger.cert, "ssl.keyfile": pki.stranger.key})
    proc = brokers.kcli("--bootstrap-server", bootstrap, "--command-config", stranger, "topic", "list", ok=False)
    assert proc.returncode == 8 and "TLS" in proc.stderr  # a certificate sent must still be trusted


# ---------------------------------------------------------------- bad clients on the SSL port


def _client_hello_start() -> bytes:
    """The first bytes of a real TLS ClientHello (from an in-memory handshake), to cut short."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _closed(sock: socket.socket, timeout: float) -> bool:
    """Whether the broker ends the connection within ``timeout`` (whatever it sends before)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


@pytest.mark.faults
def test_cut_handshakes_and_garbage_on_the_ssl_port_cost_only_their_connections(brokers, pki, tmp_path):
    """Stalled half-handshakes hold nothing up: with several open, a good client is served at once; a
    handshake cut short, garbage, or plaintext Kafka on the SSL port closes only that connection; a
    stalled one is closed once the handshake timeout passes."""
    broker = start_tls(brokers, pki)
    address = ("127.0.0.1", endpoint(broker, "SSL"))
    hello = _client_hello_start()
    stalled = []
    for _ in range(5):
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(hello[: len(hello) // 2])  # half a ClientHello, then nothing
        stalled.append(sock)
    silent = socket.create_connection(address, timeout=5)  # connects, says nothing
    stalled.append(silent)
    config = properties(tmp_path / "client.properties", **client_props(pki))
    bootstrap = f"{address[0]}:{address[1]}"
    started = time.monotonic()
    brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config, "produce", "alive", input="x\n")
    assert time.monotonic() - started < 8  # well under the 10 s handshake timeout the stalled ones wait for
    cut = socket.create_connection(address, timeout=5)
    cut.sendall(hello[:20])
    cut.close()  # cut short by the client
    for junk in (b"\x00" * 64, b"GET / HTTP/1.1\r\n\r\n", request_frame(ApiKey.API_VERSIONS, 0, {})):
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(junk)
        assert _closed(sock, 5), junk  # at most a TLS alert, then the end
    assert all(_closed(sock, 20) for sock in stalled)  # the handshake timeout closes them
    assert broker.proc.poll() is None
    assert brokers.kcli("--bootstrap-server", bootstrap, "--command-config", config,
                       "consume", "alive", "-b", "-c", "1").stdout == "x\n"
    for sock in stalled:
        sock.close()


# ---------------------------------------------------------------- real clients


@pytest.mark.interop
def test_confluent_kafka_over_ssl_with_a_client_certificate(brokers, pki):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    broker = start_tls(brokers, pki)
    conf = {"bootstrap.servers": f"127.0.0.1:{endpoint(broker, 'SSL')}", "security.protocol": "SSL",
            "ssl.ca.location": str(pki.ca.cert), "ssl.certificate.location": str(pki.client.cert),
            "ssl.key.location": str(pki.client.key)}
    producer = confluent_kafka.Producer(conf)
    for i in range(20):
        producer.produce("cf", f"v{i}".encode())
    assert producer.flush(30) == 0
    ports = {b.port for b in producer.list_topics(timeout=10).brokers.values()}
    assert ports == {endpoint(broker, "SSL")}
    consumer = confluent_kafka.Consumer({**conf, "group.id": "cf", "auto.offset.reset": "earliest"})
    consumer.subscribe(["cf"])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < 20 and time.monotonic() < deadline:
        msg = consumer.poll(1)
        if msg is not None and not msg.error():
            got.append(msg.value())
    consumer.close()
    assert got == [f"v{i}".encode() for i in range(20)]


@pytest.mark.interop
@pytest.mark.parametrize("who", ["nocert", "stranger"])
def test_confluent_kafka_without_a_trusted_certificate_gets_an_ssl_error(brokers, pki, who):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    broker = start_tls(brokers, pki)
    errors: list = []
    conf = {"bootstrap.servers": f"127.0.0.1:{endpoint(broker, 'SSL')}", "security.protocol": "SSL",
            "ssl.ca.location": str(pki.ca.cert), "error_cb": errors.append, "log_level": 0}
    if who == "stranger":
        conf |= {"ssl.certificate.location": str(pki.stranger.cert), "ssl.key.location": str(pki.stranger.key)}
    producer = confluent_kafka.Producer(conf)
    producer.produce("refused", b"x")
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, "no error within 15 s"
    text = " ".join(e.str() for e in errors)
    assert "SSL" in text or "alert" in text, text
    assert any(w in text for w in ("certificate required", "unknown ca", "handshake failure", "alert")), text
    producer.purge()
    assert broker.proc.poll() is None


@pytest.mark.interop
def test_kafka_python_over_ssl_with_a_client_certificate_and_refused_without(brokers, pki, caplog):
    kafka = pytest.importorskip("kafka")
    broker = start_tls(brokers, pki)
    common = {"bootstrap_servers": f"127.0.0.1:{endpoint(broker, 'SSL')}", "security_protocol": "SSL",
              "ssl_cafile": str(pki.ca.cert)}
    producer = kafka.KafkaProducer(**common, ssl_certfile=str(pki.client.cert), ssl_keyfile=str(pki.client.key))
    for i in range(10):
        producer.send("kp", f"k{i}".encode()).get(30)
    producer.close()
    consumer = kafka.KafkaConsumer("kp", **common, ssl_certfile=str(pki.client.cert),
                                   ssl_keyfile=str(pki.client.key), auto_offset_reset="earliest",
                                   consumer_timeout_ms=15000)
    got = [m.value for _, m in zip(range(10), consumer, strict=False)]
    consumer.close()
    assert got == [f"k{i}".encode() for i in range(10)]
    # without a certificate: kafka-python reports the broker's TLS alert (then gives up bootstrapping)
    caplog.set_level(logging.DEBUG, logger="kafka")
    with pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaProducer(**common, bootstrap_timeout_ms=5000)
    ssl_errors = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ssl.SSLError)]
    assert ssl_errors, [r.getMessage() for r in caplog.records][-10:]
    assert "CERTIFICATE_REQUIRED" in str(ssl_errors[0].exc_info[1]) or "alert" in str(ssl_errors[0].exc_info[1])


@pytest.mark.interop
@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_over_ssl(brokers, pki):
    broker = start_tls(brokers, pki)
    base = [KCAT, "-b", f"127.0.0.1:{endpoint(broker, 'SSL')}", "-X", "security.protocol=SSL",
            "-X", f"ssl.ca.location={pki.ca.cert}", "-X", f"ssl.certificate.location={pki.client.cert}",
            "-X", f"ssl.key.location={pki.client.key}"]
    lines = b"".join(b"line %d\n" % i for i in range(100))
    subprocess.run([*base, "-P", "-t", "kc"], input=lines, check=True, capture_output=True, timeout=60)
    out = subprocess.run([*base, "-C", "-t", "kc", "-o", "beginning", "-e", "-q"], check=True,
                         capture_output=True, timeout=60).stdout
    assert out == lines
    listing = subprocess.run([*base, "-L"], check=True, capture_output=True, timeout=60).stdout.decode()
    assert f"broker 0 at 127.0.0.1:{endpoint(broker, 'SSL')}" in listing
    refused = subprocess.run([KCAT, *base[1:5], "-X", f"ssl.ca.location={pki.ca.cert}", "-L", "-m", "3"],
                             capture_output=True, timeout=60)
    assert refused.returncode != 0 and b"SSL" in refused.stderr, refused.stderr


def test_old_listener_forms_still_serve_plaintext(brokers):
    broker = brokers.start(0, listener="127.0.0.1:0")
    assert broker.info["endpoints"] == [{"listener": "PLAINTEXT", "host": "127.0.0.1", "port": broker.port,
                                         "security_protocol": "PLAINTEXT"}]
    assert broker.info["listener"] == f"127.0.0.1:{broker.port}"
    brokers.kcli("--bootstrap-server", broker.bootstrap, "produce", "old", input="x\n")

