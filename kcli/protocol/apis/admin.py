"""CreateTopics (19) v0-4, DeleteTopics (20) v0-3 and CreatePartitions (37) v0-1: topic admin."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT16, INT32, STRING

CREATE_TOPICS = Api(
    ApiKey.CREATE_TOPICS,
    "CreateTopics",
    0,
    4,
    request=Schema(
        "CreateTopicsRequest",
        [
            Field(
                "topics",
                Array(
                    [
                        Field("name", STRING),
                        Field("num_partitions", INT32),
                        Field("replication_factor", INT16),
                        Field(
                            "assignments",
                            Array([Field("partition_index", INT32), Field("broker_ids", Array(INT32))]),
                        ),
                        Field(
                            "configs",
                            Array([Field("name", STRING), Field("value", STRING, nullable="0+")]),
                        ),
                    ]
                ),
            ),
            Field("timeout_ms", INT32, default=60000),
            Field("validate_only", BOOL, "1+", default=False),
        ],
    ),
    response=Schema(
        "CreateTopicsResponse",
        [
            Field("throttle_time_ms", INT32, "2+"),
            Field(
                "topics",
                Array(
                    [
                        Field("name", STRING),
                        Field("error_code", INT16),
                        # Kafka's JSON has no default (""); brokers send null on success.
                        Field("error_message", STRING, "1+", nullable="0+", default=None),
                    ]
                ),
            ),
        ],
    ),
)

DELETE_TOPICS = Api(
    ApiKey.DELETE_TOPICS,
    "DeleteTopics",
    0,
    3,
    request=Schema(
        "DeleteTopicsRequest",
        [
            Field("topic_names", Array(STRING), "0-5"),
            Field("timeout_ms", INT32),
        ],
    ),
    response=Schema(
        "DeleteTopicsResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("responses", Array([Field("name", STRING), Field("error_code", INT16)])),
        ],
    ),
)

CREATE_PARTITIONS = Api(
    ApiKey.CREATE_PARTITIONS,
    "CreatePartitions",
    0,
    1,
    request=Schema(
        "CreatePartitionsRequest",
        [
            Field(
                "topics",
                Array(
                    [
                        Field("name", STRING),
                        Field("count", INT32),
                        Field(
                            "assignments",
                            Array([Field("broker_ids", Array(INT32))]),
                            nullable="0+",
                        ),
                    ]
                ),
            ),
            Field("timeout_ms", INT32),
            Field("validate_only", BOOL),
        ],
    ),
    response=Schema(
        "CreatePartitionsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "results",
                Array(
                    [
                        Field("name", STRING),
                        Field("error_code", INT16),
                        Field("error_message", STRING, nullable="0+", default=None),
                    ]
                ),
            ),
        ],
    ),
)
