"""Kafka's operating guidance, applied to a topic's settings as warnings (never errors).

Replication factor 1 for development, 2 where a little loss is acceptable, 3 where none is; 4 or more
costs disk for little gain.  min.insync.replicas >= replication factor makes acks=all block on the loss of
any broker.
"""

from __future__ import annotations


def replication_warnings(replication_factor: int, min_insync: int) -> list[str]:
    """A factor above the broker count is an error raised by the assignment, not a warning."""
    out = []
    if replication_factor >= 4:
        out.append(f"replication factor {replication_factor} stores every record {replication_factor} times; "
                   "3 already survives the loss of two brokers (4 or more mostly costs disk)")
    if min_insync >= replication_factor > 0:
        out.append(f"min.insync.replicas={min_insync} >= replication factor {replication_factor}: acks=all "
                   "produces will fail as soon as any replica's broker is down (use replication factor - 1)")
    return out

