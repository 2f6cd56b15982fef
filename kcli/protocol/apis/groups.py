"""The classic consumer-group APIs: FindCoordinator (10) v0-5, JoinGroup (11) v0-9, Heartbeat (12)
v0-4, LeaveGroup (13) v0-5, SyncGroup (14) v0-5, DescribeGroups (15) v0-5, ListGroups (16) v0-5 and
DeleteGroups (42) v0-2 -- each up to the newest version of Kafka's classic group protocol (KIP-482
flexible from FindCoordinator v3, JoinGroup v6, SyncGroup/Heartbeat/LeaveGroup v4, DescribeGroups v5,
ListGroups v3, DeleteGroups v2).

What the newer versions add: FindCoordinator v4 asks for several keys at once (KIP-699) and v5 may answer
TRANSACTION_ABORTABLE, which kcli never does, so v5 is v4 here (v6, share groups, is not served);
JoinGroup v7 and SyncGroup v5 carry the group's protocol type and name (KIP-559; SyncGroup checks them),
JoinGroup v8 and LeaveGroup v5 a reason (KIP-800), JoinGroup v9 the leader's SkipAssignment (KIP-814,
only for a static leader rejoining -- kcli has no static members, so it is always false); ListGroups v4
and v5 filter by state and type (KIP-518, KIP-848).

The ``metadata``/``assignment`` bytes inside JoinGroup and SyncGroup are opaque here; for the
"consumer" protocol type they are decoded by :mod:`kcli.protocol.consumer`."""

from typing import Any

from kcli.errors import ProtocolError

from ..api import NO_OPERATIONS, Api, ApiKey
from ..schema import Array, Field, Schema, Struct
from ..types import BOOL, BYTES, INT8, INT16, INT32, STRING

GROUP_KEY, TRANSACTION_KEY = 0, 1  # FindCoordinator's key types: a consumer group, a transactional id

FIND_COORDINATOR = Api(
    ApiKey.FIND_COORDINATOR,
    "FindCoordinator",
    0,
    5,
    request=Schema(
        "FindCoordinatorRequest",
        [
            Field("key", STRING, "0-3"),
            Field("key_type", INT8, "1+", default=0),
            Field("coordinator_keys", Array(STRING), "4+"),
        ],
        flexible="3+",
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
            Field(
                "coordinators",
                Array(
                    [
                        Field("key", STRING, "4+"),
                        Field("node_id", INT32, "4+"),
                        Field("host", STRING, "4+"),
                        Field("port", INT32, "4+"),
                        Field("error_code", INT16, "4+"),
                        # as error_message above: null on success
                        Field("error_message", STRING, "4+", nullable="4+", default=None),
                    ]
                ),
                "4+",
            ),
        ],
        flexible="3+",
    ),
)



def find_coordinator_body(key: str, key_type: int) -> dict[str, Any]:
    """A FindCoordinator request for one key that encodes in every version: v0-3 read ``key``, v4+
    ``coordinator_keys`` (each version ignores the fields it lacks)."""
    return {"key": key, "key_type": key_type, "coordinator_keys": [key]}


def found_coordinator(resp: Struct, key: str) -> Struct:
    """The answer about ``key`` with ``error_code``, ``error_message``, ``node_id``, ``host`` and ``port``
    in every version: v4's entry in ``coordinators`` (ProtocolError when another key's is there
    instead), else the response itself (v0-3, whose decoded ``coordinators`` is empty)."""
    if not resp.coordinators:
        return resp
    entry: Struct
    for entry in resp.coordinators:
        if entry.key == key:
            return entry
    raise ProtocolError(f"FindCoordinator: the answer has no entry for key {key!r}")


JOIN_GROUP = Api(
    ApiKey.JOIN_GROUP,
    "JoinGroup",
    0,
    9,
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
            Field("reason", STRING, "8+", nullable="8+", default=None),
        ],
        flexible="6+",
    ),
    response=Schema(
        "JoinGroupResponse",
        [
            Field("throttle_time_ms", INT32, "2+"),
            Field("error_code", INT16),
            Field("generation_id", INT32, default=-1),
            Field("protocol_type", STRING, "7+", nullable="7+", default=None),
            Field("protocol_name", STRING, nullable="7+"),
            Field("leader", STRING),
            Field("skip_assignment", BOOL, "9+"),
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
        flexible="6+",
    ),
)

HEARTBEAT = Api(
    ApiKey.HEARTBEAT,
    "Heartbeat",
    0,
    4,
    request=Schema(
        "HeartbeatRequest",
        [
            Field("group_id", STRING),
            Field("generation_id", INT32),
            Field("member_id", STRING),
            Field("group_instance_id", STRING, "3+", nullable="3+", default=None),
        ],
        flexible="4+",
    ),
    response=Schema(
        "HeartbeatResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16),
        ],
        flexible="4+",
    ),
)

LEAVE_GROUP = Api(
    ApiKey.LEAVE_GROUP,
    "LeaveGroup",
    0,
    5,
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
                        Field("reason", STRING, "5+", nullable="5+", default=None),
                    ]
                ),
                "3+",
            ),
        ],
        flexible="4+",
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
        flexible="4+",
    ),
)

SYNC_GROUP = Api(
    ApiKey.SYNC_GROUP,
    "SyncGroup",
    0,
    5,
    request=Schema(
        "SyncGroupRequest",
        [
            Field("group_id", STRING),
            Field("generation_id", INT32),
            Field("member_id", STRING),
            Field("group_instance_id", STRING, "3+", nullable="3+", default=None),
            Field("protocol_type", STRING, "5+", nullable="5+", default=None),
            Field("protocol_name", STRING, "5+", nullable="5+", default=None),
            Field("assignments", Array([Field("member_id", STRING), Field("assignment", BYTES)])),
        ],
        flexible="4+",
    ),
    response=Schema(
        "SyncGroupResponse",
        [
            Field("throttle_time_ms", INT32, "1+"),
            Field("error_code", INT16),
            Field("protocol_type", STRING, "5+", nullable="5+", default=None),
            Field("protocol_name", STRING, "5+", nullable="5+", default=None),
            Field("assignment", BYTES),
        ],
        flexible="4+",
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
    2,
    request=Schema("DeleteGroupsRequest", [Field("groups_names", Array(STRING))], flexible="2+"),
    response=Schema(
        "DeleteGroupsResponse",
        [
            Field("throttle_time_ms", INT32),
            Field("results", Array([Field("group_id", STRING), Field("error_code", INT16)])),
        ],
        flexible="2+",
    ),
)
