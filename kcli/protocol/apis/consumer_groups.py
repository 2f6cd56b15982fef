"""The KIP-848 consumer group APIs: ConsumerGroupHeartbeat (68) v0-1 and ConsumerGroupDescribe (69)
v0, flexible in every version.  The coordinator computes the assignment and hands it out in heartbeats
(:mod:`kcli.groups.consumer_group`); topics travel by topic id (Kafka's ``uuid``)."""

from ..api import NO_OPERATIONS, Api, ApiKey
from ..schema import Array, Field, Nested, Schema
from ..types import BOOL, INT16, INT32, STRING, UUID

# A heartbeat's member epoch: 0 joins, -1 leaves, -2 leaves for now as a static member that will rejoin
JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH = 0, -1, -2

_HEARTBEAT_TOPIC_PARTITIONS = [Field("topic_id", UUID), Field("partitions", Array(INT32))]

CONSUMER_GROUP_HEARTBEAT = Api(
    ApiKey.CONSUMER_GROUP_HEARTBEAT,
    "ConsumerGroupHeartbeat",
    0,
    1,
    request=Schema(
        "ConsumerGroupHeartbeatRequest",
        [
            Field("group_id", STRING),
            Field("member_id", STRING),
            Field("member_epoch", INT32),
            # the fields below are null (-1) when unchanged since the member's last heartbeat
            Field("instance_id", STRING, nullable="0+", default=None),
            Field("rack_id", STRING, nullable="0+", default=None),
            Field("rebalance_timeout_ms", INT32, default=-1),
            Field("subscribed_topic_names", Array(STRING), nullable="0+", default=None),
            Field("subscribed_topic_regex", STRING, "1+", nullable="1+", default=None),
            Field("server_assignor", STRING, nullable="0+", default=None),
            Field("topic_partitions", Array(_HEARTBEAT_TOPIC_PARTITIONS), nullable="0+", default=None),
        ],
        flexible="0+",
    ),
    response=Schema(
        "ConsumerGroupHeartbeatResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable="0+", default=None),
            Field("member_id", STRING, nullable="0+", default=None),
            Field("member_epoch", INT32),
            Field("heartbeat_interval_ms", INT32),
            # null: the member's assignment did not change
            Field("assignment", Nested([Field("topic_partitions", Array(_HEARTBEAT_TOPIC_PARTITIONS))]), nullable="0+"),
        ],
        flexible="0+",
    ),
)

_DESCRIBED_TOPIC_PARTITIONS = [Field("topic_id", UUID), Field("topic_name", STRING), Field("partitions", Array(INT32))]

CONSUMER_GROUP_DESCRIBE = Api(
    ApiKey.CONSUMER_GROUP_DESCRIBE,
    "ConsumerGroupDescribe",
    0,
    0,
    request=Schema(
        "ConsumerGroupDescribeRequest",
        [Field("group_ids", Array(STRING)), Field("include_authorized_operations", BOOL)],
        flexible="0+",
    ),
    response=Schema(
        "ConsumerGroupDescribeResponse",
        [
            Field("throttle_time_ms", INT32),
            Field(
                "groups",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("error_message", STRING, nullable="0+", default=None),
                        Field("group_id", STRING),
                        Field("group_state", STRING),
                        Field("group_epoch", INT32),
                        Field("assignment_epoch", INT32),
                        Field("assignor_name", STRING),
                        Field(
                            "members",
                            Array(
                                [
                                    Field("member_id", STRING),
                                    Field("instance_id", STRING, nullable="0+", default=None),
                                    Field("rack_id", STRING, nullable="0+", default=None),
                                    Field("member_epoch", INT32),
                                    Field("client_id", STRING),
                                    Field("client_host", STRING),
                                    Field("subscribed_topic_names", Array(STRING)),
                                    Field("subscribed_topic_regex", STRING, nullable="0+", default=None),
                                    Field("assignment", Nested([Field("topic_partitions", Array(_DESCRIBED_TOPIC_PARTITIONS))])),
                                    Field(
                                        "target_assignment",
                                        Nested([Field("topic_partitions", Array(_DESCRIBED_TOPIC_PARTITIONS))]),
                                    ),
                                ]
                            ),
                        ),
                        Field("authorized_operations", INT32, default=NO_OPERATIONS),
                    ]
                ),
            ),
        ],
        flexible="0+",
    ),
)
