"""Leadership and replica placement: ElectLeaders (43) v0-2 (v2 flexible; v1 adds the election type and
a top-level error code), AlterPartitionReassignments (45) v0 and ListPartitionReassignments (46) v0
(both flexible from v0)."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import INT8, INT16, INT32, STRING

PREFERRED, UNCLEAN = 0, 1  # ElectLeaders' election types

ELECT_LEADERS = Api(
    ApiKey.ELECT_LEADERS,
    "ElectLeaders",
    0,
    2,
    request=Schema(
        "ElectLeadersRequest",
        [
            Field("election_type", INT8, "1+", default=PREFERRED),
            Field(
                "topic_partitions",
                Array([Field("topic", STRING), Field("partitions", Array(INT32))]),
                nullable="0+",
            ),
            Field("timeout_ms", INT32, default=60000),
        ],
        flexible="2+",
    ),
    response=Schema(
        "ElectLeadersResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16, "1+"),
            Field(
                "replica_election_results",
                Array(
                    [
                        Field("topic", STRING),
                        Field(
                            "partition_result",
                            Array(
                                [
                                    Field("partition_id", INT32),
                                    Field("error_code", INT16),
                                    Field("error_message", STRING, nullable="0+"),
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

ALTER_PARTITION_REASSIGNMENTS = Api(
    ApiKey.ALTER_PARTITION_REASSIGNMENTS,
    "AlterPartitionReassignments",
    0,
    0,
    request=Schema(
        "AlterPartitionReassignmentsRequest",
        [
            Field("timeout_ms", INT32, default=60000),
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
                                    Field("replicas", Array(INT32), nullable="0+", default=None),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
    response=Schema(
        "AlterPartitionReassignmentsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable="0+"),
            Field(
                "responses",
                Array(
                    [
                        Field("name", STRING),
                        Field(
                            "partitions",
                            Array(
                                [
                                    Field("partition_index", INT32),
                                    Field("error_code", INT16),
                                    Field("error_message", STRING, nullable="0+"),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
)

LIST_PARTITION_REASSIGNMENTS = Api(
    ApiKey.LIST_PARTITION_REASSIGNMENTS,
    "ListPartitionReassignments",
    0,
    0,
    request=Schema(
        "ListPartitionReassignmentsRequest",
        [
            Field("timeout_ms", INT32, default=60000),
            Field(
                "topics",
                Array([Field("name", STRING), Field("partition_indexes", Array(INT32))]),
                nullable="0+",
                default=None,
            ),
        ],
        flexible="0+",
    ),
    response=Schema(
        "ListPartitionReassignmentsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable="0+"),
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
                                    Field("replicas", Array(INT32)),
                                    Field("adding_replicas", Array(INT32)),
                                    Field("removing_replicas", Array(INT32)),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
)
