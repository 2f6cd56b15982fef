"""OffsetCommit (8) v0-9, OffsetFetch (9) v0-9 and OffsetDelete (47) v0: a consumer group's committed
positions.

Both are flexible (KIP-482) from OffsetCommit v8 and OffsetFetch v6.  OffsetFetch v7 adds
``require_stable`` (KIP-447: a partition with transactional offsets still pending answers
UNSTABLE_OFFSET_COMMIT, retriable) and v8 asks for several groups at once: ``groups`` replaces the
top-level ``group_id``/``topics`` and each group has its own topics and error code in the response.
:func:`offset_fetch_body` and :func:`fetched_group` let a client speak every version alike.  Version 9
of both is the first a KIP-848 consumer group member may use, with its member epoch in
``generation_id`` (OffsetFetch v9 adds ``member_id``/``member_epoch`` per group); the checks are
kcli.groups.consumer_group's.

``generation_id`` is what Kafka's current JSON calls ``GenerationIdOrMemberEpoch`` (the rename came
with the KIP-848 protocol, which uses flexible versions only)."""

from typing import Any

from kcli.errors import ProtocolError

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema, Struct
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

# a committed offset as OffsetFetch answers it, in v0-7's topics and v8's groups alike
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
                        Field("group_id", STRING, "8+"),
                        Field("member_id", STRING, "9+", nullable="9+", default=None),
                        Field("member_epoch", INT32, "9+", default=-1),
                        Field(
                            "topics",
                            Array([Field("name", STRING, "8+"), Field("partition_indexes", Array(INT32), "8+")]),
                            "8+",
                            nullable="8+",
                        ),
                    ]
                ),
                "8+",
            ),
            Field("require_stable", BOOL, "7+"),
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
                        Field("group_id", STRING, "8+"),
                        Field(
                            "topics",
                            Array([Field("name", STRING), Field("partitions", Array(_FETCHED_PARTITION))]),
                            "8+",
                        ),
                        Field("error_code", INT16, "8+", default=0),
                    ]
                ),
                "8+",
            ),
        ],
        flexible="6+",
    ),
)


def offset_fetch_body(
    group_id: str, topics: list[dict[str, Any]] | None, require_stable: bool = False
) -> dict[str, Any]:
    """An OffsetFetch request for one group that encodes in every version: v0-7 read ``group_id`` and
    ``topics``, v8 the same in ``groups`` (each version ignores the fields it lacks)."""
    return {
        "group_id": group_id,
        "topics": topics,
        "groups": [{"group_id": group_id, "topics": topics}],
        "require_stable": require_stable,
    }


def fetched_group(resp: Struct, group_id: str) -> Struct:
    """The part of an OffsetFetch response about ``group_id``, with ``topics`` and ``error_code`` in
    every version: v8's entry in ``groups`` (ProtocolError when another group's is there instead), else
    the response itself (v0-7, whose decoded ``groups`` is empty)."""
    if not resp.groups:
        return resp
    group: Struct
    for group in resp.groups:
        if group.group_id == group_id:
            return group
    raise ProtocolError(f"OffsetFetch: the answer has no entry for group {group_id!r}")


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
