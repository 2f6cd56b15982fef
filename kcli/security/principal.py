"""Principals of TLS clients: a certificate's subject as an RFC 2253 distinguished name, and Kafka's
``ssl.principal.mapping.rules`` that turn it into a user name.

The rules are Kafka's syntax: a comma-separated list of ``RULE:pattern/replacement/[L|U]`` and
``DEFAULT``, tried in order; the first whose pattern matches the *whole* name gives the user (the
replacement with ``$1``... for the pattern's groups, lower- or upper-cased with ``L``/``U``), and
``DEFAULT`` gives the name itself.  A name no rule matches is refused, as Kafka refuses the connection.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kcli.errors import UsageError

ANONYMOUS = "User:ANONYMOUS"
DEFAULT_RULES = "DEFAULT"

# one rule: DEFAULT, or RULE:pattern/replacement/ with an optional L or U; "\/" and "\\" escape inside
_PART = r"(?:\\.|[^\\/])*"
_RULE = re.compile(rf"\s*(?:(DEFAULT)|RULE:({_PART})/({_PART})/([LU]?))\s*(?:,|$)")
_BACKREF = re.compile(r"\$(\d+)")


class NoMatchingRule(Exception):
    """No mapping rule applies to a distinguished name: the client is not let in."""


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if self.pattern.fullmatch(name) is None:
            return None
        out = self.pattern.sub(lambda m: _expand(self.replacement, m), name)
        return out.lower() if self.case == "L" else out.upper() if self.case == "U" else out


def _expand(replacement: str, match: re.Match[str]) -> str:
    """Java's ``$N`` back references: a number beyond the groups is shortened digit by digit (``$12``
    with one group is ``$1`` then ``2``), and one still beyond them stays literal, as Kafka does."""
    groups = match.re.groups

    def ref(m: re.Match[str]) -> str:
        digits = m.group(1)
        n = int(digits)
        while n > groups and n >= 10:
            n //= 10
        if n > groups:
            return m.group(0)
        rest = digits[len(str(n)):]
        return (match.group(n) or "") + rest

    return _BACKREF.sub(ref, replacement)


class PrincipalMapper:
    """``ssl.principal.mapping.rules`` parsed once; :meth:`name` maps a distinguished name."""

    def __init__(self, rules: str | None = DEFAULT_RULES) -> None:
        self.rules: Sequence[_Rule] = parse_rules(DEFAULT_RULES if rules is None else rules)

    def name(self, distinguished_name: str) -> str:
        for rule in self.rules:
            found = rule.apply(distinguished_name)
            if found is not None:
                return found
        raise NoMatchingRule(f"no ssl.principal.mapping.rules rule applies to {distinguished_name!r}")

    def principal(self, distinguished_name: str | None) -> str:
        """``User:<name>`` of a client certificate's subject; ANONYMOUS without a certificate."""
        if not distinguished_name:
            return ANONYMOUS
        return f"User:{self.name(distinguished_name)}"


def parse_rules(text: str) -> list[_Rule]:
    """The rules of ``text``; empty entries are skipped, anything else that is not a rule is a usage error."""
    rules: list[_Rule] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        if text[pos] in ", \t":
            pos += 1
            continue
        m = _RULE.match(text, pos)
        if m is None or m.end() == pos:
            raise UsageError(f"bad ssl.principal.mapping.rules entry at {text[pos:]!r}",
                             hint="use RULE:pattern/replacement/[L|U] or DEFAULT, separated by commas")
        if m.group(1):
            rules.append(_Rule(None))
        else:
            try:
                pattern = re.compile(m.group(2))
            except re.error as exc:
                raise UsageError(f"bad pattern {m.group(2)!r} in ssl.principal.mapping.rules: {exc}") from None
            rules.append(_Rule(pattern, m.group(3), m.group(4)))
        pos = m.end()
    return rules


# the attribute names RFC 2253 writes by keyword; OpenSSL's long names as Python's ssl reports them
_KEYWORDS = {
    "commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST", "organizationName": "O",
    "organizationalUnitName": "OU", "countryName": "C", "streetAddress": "STREET", "domainComponent": "DC",
    "userId": "UID",
}
_SPECIAL = re.compile(r'([,+"\\<>;])')


def _escape(value: str) -> str:
    out = _SPECIAL.sub(r"\\\1", value)
    if out[:1] in (" ", "#"):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def subject_dn(cert: dict | None) -> str | None:
    """The subject of a certificate as :meth:`ssl.SSLSocket.getpeercert` gives it, as an RFC 2253 name
    (most specific part first: ``CN=alice,OU=eng,O=acme,C=US``), as Java's X500Principal writes it;
    None without a certificate.  Attributes without an RFC 2253 keyword keep OpenSSL's name."""
    if not cert or not cert.get("subject"):
        return None
    rdns = []
    for rdn in reversed(cert["subject"]):
        rdns.append("+".join(f"{_KEYWORDS.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)
