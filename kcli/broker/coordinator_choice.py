"""Which broker coordinates a group or a transactional id.

Each group (and each transactional id: the same choice, keyed by the id) has one coordinator among the
live brokers reachable over TCP, chosen by rendezvous hashing
(:func:`choose_coordinator`): every broker computes the same answer from the same live set without
talking to the others, and a broker coming or going moves only the groups it wins or held.  Requests for
a group another broker coordinates get NOT_COORDINATOR, and Kafka clients ask FindCoordinator again.
Apart from the handlers because the service thread asks it too (to let go of groups that moved away).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from kcli.broker.context import BrokerContext


def choose_coordinator(key: str, brokers: Iterable[int]) -> int | None:
    """The coordinator of ``key`` (a group or transactional id) among ``brokers`` by rendezvous hashing
    (highest hash of the key and broker wins); None when there is no broker."""

    def weight(broker: int) -> tuple[int, int]:
        digest = hashlib.blake2b(f"{broker}\0{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big"), -broker

    return max(brokers, key=weight, default=None)


def coordinator_of(ctx: BrokerContext, key: str) -> int | None:
    """The coordinator of a group or transactional id ``key``.  Kafka clients can only reach brokers
    with a TCP listener, so those are the candidates (all live brokers when none has one)."""
    live = sorted(ctx.live_ids())
    reachable = [b for b in live if (info := ctx.broker_info(b)) is not None and info.port is not None]
    return choose_coordinator(key, reachable or live)
