"""Kafka's JSON message definitions, and a reference codec for tests written straight from them.

The definitions are Apache Kafka's ``clients/src/main/resources/common/message/*.json``: the copies
kafka-python ships (``kafka/protocol/schemas/resources``) first, then the ones vendored under
``fixtures/kafka-messages/`` for the messages kafka-python lacks (see its PROVENANCE.md).

:class:`Message` encodes and decodes any message of any version by walking its JSON field list at run
time -- no code or types are shared with ``kcli.protocol``, so the two can check each other.  It follows
the rules of Kafka's message generator: fields in declaration order; in flexible versions (KIP-482)
compact strings/bytes/arrays (unsigned varint of length + 1, 0 for null) and a tagged-field section
closing every struct, holding the known tagged fields whose value differs from their default, in tag
order; nullable structs behind an int8 (-1 null, 1 present); a field's own ``flexibleVersions`` (the
request header's client id: ``"none"``) overriding the message's.

Values are dicts keyed by the snake_case of the JSON names, holding exactly the fields of the version
(tagged ones included); ``uuid`` is :class:`uuid.UUID`, ``bytes``/``records`` are ``bytes``.  Unknown
tagged fields go in and come out under ``UNKNOWN_TAGS`` as ``[(tag, raw bytes), ...]``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
import re
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_spec = importlib.util.find_spec("kafka")  # located, not imported: kafka-python warns on import
assert _spec is not None and _spec.origin is not None, "kafka-python is a test dependency"
KAFKA_PYTHON_DIR = Path(_spec.origin).parent / "protocol" / "schemas" / "resources"
VENDORED_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "kafka-messages"
JSON_DIRS = (KAFKA_PYTHON_DIR, VENDORED_DIR)

UNKNOWN_TAGS = "_unknown_tags"

_FIXED = {
    "bool": struct.Struct(">?"),
    "int8": struct.Struct(">b"),
    "int16": struct.Struct(">h"),
    "uint16": struct.Struct(">H"),
    "int32": struct.Struct(">i"),
    "uint32": struct.Struct(">I"),
    "int64": struct.Struct(">q"),
    "float64": struct.Struct(">d"),
}
_SIZED = ("string", "bytes", "records")
PRIMITIVES = frozenset(_FIXED) | frozenset(_SIZED) | {"uuid"}


# --- loading ------------------------------------------------------------------------------------------


def snake(name: str) -> str:
    """``ThrottleTimeMs`` -> ``throttle_time_ms``, as kcli and kafka-python name fields."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def in_range(spec: str | None, version: int) -> bool:
    """Whether ``version`` is in a JSON version range (``"3+"``, ``"1-4"``, ``"5"``, ``"none"``)."""
    if spec is None or spec == "none":
        return False
    if spec.endswith("+"):
        return version >= int(spec[:-1])
    lo, _, hi = spec.partition("-")
    return int(lo) <= version <= int(hi or lo)


def _read(path: Path) -> dict[str, Any]:
    text = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)  # the files carry // comment lines
    js: dict[str, Any] = json.loads(text)
    return js


def _max_version(js: dict[str, Any]) -> int:
    spec = js["validVersions"]
    return int(spec.rpartition("-")[2]) if "-" in spec else int(spec)


def json_path(name: str, version: int | None = None) -> Path:
    """The file defining ``name``: kafka-python's copy if it knows ``version`` (any version when None),
    else the vendored one.  Versions below a file's ``validVersions`` are still read from it: Kafka keeps
    the field ranges of the versions it stopped serving."""
    found = [d / f"{name}.json" for d in JSON_DIRS if (d / f"{name}.json").is_file()]
    if not found:
        raise FileNotFoundError(
            f"no JSON definition of {name}: vendor Kafka's {name}.json under {VENDORED_DIR} (see PROVENANCE.md)"
        )
    if version is not None:
        for path in found:
            if _max_version(_read(path)) >= version:
                return path
    return found[0]


@functools.cache
def _load(name: str, version: int | None) -> str:
    return json.dumps(_inlined(_read(json_path(name, version))))


def load_json(name: str, version: int | None = None) -> dict[str, Any]:
    """A message definition (a fresh copy), with the structs it shares between fields
    (``commonStructs``) inlined as the ``fields`` of the fields that use them."""
    js: dict[str, Any] = json.loads(_load(name, version))
    return js


def _inlined(js: dict[str, Any]) -> dict[str, Any]:
    common = {c["name"]: c["fields"] for c in js.get("commonStructs", [])}

    def inline(fields: list[dict[str, Any]]) -> None:
        for jf in fields:
            base = jf["type"].removeprefix("[]")
            if "fields" not in jf and base in common:
                jf["fields"] = json.loads(json.dumps(common[base]))
            inline(jf.get("fields", []))

    inline(js["fields"])
    return js


@functools.cache
def api_message_names() -> dict[tuple[int, str], str]:
    """``{(api_key, "request"|"response"): message name}`` over every JSON definition there is."""
    out: dict[tuple[int, str], str] = {}
    for d in reversed(JSON_DIRS):  # kafka-python's win
        for path in sorted(d.glob("*.json")):
            js = _read(path)
            if js.get("type") in ("request", "response") and "apiKey" in js:
                out[(js["apiKey"], js["type"])] = js["name"]
    return out


# --- the codec ----------------------------------------------------------------------------------------


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Reader:
    """A cursor over bytes that refuses to read past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated: need {n} bytes at offset {self.pos} of {len(self.data)}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def fixed(self, st: struct.Struct) -> Any:
        return st.unpack(self.take(st.size))[0]

    def uvarint(self) -> int:
        value = shift = 0
        for _ in range(5):
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
        raise ValueError(f"unsigned varint longer than 5 bytes at offset {self.pos}")

    def done(self) -> bool:
        return self.pos == len(self.data)


def field_type(jf: dict[str, Any]) -> tuple[bool, str]:
    """``(is_array, base type)`` of a JSON field: ``"[]int32"`` -> ``(True, "int32")``."""
    t = jf["type"]
    return t.startswith("[]"), t.removeprefix("[]")


def tagged_in(jf: dict[str, Any], version: int) -> bool:
    return in_range(jf.get("taggedVersions"), version)


def wire_fields(fields: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    """The fields of ``version`` written in order (not the tagged ones)."""
    return [jf for jf in fields if in_range(jf["versions"], version) and not tagged_in(jf, version)]


def tagged_fields(fields: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    return sorted((jf for jf in fields if tagged_in(jf, version)), key=lambda jf: jf["tag"])


def default(jf: dict[str, Any], version: int) -> Any:
    """A field's default value in ``version``, as Kafka's generated classes initialise it."""
    array, base = field_type(jf)
    d = jf.get("default")
    if d == "null":
        return None
    if array:
        return []
    if base not in PRIMITIVES:
        return {
            snake(f["name"]): default(f, version) for f in jf["fields"] if in_range(f["versions"], version)
        }
    if base == "bool":
        return d in ("true", True)
    if base in ("string",):
        return d or ""
    if base == "bytes":
        return b""
    if base == "records":
        return None
    if base == "uuid":
        return uuid.UUID(int=0)
    if base == "float64":
        return float(d or 0)
    if d is None or d == "":
        return 0
    return int(d, 0) if isinstance(d, str) else int(d)


class Message:
    """One JSON message definition as a codec for every version it describes."""

    def __init__(self, name: str, version: int | None = None) -> None:
        self.js = load_json(name, version)
        self.name = name
        self.api_key: int | None = self.js.get("apiKey")
        self.fields: list[dict[str, Any]] = self.js["fields"]

    def flexible(self, version: int) -> bool:
        return in_range(self.js["flexibleVersions"], version)

    def encode(self, value: dict[str, Any], version: int) -> bytes:
        out: list[bytes] = []
        _encode_struct(self.fields, value, version, self.flexible(version), out, self.name)
        return b"".join(out)

    def decode(self, data: bytes, version: int, *, whole: bool = True) -> dict[str, Any]:
        r = Reader(data)
        value = _decode_struct(self.fields, r, version, self.flexible(version))
        if whole and not r.done():
            raise ValueError(f"{self.name} v{version}: {len(r.data) - r.pos} trailing bytes")
        return value


def _flexible_field(jf: dict[str, Any], version: int, flexible: bool) -> bool:
    return in_range(jf["flexibleVersions"], version) if "flexibleVersions" in jf else flexible


def _encode_struct(
    fields: list[dict[str, Any]],
    value: dict[str, Any],
    version: int,
    flexible: bool,
    out: list[bytes],
    where: str,
) -> None:
    known = {snake(jf["name"]) for jf in fields} | {UNKNOWN_TAGS}
    unknown = set(value) - known
    if unknown:
        raise KeyError(f"{where}: no such field(s) {sorted(unknown)}")
    for jf in wire_fields(fields, version):
        name = snake(jf["name"])
        v = value[name] if name in value else default(jf, version)
        _encode_field(jf, v, version, _flexible_field(jf, version, flexible), out, f"{where}.{name}")
    if not flexible:
        return
    tags: list[tuple[int, bytes]] = []
    for jf in tagged_fields(fields, version):
        name = snake(jf["name"])
        v = value.get(name, default(jf, version))
        if v != default(jf, version):  # Kafka writes a tagged field only when it differs from its default
            part: list[bytes] = []
            _encode_field(jf, v, version, True, part, f"{where}.{name}")
            tags.append((jf["tag"], b"".join(part)))
    tags.extend(value.get(UNKNOWN_TAGS, []))
    tags.sort()
    out.append(_uvarint(len(tags)))
    for tag, data in tags:
        out.append(_uvarint(tag) + _uvarint(len(data)) + data)


def _encode_field(
    jf: dict[str, Any], v: Any, version: int, flexible: bool, out: list[bytes], where: str
) -> None:
    array, base = field_type(jf)
    nullable = in_range(jf.get("nullableVersions"), version)
    if v is None and not nullable:
        raise ValueError(f"{where}: null is not allowed in v{version}")
    if array:
        if v is None:
            out.append(b"\x00" if flexible else b"\xff\xff\xff\xff")
            return
        out.append(_uvarint(len(v) + 1) if flexible else struct.pack(">i", len(v)))
        for item in v:
            _encode_one(jf, base, item, version, flexible, False, out, where)
        return
    _encode_one(jf, base, v, version, flexible, nullable, out, where)


def _encode_one(
    jf: dict[str, Any],
    base: str,
    v: Any,
    version: int,
    flexible: bool,
    nullable: bool,
    out: list[bytes],
    where: str,
) -> None:
    if base in _FIXED:
        out.append(_FIXED[base].pack(v))
    elif base == "uuid":
        out.append(v.bytes)
    elif base in _SIZED:
        if v is None:
            out.append(b"\x00" if flexible else (b"\xff\xff" if base == "string" else b"\xff\xff\xff\xff"))
            return
        data = v.encode() if base == "string" else bytes(v)
        if flexible:
            out.append(_uvarint(len(data) + 1))
        else:
            out.append(struct.pack(">h" if base == "string" else ">i", len(data)))
        out.append(data)
    else:  # a struct
        if nullable:
            if v is None:
                out.append(b"\xff")
                return
            out.append(b"\x01")
        _encode_struct(jf["fields"], v, version, flexible, out, where)


def _decode_struct(fields: list[dict[str, Any]], r: Reader, version: int, flexible: bool) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for jf in wire_fields(fields, version):
        value[snake(jf["name"])] = _decode_field(jf, r, version, _flexible_field(jf, version, flexible))
    if not flexible:
        return value
    known = {jf["tag"]: jf for jf in tagged_fields(fields, version)}
    for jf in known.values():
        value[snake(jf["name"])] = default(jf, version)
    unknown: list[tuple[int, bytes]] = []
    last = -1
    for _ in range(r.uvarint()):
        tag = r.uvarint()
        if tag <= last:
            raise ValueError(f"tagged fields out of order: {tag} after {last}")
        last = tag
        data = r.take(r.uvarint())
        if tag in known:
            inner = Reader(data)
            value[snake(known[tag]["name"])] = _decode_field(known[tag], inner, version, True)
            if not inner.done():
                raise ValueError(f"tag {tag}: {len(data) - inner.pos} bytes left over")
        else:
            unknown.append((tag, data))
    if unknown:
        value[UNKNOWN_TAGS] = unknown
    return value


def _decode_field(jf: dict[str, Any], r: Reader, version: int, flexible: bool) -> Any:
    array, base = field_type(jf)
    nullable = in_range(jf.get("nullableVersions"), version)
    if array:
        n = r.uvarint() - 1 if flexible else r.fixed(_FIXED["int32"])
        if n < 0:
            if n == -1 and nullable:
                return None
            raise ValueError(f"{jf['name']}: array length {n}")
        return [_decode_one(jf, base, r, version, flexible, False) for _ in range(n)]
    return _decode_one(jf, base, r, version, flexible, nullable)


def _decode_one(
    jf: dict[str, Any], base: str, r: Reader, version: int, flexible: bool, nullable: bool
) -> Any:
    if base in _FIXED:
        return r.fixed(_FIXED[base])
    if base == "uuid":
        return uuid.UUID(bytes=r.take(16))
    if base in _SIZED:
        if flexible:
            n = r.uvarint() - 1
        else:
            n = r.fixed(_FIXED["int16"] if base == "string" else _FIXED["int32"])
        if n < 0:
            if n == -1 and nullable:
                return None
            raise ValueError(f"{jf['name']}: length {n}")
        data = r.take(n)
        return data.decode() if base == "string" else data
    if nullable:
        marker = r.fixed(_FIXED["int8"])
        if marker < 0:
            return None
    return _decode_struct(jf["fields"], r, version, flexible)


# --- headers and frames -------------------------------------------------------------------------------


def request_header_version(api_flexible: bool) -> int:
    return 2 if api_flexible else 1


def response_header_version(api_key: int, api_flexible: bool) -> int:
    """ApiVersions answers with header v0 in every version, so a client can always read it."""
    return 1 if api_flexible and api_key != 18 else 0


@dataclass(frozen=True)
class Api:
    """One API by its JSON definitions: request and response, headers included."""

    api_key: int
    request: Message
    response: Message

    @classmethod
    def of(cls, api_key: int, version: int | None = None) -> Api:
        names = api_message_names()
        if (api_key, "request") not in names:
            raise FileNotFoundError(f"no JSON definition with apiKey {api_key} in {JSON_DIRS}")
        return cls(
            api_key,
            Message(names[(api_key, "request")], version),
            Message(names[(api_key, "response")], version),
        )

    def message(self, kind: str) -> Message:
        return self.request if kind == "request" else self.response

    def encode_request(
        self,
        version: int,
        correlation_id: int,
        client_id: str | None,
        body: dict[str, Any],
        *,
        header_tags: tuple[tuple[int, bytes], ...] = (),
    ) -> bytes:
        """A whole request frame: int32 size, request header v1 or v2, body."""
        hv = request_header_version(self.request.flexible(version))
        header: dict[str, Any] = {
            "request_api_key": self.api_key,
            "request_api_version": version,
            "correlation_id": correlation_id,
            "client_id": client_id,
        }
        if header_tags:
            header[UNKNOWN_TAGS] = list(header_tags)
        payload = _header("RequestHeader").encode(header, hv) + self.request.encode(body, version)
        return struct.pack(">i", len(payload)) + payload

    def decode_request(self, payload: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(header, body)`` of a request payload (the frame without its size)."""
        key, version = struct.unpack(">hh", payload[:4])
        assert key == self.api_key, (key, self.api_key)
        hv = request_header_version(self.request.flexible(version))
        rh = _header("RequestHeader")
        r = Reader(payload)
        header = _decode_struct(rh.fields, r, hv, rh.flexible(hv))
        body = self.request.decode(r.data[r.pos :], version)
        return header, body

    def encode_response(self, version: int, correlation_id: int, body: dict[str, Any]) -> bytes:
        hv = response_header_version(self.api_key, self.response.flexible(version))
        payload = _header("ResponseHeader").encode({"correlation_id": correlation_id}, hv)
        payload += self.response.encode(body, version)
        return struct.pack(">i", len(payload)) + payload

    def decode_response(self, version: int, payload: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(header, body)`` of a response payload; the body must fill it exactly."""
        hv = response_header_version(self.api_key, self.response.flexible(version))
        rh = _header("ResponseHeader")
        r = Reader(payload)
        header = _decode_struct(rh.fields, r, hv, rh.flexible(hv))
        return header, self.response.decode(r.data[r.pos :], version)


@functools.cache
def _header(name: str) -> Message:
    return Message(name)


# --- sample values ------------------------------------------------------------------------------------

STRINGS = ("orders", "tøpic-ü-🦀", "x" * 40, "group.with-dots_1", "a")
MODES = ("full", "nulls", "random", "defaults")


def _scalar(base: str, d: Any, rng: random.Random) -> Any:
    """A value of ``base`` that differs from the default ``d``."""
    while True:
        if base == "bool":
            v: Any = not d
        elif base in _FIXED and base != "float64":
            fmt = _FIXED[base].format[-1]
            bits = _FIXED[base].size * 8
            lo, hi = (0, (1 << bits) - 1) if fmt.isupper() else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            v = rng.choice([lo, hi, 1, -1 if lo < 0 else 2, rng.randint(lo, hi)])
        elif base == "float64":
            v = rng.choice([0.5, -1.25, 1e300, rng.uniform(-1e6, 1e6)])
        elif base == "uuid":
            v = uuid.UUID(bytes=rng.randbytes(16))
        elif base == "string":
            v = rng.choice(STRINGS)
        else:  # bytes, records: opaque to the codec
            v = rng.randbytes(rng.choice([1, 7, 64]))
        if v != d:
            return v


def sample(
    fields: list[dict[str, Any]],
    version: int,
    rng: random.Random,
    mode: str,
    *,
    tagged: bool = True,
    depth: int = 0,
) -> dict[str, Any]:
    """A value of every field of ``version``: ``full`` -- every field set to something other than its
    default, arrays of two; ``nulls`` -- null wherever the version allows it, empty arrays elsewhere,
    other fields still not default; ``random`` -- seeded mixes of both, arrays of 0-3; ``defaults`` --
    every field at its default, spelled out (so no tagged field goes on the wire).  With ``tagged=False``
    tagged fields keep their defaults."""
    out: dict[str, Any] = {}
    for jf in fields:
        if not in_range(jf["versions"], version):
            continue
        name = snake(jf["name"])
        if mode == "defaults" or (tagged_in(jf, version) and not tagged):
            out[name] = default(jf, version)
            continue
        out[name] = _sample_field(jf, version, rng, mode, tagged, depth)
    return out


def _sample_field(
    jf: dict[str, Any], version: int, rng: random.Random, mode: str, tagged: bool, depth: int
) -> Any:
    array, base = field_type(jf)
    nullable = in_range(jf.get("nullableVersions"), version)
    if nullable and (mode == "nulls" or (mode == "random" and rng.random() < 0.3)):
        return None
    if array:
        if mode == "nulls":
            n = 0
        elif mode == "full":
            n = 2
        else:
            n = rng.randint(0, 3 if depth < 2 else 1)
        if base in PRIMITIVES:
            return [_scalar(base, default({"type": base, "versions": "0+"}, version), rng) for _ in range(n)]
        return [sample(jf["fields"], version, rng, mode, tagged=tagged, depth=depth + 1) for _ in range(n)]
    if base in PRIMITIVES:
        return _scalar(base, default(jf, version), rng)
    return sample(jf["fields"], version, rng, mode, tagged=tagged, depth=depth + 1)
