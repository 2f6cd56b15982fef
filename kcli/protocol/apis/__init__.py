"""The registry of implemented APIs and the version table the broker advertises.

``APIS`` maps an api key to its :class:`~kcli.protocol.api.Api`; ``SUPPORTED`` is the same thing as
``{api_key: (min_version, max_version)}``, which is what goes into an ApiVersions response."""

from __future__ import annotations

from kcli.errors import ProtocolError

from ..api import Api, ApiKey
from .acls import CREATE_ACLS, DELETE_ACLS, DESCRIBE_ACLS
from .admin import CREATE_PARTITIONS, CREATE_TOPICS, DELETE_TOPICS
from .api_versions import API_VERSIONS
from .cluster_admin import DESCRIBE_CLUSTER, DESCRIBE_LOG_DIRS
from .configs import ALTER_CONFIGS, DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS
from .consumer_groups import CONSUMER_GROUP_DESCRIBE, CONSUMER_GROUP_HEARTBEAT
from .fetch import FETCH, LIST_OFFSETS, OFFSET_FOR_LEADER_EPOCH
from .groups import (
    DELETE_GROUPS,
    DESCRIBE_GROUPS,
    FIND_COORDINATOR,
    HEARTBEAT,
    JOIN_GROUP,
    LEAVE_GROUP,
    LIST_GROUPS,
    SYNC_GROUP,
)
from .leadership import ALTER_PARTITION_REASSIGNMENTS, ELECT_LEADERS, LIST_PARTITION_REASSIGNMENTS
from .metadata import DESCRIBE_TOPIC_PARTITIONS, METADATA
from .offsets import OFFSET_COMMIT, OFFSET_DELETE, OFFSET_FETCH
from .produce import INIT_PRODUCER_ID, PRODUCE
from .records_admin import DELETE_RECORDS
from .sasl import (
    ALTER_USER_SCRAM_CREDENTIALS,
    DESCRIBE_USER_SCRAM_CREDENTIALS,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
)
from .transaction_admin import DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS
from .transactions import (
    ADD_OFFSETS_TO_TXN,
    ADD_PARTITIONS_TO_TXN,
    END_TXN,
    TXN_OFFSET_COMMIT,
    WRITE_TXN_MARKERS,
)

APIS: dict[int, Api] = {
    api.key: api
    for api in (
        PRODUCE,
        FETCH,
        LIST_OFFSETS,
        METADATA,
        OFFSET_COMMIT,
        OFFSET_FETCH,
        FIND_COORDINATOR,
        JOIN_GROUP,
        HEARTBEAT,
        LEAVE_GROUP,
        SYNC_GROUP,
        DESCRIBE_GROUPS,
        LIST_GROUPS,
        API_VERSIONS,
        CREATE_TOPICS,
        DELETE_TOPICS,
        INIT_PRODUCER_ID,
        OFFSET_FOR_LEADER_EPOCH,
        ADD_PARTITIONS_TO_TXN,
        ADD_OFFSETS_TO_TXN,
        END_TXN,
        WRITE_TXN_MARKERS,
        TXN_OFFSET_COMMIT,
        DESCRIBE_ACLS,
        CREATE_ACLS,
        DELETE_ACLS,
        CREATE_PARTITIONS,
        DELETE_GROUPS,
        OFFSET_DELETE,
        DESCRIBE_PRODUCERS,
        DESCRIBE_TRANSACTIONS,
        LIST_TRANSACTIONS,
        DESCRIBE_LOG_DIRS,
        DESCRIBE_CLUSTER,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        INCREMENTAL_ALTER_CONFIGS,
        DELETE_RECORDS,
        ELECT_LEADERS,
        ALTER_PARTITION_REASSIGNMENTS,
        LIST_PARTITION_REASSIGNMENTS,
        DESCRIBE_TOPIC_PARTITIONS,
        CONSUMER_GROUP_HEARTBEAT,
        CONSUMER_GROUP_DESCRIBE,
        SASL_HANDSHAKE,
        SASL_AUTHENTICATE,
        DESCRIBE_USER_SCRAM_CREDENTIALS,
        ALTER_USER_SCRAM_CREDENTIALS,
    )
}

SUPPORTED: dict[int, tuple[int, int]] = {key: (api.min_version, api.max_version) for key, api in APIS.items()}

# The newest version kcli's own client sends, where that is below what kcli serves.
CLIENT_MAX: dict[int, int] = {
    # v4+ is the brokers' batched form (KIP-890 part 1); clients stop at v3, as Kafka's do
    ApiKey.ADD_PARTITIONS_TO_TXN: 3,
    # v13+ names topics by id; kcli's client, mirror and followers address topics by name
    ApiKey.FETCH: 12,
}


def get_api(api_key: int) -> Api:
    """The :class:`Api` for ``api_key``; ProtocolError if kcli does not implement it."""
    try:
        return APIS[api_key]
    except KeyError:
        raise ProtocolError(f"unsupported api key {api_key}") from None


def api_name(api_key: int) -> str:
    """A readable name for any api key, implemented or not (for logs and errors)."""
    api = APIS.get(api_key)
    return api.name if api is not None else f"api_key={api_key}"


def api_versions_entries(supported: dict[int, tuple[int, int]] | None = None) -> list[dict[str, int]]:
    """``supported`` (default :data:`SUPPORTED`) as the ``api_keys`` list of an ApiVersions response."""
    table = SUPPORTED if supported is None else supported
    return [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(table.items())]


__all__ = ["APIS", "CLIENT_MAX", "SUPPORTED", "Api", "ApiKey", "api_name", "api_versions_entries", "get_api"]
