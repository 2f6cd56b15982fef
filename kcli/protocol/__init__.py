"""Kafka's wire protocol as a pure codec: bytes in, Python objects out, and back.

No sockets and no broker logic live here.  The broker uses this package to decode requests and
encode responses; kcli's client uses it the other way round against real Kafka clusters.

Modules (one job each):

- :mod:`~kcli.protocol.types` -- primitives (int8..int64, bool, string, bytes, records, their compact
  forms), varints and tagged-field sections.
- :mod:`~kcli.protocol.schema` -- ``Field``/``Array``/``Schema``: messages described declaratively,
  per-field version ranges like Kafka's JSON definitions, compiled per version to codecs.
- :mod:`~kcli.protocol.apis` -- the API definitions, ``APIS`` and the ``SUPPORTED`` version table.
- :mod:`~kcli.protocol.frames` -- size-prefixed framing, request headers v1/v2, response headers v0/v1,
  whole request/response encode/decode, the ApiVersions downgrade answer.
- :mod:`~kcli.protocol.error_codes` -- ``ErrorCode`` (Kafka's names) and ``RETRIABLE``.
- :mod:`~kcli.protocol.consumer` -- the consumer subscription/assignment inside JoinGroup/SyncGroup.

Values.  Decoded messages are :class:`Struct` s: dicts whose keys are also attributes, with
snake_case field names derived from Kafka's JSON (``ThrottleTimeMs`` -> ``throttle_time_ms``).  A
decoded Struct holds every field of the API; those absent from the wire version hold their defaults.
``records`` fields decode to zero-copy memoryviews of the input frame.  To encode, pass any mapping:
missing fields take their defaults, fields the chosen version lacks are ignored, unknown keys raise.

Errors.  Malformed, truncated or unencodable data raises :class:`kcli.errors.ProtocolError` (the
message names the API, version and field path); a request for an API/version outside ``SUPPORTED``
raises :class:`UnsupportedVersionError` and a body that does not decode :class:`RequestError`, both
ProtocolErrors carrying the parsed ``header``; :func:`error_response` builds Kafka's error answer to them.

Flexible versions (KIP-482: compact strings/arrays/bytes, tagged fields, request header v2, response
header v1) are an API's ``flexible`` range, as Kafka's ``flexibleVersions``; a field declared with a
``tag`` is a tagged field (read when sent, written when not its default), unknown tags are skipped.  See ``SUPPORTED``
for the version ranges.

Example -- client side::

    from kcli.protocol import ApiKey, RequestHeader, encode_request, parse_frame, decode_response

    hdr = RequestHeader(ApiKey.METADATA, 8, correlation_id=1, client_id="kcli")
    sock.sendall(encode_request(hdr, {"topics": [{"name": "orders"}]}))
    payload, used = parse_frame(received_bytes)          # (None, 0) until a whole frame is there
    resp = decode_response(ApiKey.METADATA, 8, payload)  # Response(correlation_id, body)
    leader = resp.body.topics[0].partitions[0].leader_id

Broker side::

    try:
        req = decode_request(payload)                    # Request(header, body)
    except RequestError as e:
        answer = error_response(e.header, e.error_code, e.body)  # UNSUPPORTED_VERSION, INVALID_REQUEST
    else:
        answer = encode_response(req.header.api_key, req.header.api_version,
                                 req.header.correlation_id, {"topics": [...], "brokers": [...]})
"""

from .api import Api, ApiKey
from .apis import APIS, SUPPORTED, api_name, api_versions_entries, get_api
from .consumer import (
    assignment_bytes,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from .error_codes import RETRIABLE, ErrorCode, error_name, is_retriable
from .frames import (
    DEFAULT_MAX_FRAME_SIZE,
    Request,
    RequestError,
    RequestHeader,
    Response,
    UnsupportedVersionError,
    api_versions_response,
    decode_frame_size,
    decode_request,
    decode_request_header,
    decode_response,
    encode_request,
    encode_request_header,
    encode_response,
    error_response,
    parse_frame,
    peek_correlation_id,
    unsupported_version_response,
)
from .schema import Array, Field, Schema, Struct
from .types import (
    decode_unsigned_varint,
    decode_varint,
    decode_varlong,
    encode_unsigned_varint,
    encode_varint,
    encode_varlong,
)

__all__ = [
    "APIS",
    "DEFAULT_MAX_FRAME_SIZE",
    "RETRIABLE",
    "SUPPORTED",
    "Api",
    "ApiKey",
    "Array",
    "ErrorCode",
    "Field",
    "Request",
    "RequestError",
    "RequestHeader",
    "Response",
    "Schema",
    "Struct",
    "UnsupportedVersionError",
    "api_name",
    "api_versions_entries",
    "api_versions_response",
    "assignment_bytes",
    "decode_assignment",
    "decode_frame_size",
    "decode_request",
    "decode_request_header",
    "decode_response",
    "decode_subscription",
    "decode_unsigned_varint",
    "decode_varint",
    "decode_varlong",
    "encode_assignment",
    "encode_request",
    "encode_request_header",
    "encode_response",
    "encode_subscription",
    "encode_unsigned_varint",
    "encode_varint",
    "encode_varlong",
    "error_name",
    "error_response",
    "get_api",
    "is_retriable",
    "parse_frame",
    "peek_correlation_id",
    "unsupported_version_response",
]
