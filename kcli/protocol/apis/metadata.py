"""Metadata (3) v0-13: brokers, topics, partitions, leaders and replicas.

In v0 an empty ``topics`` list means "all topics"; from v1 that is ``topics=None`` and an empty list
means none.  v9 is the first flexible version; v10 adds topic ids (16 raw bytes, :data:`UUID`), and
from v12 a request may name a topic by id alone (null name).  v11 drops the cluster's authorized
operations (DescribeCluster has them); v13 adds a top-level error code.

DescribeTopicPartitions (75) v0 (KIP-966) is Metadata for a list of topics (or all of them), paginated:
at most ``response_partition_limit`` partitions per response and a ``next_cursor`` (topic, partition)
where the next request resumes."""

from ..api import NO_OPERATIONS, Api, ApiKey
from ..schema import Array, Field, Nested, Schema
from ..types import BOOL, INT16, INT32, STRING, UUID

METADATA = Api(
    ApiKey.METADATA,
    "Metadata",
    0,
    13,
    request=Schema(
        "MetadataRequest",
        [
            Field(
                "topics",
                Array([Field("topic_id", UUID, "10+"), Field("name", STRING, nullable="10+")]),
                nullable="1+",
            ),
            Field("allow_auto_topic_creation", BOOL, "4+", default=True),
            Field("include_cluster_authorized_operations", BOOL, "8-10"),
            Field("include_topic_authorized_operations", BOOL, "8+"),
        ],
        flexible="9+",
    ),
    response=Schema(
        "MetadataResponse",
        [
            Field("throttle_time_ms", INT32, "3+"),
            Field(
                "brokers",
                Array(
                    [
                        Field("node_id", INT32),
                        Field("host", STRING),
                        Field("port", INT32),
                        Field("rack", STRING, "1+", nullable="1+", default=None),
                    ]
                ),
            ),
            Field("cluster_id", STRING, "2+", nullable="2+", default=None),
            Field("controller_id", INT32, "1+", default=-1),
            Field(
                "topics",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("name", STRING, nullable="12+"),
                        Field("topic_id", UUID, "10+"),
                        Field("is_internal", BOOL, "1+", default=False),
                        Field(
                            "partitions",
                            Array(
                                [
                                    Field("error_code", INT16),
                                    Field("partition_index", INT32),
                                    Field("leader_id", INT32),
                                    Field("leader_epoch", INT32, "7+", default=-1),
                                    Field("replica_nodes", Array(INT32)),
                                    Field("isr_nodes", Array(INT32)),
                                    Field("offline_replicas", Array(INT32), "5+"),
                                ]
                            ),
                        ),
                        Field("topic_authorized_operations", INT32, "8+", default=NO_OPERATIONS),
                    ]
                ),
            ),
            Field("cluster_authorized_operations", INT32, "8-10", default=NO_OPERATIONS),
            Field("error_code", INT16, "13+"),
        ],
        flexible="9+",
    ),
)

# the partitions one DescribeTopicPartitions response may carry when the request asks for more
DESCRIBE_TOPIC_PARTITIONS_LIMIT = 2000

_CURSOR = [Field("topic_name", STRING), Field("partition_index", INT32)]

DESCRIBE_TOPIC_PARTITIONS = Api(
    ApiKey.DESCRIBE_TOPIC_PARTITIONS,
    "DescribeTopicPartitions",
    0,
    0,
    request=Schema(
        "DescribeTopicPartitionsRequest",
        [
            Field("topics", Array([Field("name", STRING)])),
            Field("response_partition_limit", INT32, default=DESCRIBE_TOPIC_PARTITIONS_LIMIT),
            Field("cursor", Nested(_CURSOR), nullable="0+"),
        ],
        flexible="0+",
    ),
    response=Schema(
        "DescribeTopicPartitionsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "topics",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("name", STRING, nullable="0+"),
                        Field("topic_id", UUID),
                        Field("is_internal", BOOL, default=False),
                        Field(
                            "partitions",
                            Array(
                                [
                                    Field("error_code", INT16),
                                    Field("partition_index", INT32),
                                    Field("leader_id", INT32),
                                    Field("leader_epoch", INT32, default=-1),
                                    Field("replica_nodes", Array(INT32)),
                                    Field("isr_nodes", Array(INT32)),
                                    Field("eligible_leader_replicas", Array(INT32), nullable="0+", default=None),
                                    Field("last_known_elr", Array(INT32), nullable="0+", default=None),
                                    Field("offline_replicas", Array(INT32)),
                                ]
                            ),
                        ),
                        Field("topic_authorized_operations", INT32, default=NO_OPERATIONS),
                    ]
                ),
            ),
            Field("next_cursor", Nested(_CURSOR), nullable="0+"),
        ],
        flexible="0+",
    ),
)
