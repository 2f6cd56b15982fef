"""The transaction APIs (KIP-98): AddPartitionsToTxn (24) v0-2, AddOffsetsToTxn (25) v0-2, EndTxn (26)
v0-2, WriteTxnMarkers (27) v0 and TxnOffsetCommit (28) v0-2.

Only the classic versions: each API's next version is its first flexible one (issue 19).  Field names
follow Kafka's JSON in snake case, without its ``V3AndBelow`` prefixes (kcli has no v4 to tell apart).
Versions 1 and 2 of the first three add nothing on the wire: v2 only lets a broker answer
PRODUCER_FENCED where older clients expect INVALID_PRODUCER_EPOCH.  WriteTxnMarkers is spoken between
kcli brokers only (a coordinator asking a partition's leader to write markers)."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT16, INT32, INT64, STRING

_TOPIC_PARTITIONS = [Field("name", STRING), Field("partitions", Array(INT32))]
_PARTITION_ERRORS = [Field("partition_index", INT32), Field("error_code", INT16)]

ADD_PARTITIONS_TO_TXN = Api(
    ApiKey.ADD_PARTITIONS_TO_TXN,
    "AddPartitionsToTxn",
    0,
    2,
    request=Schema(
        "AddPartitionsToTxnRequest",
        [
            Field("transactional_id", STRING),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("topics", Array(_TOPIC_PARTITIONS)),
        ],
    ),
    response=Schema(
        "AddPartitionsToTxnResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "results_by_topic",
                Array(
                    [
                        Field("name", STRING),
                        Field(
                            "results_by_partition",
                            Array([Field("partition_index", INT32), Field("partition_error_code", INT16)]),
                        ),
                    ]
                ),
            ),
        ],
    ),
)

ADD_OFFSETS_TO_TXN = Api(
    ApiKey.ADD_OFFSETS_TO_TXN,
    "AddOffsetsToTxn",
    0,
    2,
    request=Schema(
        "AddOffsetsToTxnRequest",
        [
            Field("transactional_id", STRING),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("group_id", STRING),
        ],
    ),
    response=Schema(
        "AddOffsetsToTxnResponse",
        [Field("throttle_time_ms", INT32), Field("error_code", INT16)],
    ),
)

END_TXN = Api(
    ApiKey.END_TXN,
    "EndTxn",
    0,
    2,
    request=Schema(
        "EndTxnRequest",
        [
            Field("transactional_id", STRING),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("committed", BOOL),
        ],
    ),
    response=Schema("EndTxnResponse", [Field("throttle_time_ms", INT32), Field("error_code", INT16)]),
)

WRITE_TXN_MARKERS = Api(
    ApiKey.WRITE_TXN_MARKERS,
    "WriteTxnMarkers",
    0,
    0,
    request=Schema(
        "WriteTxnMarkersRequest",
        [
            Field(
                "markers",
                Array(
                    [
                        Field("producer_id", INT64),
                        Field("producer_epoch", INT16),
                        Field("transaction_result", BOOL),
                        Field(
                            "topics", Array([Field("name", STRING), Field("partition_indexes", Array(INT32))])
                        ),
                        Field("coordinator_epoch", INT32),
                    ]
                ),
            ),
        ],
    ),
    response=Schema(
        "WriteTxnMarkersResponse",
        [
            Field(
                "markers",
                Array(
                    [
                        Field("producer_id", INT64),
                        Field(
                            "topics",
                            Array([Field("name", STRING), Field("partitions", Array(_PARTITION_ERRORS))]),
                        ),
                    ]
                ),
            ),
        ],
    ),
)

TXN_OFFSET_COMMIT = Api(
    ApiKey.TXN_OFFSET_COMMIT,
    "TxnOffsetCommit",
    0,
    2,
    request=Schema(
        "TxnOffsetCommitRequest",
        [
            Field("transactional_id", STRING),
            Field("group_id", STRING),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
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
                                    Field("committed_leader_epoch", INT32, "2+", default=-1),
                                    Field("committed_metadata", STRING, nullable="0+"),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
    ),
    response=Schema(
        "TxnOffsetCommitResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("topics", Array([Field("name", STRING), Field("partitions", Array(_PARTITION_ERRORS))])),
        ],
    ),
)
