"""OffsetCommit (8) v0-9 (flexible from v8), OffsetFetch (9) v0-9 (flexible from v6, v8 batches groups)
and OffsetDelete (47) v0: a consumer group's committed positions.

``generation_id`` is what Kafka's current JSON calls ``GenerationIdOrMemberEpoch``: v9 of both APIs is
the first a KIP-848 consumer group member may use, with its member epoch there (OffsetFetch v9 adds
``member_id``/``member_epoch`` per group); the checks are kcli.groups.consumer_group's."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT16, INT32, INT64, STRING

OFFSET_COMMIT = Api(
    ApiKey.OFFSET_COMMIT,
    "OffsetCommit",
    0,
    9,
    request=Schema(
        "OffsetCommitRequest",
        [
            Field("group_id", STRING),
            Field("generation_id", INT32, "1+", default=-1),
            Field("member_id", STRING, "1+"),
            Field("group_instance_id", STRING, "7+", nullable="7+", default=None),
            Field("retention_time_ms", INT64, "2-4", default=-1),
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
                                    Field("committed_offset", INT64),
                                    Field("committed_leader_epoch", INT32, "6+", default=-1),
                                    Field("commit_timestamp", INT64, "1", default=-1),
                                    Field("committed_metadata", STRING, nullable="0+"),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="8+",
    ),
    response=Schema(
        "OffsetCommitResponse",
        [
            Field("throttle_time_ms", INT32, "3+"),
            Field(
                "topics",
                Array(
                    [
                        Field("name", STRING),
                        Field(
                            "partitions",
                            Array([Field("partition_index", INT32), Field("error_code", INT16)]),
                        ),
                    ]
                ),
            ),
        ],
        flexible="8+",
    ),
)

_FETCHED_PARTITION = [
    Field("partition_index", INT32),
    Field("committed_offset", INT64),
    Field("committed_leader_epoch", INT32, "5+", default=-1),
    Field("metadata", STRING, nullable="0+"),
    Field("error_code", INT16),
]

OFFSET_FETCH = Api(
    ApiKey.OFFSET_FETCH,
    "OffsetFetch",
    0,
    9,
    request=Schema(
        "OffsetFetchRequest",
        [
            Field("group_id", STRING, "0-7"),
            # null (v2+) asks for every partition the group has committed.
            Field(
                "topics",
                Array([Field("name", STRING), Field("partition_indexes", Array(INT32))]),
                "0-7",
                nullable="2-7",
            ),
            Field(
                "groups",
                Array(
                    [
                        Field("group_id", STRING),
                        Field("member_id", STRING, "9+", nullable="9+", default=None),
                        Field("member_epoch", INT32, "9+", default=-1),
                        Field(
                            "topics",
                            Array([Field("name", STRING), Field("partition_indexes", Array(INT32))]),
                            nullable="8+",
                        ),
                    ]
                ),
                "8+",
            ),
            Field("require_stable", BOOL, "7+", default=False),
        ],
        flexible="6+",
    ),
    response=Schema(
        "OffsetFetchResponse",
        [
            Field("throttle_time_ms", INT32, "3+"),
            Field("topics", Array([Field("name", STRING), Field("partitions", Array(_FETCHED_PARTITION))]), "0-7"),
            Field("error_code", INT16, "2-7", default=0),
            Field(
                "groups",
                Array(
                    [
                        Field("group_id", STRING),
                        Field(
                            "topics",
                            Array([Field("name", STRING), Field("partitions", Array(_FETCHED_PARTITION))]),
                        ),
                        Field("error_code", INT16, default=0),
                    ]
                ),
                "8+",
            ),
        ],
        flexible="6+",
    ),
)

OFFSET_DELETE = Api(
    ApiKey.OFFSET_DELETE,
    "OffsetDelete",
    0,
    0,
    request=Schema(
        "OffsetDeleteRequest",
        [
            Field("group_id", STRING),
            Field("topics", Array([Field("name", STRING), Field("partitions", Array([Field("partition_index", INT32)]))])),
        ],
    ),
    response=Schema(
        "OffsetDeleteResponse",
        [
            Field("error_code", INT16),
            Field("throttle_time_ms", INT32),
            Field(
                "topics",
                Array(
                    [
                        Field("name", STRING),
                        Field("partitions", Array([Field("partition_index", INT32), Field("error_code", INT16)])),
                    ]
                ),
            ),
        ],
    ),
)
