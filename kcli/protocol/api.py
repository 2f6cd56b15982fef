"""API keys and the :class:`Api` record tying a key to its request/response schemas."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .schema import Schema

# Kafka's "authorized operations not requested": the default of every *_authorized_operations field
NO_OPERATIONS = -(1 << 31)


class ApiKey(IntEnum):
    """Kafka's numeric API keys for the APIs kcli speaks (names as in Kafka's ``ApiKeys``)."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    INCREMENTAL_ALTER_CONFIGS = 44
    ELECT_LEADERS = 43
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    CONSUMER_GROUP_HEARTBEAT = 68
    CONSUMER_GROUP_DESCRIBE = 69
    DESCRIBE_TOPIC_PARTITIONS = 75


@dataclass(frozen=True)
class Api:
    """One API: its key, a display name, the versions we implement and the two schemas.

    The flexible versions (KIP-482) are the schemas' ``flexible`` range, Kafka's ``flexibleVersions``,
    the same for both (checked here).  Flexible versions use request header v2 and response header v1
    (ApiVersions' response keeps header v0 in every version, so a client can always read it)."""

    key: ApiKey
    name: str
    min_version: int
    max_version: int
    request: Schema
    response: Schema

    def __post_init__(self) -> None:
        if self.request.flexible != self.response.flexible:
            raise ValueError(f"{self.name}: request and response disagree on the flexible versions")

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version

    def is_flexible(self, version: int) -> bool:
        """Whether ``version`` of this API is flexible (compact types, tagged fields, new headers)."""
        return self.request.is_flexible(version)

    def response_header_flexible(self, version: int) -> bool:
        """Whether a response of ``version`` has header v1 (tagged fields after the correlation id)."""
        return self.key != ApiKey.API_VERSIONS and self.is_flexible(version)
