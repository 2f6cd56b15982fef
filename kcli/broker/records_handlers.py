"""DeleteRecords: the leader moves each partition's log start forward (Kafka's logical log start, kept
in ``log-start-offset-checkpoint`` before the segments below it are deleted), and answers with the low
watermark once its in-sync followers have learnt the new start from their fetches, or
REQUEST_TIMED_OUT when the request's timeout passes first.  Errors are per partition, as in Kafka:
OFFSET_OUT_OF_RANGE past the high watermark, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kcli.broker.answers import answer_for
from kcli.broker.authorize import authorize, denied
from kcli.broker.context import BrokerContext
from kcli.errors import KcliError
from kcli.protocol import ErrorCode, RequestHeader, Struct
from kcli.protocol.error_codes import ApiError
from kcli.security.acl import Operation, ResourceType

log = logging.getLogger("kcli.broker")

Body = Mapping[str, Any]
MAX_WAIT = 120.0  # the longest a DeleteRecords waits for the followers, whatever timeout_ms says


def delete_records(ctx: BrokerContext, header: RequestHeader, req: Struct) -> Body:
    """Needs DELETE on each topic (TOPIC_AUTHORIZATION_FAILED for the partitions of the others)."""
    deadline = time.monotonic() + min(max(req.timeout_ms, 0) / 1000, MAX_WAIT)
    topics = []
    for topic in req.topics:
        parts = []
        may_delete = authorize(ctx, Operation.DELETE, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            entry = {"partition_index": p.partition_index, "low_watermark": -1, "error_code": ErrorCode.NONE}
            try:
                if not may_delete:
                    raise denied(ResourceType.TOPIC, Operation.DELETE, topic.name)
                led = ctx.partitions.get(topic.name, p.partition_index)
                entry["low_watermark"] = led.delete_records(p.offset, deadline)
                log.info("partition %s-%d: records deleted, low watermark %d", topic.name, p.partition_index,
                         entry["low_watermark"])
            except (ApiError, KcliError, OSError) as exc:
                entry["error_code"] = answer_for(exc, f"deleting records of {topic.name}-{p.partition_index}")
            parts.append(entry)
        topics.append({"name": topic.name, "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
