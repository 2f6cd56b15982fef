"""The operators' transaction APIs (KIP-664): DescribeProducers (61) v0, DescribeTransactions (65) v0
and ListTransactions (66) v0-1.  All three are flexible from their first version (compact types, tagged
fields, request header v2, response header v1).

ListTransactions v1 adds the duration filter (only transactions running longer than it); v2's
transactional id pattern (KIP-1152) is not implemented."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import INT16, INT32, INT64, STRING

DESCRIBE_PRODUCERS = Api(
    ApiKey.DESCRIBE_PRODUCERS,
    "DescribeProducers",
    0,
    0,
    request=Schema(
        "DescribeProducersRequest",
        [Field("topics", Array([Field("name", STRING), Field("partition_indexes", Array(INT32))]))],
        flexible="0+",
    ),
    response=Schema(
        "DescribeProducersResponse",
        [
            Field("throttle_time_ms", INT32),
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
                                    Field("error_message", STRING, nullable="0+", default=None),
                                    Field(
                                        "active_producers",
                                        Array(
                                            [
                                                Field("producer_id", INT64),
                                                Field("producer_epoch", INT32),
                                                Field("last_sequence", INT32, default=-1),
                                                Field("last_timestamp", INT64, default=-1),
                                                Field("coordinator_epoch", INT32),
                                                Field("current_txn_start_offset", INT64, default=-1),
                                            ]
                                        ),
                                    ),
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

DESCRIBE_TRANSACTIONS = Api(
    ApiKey.DESCRIBE_TRANSACTIONS,
    "DescribeTransactions",
    0,
    0,
    request=Schema("DescribeTransactionsRequest", [Field("transactional_ids", Array(STRING))], flexible="0+"),
    response=Schema(
        "DescribeTransactionsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "transaction_states",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("transactional_id", STRING),
                        Field("transaction_state", STRING),
                        Field("transaction_timeout_ms", INT32),
                        Field("transaction_start_time_ms", INT64),
                        Field("producer_id", INT64),
                        Field("producer_epoch", INT16),
                        Field("topics", Array([Field("topic", STRING), Field("partitions", Array(INT32))])),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
)

LIST_TRANSACTIONS = Api(
    ApiKey.LIST_TRANSACTIONS,
    "ListTransactions",
    0,
    1,
    request=Schema(
        "ListTransactionsRequest",
        [
            Field("state_filters", Array(STRING)),
            Field("producer_id_filters", Array(INT64)),
            Field("duration_filter", INT64, "1+", default=-1),
        ],
        flexible="0+",
    ),
    response=Schema(
        "ListTransactionsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("unknown_state_filters", Array(STRING)),
            Field(
                "transaction_states",
                Array(
                    [
                        Field("transactional_id", STRING),
                        Field("producer_id", INT64),
                        Field("transaction_state", STRING),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
)
