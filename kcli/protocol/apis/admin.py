"""CreateTopics (19) v0-7, DeleteTopics (20) v0-6 and CreatePartitions (37) v0-3: topic admin.

CreateTopics v4 lets num_partitions / replication_factor be -1 (the broker's num.partitions and
default.replication.factor), v5 (flexible) answers with the topic's resolved configs, partition count and
replication factor, v7 with its topic id.  DeleteTopics v4 is flexible, v5 adds an error message, v6
names topics by name or id.  CreatePartitions v2 is flexible."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT8, INT16, INT32, STRING, UUID

CREATE_TOPICS = Api(
    ApiKey.CREATE_TOPICS,
    "CreateTopics",
    0,
    7,
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
        flexible="5+",
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
                        Field("topic_id", UUID, "7+"),
                        Field("error_code", INT16),
                        # Kafka's JSON has no default (""); brokers send null on success.
                        Field("error_message", STRING, "1+", nullable="0+", default=None),
                        # set by Kafka when it may not show the configs; kcli always shows them
                        Field("topic_config_error_code", INT16, "5+", tag=0),
                        Field("num_partitions", INT32, "5+", default=-1),
                        Field("replication_factor", INT16, "5+", default=-1),
                        Field(
                            "configs",
                            Array(
                                [
                                    Field("name", STRING, "5+"),
                                    Field("value", STRING, "5+", nullable="5+"),
                                    Field("read_only", BOOL, "5+"),
                                    Field("config_source", INT8, "5+", default=-1),
                                    Field("is_sensitive", BOOL, "5+"),
                                ]
                            ),
                            "5+",
                            nullable="5+",
                        ),
                    ]
                ),
            ),
        ],
        flexible="5+",
    ),
)

DELETE_TOPICS = Api(
    ApiKey.DELETE_TOPICS,
    "DeleteTopics",
    0,
    6,
    request=Schema(
        "DeleteTopicsRequest",
        [
            Field(
                "topics",
                Array([Field("name", STRING, "6+", nullable="6+", default=None), Field("topic_id", UUID, "6+")]),
                "6+",
            ),
            Field("topic_names", Array(STRING), "0-5"),
            Field("timeout_ms", INT32),
        ],
        flexible="4+",
    ),
    response=Schema(
        "DeleteTopicsResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field(
                "responses",
                Array(
                    [
                        Field("name", STRING, nullable="6+"),
                        Field("topic_id", UUID, "6+"),
                        Field("error_code", INT16),
                        Field("error_message", STRING, "5+", nullable="5+", default=None),
                    ]
                ),
            ),
        ],
        flexible="4+",
    ),
)

CREATE_PARTITIONS = Api(
    ApiKey.CREATE_PARTITIONS,
    "CreatePartitions",
    0,
    3,
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
        flexible="2+",
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
        flexible="2+",
    ),
)
