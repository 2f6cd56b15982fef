"""Authentication and its credentials: SaslHandshake (17) v0-1, SaslAuthenticate (36) v0-2 (flexible
from v2; v1 adds the session lifetime of KIP-368), DescribeUserScramCredentials (50) v0 and
AlterUserScramCredentials (51) v0 (KIP-554; flexible)."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BYTES, INT8, INT16, INT32, INT64, STRING

SASL_HANDSHAKE = Api(
    ApiKey.SASL_HANDSHAKE,
    "SaslHandshake",
    0,
    1,
    request=Schema("SaslHandshakeRequest", [Field("mechanism", STRING)]),
    response=Schema("SaslHandshakeResponse", [Field("error_code", INT16), Field("mechanisms", Array(STRING))]),
)

SASL_AUTHENTICATE = Api(
    ApiKey.SASL_AUTHENTICATE,
    "SaslAuthenticate",
    0,
    2,
    request=Schema("SaslAuthenticateRequest", [Field("auth_bytes", BYTES)], flexible="2+"),
    response=Schema(
        "SaslAuthenticateResponse",
        [
            Field("error_code", INT16),
            Field("error_message", STRING, nullable="0+"),
            Field("auth_bytes", BYTES),
            Field("session_lifetime_ms", INT64, "1+"),
        ],
        flexible="2+",
    ),
)

DESCRIBE_USER_SCRAM_CREDENTIALS = Api(
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS,
    "DescribeUserScramCredentials",
    0,
    0,
    request=Schema(
        "DescribeUserScramCredentialsRequest",
        [Field("users", Array([Field("name", STRING)]), nullable="0+")],
        flexible="0+",
    ),
    response=Schema(
        "DescribeUserScramCredentialsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable="0+"),
            Field(
                "results",
                Array(
                    [
                        Field("user", STRING),
                        Field("error_code", INT16),
                        Field("error_message", STRING, nullable="0+"),
                        Field("credential_infos", Array([Field("mechanism", INT8), Field("iterations", INT32)])),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
)

ALTER_USER_SCRAM_CREDENTIALS = Api(
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
    "AlterUserScramCredentials",
    0,
    0,
    request=Schema(
        "AlterUserScramCredentialsRequest",
        [
            Field("deletions", Array([Field("name", STRING), Field("mechanism", INT8)])),
            Field(
                "upsertions",
                Array(
                    [
                        Field("name", STRING),
                        Field("mechanism", INT8),
                        Field("iterations", INT32),
                        Field("salt", BYTES),
                        Field("salted_password", BYTES),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
    response=Schema(
        "AlterUserScramCredentialsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "results",
                Array(
                    [
                        Field("user", STRING),
                        Field("error_code", INT16),
                        Field("error_message", STRING, nullable="0+"),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
)
