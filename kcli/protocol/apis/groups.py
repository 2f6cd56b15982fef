"""The classic consumer-group APIs: FindCoordinator (10) v0-2, JoinGroup (11) v0-5, Heartbeat (12)
v0-3, LeaveGroup (13) v0-3, SyncGroup (14) v0-3, DescribeGroups (15) v0-5 (flexible from v5), ListGroups
(16) v0-5 (flexible from v3; v4 adds the states filter and each group's state, v5 the types filter and
each group's type, KIP-518 and KIP-848) and DeleteGroups (42) v0-1.

The ``metadata``/``assignment`` bytes inside JoinGroup and SyncGroup are opaque here; for the
"consumer" protocol type they are decoded by :mod:`kcli.protocol.consumer`."""

from ..api import NO_OPERATIONS, Api, ApiKey
from ..schema import Array, Field, Schema
from ..types import BOOL, BYTES, INT8, INT16, INT32, STRING

GROUP_KEY, TRANSACTION_KEY = 0, 1  # FindCoordinator's key types: a consumer group, a transactional id

FIND_COORDINATOR = Api(
    ApiKey.FIND_COORDINATOR,
    "FindCoordinator",
    0,
    2,
    request=Schema(
        "FindCoordinatorRequest",
        [
            Field("key", STRING, "0-3"),
            Field("key_type", INT8, "1+", default=0),
        ],
    ),
    response=Schema(
        "FindCoordinatorResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16, "0-3"),
            # Kafka's JSON has no default (""); brokers send null on success.
            Field("error_message", STRING, "1-3", nullable="1-3", default=None),
            Field("node_id", INT32, "0-3"),
            Field("host", STRING, "0-3"),
            Field("port", INT32, "0-3"),
        ],
    ),
)

JOIN_GROUP = Api(
    ApiKey.JOIN_GROUP,
    "JoinGroup",
    0,
    5,
    request=Schema(
        "JoinGroupRequest",
        [
            Field("group_id", STRING),
            Field("session_timeout_ms", INT32),
            Field("rebalance_timeout_ms", INT32, "1+", default=-1),
            Field("member_id", STRING),
            Field("group_instance_id", STRING, "5+", nullable="5+", default=None),
            Field("protocol_type", STRING),
            Field("protocols", Array([Field("name", STRING), Field("metadata", BYTES)])),
        ],
    ),
    response=Schema(
        "JoinGroupResponse",
        [
            Field("throttle_time_ms", INT32, "2+"),
            Field("error_code", INT16),
            Field("generation_id", INT32, default=-1),
            Field("protocol_name", STRING, nullable="7+"),
            Field("leader", STRING),
            Field("member_id", STRING),
            Field(
                "members",
                Array(
                    [
                        Field("member_id", STRING),
                        Field("group_instance_id", STRING, "5+", nullable="5+", default=None),
                        Field("metadata", BYTES),
                    ]
                ),
            ),
        ],
    ),
)

HEARTBEAT = Api(
    ApiKey.HEARTBEAT,
    "Heartbeat",
    0,
    3,
    request=Schema(
        "HeartbeatRequest",
        [
            Field("group_id", STRING),
            Field("generation_id", INT32),
            Field("member_id", STRING),
            Field("group_instance_id", STRING, "3+", nullable="3+", default=None),
        ],
    ),
    response=Schema(
        "HeartbeatResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16),
        ],
    ),
)

LEAVE_GROUP = Api(
    ApiKey.LEAVE_GROUP,
    "LeaveGroup",
    0,
    3,
    request=Schema(
        "LeaveGroupRequest",
        [
            Field("group_id", STRING),
            Field("member_id", STRING, "0-2"),
            Field(
                "members",
                Array(
                    [
                        Field("member_id", STRING, "3+"),
                        Field("group_instance_id", STRING, "3+", nullable="3+", default=None),
                    ]
                ),
                "3+",
            ),
        ],
    ),
    response=Schema(
        "LeaveGroupResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16),
            Field(
                "members",
                Array(
                    [
                        Field("member_id", STRING, "3+"),
                        Field("group_instance_id", STRING, "3+", nullable="3+"),
                        Field("error_code", INT16, "3+"),
                    ]
                ),
                "3+",
            ),
        ],
    ),
)

SYNC_GROUP = Api(
    ApiKey.SYNC_GROUP,
    "SyncGroup",
    0,
    3,
    request=Schema(
        "SyncGroupRequest",
        [
            Field("group_id", STRING),
            Field("generation_id", INT32),
            Field("member_id", STRING),
            Field("group_instance_id", STRING, "3+", nullable="3+", default=None),
            Field("assignments", Array([Field("member_id", STRING), Field("assignment", BYTES)])),
        ],
    ),
    response=Schema(
        "SyncGroupResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16),
            Field("assignment", BYTES),
        ],
    ),
)

DESCRIBE_GROUPS = Api(
    ApiKey.DESCRIBE_GROUPS,
    "DescribeGroups",
    0,
    5,
    request=Schema(
        "DescribeGroupsRequest",
        [
            Field("groups", Array(STRING)),
            Field("include_authorized_operations", BOOL, "3+"),
        ],
        flexible="5+",
    ),
    response=Schema(
        "DescribeGroupsResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field(
                "groups",
                Array(
                    [
                        Field("error_code", INT16),
                        Field("group_id", STRING),
                        Field("group_state", STRING),
                        Field("protocol_type", STRING),
                        Field("protocol_data", STRING),
                        Field(
                            "members",
                            Array(
                                [
                                    Field("member_id", STRING),
                                    Field("group_instance_id", STRING, "4+", nullable="4+", default=None),
                                    Field("client_id", STRING),
                                    Field("client_host", STRING),
                                    Field("member_metadata", BYTES),
                                    Field("member_assignment", BYTES),
                                ]
                            ),
                        ),
                        Field("authorized_operations", INT32, "3+", default=NO_OPERATIONS),
                    ]
                ),
            ),
        ],
        flexible="5+",
    ),
)

LIST_GROUPS = Api(
    ApiKey.LIST_GROUPS,
    "ListGroups",
    0,
    5,
    request=Schema(
        "ListGroupsRequest",
        [
            Field("states_filter", Array(STRING), "4+"),
            Field("types_filter", Array(STRING), "5+"),
        ],
        flexible="3+",
    ),
    response=Schema(
        "ListGroupsResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16),
            Field(
                "groups",
                Array(
                    [
                        Field("group_id", STRING),
                        Field("protocol_type", STRING),
                        Field("group_state", STRING, "4+"),
                        Field("group_type", STRING, "5+"),
                    ]
                ),
            ),
        ],
        flexible="3+",
    ),
)

DELETE_GROUPS = Api(
    ApiKey.DELETE_GROUPS,
    "DeleteGroups",
    0,
    1,
    request=Schema("DeleteGroupsRequest", [Field("groups_names", Array(STRING))]),
    response=Schema(
        "DeleteGroupsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("results", Array([Field("group_id", STRING), Field("error_code", INT16)])),
        ],
    ),
)
