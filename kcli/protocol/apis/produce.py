"""Produce (0) v3-11 and InitProducerId (22) v0-5: writing record batches, producer ids.

Produce starts at v3 because kcli stores only magic-2 record batches, which v3 introduced; v9 is the
first flexible version.  v10 and v11 (KIP-951) add the tagged ``current_leader`` and ``node_endpoints``
a broker may send with NOT_LEADER_OR_FOLLOWER; v12 needs transaction verification v2 (KIP-890 part 2),
which kcli does not implement.  The ``records`` field is an opaque memoryview/bytes (a run of record
batches), never parsed here.

InitProducerId is flexible from v2; v3 carries the producer's id and epoch (KIP-360), v4 may answer
PRODUCER_FENCED (older versions get INVALID_PRODUCER_EPOCH instead) and v5 TRANSACTION_ABORTABLE, which
kcli never answers; v6 (two-phase commit, KIP-939) is not served."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Nested, Schema
from ..types import INT16, INT32, INT64, RECORDS, STRING

PRODUCE = Api(
    ApiKey.PRODUCE,
    "Produce",
    3,
    11,
    request=Schema(
        "ProduceRequest",
        [
            Field("transactional_id", STRING, "3+", nullable="3+", default=None),
            Field("acks", INT16),
            Field("timeout_ms", INT32),
            Field(
                "topic_data",
                Array(
                    [
                        Field("name", STRING),
                        Field(
                            "partition_data",
                            Array(
                                [
                                    Field("index", INT32),
                                    Field("records", RECORDS, nullable="0+"),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
        ],
        flexible="9+",
    ),
    response=Schema(
        "ProduceResponse",
        [
            Field(
                "responses",
                Array(
                    [
                        Field("name", STRING),
                        Field(
                            "partition_responses",
                            Array(
                                [
                                    Field("index", INT32),
                                    Field("error_code", INT16),
                                    Field("base_offset", INT64),
                                    Field("log_append_time_ms", INT64, "2+", default=-1),
                                    Field("log_start_offset", INT64, "5+", default=-1),
                                    Field(
                                        "record_errors",
                                        Array(
                                            [
                                                Field("batch_index", INT32, "8+"),
                                                Field(
                                                    "batch_index_error_message",
                                                    STRING,
                                                    "8+",
                                                    nullable="8+",
                                                    default=None,
                                                ),
                                            ]
                                        ),
                                        "8+",
                                    ),
                                    Field("error_message", STRING, "8+", nullable="8+", default=None),
                                    Field(
                                        "current_leader",
                                        Nested(
                                            [
                                                Field("leader_id", INT32, "10+", default=-1),
                                                Field("leader_epoch", INT32, "10+", default=-1),
                                            ]
                                        ),
                                        "10+",
                                        tag=0,
                                    ),
                                ]
                            ),
                        ),
                    ]
                ),
            ),
            Field("throttle_time_ms", INT32, "1+", default=0),
            Field(
                "node_endpoints",
                Array(
                    [
                        Field("node_id", INT32, "10+"),
                        Field("host", STRING, "10+"),
                        Field("port", INT32, "10+"),
                        Field("rack", STRING, "10+", nullable="10+", default=None),
                    ]
                ),
                "10+",
                tag=0,
            ),
        ],
        flexible="9+",
    ),
)

INIT_PRODUCER_ID = Api(
    ApiKey.INIT_PRODUCER_ID,
    "InitProducerId",
    0,
    5,
    request=Schema(
        "InitProducerIdRequest",
        [
            # Kafka's JSON has no default (""); null is what an idempotent, non-transactional
            # producer sends, so that is the default here.
            Field("transactional_id", STRING, nullable="0+", default=None),
            Field("transaction_timeout_ms", INT32),
            # v3+: the producer's current id and epoch, to bump its own epoch after an error (KIP-360)
            Field("producer_id", INT64, "3+", default=-1),
            Field("producer_epoch", INT16, "3+", default=-1),
        ],
        flexible="2+",
    ),
    response=Schema(
        "InitProducerIdResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("producer_id", INT64, default=-1),
            Field("producer_epoch", INT16),
        ],
        flexible="2+",
    ),
)
