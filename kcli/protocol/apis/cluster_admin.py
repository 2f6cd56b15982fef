"""The operators' cluster APIs: DescribeCluster (60) v0-1, flexible from v0, and DescribeLogDirs (35)
v0-4, flexible from v2.

DescribeCluster v1 adds the endpoint type (1 = brokers, 2 = controllers; KIP-919).  DescribeLogDirs v3
adds a top-level error code, v4 the total and usable bytes of each log dir's volume."""

from ..api import NO_OPERATIONS, Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT8, INT16, INT32, INT64, STRING

BROKERS_ENDPOINT = 1  # DescribeCluster's endpoint type of a broker (2: a KRaft controller)

DESCRIBE_CLUSTER = Api(
    ApiKey.DESCRIBE_CLUSTER,
    "DescribeCluster",
    0,
    1,
    request=Schema(
        "DescribeClusterRequest",
        [
            Field("include_cluster_authorized_operations", BOOL),
            Field("endpoint_type", INT8, "1+", default=BROKERS_ENDPOINT),
        ],
        flexible="0+",
    ),
    response=Schema(
        "DescribeClusterResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable="0+", default=None),
            Field("endpoint_type", INT8, "1+", default=BROKERS_ENDPOINT),
            Field("cluster_id", STRING),
            Field("controller_id", INT32, default=-1),
            Field(
                "brokers",
                Array(
                    [
                        Field("broker_id", INT32),
                        Field("host", STRING),
                        Field("port", INT32),
                        Field("rack", STRING, nullable="0+", default=None),
                    ]
                ),
            ),
            Field("cluster_authorized_operations", INT32, default=NO_OPERATIONS),
        ],
        flexible="0+",
    ),
)

DESCRIBE_LOG_DIRS = Api(
    ApiKey.DESCRIBE_LOG_DIRS,
    "DescribeLogDirs",
    0,
    4,
    request=Schema(
        "DescribeLogDirsRequest",
        [Field("topics", Array([Field("topic", STRING), Field("partitions", Array(INT32))]), nullable="0+")],
        flexible="2+",
    ),
    response=Schema(
        "DescribeLogDirsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16, "3+"),
            Field(
                "results",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("log_dir", STRING),
                        Field(
                            "topics",
                            Array(
                                [
                                    Field("name", STRING),
                                    Field(
                                        "partitions",
                                        Array(
                                            [
                                                Field("partition_index", INT32),
                                                Field("partition_size", INT64),
                                                Field("offset_lag", INT64),
                                                Field("is_future_key", BOOL),
                                            ]
                                        ),
                                    ),
                                ]
                            ),
                        ),
                        Field("total_bytes", INT64, "4+", default=-1),
                        Field("usable_bytes", INT64, "4+", default=-1),
                    ]
                ),
            ),
        ],
        flexible="2+",
    ),
)
