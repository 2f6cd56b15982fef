"""Framing and headers: turning whole requests/responses into bytes on the wire and back.

Every Kafka message is ``int32 size`` + header + body.  Requests of classic versions carry header v1
(api_key, api_version, correlation_id, client_id); responses header v0 (correlation_id).  Flexible
versions (KIP-482) carry request header v2 (the same, the client id still a classic nullable string,
then a tagged-field section) and response header v1 (correlation_id, tagged fields) -- except
ApiVersions, whose response header is v0 in every version, as in Kafka, so that a client can read the
answer before it knows what the broker speaks.  A client may open with an ApiVersions version kcli does
not implement; the broker still reads enough of that request to answer UNSUPPORTED_VERSION in a v0
body so the client retries with a lower version.  The first four header fields have the same layout in
every header version, so that always works.

Any other request the broker cannot serve but whose header it could read -- a version it does not
speak, a truncated body, a malformed tagged field -- raises a :class:`RequestError` carrying the header,
and :func:`error_response` answers it the way Kafka's ``AbstractRequest.getErrorResponse`` does: the
API's response at the request's version, its top-level error code set, and where the request lists
topics and partitions, each of them echoed with the error code.  The connection then goes on.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

from kcli.errors import ProtocolError

from .api import Api, ApiKey
from .apis import APIS, SUPPORTED, api_name, api_versions_entries, get_api
from .error_codes import ErrorCode
from .schema import Array, Schema, Struct
from .types import I16, I32, NO_TAGGED_FIELDS, FieldError, Parts, as_buffer, skip_tagged_fields

DEFAULT_MAX_FRAME_SIZE = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes default

_HEADER = struct.Struct(">hhi")


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None


class Request(NamedTuple):
    header: RequestHeader
    body: Struct


class Response(NamedTuple):
    correlation_id: int
    body: Struct


class RequestError(ProtocolError):
    """A request whose header could be read but which cannot be served: ``header``, the Kafka
    ``error_code`` to answer with and, when the body could be read, the ``body`` (see
    :func:`error_response`)."""

    error_code = ErrorCode.INVALID_REQUEST

    def __init__(self, message: str, header: RequestHeader, body: Struct | None = None) -> None:
        super().__init__(message)
        self.header = header
        self.body = body


class UnsupportedVersionError(RequestError):
    """A well-formed request header naming an API or version kcli does not implement.

    For a known API, ``body`` is the request read with kcli's schema at that version when that works
    (Kafka's field ranges describe versions beyond the implemented ones), so the answer can name the
    request's topics and partitions."""

    error_code = ErrorCode.UNSUPPORTED_VERSION

    def __init__(self, header: RequestHeader, body: Struct | None = None) -> None:
        lo_hi = SUPPORTED.get(header.api_key)
        supported = f"supported: v{lo_hi[0]}-v{lo_hi[1]}" if lo_hi else "api not implemented"
        super().__init__(f"unsupported {api_name(header.api_key)} v{header.api_version} ({supported})", header, body)


# --- framing --------------------------------------------------------------------------------------


def decode_frame_size(
    prefix: bytes | bytearray | memoryview, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> int:
    """The payload size from a 4-byte size prefix, checked against ``max_frame_size``.

    For readers that do ``readexactly(4)`` then ``readexactly(size)``."""
    if len(prefix) < 4:
        raise ProtocolError(f"frame size prefix needs 4 bytes, got {len(prefix)}")
    size: int = I32.unpack_from(prefix, 0)[0]
    if size < 0:
        raise ProtocolError(f"negative frame size {size}")
    if size > max_frame_size:
        raise ProtocolError(
            f"frame of {size} bytes exceeds the maximum of {max_frame_size}",
            hint="raise the maximum request size, or this is not a Kafka client speaking",
        )
    return size


def parse_frame(
    buf: bytes | bytearray | memoryview, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> tuple[bytes | None, int]:
    """Take one frame off the front of ``buf``.

    Returns ``(payload, consumed)``: the payload (header + body, without the size prefix) as a new
    ``bytes`` and the number of bytes of ``buf`` it used; or ``(None, 0)`` if ``buf`` does not yet
    hold a whole frame.  The payload is copied so the caller may reuse or shrink ``buf`` at once;
    decoding it afterwards is zero-copy.  ProtocolError if the announced size is negative or larger
    than ``max_frame_size`` (checked as soon as the 4-byte prefix is there)."""
    if len(buf) < 4:
        return None, 0
    size = decode_frame_size(buf[:4], max_frame_size)
    end = 4 + size
    if len(buf) < end:
        return None, 0
    return bytes(buf[4:end]), end


def _framed(parts: Parts) -> bytes:
    """Join ``parts`` (whose first element is a placeholder) behind an int32 size prefix."""
    size = 0
    for p in parts:
        size += len(p)
    parts[0] = I32.pack(size)
    return b"".join(parts)


# --- requests -------------------------------------------------------------------------------------


def encode_request_header(header: RequestHeader) -> bytes:
    """Request header v1 (the classic one); header v2 is this and an empty tagged-field section."""
    try:
        fixed = _HEADER.pack(header.api_key, header.api_version, header.correlation_id)
    except struct.error as e:
        raise ProtocolError(f"bad request header {header}: {e}") from None
    if header.client_id is None:
        return fixed + b"\xff\xff"
    cid = header.client_id.encode("utf-8")
    if len(cid) > 0x7FFF:
        raise ProtocolError("client_id longer than 32767 bytes")
    return fixed + I16.pack(len(cid)) + cid


def decode_request_header(frame: bytes | bytearray | memoryview) -> tuple[RequestHeader, int]:
    """Parse the header at the start of a request payload; returns ``(header, body_offset)``.

    Works for every request version: api_key, api_version, correlation_id and client_id are laid
    out the same in header v0-v2.  For a flexible (header v2) request, ``body_offset`` points at the
    header's tagged-field section, which kcli never needs to read."""
    buf = as_buffer(frame)
    if len(buf) < _HEADER.size:
        raise ProtocolError(f"request header truncated: {len(buf)} bytes")
    api_key, api_version, correlation_id = _HEADER.unpack_from(buf, 0)
    pos = _HEADER.size
    if len(buf) < pos + 2:  # header v0 (no client_id) is long dead; every client sends v1+
        raise ProtocolError("request header truncated: no client_id")
    n = I16.unpack_from(buf, pos)[0]
    pos += 2
    if n == -1:
        client_id = None
    elif n < 0 or pos + n > len(buf):
        raise ProtocolError(f"request header: bad client_id length {n}")
    else:
        try:
            client_id = str(buf[pos : pos + n], "utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"request header: client_id is not UTF-8: {e}") from None
        pos += n
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def encode_request(header: RequestHeader, body: Mapping[str, Any]) -> bytes:
    """A complete request frame (size prefix, header v1 or v2, body) ready to write to a socket."""
    api = get_api(header.api_key)
    if not api.supports(header.api_version):
        raise UnsupportedVersionError(header)
    parts: Parts = [b"", encode_request_header(header)]
    if api.is_flexible(header.api_version):
        parts.append(NO_TAGGED_FIELDS)
    api.request.encode_into(body, header.api_version, parts)
    return _framed(parts)


def decode_request(frame: bytes | bytearray | memoryview) -> Request:
    """Decode a request payload (as returned by :func:`parse_frame`) into ``Request(header, body)``.

    Raises :class:`UnsupportedVersionError` (carrying the header) for an api key or version outside
    :data:`~kcli.protocol.apis.SUPPORTED`, :class:`RequestError` for a body that does not decode, and
    ProtocolError for a header that does not.  ``records`` fields of the body are memoryviews into
    ``frame``."""
    buf = as_buffer(frame)
    header, pos = decode_request_header(buf)
    api = APIS.get(header.api_key)
    if api is None:
        raise UnsupportedVersionError(header)
    try:
        if api.is_flexible(header.api_version):
            pos = skip_tagged_fields(buf, pos)  # header v2: no tag of it is known to kcli
        # Bytes after the body are ignored, as Kafka's brokers ignore them: librdkafka 2.16 sends three
        # after its Metadata v13 request, and Kafka's parser never looks.
        body = api.request.decode(buf[pos:], header.api_version, allow_trailing=True)
    except ProtocolError as e:
        if not api.supports(header.api_version):
            raise UnsupportedVersionError(header) from None
        if isinstance(e, FieldError):
            e.context = f"{api.name} v{header.api_version} request"
        raise RequestError(f"malformed request: {e}", header) from None
    if not api.supports(header.api_version):
        raise UnsupportedVersionError(header, body)
    return Request(header, body)


# --- responses ------------------------------------------------------------------------------------


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Mapping[str, Any]) -> bytes:
    """A complete response frame (size prefix, header v0 or v1, body) for a request of that key/version."""
    api = get_api(api_key)
    if not api.supports(api_version):
        raise ProtocolError(f"cannot encode {api.name} v{api_version}: not a supported version")
    return _encode_response(api, api_version, correlation_id, body)


def _encode_response(api: Api, api_version: int, correlation_id: int, body: Mapping[str, Any]) -> bytes:
    try:
        parts: Parts = [b"", I32.pack(correlation_id)]
    except struct.error as e:
        raise ProtocolError(f"bad correlation id {correlation_id!r}: {e}") from None
    if api.response_header_flexible(api_version):
        parts.append(NO_TAGGED_FIELDS)
    try:
        api.response.encode_into(body, api_version, parts)
    except FieldError as e:
        e.context = f"{api.name} v{api_version} response"
        raise
    return _framed(parts)


def peek_correlation_id(frame: bytes | bytearray | memoryview) -> int:
    """The correlation id at the start of a response payload (to find the request it answers)."""
    if len(frame) < 4:
        raise ProtocolError(f"response header truncated: {len(frame)} bytes")
    correlation_id: int = I32.unpack_from(frame, 0)[0]
    return correlation_id


def decode_response(api_key: int, api_version: int, frame: bytes | bytearray | memoryview) -> Response:
    """Decode a response payload (without size prefix) to a request of ``api_key``/``api_version``.

    An ApiVersions response that does not parse at ``api_version`` is retried as v0, because that
    is how a broker answers an ApiVersions version it does not support."""
    api = get_api(api_key)
    if not api.supports(api_version):
        raise ProtocolError(f"cannot decode {api.name} v{api_version}: not a supported version")
    buf = as_buffer(frame)
    correlation_id = peek_correlation_id(buf)
    try:
        pos = skip_tagged_fields(buf, 4) if api.response_header_flexible(api_version) else 4
        body = api.response.decode(buf[pos:], api_version)
    except ProtocolError as e:
        if api.key == ApiKey.API_VERSIONS and api_version > 0:
            # A broker that does not speak our ApiVersions version answers with a v0 body
            # (UNSUPPORTED_VERSION); Kafka's Java client retries the parse as v0 the same way.
            try:
                return Response(correlation_id, api.response.decode(buf[4:], 0))
            except ProtocolError:
                pass
        if isinstance(e, FieldError):
            e.context = f"{api.name} v{api_version} response"
        raise
    return Response(correlation_id, body)


# --- ApiVersions negotiation -----------------------------------------------------------------------


def api_versions_response(
    correlation_id: int,
    api_version: int = 0,
    *,
    error_code: int = ErrorCode.NONE,
    throttle_time_ms: int = 0,
    supported: dict[int, tuple[int, int]] | None = None,
) -> bytes:
    """A complete ApiVersions response frame advertising ``supported`` (default: everything kcli
    implements)."""
    body = {
        "error_code": error_code,
        "api_keys": api_versions_entries(supported),
        "throttle_time_ms": throttle_time_ms,
    }
    return encode_response(ApiKey.API_VERSIONS, api_version, correlation_id, body)


def unsupported_version_response(header: RequestHeader, body: Struct | None = None) -> bytes | None:
    """How to answer a request whose version kcli does not speak.

    For ApiVersions (a client opening with a newer version than kcli's): a frame with header v0 and an
    ApiVersions *v0* body holding UNSUPPORTED_VERSION (35) and the ApiVersions range kcli supports, so
    the client retries with a version it can use, as Kafka answers.  For any other API: the
    :func:`error_response` with UNSUPPORTED_VERSION (Kafka closes the connection instead; a client that
    negotiated never sends one, and one that did not learns why)."""
    if header.api_key != ApiKey.API_VERSIONS:
        return error_response(header, ErrorCode.UNSUPPORTED_VERSION, body)
    lo, hi = SUPPORTED[ApiKey.API_VERSIONS]
    return api_versions_response(
        header.correlation_id,
        0,
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        supported={ApiKey.API_VERSIONS: (lo, hi)},
    )


# --- error answers ---------------------------------------------------------------------------------

# Names one key field of a request entry has in the response entry that answers it (Fetch's
# ``partition`` is ``partition_index`` in its response, Produce's ``index`` stays ``index``).
_KEY_ALIASES = ({"name", "topic"}, {"partition", "partition_index", "index"})


def error_response(header: RequestHeader, error_code: int, body: Struct | None = None) -> bytes | None:
    """The answer to a request that cannot be served (Kafka's ``AbstractRequest.getErrorResponse``,
    built from the response schema instead of by hand per API): the response at the request's version
    with every ``error_code`` set to ``error_code``; each list of the request (``body``, if it could be
    read) mirrored entry by entry into the response list that answers it, with the entries' key fields
    (topic name or id, partition) copied.  ApiVersions gets its v0 fallback for UNSUPPORTED_VERSION.
    An api key kcli does not know has no response layout: it gets header v0 and the error code alone (the
    ApiVersions v0 shape every client can read), where Kafka closes the connection; the connection goes
    on.  None when the answer cannot be written."""
    api = APIS.get(header.api_key)
    if api is None:
        return struct.pack(">iih", 6, header.correlation_id, error_code)
    if api.key == ApiKey.API_VERSIONS and error_code == ErrorCode.UNSUPPORTED_VERSION:
        return unsupported_version_response(header)
    answer = _mirror(api.response, api.request, header.api_version, body, error_code)
    try:
        return _encode_response(api, header.api_version, header.correlation_id, answer)
    except ProtocolError:
        return None  # e.g. a version whose layout kcli's schema cannot write


def _mirror(
    schema: Schema, request_schema: Schema, version: int, request: Mapping[str, Any] | None, error_code: int
) -> dict[str, Any]:
    """One response struct (``schema``) answering ``request`` (of ``request_schema``; None when it could
    not be read) with ``error_code``."""
    lists = [
        (f.type.item, (request or {}).get(f.name) or [])
        for f in request_schema.fields_for(version)
        if isinstance(f.type, Array) and isinstance(f.type.item, Schema)
    ]
    out: dict[str, Any] = {}
    for f in schema.fields_for(version):
        t = f.type
        if f.name == "error_code":
            out[f.name] = error_code
        elif isinstance(t, Array) and isinstance(t.item, Schema):
            # a list that carries error codes answers the request's next list of entries
            if lists and _has_error_code(t.item):
                item_schema, entries = lists.pop(0)
                out[f.name] = [_mirror(t.item, item_schema, version, e, error_code) for e in entries]
        elif request is not None:
            names = next((g for g in _KEY_ALIASES if f.name in g), {f.name})
            for name in names:
                if name in request and not isinstance(request[name], list | Mapping):
                    out[f.name] = request[name]
                    break
    return out


def _has_error_code(schema: Schema) -> bool:
    return any(
        f.name == "error_code" or (isinstance(f.type, Array) and isinstance(f.type.item, Schema) and _has_error_code(f.type.item))
        for f in schema.fields
    )
