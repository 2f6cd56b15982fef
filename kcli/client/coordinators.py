"""Finding a coordinator: the broker that coordinates a consumer group or a transactional id
(FindCoordinator), asked again while it is loading, moving or gone."""

from __future__ import annotations

from kcli.client.backoff import Backoff
from kcli.client.broker_pool import ATTEMPTS, BrokerPool
from kcli.client.kafka_errors import raise_for
from kcli.protocol import ApiKey, ErrorCode, Struct
from kcli.protocol.apis.groups import GROUP_KEY, find_coordinator_body, found_coordinator

# answers that mean: find the coordinator again (it is loading, moving or gone)
COORDINATOR_MOVED = {
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_COORDINATOR,
}


def find_coordinator(cluster: BrokerPool, key: str, key_type: int = GROUP_KEY) -> Struct:
    """FindCoordinator for a group (or, ``key_type`` 1, a transactional id): ``node_id``, ``host``,
    ``port``, asked again while the coordinator is moving; its address is remembered so
    ``cluster.node(node_id)`` reaches it."""
    backoff = Backoff()
    body = find_coordinator_body(key, key_type)
    for attempt in range(ATTEMPTS):
        resp = found_coordinator(cluster.send(cluster.any(), ApiKey.FIND_COORDINATOR, body), key)
        if resp.error_code == ErrorCode.NONE:
            cluster.addresses[resp.node_id] = (resp.host, resp.port)
            return resp
        if resp.error_code not in COORDINATOR_MOVED or attempt == ATTEMPTS - 1:
            what = f"group {key!r}" if key_type == GROUP_KEY else f"transactional id {key!r}"
            raise_for(resp.error_code, resp.error_message, f"coordinator of {what}")
        backoff.sleep()
    raise AssertionError("unreachable")  # pragma: no cover
