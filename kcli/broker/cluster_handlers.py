"""Operators' cluster handlers: DescribeCluster (who is in the cluster, which broker controls it) and
DescribeLogDirs (what this broker's folder holds, per partition replica: size and lag)."""

from __future__ import annotations

import os

from kcli.broker.authorize import authorize, authorized_operations, require
from kcli.broker.context import BrokerContext
from kcli.broker.controller import acting_controller
from kcli.broker.handlers import Body, Entry, endpoints
from kcli.cluster.liveness import observe
from kcli.cluster.metadata import ClusterState
from kcli.errors import KcliError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.apis.cluster_admin import BROKERS_ENDPOINT
from kcli.security.acl import Operation, ResourceType
from kcli.storage.log import PartitionLog, partition_dirs

CONTROLLERS_ENDPOINT = 2


def describe_cluster(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Kafka's rules (AuthHelper.computeDescribeClusterResponse): a broker answers only for endpoint type
    1; asked for the controllers it says MISMATCHED_ENDPOINT_TYPE, for an unknown type
    UNSUPPORTED_ENDPOINT_TYPE; the controller id is -1 when that broker is not among those listed."""
    wanted = req.endpoint_type
    if wanted != BROKERS_ENDPOINT:
        known = wanted == CONTROLLERS_ENDPOINT
        return {
            "throttle_time_ms": 0,
            "error_code": ErrorCode.MISMATCHED_ENDPOINT_TYPE
            if known
            else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            "error_message": (
                f"The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type {wanted}"
                if known
                else f"Unsupported endpoint type {wanted}"
            ),
            "cluster_id": "",
            "brokers": [],
        }
    state = ctx.partitions.refresh()
    brokers = [{"broker_id": b, "host": host, "port": port, "rack": None} for b, host, port in endpoints(ctx)]
    states = observe(ctx.datadir, state.brokers, ctx.settings.session_timeout_ms / 1000)
    controller = acting_controller(states)
    body: Entry = {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "endpoint_type": BROKERS_ENDPOINT,
        "cluster_id": state.cluster_id or "",
        "controller_id": controller if any(b["broker_id"] == controller for b in brokers) else -1,
        "brokers": brokers,
    }
    # anyone may see the brokers (clients bootstrap with it); the operations only with DESCRIBE, as Kafka
    if req.include_cluster_authorized_operations and authorize(ctx, Operation.DESCRIBE, ResourceType.CLUSTER):
        body["cluster_authorized_operations"] = authorized_operations(ctx, ResourceType.CLUSTER)
    return body


def describe_log_dirs(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """One log dir, this broker's folder: every partition replica in it (or those asked for), with the
    size of its segments and its lag behind the leader's log end (0 on the leader).  Needs DESCRIBE on the
    cluster (else CLUSTER_AUTHORIZATION_FAILED and no dirs)."""
    require(ctx, Operation.DESCRIBE, ResourceType.CLUSTER)
    wanted = None if req.topics is None else {(t.topic, p) for t in req.topics for p in t.partitions}
    root = ctx.datadir.broker_dir(ctx.broker_id)
    state = ctx.partitions.refresh()
    topics: dict[str, list[Entry]] = {}
    for topic, partition, path in partition_dirs(root):
        if wanted is not None and (topic, partition) not in wanted:
            continue
        try:
            size, end = _size_and_end(path)
        except (KcliError, OSError):
            continue  # deleted or damaged while we looked: not a replica we can describe
        lag = max(0, _leader_end(ctx, state, topic, partition, end) - end)
        topics.setdefault(topic, []).append(
            {"partition_index": partition, "partition_size": size, "offset_lag": lag, "is_future_key": False}
        )
    result: Entry = {
        "error_code": ErrorCode.NONE,
        "log_dir": os.path.abspath(root),
        "topics": [{"name": t, "partitions": parts} for t, parts in sorted(topics.items())],
    }
    try:
        volume = os.statvfs(root)
        result["total_bytes"] = volume.f_blocks * volume.f_frsize
        result["usable_bytes"] = volume.f_bavail * volume.f_frsize
    except OSError:
        pass  # the schema's -1: unknown
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "results": [result]}


def _size_and_end(path: str) -> tuple[int, int]:
    log = PartitionLog(path)
    try:
        return log.size_bytes(), log.log_end_offset
    finally:
        log.close()


def _leader_end(ctx: BrokerContext, state: ClusterState, topic: str, partition: int, own_end: int) -> int:
    """The leader replica's log end offset; ``own_end`` when we lead or it is unknown (a lag of 0)."""
    meta = state.topics.get(topic)
    if meta is None or partition >= len(meta.partitions):
        return own_end
    leader = meta.partitions[partition].leader
    if leader < 0 or leader == ctx.broker_id:
        return own_end
    try:
        return _size_and_end(ctx.datadir.partition_dir(leader, topic, partition))[1]
    except (KcliError, OSError):
        return own_end
