"""ApiVersions (18) v0-4: how clients learn which versions of each API a broker speaks.

v3 is the first flexible version and adds the client's software name and version to the request; v4
only fixes a feature-range bug (KAFKA-17011).  The response keeps header v0 in every version, so a
client that asked for a version the broker does not know can always read the v0 answer (error 35 and
the ApiVersions range), see :func:`kcli.protocol.frames.unsupported_version_response`.  The feature
fields (KIP-584) are tagged and optional: kcli has no finalized features and sends none."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT16, INT32, INT64, STRING

API_VERSIONS = Api(
    ApiKey.API_VERSIONS,
    "ApiVersions",
    0,
    4,
    request=Schema(
        "ApiVersionsRequest",
        [
            Field("client_software_name", STRING, "3+"),
            Field("client_software_version", STRING, "3+"),
        ],
        flexible="3+",
    ),
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
            Field(
                "supported_features",
                Array([Field("name", STRING, "3+"), Field("min_version", INT16, "3+"), Field("max_version", INT16, "3+")]),
                "3+",
                tag=0,
            ),
            Field("finalized_features_epoch", INT64, "3+", default=-1, tag=1),
            Field(
                "finalized_features",
                Array(
                    [
                        Field("name", STRING, "3+"),
                        Field("max_version_level", INT16, "3+"),
                        Field("min_version_level", INT16, "3+"),
                    ]
                ),
                "3+",
                tag=2,
            ),
            Field("zk_migration_ready", BOOL, "3+", tag=3),
        ],
        flexible="3+",
    ),
)
