"""Fetch (1) v4-17, ListOffsets (2) v1-8 and OffsetForLeaderEpoch (23) v0-4: reading a log.

Fetch starts at v4 (the first version with ``isolation_level`` and magic-2 batches); the response's
``records`` is an opaque zero-copy memoryview.  Fetch is flexible from v12, which adds the follower's
``last_fetched_epoch`` and the tagged ``diverging_epoch`` answer (KIP-595); v13 names topics by id
(``topic_id``, 16 raw bytes) instead of by name; v15 moves the follower's id into the tagged
``replica_state``; v16 (tagged ``node_endpoints``) and v17 (a follower's tagged ``replica_directory_id``)
add only fields a broker may leave out or ignore.  v18's tagged high watermark (KIP-1166) is not served.  OffsetForLeaderEpoch is what a follower uses to find
where its log diverged from the leader's before truncating.  ListOffsets is flexible from v6; v7 and v8
add no field, only the special timestamps -3 (MAX_TIMESTAMP) and -4 (EARLIEST_LOCAL_TIMESTAMP)."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Nested, Schema
from ..types import INT8, INT16, INT32, INT64, RECORDS, STRING, UUID

FETCH = Api(
    ApiKey.FETCH,
    "Fetch",
    4,
    17,
    request=Schema(
        "FetchRequest",
        [
            Field("cluster_id", STRING, "12+", nullable="12+", default=None, tag=0),
            Field("replica_id", INT32, "0-14", default=-1),
            Field(
                "replica_state",
                Nested([Field("replica_id", INT32, "15+", default=-1), Field("replica_epoch", INT64, "15+", default=-1)]),
                "15+",
                tag=1,
            ),
            Field("max_wait_ms", INT32),
            Field("min_bytes", INT32),
            Field("max_bytes", INT32, "3+", default=0x7FFFFFFF),
            Field("isolation_level", INT8, "4+", default=0),
            Field("session_id", INT32, "7+", default=0),
            Field("session_epoch", INT32, "7+", default=-1),
            Field(
                "topics",
                Array(
                    [
                        Field("topic", STRING, "0-12"),
                        Field("topic_id", UUID, "13+"),
                        Field(
                            "partitions",
                            Array(
                                [
                                    Field("partition", INT32),
                                    Field("current_leader_epoch", INT32, "9+", default=-1),
                                    Field("fetch_offset", INT64),
                                    Field("last_fetched_epoch", INT32, "12+", default=-1),
                                    Field("log_start_offset", INT64, "5+", default=-1),
                                    Field("partition_max_bytes", INT32),
                                    Field("replica_directory_id", UUID, "17+", tag=0),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
            Field(
                "forgotten_topics_data",
                Array(
                    [
                        Field("topic", STRING, "7-12"),
                        Field("topic_id", UUID, "13+"),
                        Field("partitions", Array(INT32), "7+"),
                    ]
                ),
                "7+",
            ),
            Field("rack_id", STRING, "11+", default=""),
        ],
        flexible="12+",
    ),
    response=Schema(
        "FetchResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16, "7+"),
            Field("session_id", INT32, "7+", default=0),
            Field(
                "responses",
                Array(
                    [
                        Field("topic", STRING, "0-12"),
                        Field("topic_id", UUID, "13+"),
                        Field(
                            "partitions",
                            Array(
                                [
                                    Field("partition_index", INT32),
                                    Field("error_code", INT16),
                                    Field("high_watermark", INT64),
                                    Field("last_stable_offset", INT64, "4+", default=-1),
                                    Field("log_start_offset", INT64, "5+", default=-1),
                                    Field(
                                        "diverging_epoch",
                                        Nested(
                                            [
                                                Field("epoch", INT32, "12+", default=-1),
                                                Field("end_offset", INT64, "12+", default=-1),
                                            ]
                                        ),
                                        "12+",
                                        tag=0,
                                    ),
                                    Field(
                                        "current_leader",
                                        Nested(
                                            [
                                                Field("leader_id", INT32, "12+", default=-1),
                                                Field("leader_epoch", INT32, "12+", default=-1),
                                            ]
                                        ),
                                        "12+",
                                        tag=1,
                                    ),
                                    Field(
                                        "snapshot_id",
                                        Nested(
                                            [
                                                Field("end_offset", INT64, default=-1),
                                                Field("epoch", INT32, default=-1),
                                            ]
                                        ),
                                        "12+",
                                        tag=2,
                                    ),
                                    Field(
                                        "aborted_transactions",
                                        Array(
                                            [
                                                Field("producer_id", INT64, "4+"),
                                                Field("first_offset", INT64, "4+"),
                                            ]
                                        ),
                                        "4+",
                                        nullable="4+",
                                    ),
                                    Field("preferred_read_replica", INT32, "11+", default=-1),
                                    Field("records", RECORDS, nullable="0+"),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
            Field(
                "node_endpoints",
                Array(
                    [
                        Field("node_id", INT32, "16+"),
                        Field("host", STRING, "16+"),
                        Field("port", INT32, "16+"),
                        Field("rack", STRING, "16+", nullable="16+", default=None),
                    ]
                ),
                "16+",
                tag=0,
            ),
        ],
        flexible="12+",
    ),
)

LIST_OFFSETS = Api(
    ApiKey.LIST_OFFSETS,
    "ListOffsets",
    1,
    8,
    request=Schema(
        "ListOffsetsRequest",
        [
            # Kafka's JSON has no default (0, a broker id); -1 is what consumers send.
            Field("replica_id", INT32, default=-1),
            Field("isolation_level", INT8, "2+"),
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
                                    Field("current_leader_epoch", INT32, "4+", default=-1),
                                    Field("timestamp", INT64),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="6+",
    ),
    response=Schema(
        "ListOffsetsResponse",
        [
            Field("throttle_time_ms", INT32, "2+"),
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
                                    Field("error_code", INT16),
                                    Field("timestamp", INT64, "1+", default=-1),
                                    Field("offset", INT64, "1+", default=-1),
                                    Field("leader_epoch", INT32, "4+", default=-1),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="6+",
    ),
)

OFFSET_FOR_LEADER_EPOCH = Api(
    ApiKey.OFFSET_FOR_LEADER_EPOCH,
    "OffsetForLeaderEpoch",
    0,
    4,
    request=Schema(
        "OffsetForLeaderEpochRequest",
        [
            Field("replica_id", INT32, "3+", default=-2),
            Field(
                "topics",
                Array(
                    [
                        Field("topic", STRING),
                        Field(
                            "partitions",
                            Array(
                                [
                                    Field("partition", INT32),
                                    Field("current_leader_epoch", INT32, "2+", default=-1),
                                    Field("leader_epoch", INT32),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="4+",
    ),
    response=Schema(
        "OffsetForLeaderEpochResponse",
        [
            Field("throttle_time_ms", INT32, "2+"),
            Field(
                "topics",
                Array(
                    [
                        Field("topic", STRING),
                        Field(
                            "partitions",
                            Array(
                                [
                                    Field("error_code", INT16),
                                    Field("partition", INT32),
                                    Field("leader_epoch", INT32, "1+", default=-1),
                                    Field("end_offset", INT64, default=-1),
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
