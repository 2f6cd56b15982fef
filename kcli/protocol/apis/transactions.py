"""The transaction APIs (KIP-98): AddPartitionsToTxn (24) v0-4, AddOffsetsToTxn (25) v0-4, EndTxn (26)
v0-4, WriteTxnMarkers (27) v0-1 and TxnOffsetCommit (28) v0-4; all flexible (KIP-482) from v3
(WriteTxnMarkers from v1).

Versions 1 and 2 of the first three add nothing on the wire: v2 only lets a broker answer PRODUCER_FENCED
where older clients expect INVALID_PRODUCER_EPOCH.  AddPartitionsToTxn v4 is the brokers' batched form
(KIP-890 part 1: several transactions, each with ``verify_only``); clients stop at v3, whose fields keep
the names kcli gave them before v4 existed (Kafka's JSON prefixes them ``V3AndBelow``).  TxnOffsetCommit
v3 adds the member id, generation and group instance id the group checks (KIP-447).  The next version
of AddOffsetsToTxn, EndTxn and TxnOffsetCommit (v4) and of AddPartitionsToTxn (v5) only lets a broker
answer TRANSACTION_ABORTABLE, which kcli never does; so kcli serves those v4s, and stops before EndTxn
v5 (KIP-890 part 2: an epoch bump per transaction).  WriteTxnMarkers is spoken between kcli brokers only
(a coordinator asking a partition's leader to write markers)."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, INT16, INT32, INT64, STRING

_TOPIC_PARTITIONS = [Field("name", STRING), Field("partitions", Array(INT32))]
_PARTITION_ERRORS = [Field("partition_index", INT32), Field("error_code", INT16)]
_TOPIC_RESULTS = [
    Field("name", STRING),
    Field(
        "results_by_partition", Array([Field("partition_index", INT32), Field("partition_error_code", INT16)])
    ),
]

ADD_PARTITIONS_TO_TXN = Api(
    ApiKey.ADD_PARTITIONS_TO_TXN,
    "AddPartitionsToTxn",
    0,
    4,
    request=Schema(
        "AddPartitionsToTxnRequest",
        [
            Field(
                "transactions",
                Array(
                    [
                        Field("transactional_id", STRING, "4+"),
                        Field("producer_id", INT64, "4+"),
                        Field("producer_epoch", INT16, "4+"),
                        Field("verify_only", BOOL, "4+"),
                        Field("topics", Array(_TOPIC_PARTITIONS), "4+"),
                    ]
                ),
                "4+",
            ),
            Field("transactional_id", STRING, "0-3"),
            Field("producer_id", INT64, "0-3"),
            Field("producer_epoch", INT16, "0-3"),
            Field("topics", Array(_TOPIC_PARTITIONS), "0-3"),
        ],
        flexible="3+",
    ),
    response=Schema(
        "AddPartitionsToTxnResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16, "4+"),
            Field(
                "results_by_transaction",
                Array(
                    [
                        Field("transactional_id", STRING, "4+"),
                        Field("topic_results", Array(_TOPIC_RESULTS), "4+"),
                    ]
                ),
                "4+",
            ),
            Field("results_by_topic", Array(_TOPIC_RESULTS), "0-3"),
        ],
        flexible="3+",
    ),
)

ADD_OFFSETS_TO_TXN = Api(
    ApiKey.ADD_OFFSETS_TO_TXN,
    "AddOffsetsToTxn",
    0,
    4,
    request=Schema(
        "AddOffsetsToTxnRequest",
        [
            Field("transactional_id", STRING),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("group_id", STRING),
        ],
        flexible="3+",
    ),
    response=Schema(
        "AddOffsetsToTxnResponse",
        [Field("throttle_time_ms", INT32), Field("error_code", INT16)],
        flexible="3+",
    ),
)

END_TXN = Api(
    ApiKey.END_TXN,
    "EndTxn",
    0,
    4,
    request=Schema(
        "EndTxnRequest",
        [
            Field("transactional_id", STRING),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("committed", BOOL),
        ],
        flexible="3+",
    ),
    response=Schema(
        "EndTxnResponse", [Field("throttle_time_ms", INT32), Field("error_code", INT16)], flexible="3+"
    ),
)

WRITE_TXN_MARKERS = Api(
    ApiKey.WRITE_TXN_MARKERS,
    "WriteTxnMarkers",
    0,
    1,
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
        flexible="1+",
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
        flexible="1+",
    ),
)

TXN_OFFSET_COMMIT = Api(
    ApiKey.TXN_OFFSET_COMMIT,
    "TxnOffsetCommit",
    0,
    4,
    request=Schema(
        "TxnOffsetCommitRequest",
        [
            Field("transactional_id", STRING),
            Field("group_id", STRING),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("generation_id", INT32, "3+", default=-1),
            Field("member_id", STRING, "3+"),
            Field("group_instance_id", STRING, "3+", nullable="3+", default=None),
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
        flexible="3+",
    ),
    response=Schema(
        "TxnOffsetCommitResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("topics", Array([Field("name", STRING), Field("partitions", Array(_PARTITION_ERRORS))])),
        ],
        flexible="3+",
    ),
)
