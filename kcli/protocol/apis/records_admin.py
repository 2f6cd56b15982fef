"""DeleteRecords (21) v0-2: move partitions' log start forward (v2 is flexible).  Sent to each
partition's leader, which answers once the in-sync replicas have the new start too (the low watermark)
or the request's timeout passed."""

from ..api import Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import INT16, INT32, INT64, STRING

DELETE_RECORDS = Api(
    ApiKey.DELETE_RECORDS,
    "DeleteRecords",
    0,
    2,
    request=Schema(
        "DeleteRecordsRequest",
        [
            Field(
                "topics",
                Array(
                    [
                        Field("name", STRING),
                        Field("partitions", Array([Field("partition_index", INT32), Field("offset", INT64)])),
                    ]
                ),
            ),
            Field("timeout_ms", INT32),
        ],
        flexible="2+",
    ),
    response=Schema(
        "DeleteRecordsResponse",
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
                                    Field("low_watermark", INT64),
                                    Field("error_code", INT16),
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
