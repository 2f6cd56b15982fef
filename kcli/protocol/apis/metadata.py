"""Metadata (3) v0-8: brokers, topics, partitions, leaders and replicas.

In v0 an empty ``topics`` list means "all topics"; from v1 that is ``topics=None`` and an empty list
means none."""

from ..api import NO_OPERATIONS, Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT16, INT32, STRING

METADATA = Api(
    ApiKey.METADATA,
    "Metadata",
    0,
    8,
    request=Schema(
        "MetadataRequest",
        [
            Field("topics", Array([Field("name", STRING)]), nullable="1+"),
            Field("allow_auto_topic_creation", BOOL, "4+", default=True),
            Field("include_cluster_authorized_operations", BOOL, "8+"),
            Field("include_topic_authorized_operations", BOOL, "8+"),
        ],
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
                        Field("name", STRING),
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
            Field("cluster_authorized_operations", INT32, "8+", default=NO_OPERATIONS),
        ],
    ),
)
