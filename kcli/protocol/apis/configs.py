"""DescribeConfigs (32) v0-4, AlterConfigs (33) v0-2 and IncrementalAlterConfigs (44) v0-1: configs of
topics (resource type 2), brokers (4; an empty name is the cluster-wide default) and groups (32).

DescribeConfigs v1 adds synonyms and the config source (replacing v0's is_default), v3 the config type
and documentation, v4 is flexible.  AlterConfigs replaces a resource's whole dynamic config set;
IncrementalAlterConfigs sets, deletes, appends to or subtracts from single configs."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT8, INT16, INT32, STRING

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
BROKER_LOGGER_RESOURCE = 8
GROUP_RESOURCE = 32  # Kafka 4.0's group configs (KIP-848)

DESCRIBE_CONFIGS = Api(
    ApiKey.DESCRIBE_CONFIGS,
    "DescribeConfigs",
    0,
    4,
    request=Schema(
        "DescribeConfigsRequest",
        [
            Field(
                "resources",
                Array(
                    [
                        Field("resource_type", INT8),
                        Field("resource_name", STRING),
                        Field("configuration_keys", Array(STRING), nullable="0+"),
                    ]
                ),
            ),
            Field("include_synonyms", BOOL, "1+"),
            Field("include_documentation", BOOL, "3+"),
        ],
        flexible="4+",
    ),
    response=Schema(
        "DescribeConfigsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "results",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("error_message", STRING, nullable="0+"),
                        Field("resource_type", INT8),
                        Field("resource_name", STRING),
                        Field(
                            "configs",
                            Array(
                                [
                                    Field("name", STRING),
                                    Field("value", STRING, nullable="0+"),
                                    Field("read_only", BOOL),
                                    Field("config_source", INT8, "1+", default=-1),
                                    Field("is_default", BOOL, "0"),
                                    Field("is_sensitive", BOOL),
                                    Field(
                                        "synonyms",
                                        Array(
                                            [
                                                Field("name", STRING, "1+"),
                                                Field("value", STRING, "1+", nullable="0+"),
                                                Field("source", INT8, "1+"),
                                            ]
                                        ),
                                        "1+",
                                    ),
                                    Field("config_type", INT8, "3+"),
                                    Field("documentation", STRING, "3+", nullable="0+"),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="4+",
    ),
)

_ALTER_RESPONSE = [
    Field("throttle_time_ms", INT32),
    Field(
        "responses",
        Array(
            [
                Field("error_code", INT16),
                Field("error_message", STRING, nullable="0+"),
                Field("resource_type", INT8),
                Field("resource_name", STRING),
            ]
        ),
    ),
]

ALTER_CONFIGS = Api(
    ApiKey.ALTER_CONFIGS,
    "AlterConfigs",
    0,
    2,
    request=Schema(
        "AlterConfigsRequest",
        [
            Field(
                "resources",
                Array(
                    [
                        Field("resource_type", INT8),
                        Field("resource_name", STRING),
                        Field("configs", Array([Field("name", STRING), Field("value", STRING, nullable="0+")])),
                    ]
                ),
            ),
            Field("validate_only", BOOL),
        ],
        flexible="2+",
    ),
    response=Schema("AlterConfigsResponse", _ALTER_RESPONSE, flexible="2+"),
)

INCREMENTAL_ALTER_CONFIGS = Api(
    ApiKey.INCREMENTAL_ALTER_CONFIGS,
    "IncrementalAlterConfigs",
    0,
    1,
    request=Schema(
        "IncrementalAlterConfigsRequest",
        [
            Field(
                "resources",
                Array(
                    [
                        Field("resource_type", INT8),
                        Field("resource_name", STRING),
                        Field(
                            "configs",
                            Array(
                                [
                                    Field("name", STRING),
                                    Field("config_operation", INT8),
                                    Field("value", STRING, nullable="0+"),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
            Field("validate_only", BOOL),
        ],
        flexible="1+",
    ),
    response=Schema("IncrementalAlterConfigsResponse", _ALTER_RESPONSE, flexible="1+"),
)
