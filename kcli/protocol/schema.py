"""Declarative message schemas: one description per message, compiled per version into codecs.

A :class:`Schema` is written the way Kafka's ``clients/src/main/resources/common/message/*.json``
files are: a list of :class:`Field` s, each with the versions it exists in (``"0+"``, ``"3-7"``), the
versions in which it may be null, and a default.  ``Schema.codec(v)`` compiles the fields present in
version ``v`` into a decoder and an encoder (cached), so requests and responses, in both directions,
come from the same description and cannot drift apart.

Flexible versions (KIP-482) are the schema's ``flexible`` range, as Kafka's ``flexibleVersions``: the
same fields, but in those versions strings, bytes and records go compact (unsigned-varint length + 1),
arrays carry an unsigned-varint count + 1, and every struct ends with a tagged-field section.  A field
declared with ``tag=N`` lives in that section (Kafka's ``taggedVersions``): it is read when a peer sends
it, takes its default when not, and is written only when its value differs from the default; unknown
tags are skipped.  The choice is made once, when a version's codec is compiled: a classic version's
codec is exactly what it would be without flexible support.

Decoded values are :class:`Struct` s -- dicts whose keys are also attributes.  A decoded struct holds
*every* field of the schema: fields the wire version lacks are filled with their defaults, exactly
as Kafka's generated Java classes behave, so code handling several versions reads
``req.isolation_level`` without checking the version first.  For encoding, any mapping works
(``Struct`` or plain ``dict``); missing fields take their defaults, fields the target version lacks
are ignored, and a key that is no field of the schema at all is an error (it is a typo).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kcli.errors import ProtocolError

from .types import (
    I32,
    NO_TAGGED_FIELDS,
    Bytes,
    Decoder,
    Encoder,
    FieldError,
    Fixed,
    Parts,
    PrimitiveType,
    String,
    _check_remaining,
    as_buffer,
    decode_unsigned_varint,
    encode_compact_length,
    encode_unsigned_varint,
    flexible_form,
    skip_tagged_fields,
)

MAX_VERSION = 0x7FFF
MISSING: Any = object()  # "no explicit default": use the type's

# Exceptions that malformed input (decoding) or a bad value (encoding) can raise from the struct
# module, str/bytes conversions and len()/iteration; all become ProtocolError with a field path.
_CODEC_ERRORS = (struct.error, ValueError, TypeError, AttributeError, OverflowError, BufferError)


def parse_versions(spec: str | None) -> tuple[int, int] | None:
    """Kafka's version-range syntax: ``"3+"``, ``"1-4"``, ``"5"`` or ``"none"``/None (never)."""
    if spec is None or spec == "none":
        return None
    if spec.endswith("+"):
        return int(spec[:-1]), MAX_VERSION
    if "-" in spec:
        lo, hi = spec.split("-", 1)
        return int(lo), int(hi)
    return int(spec), int(spec)


class Struct(dict[str, Any]):
    """A decoded message or nested struct: a ``dict`` whose keys can also be read and written as
    attributes (``resp.topics[0].partitions``).  Being a dict it compares, prints and copies like
    one, and can be passed back to an encoder as is."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Struct({dict.__repr__(self)})"


# A compiled codec is a sequence of steps: a decode step reads its field(s) at a position into the
# struct and returns the next position; an encode step takes its field(s) from the value's ``get``.
DecodeStep = Callable[[memoryview, int, Struct], int]
EncodeStep = Callable[[Callable[[str, Any], Any], Parts], None]


class Array:
    """An array (int32 count, -1 for null; in flexible versions an unsigned-varint count + 1, 0 for
    null) of a primitive type or of structs.

    ``Array(INT32)`` is an array of int32; ``Array([Field(...), ...])`` an array of structs."""

    def __init__(self, item: PrimitiveType | Schema | Sequence[Field]) -> None:
        self.item: PrimitiveType | Schema | None
        self.fields: tuple[Field, ...] | None
        if isinstance(item, Fixed | String | Bytes | Schema):
            self.item, self.fields = item, None
        else:  # struct fields; the owning Schema turns them into a nested Schema named after the field
            self.item, self.fields = None, tuple(item)

    def __repr__(self) -> str:
        return f"Array({self.item!r})"


class Nested:
    """A struct-typed field that is no array (Kafka's ``"type": "Cursor"`` with fields of its own).

    A nullable one is preceded by an int8, -1 for null and 1 for a value, as Kafka's generated code
    writes it.  Its default is null when it may be null, else the struct of its fields' defaults."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields = tuple(fields)
        self.schema: Schema | None = None  # built by the owning Schema, named after the field

    def __repr__(self) -> str:
        return f"Nested({self.schema!r})"


class Field:
    """One field of a schema: ``Field(name, type, versions="0+", nullable=None, default=MISSING, tag=None)``.

    ``nullable`` is a version range like ``versions``.  ``default`` is used when encoding a mapping
    that lacks the field and when decoding a version that lacks it; MISSING means the type's zero
    value (0, False, "", b"", [] -- None for ``records``; see :class:`Nested` for structs).  ``tag``: the field is
    a tagged one (KIP-482) in its versions, which must be flexible ones."""

    __slots__ = ("name", "type", "versions", "nullable", "_default", "tag")

    def __init__(
        self,
        name: str,
        type: PrimitiveType | Array | Nested,
        versions: str = "0+",
        *,
        nullable: str | None = None,
        default: Any = MISSING,
        tag: int | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.versions = parse_versions(versions)
        self.nullable = parse_versions(nullable)
        self._default = default
        self.tag = tag
        if self.nullable is not None and isinstance(type, Fixed):
            raise ValueError(f"{name}: {type!r} cannot be nullable")

    def present(self, version: int) -> bool:
        r = self.versions
        return r is not None and r[0] <= version <= r[1]

    def nullable_in(self, version: int) -> bool:
        r = self.nullable
        return r is not None and r[0] <= version <= r[1]

    @property
    def default(self) -> Any:
        """The default value (a fresh list for arrays, so callers may mutate it)."""
        if self._default is not MISSING:
            return list(self._default) if isinstance(self._default, list) else self._default
        if isinstance(self.type, Array):
            return []
        if isinstance(self.type, Nested):
            # Kafka's default of a struct field: null if it may be null, else the struct of its defaults
            # (a tagged one equal to it is not sent, and one not received reads as it)
            if self.nullable is not None:
                return None
            return Struct({f.name: f.default for f in self.type.fields})
        return self.type.default

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.type!r})"


class Schema:
    """A named list of fields; call :meth:`decode` / :meth:`encode` with a version.

    ``flexible`` is the version range of Kafka's ``flexibleVersions`` (``"0+"``, ``"9+"``; None for a
    message with none); nested structs follow the message they are part of."""

    def __init__(self, name: str, fields: Sequence[Field], *, flexible: str | None = None) -> None:
        self.name = name
        self.fields: tuple[Field, ...] = tuple(fields)
        self.flexible = parse_versions(flexible)
        seen: set[str] = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"{name}: duplicate field {f.name}")
            if hasattr(dict, f.name) or f.name.startswith("_"):
                raise ValueError(f"{name}: field name {f.name!r} would shadow a dict attribute")
            seen.add(f.name)
            t = f.type
            if isinstance(t, Array) and t.item is None:
                t.item = Schema(f"{name}.{f.name}", t.fields or ())
            elif isinstance(t, Nested) and t.schema is None:
                t.schema = Schema(f"{name}.{f.name}", t.fields)
        self.names = frozenset(seen)
        self._codecs: dict[int, _Codec] = {}  # by version, flexible as this schema says
        self._nested_codecs: dict[tuple[int, bool], _Codec] = {}  # as part of another message

    def __repr__(self) -> str:
        return f"Schema({self.name!r})"

    def fields_for(self, version: int) -> list[Field]:
        """The untagged fields on the wire in ``version``, in wire order."""
        return [f for f in self.fields if f.present(version) and f.tag is None]

    def tagged_for(self, version: int) -> list[Field]:
        """The tagged fields ``version`` knows, by tag (they travel in the tagged-field section)."""
        return sorted((f for f in self.fields if f.present(version) and f.tag is not None), key=lambda f: f.tag or 0)

    def is_flexible(self, version: int) -> bool:
        """Whether ``version`` is a flexible one (compact types, tagged fields)."""
        r = self.flexible
        return r is not None and r[0] <= version <= r[1]

    def codec(self, version: int) -> _Codec:
        """The compiled codec for ``version`` (built on first use, then cached)."""
        c = self._codecs.get(version)
        if c is None:
            c = self._codecs[version] = _Codec(self, version, self.is_flexible(version))
        return c

    def nested_codec(self, version: int, flexible: bool) -> _Codec:
        """The codec of this struct inside a message, which decides whether ``version`` is flexible."""
        c = self._nested_codecs.get((version, flexible))
        if c is None:
            c = self._nested_codecs[(version, flexible)] = _Codec(self, version, flexible)
        return c

    def decode(
        self, data: bytes | bytearray | memoryview, version: int, *, allow_trailing: bool = False
    ) -> Struct:
        """Decode one message that fills ``data`` (trailing bytes are an error unless allowed)."""
        buf = as_buffer(data)
        value, pos = self.decode_from(buf, 0, version)
        if pos != len(buf) and not allow_trailing:
            raise ProtocolError(f"{self.name} v{version}: {len(buf) - pos} unexpected trailing bytes")
        return value

    def decode_from(self, buf: memoryview, pos: int, version: int) -> tuple[Struct, int]:
        """Decode at ``pos`` of a flat byte memoryview; returns ``(struct, new_pos)``."""
        try:
            return self.codec(version).decode(buf, pos)
        except FieldError as e:
            e.context = e.context or f"{self.name} v{version}"
            raise

    def encode(self, value: Mapping[str, Any], version: int) -> bytes:
        out: Parts = []
        self.encode_into(value, version, out)
        return b"".join(out)

    def encode_into(self, value: Mapping[str, Any], version: int, out: Parts) -> None:
        """Append the encoding of ``value`` to ``out`` as bytes-like parts (join them yourself)."""
        try:
            self.codec(version).encode(value, out)
        except FieldError as e:
            e.context = e.context or f"{self.name} v{version}"
            raise


def _repeat(code: str, n: int) -> str:
    """A struct format for ``n`` values of ``code`` ("16s", a uuid, cannot take a repeat count)."""
    return f">{n}{code}" if len(code) == 1 else ">" + code * n


def _array_decoder(item: PrimitiveType | Schema, version: int, nullable: bool, flexible: bool) -> Decoder:
    unpack_count = I32.unpack_from

    def count(buf: memoryview, pos: int, min_item: int) -> tuple[int, int]:
        """The element count at ``pos`` (-1 for null) and the position after it."""
        if flexible:
            n, pos = decode_unsigned_varint(buf, pos)
            n -= 1
        else:
            n = unpack_count(buf, pos)[0]
            pos += 4
        if n < 0:
            if n == -1 and nullable:
                return -1, pos
            raise FieldError(f"invalid array length {n}")
        if n * max(min_item, 1) > len(buf) - pos:
            raise FieldError(f"array of {n} elements cannot fit in the {len(buf) - pos} bytes left")
        return n, pos

    if isinstance(item, Fixed):
        code, size = item.code, item.size

        def dec_fixed(buf: memoryview, pos: int) -> tuple[Any, int]:
            n, pos = count(buf, pos, size)
            if n < 0:
                return None, pos
            return list(struct.unpack_from(_repeat(code, n), buf, pos)), pos + n * size

        return dec_fixed

    item_dec: Decoder
    if isinstance(item, Schema):
        codec = item.nested_codec(version, flexible)
        item_dec, min_item = codec.decode, codec.min_size
    else:
        wire = flexible_form(item) if flexible else item
        item_dec, min_item = wire.decoder(False), wire.min_size

    def dec(buf: memoryview, pos: int) -> tuple[Any, int]:
        n, pos = count(buf, pos, min_item)
        if n < 0:
            return None, pos
        items: list[Any] = []
        append = items.append
        i = 0
        try:
            for i in range(n):  # noqa: B007 - i is read by the error handlers
                v, pos = item_dec(buf, pos)
                append(v)
        except FieldError as e:
            e.path.insert(0, f"[{i}]")
            raise
        except _CODEC_ERRORS as e:
            err = FieldError(f"malformed: {e}")
            err.path.append(f"[{i}]")
            raise err from None
        return items, pos

    return dec


def _array_encoder(item: PrimitiveType | Schema, version: int, nullable: bool, flexible: bool) -> Encoder:
    null = b"\x00" if flexible else b"\xff\xff\xff\xff"
    pack_count: Callable[[int], bytes] = encode_compact_length if flexible else I32.pack

    def items_of(value: Any) -> Sequence[Any]:
        if isinstance(value, list | tuple):
            return value
        if isinstance(value, str | bytes | bytearray | memoryview | Mapping):
            raise FieldError(f"expected a list, got {type(value).__name__}")
        return list(value)

    if isinstance(item, Fixed):
        code = item.code

        def enc_fixed(value: Any, out: Parts) -> None:
            if value is None:
                if not nullable:
                    raise FieldError("null is not allowed for this array")
                out.append(null)
                return
            items = items_of(value)
            out.append(pack_count(len(items)) + struct.pack(_repeat(code, len(items)), *items))

        return enc_fixed

    item_enc: Encoder
    if isinstance(item, Schema):
        item_enc = item.nested_codec(version, flexible).encode
    else:
        item_enc = (flexible_form(item) if flexible else item).encoder(False)

    def enc(value: Any, out: Parts) -> None:
        if value is None:
            if not nullable:
                raise FieldError("null is not allowed for this array")
            out.append(null)
            return
        items = items_of(value)
        out.append(pack_count(len(items)))
        i = 0
        try:
            for i, v in enumerate(items):  # noqa: B007 - i is read by the error handlers
                item_enc(v, out)
        except FieldError as e:
            e.path.insert(0, f"[{i}]")
            raise
        except _CODEC_ERRORS as e:
            err = FieldError(f"bad value: {e}")
            err.path.append(f"[{i}]")
            raise err from None

    return enc


class _Codec:
    """One schema compiled for one version, classic or flexible.

    Consecutive fixed-width fields become a single ``struct.Struct`` (one unpack/pack call per run);
    every other field is a step with its own decoder/encoder closure.  A flexible codec ends with a
    step for the struct's tagged-field section."""

    def __init__(self, schema: Schema, version: int, flexible: bool) -> None:
        present = schema.fields_for(version)
        self.min_size = 0
        dec_steps: list[tuple[str, DecodeStep]] = []
        enc_steps: list[tuple[str, EncodeStep]] = []
        run: list[tuple[str, str, Any]] = []  # (name, struct code, default) of consecutive fixed fields
        fixed_names = {f.name for f in present if isinstance(f.type, Fixed)}

        def flush() -> None:
            if not run:
                return
            codes = tuple(code for _name, code, _default in run)
            st = struct.Struct(">" + "".join(codes))
            names = tuple(name for name, _code, _default in run)
            defaults = tuple(default for _name, _code, default in run)
            label = names[0] if len(names) == 1 else "{" + ",".join(names) + "}"
            dec_steps.append((label, _fixed_decode_step(st, names)))
            enc_steps.append((label, _fixed_encode_step(st, names, defaults, codes)))
            run.clear()

        for f in present:
            t = f.type
            if isinstance(t, Fixed):
                run.append((f.name, t.code, f.default))
                self.min_size += t.size
                continue
            flush()
            dec, enc, size = _field_codec(f, version, flexible)
            self.min_size += size
            dec_steps.append((f.name, _var_decode_step(f.name, dec)))
            enc_steps.append((f.name, _var_encode_step(f.name, enc, f.default)))
        flush()
        if flexible:
            tagged = schema.tagged_for(version)
            if tagged:
                dec_steps.append(("_tagged_fields", _tagged_decode_step(tagged, version)))
                enc_steps.append(("_tagged_fields", _tagged_encode_step(tagged, version)))
            else:
                dec_steps.append(("_tagged_fields", _skip_tagged_step))
                enc_steps.append(("_tagged_fields", _no_tagged_step))
            self.min_size += 1

        self._dec = tuple(s for _, s in dec_steps)
        self._dec_labels = tuple(label for label, _ in dec_steps)
        self._enc = tuple(s for _, s in enc_steps)
        self._enc_labels = tuple(label for label, _ in enc_steps)
        self._enc_fixed = tuple(label.startswith("{") or label in fixed_names for label, _ in enc_steps)
        absent = [f for f in schema.fields if not f.present(version) or (f.tag is not None and not flexible)]
        self._absent_scalars = {f.name: f.default for f in absent if not isinstance(f.type, Array)}
        self._absent_arrays = tuple(f.name for f in absent if isinstance(f.type, Array))
        self._known = schema.names

    def decode(self, buf: memoryview, pos: int) -> tuple[Struct, int]:
        s = Struct()
        i = 0
        try:
            for i, step in enumerate(self._dec):  # noqa: B007 - i is read by the error handlers
                pos = step(buf, pos, s)
        except FieldError as e:
            e.path.insert(0, self._dec_labels[i])
            raise
        except _CODEC_ERRORS as e:
            msg = f"truncated: {e}" if isinstance(e, struct.error) else f"malformed: {e}"
            err = FieldError(msg)
            err.path.append(self._dec_labels[i])
            raise err from None
        if self._absent_scalars:
            s.update(self._absent_scalars)
        for name in self._absent_arrays:
            s[name] = []
        return s, pos

    def encode(self, value: Mapping[str, Any], out: Parts) -> None:
        if not isinstance(value, Mapping):
            raise FieldError(f"expected a mapping, got {type(value).__name__}")
        if not self._known.issuperset(value):
            unknown = sorted(str(k) for k in value if k not in self._known)
            raise FieldError(f"unknown field(s): {', '.join(unknown)}")
        get = value.get
        i = 0
        try:
            for i, step in enumerate(self._enc):  # noqa: B007 - i is read by the error handlers
                step(get, out)
        except FieldError as e:
            if not self._enc_fixed[i]:  # a fixed run names the offending field itself
                e.path.insert(0, self._enc_labels[i])
            raise
        except _CODEC_ERRORS as e:
            err = FieldError(f"bad value: {e}")
            err.path.append(self._enc_labels[i])
            raise err from None


def _fixed_decode_step(st: struct.Struct, names: tuple[str, ...]) -> DecodeStep:
    unpack, size = st.unpack_from, st.size
    if len(names) == 1:
        (name,) = names

        def step1(buf: memoryview, pos: int, s: Struct) -> int:
            s[name] = unpack(buf, pos)[0]
            return pos + size

        return step1

    def step(buf: memoryview, pos: int, s: Struct) -> int:
        s.update(zip(names, unpack(buf, pos), strict=True))
        return pos + size

    return step


def _fixed_encode_step(
    st: struct.Struct, names: tuple[str, ...], defaults: tuple[Any, ...], codes: tuple[str, ...]
) -> EncodeStep:
    pack = st.pack
    pairs = tuple(zip(names, defaults, strict=True))
    singles = tuple(struct.Struct(">" + c) for c in codes)

    def step(get: Callable[[str, Any], Any], out: Parts) -> None:
        values = [get(n, d) for n, d in pairs]
        try:
            out.append(pack(*values))
        except struct.error:
            # Say which field of the run was bad rather than naming the whole run.
            for (name, _), single, v in zip(pairs, singles, values, strict=True):
                try:
                    single.pack(v)
                except struct.error as e:
                    err = FieldError(f"bad value {v!r}: {e}")
                    err.path.append(name)
                    raise err from None
            raise

    return step


def _field_codec(f: Field, version: int, flexible: bool) -> tuple[Decoder, Encoder, int]:
    """The decoder, encoder and least wire size of a field that is not fixed-width."""
    t = f.type
    nullable = f.nullable_in(version)
    if isinstance(t, Array):
        assert t.item is not None
        return (
            _array_decoder(t.item, version, nullable, flexible),
            _array_encoder(t.item, version, nullable, flexible),
            1 if flexible else 4,
        )
    if isinstance(t, Nested):
        assert t.schema is not None
        codec = t.schema.nested_codec(version, flexible)
        return _nested_decoder(codec, nullable), _nested_encoder(codec, nullable), 1 if nullable else codec.min_size
    wire = flexible_form(t) if flexible else t
    return wire.decoder(nullable), wire.encoder(nullable), wire.min_size


def _nested_decoder(codec: _Codec, nullable: bool) -> Decoder:
    if not nullable:
        return codec.decode
    unpack = struct.Struct(">b").unpack_from

    def dec(buf: memoryview, pos: int) -> tuple[Any, int]:
        marker = unpack(buf, pos)[0]
        if marker < 0:
            return None, pos + 1
        if marker != 1:
            raise FieldError(f"invalid presence byte {marker} of a nullable struct")
        return codec.decode(buf, pos + 1)

    return dec


def _nested_encoder(codec: _Codec, nullable: bool) -> Encoder:
    def enc(value: Any, out: Parts) -> None:
        if value is None:
            if not nullable:
                raise FieldError("null is not allowed for this struct")
            out.append(b"\xff")
            return
        if nullable:
            out.append(b"\x01")
        codec.encode(value, out)

    return enc


def _skip_tagged_step(buf: memoryview, pos: int, s: Struct) -> int:
    return skip_tagged_fields(buf, pos)


def _tagged_decode_step(tagged: list[Field], version: int) -> DecodeStep:
    """Read a tagged-field section: known tags into their fields, unknown ones skipped; the known
    fields a peer did not send take their defaults."""
    known = {f.tag: (f, _field_codec(f, version, True)[0]) for f in tagged}
    scalars = {f.name: f.default for f in tagged if not isinstance(f.type, Array)}
    arrays = tuple(f.name for f in tagged if isinstance(f.type, Array))

    def step(buf: memoryview, pos: int, s: Struct) -> int:
        s.update(scalars)
        for name in arrays:
            s[name] = []  # a fresh list each time: callers may append to it
        if pos < len(buf) and buf[pos] == 0:  # the common case: nothing tagged was sent
            return pos + 1
        count, pos = decode_unsigned_varint(buf, pos)
        for _ in range(count):
            tag, pos = decode_unsigned_varint(buf, pos)
            size, pos = decode_unsigned_varint(buf, pos)
            end = _check_remaining(buf, pos, size)
            entry = known.get(tag)
            if entry is not None:
                f, dec = entry
                try:
                    value, used = dec(buf[:end], pos)
                except FieldError as e:
                    e.path.insert(0, f.name)
                    raise
                except _CODEC_ERRORS as e:
                    err = FieldError(f"malformed tagged field {tag}: {e}")
                    err.path.append(f.name)
                    raise err from None
                if used != end:
                    raise FieldError(f"tagged field {tag} ({f.name}) is {size} bytes, its value {used - pos}")
                s[f.name] = value
            pos = end
        return pos

    return step


def _tagged_encode_step(tagged: list[Field], version: int) -> EncodeStep:
    """Write a tagged-field section with the fields whose value is not their default, by tag."""
    fields = [(f.name, f.default, encode_unsigned_varint(f.tag or 0), _field_codec(f, version, True)[1]) for f in tagged]

    def step(get: Callable[[str, Any], Any], out: Parts) -> None:
        sent: Parts = []
        n = 0
        for name, default, tag, enc in fields:
            value = get(name, default)
            if value == default:
                continue
            part: Parts = []
            try:
                enc(value, part)
            except FieldError as e:
                e.path.insert(0, name)
                raise
            data = b"".join(part)
            sent += (tag, encode_unsigned_varint(len(data)), data)
            n += 1
        if n:
            out.append(encode_unsigned_varint(n))
            out.extend(sent)
        else:
            out.append(NO_TAGGED_FIELDS)

    return step


def _no_tagged_step(get: Callable[[str, Any], Any], out: Parts) -> None:
    out.append(NO_TAGGED_FIELDS)


def _var_decode_step(name: str, dec: Decoder) -> DecodeStep:
    def step(buf: memoryview, pos: int, s: Struct) -> int:
        v, pos = dec(buf, pos)
        s[name] = v
        return pos

    return step


def _var_encode_step(name: str, enc: Encoder, default: Any) -> EncodeStep:
    def step(get: Callable[[str, Any], Any], out: Parts) -> None:
        enc(get(name, default), out)

    return step
