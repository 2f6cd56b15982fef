"""Test certificates, made at test time with the ``cryptography`` package: a CA, a broker certificate for
127.0.0.1/localhost, client certificates signed by it, and a second CA that brokers do not trust."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


@dataclass
class Issued:
    cert: Path
    key: Path


def _name(cn: str, ou: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kcli")]
    if ou:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(parts)


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, password: str | None = None) -> None:
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    path.chmod(0o600)


class CA:
    """A certificate authority writing its certificates into ``folder``."""

    def __init__(self, folder: Path, name: str = "kcli-test-ca") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert = folder / f"{name}.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, ou: str | None = None, server: bool = False, password: str | None = None) -> Issued:
        """A certificate for ``cn`` (a server one names 127.0.0.1 and localhost) and its key."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn, ou)).issuer_name(self.name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            import ipaddress

            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.folder / f"{cn}.pem", self.folder / f"{cn}.key")
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, issued.key, password)
        return issued


@dataclass
class PKI:
    """What a TLS test needs: the CA, the broker's certificate, a client's (CN=alice, OU=clients), and a
    client certificate from a CA the broker does not trust."""

    ca: CA
    broker: Issued
    client: Issued
    stranger: Issued

    def broker_args(self, client_auth: str = "required") -> list[str]:
        return ["--ssl-certfile", str(self.broker.cert), "--ssl-keyfile", str(self.broker.key),
                "--ssl-cafile", str(self.ca.cert), "--ssl-client-auth", client_auth]


def make_pki(folder: Path) -> PKI:
    ca = CA(folder / "ca")
    other = CA(folder / "other", "other-ca")
    return PKI(ca, ca.issue("broker", server=True), ca.issue("alice", "clients"), other.issue("mallory"))
