"""The ACL APIs: DescribeAcls (29), CreateAcls (30) and DeleteAcls (31), v0-3, flexible from v2.

v1 adds the resource pattern type (LITERAL, PREFIXED; filters also ANY and MATCH), which v0 leaves at
its default, LITERAL.  The numbers in these messages are Kafka's (:mod:`kcli.security.acl`)."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import INT8, INT16, INT32, STRING

LITERAL = 3  # the pattern type of a v0 request or answer

_FILTER = [
    Field("resource_type_filter", INT8),
    Field("resource_name_filter", STRING, nullable="0+"),
    Field("pattern_type_filter", INT8, "1+", default=LITERAL),
    Field("principal_filter", STRING, nullable="0+"),
    Field("host_filter", STRING, nullable="0+"),
    Field("operation", INT8),
    Field("permission_type", INT8),
]

DESCRIBE_ACLS = Api(
    ApiKey.DESCRIBE_ACLS,
    "DescribeAcls",
    0,
    3,
    request=Schema("DescribeAclsRequest", _FILTER, flexible="2+"),
    response=Schema(
        "DescribeAclsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable="0+"),
            Field(
                "resources",
                Array(
                    [
                        Field("resource_type", INT8),
                        Field("resource_name", STRING),
                        Field("pattern_type", INT8, "1+", default=LITERAL),
                        Field(
                            "acls",
                            Array(
                                [
                                    Field("principal", STRING),
                                    Field("host", STRING),
                                    Field("operation", INT8),
                                    Field("permission_type", INT8),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="2+",
    ),
)

CREATE_ACLS = Api(
    ApiKey.CREATE_ACLS,
    "CreateAcls",
    0,
    3,
    request=Schema(
        "CreateAclsRequest",
        [
            Field(
                "creations",
                Array(
                    [
                        Field("resource_type", INT8),
                        Field("resource_name", STRING),
                        Field("resource_pattern_type", INT8, "1+", default=LITERAL),
                        Field("principal", STRING),
                        Field("host", STRING),
                        Field("operation", INT8),
                        Field("permission_type", INT8),
                    ]
                ),
            )
        ],
        flexible="2+",
    ),
    response=Schema(
        "CreateAclsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "results",
                Array([Field("error_code", INT16), Field("error_message", STRING, nullable="0+")]),
            ),
        ],
        flexible="2+",
    ),
)

DELETE_ACLS = Api(
    ApiKey.DELETE_ACLS,
    "DeleteAcls",
    0,
    3,
    request=Schema("DeleteAclsRequest", [Field("filters", Array(_FILTER))], flexible="2+"),
    response=Schema(
        "DeleteAclsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "filter_results",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("error_message", STRING, nullable="0+"),
                        Field(
                            "matching_acls",
                            Array(
                                [
                                    Field("error_code", INT16),
                                    Field("error_message", STRING, nullable="0+"),
                                    Field("resource_type", INT8),
                                    Field("resource_name", STRING),
                                    Field("pattern_type", INT8, "1+", default=LITERAL),
                                    Field("principal", STRING),
                                    Field("host", STRING),
                                    Field("operation", INT8),
                                    Field("permission_type", INT8),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="2+",
    ),
)
