"""kcli's client settings by Kafka's names (``security.protocol``, ``ssl.*``), as Kafka's tools read them
from ``--command-config FILE`` (Java properties) and kcli reads them from kcli.toml's ``[client]`` table.

They hold for connections to TCP addresses (``--bootstrap-server``); a data dir's brokers are reached by
their Unix sockets, which need none of it.  The command line makes one :class:`ClientConfig` per run and
sets it as the default every :class:`~kcli.net.connection.BrokerConnection` uses.

Besides Kafka's Java names, librdkafka's (``ssl.ca.location``, ``ssl.certificate.location``,
``ssl.key.location``) and short ones (``ssl.cafile``, ``ssl.certfile``, ``ssl.keyfile``) are accepted.
Unknown names are kept (other parts read theirs, e.g. ``sasl.*``) and otherwise ignored, as Kafka's
tools do.  Values of secrets are never shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from kcli.errors import UsageError

if TYPE_CHECKING:
    import ssl

    from kcli.net.sasl_client import SaslSettings

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# other spellings -> the name kcli reads
ALIASES = {
    "ssl.ca.location": "ssl.cafile",
    "ssl.truststore.location": "ssl.cafile",
    "ssl.certificate.location": "ssl.certfile",
    "ssl.keystore.location": "ssl.certfile",
    "ssl.key.location": "ssl.keyfile",
}
# names whose values are secrets: never in an error message or a repr
SECRETS = frozenset({"ssl.key.password", "ssl.keystore.password", "ssl.truststore.password", "sasl.password",
                     "sasl.jaas.config"})
_FALSE = ("false", "0", "no", "off")


class ClientConfig:
    """Client properties by name (aliases folded in), and the TLS context and SASL login they make (each
    built once per run, not per connection)."""

    def __init__(self, properties: Mapping[str, object] | None = None) -> None:
        props: dict[str, str] = {}
        for name, value in (properties or {}).items():
            key = ALIASES.get(name.strip(), name.strip())
            props[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        self.properties = props
        protocol = props.get("security.protocol", "PLAINTEXT").strip().upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise UsageError(f"bad security.protocol {protocol!r}", hint=f"use one of {', '.join(SECURITY_PROTOCOLS)}")
        self.security_protocol = protocol
        self._tls: ssl.SSLContext | None = None
        self._sasl: SaslSettings | None = None

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRETS else v) for k, v in self.properties.items()}
        return f"ClientConfig({shown})"

    def get(self, name: str) -> str | None:
        value = self.properties.get(name)
        return value if value not in (None, "") else None

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS context: the broker's certificate checked against ssl.cafile (the system's
        CAs without one) and, unless ``ssl.endpoint.identification.algorithm`` is empty (Kafka's switch),
        its host name; ssl.certfile/ssl.keyfile for brokers that want a client certificate."""
        if self._tls is None:
            from kcli.security.tls import client_context

            algorithm = self.properties.get("ssl.endpoint.identification.algorithm", "https").strip().lower()
            verify = self.properties.get("enable.ssl.certificate.verification", "true").strip().lower()
            context = client_context(self.get("ssl.cafile"), self.get("ssl.certfile"), self.get("ssl.keyfile"),
                                     self.get("ssl.key.password"), check_hostname=algorithm not in ("", "none"))
            if verify in _FALSE:  # librdkafka's switch: no check of the broker's certificate at all
                import ssl

                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context
        return self._tls


    def sasl(self) -> SaslSettings | None:
        """The SASL mechanism, user and password of a SASL_* protocol (None otherwise): a password file or
        variable is read at the first connection, not again by each one."""
        if self._sasl is None and self.security_protocol.startswith("SASL_"):
            from kcli.net.sasl_client import sasl_settings

            self._sasl = sasl_settings(self.properties)
        return self._sasl


def parse_properties(text: str) -> dict[str, str]:
    """Java ``.properties``: ``key=value``, ``key: value`` or ``key value`` lines, ``#``/``!`` comments,
    a trailing backslash continuing a line, and the usual escapes (``\\t``, ``\\n``, ``\\=``...)."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        while _continues(line):
            line = line[:-1] + next(lines, "").lstrip()
        key, value = _split(line)
        out[_unescape(key)] = _unescape(value)
    return out


def _continues(line: str) -> bool:
    backslashes = len(line) - len(line.rstrip("\\"))
    return backslashes % 2 == 1


def _split(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t\f":
            break
        i += 1
    key, rest = line[:i], line[i:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2:i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def load(table: Mapping[str, object] | None = None, command_config: str | None = None) -> ClientConfig:
    """kcli.toml's ``[client]`` table (flattened names), then the properties file ``command_config`` on
    top of it."""
    properties: dict[str, object] = dict(table or {})
    if command_config:
        try:
            with open(command_config, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read --command-config {command_config}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--command-config {command_config} is not UTF-8 text") from None
        properties.update(parse_properties(text))
    return ClientConfig(properties)


_default: ClientConfig | None = None
_loader: Callable[[], ClientConfig] = ClientConfig


def set_default(loader: Callable[[], ClientConfig]) -> None:
    """How this run's connections get their settings (the command line says so once, at start); read
    at the first connection, so a bad file fails the command that connects, not `--help`."""
    global _default, _loader
    _default, _loader = None, loader


def default() -> ClientConfig:
    global _default
    if _default is None:
        _default = _loader()
    return _default
