"""ApiVersions (18) v0-2: how clients learn which versions of each API a broker speaks.

v3+ is flexible (compact types, tagged fields) and not implemented; a v3+ request is answered with
UNSUPPORTED_VERSION in a v0 body (see :func:`kcli.protocol.frames.unsupported_version_response`)."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import INT16, INT32

API_VERSIONS = Api(
    ApiKey.API_VERSIONS,
    "ApiVersions",
    0,
    2,
    request=Schema("ApiVersionsRequest", []),
    response=Schema(
        "ApiVersionsResponse",
        [
            Field("error_code", INT16),
            Field(
                "api_keys",
                Array(
                    [
                        Field("api_key", INT16),
                        Field("min_version", INT16),
                        Field("max_version", INT16),
                    ]
                ),
            ),
            Field("throttle_time_ms", INT32, "1+"),
        ],
    ),
)
