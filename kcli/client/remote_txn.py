"""A transactional producer's requests to a cluster's coordinators, over Kafka's protocol.

InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn go to the transactional id's coordinator
(FindCoordinator key type 1); TxnOffsetCommit goes to the group's coordinator (key type 0), as Kafka's
producer sends them.  A coordinator that moved is found again; CONCURRENT_TRANSACTIONS (the previous
transaction is still being completed) is retried for a while, as Kafka's clients retry it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kcli.client.backoff import Backoff
from kcli.client.broker_pool import BrokerPool
from kcli.client.coordinators import COORDINATOR_MOVED, find_coordinator
from kcli.client.kafka_errors import raise_for
from kcli.errors import BrokerError
from kcli.net.connection import UnreachableError
from kcli.protocol import ApiKey, ErrorCode, Struct
from kcli.protocol.apis.groups import GROUP_KEY, TRANSACTION_KEY

if TYPE_CHECKING:
    from kcli.groups.offsets import CommittedOffset

RETRY_WAIT = 20.0  # how long a moving coordinator or a transaction being completed is waited for
_RETRY = COORDINATOR_MOVED | {ErrorCode.CONCURRENT_TRANSACTIONS, ErrorCode.REQUEST_TIMED_OUT}


def _first_error(codes: Iterable[int]) -> int:
    return next((code for code in codes if code != ErrorCode.NONE), ErrorCode.NONE)


class TransactionCalls:
    """The transaction requests of one producer, each sent to the coordinator that owns it."""

    def __init__(self, cluster: BrokerPool) -> None:
        self.cluster = cluster

    def ask(self, key: str, key_type: int, api_key: int, body: Mapping[str, Any],
            error_of: Callable[[Struct], int]) -> Struct:
        """Send ``body`` to the coordinator of ``key``; find it again while it moves, and retry what
        the coordinator cannot do yet, for up to RETRY_WAIT seconds."""
        what = f"transactional id {key!r}" if key_type == TRANSACTION_KEY else f"group {key!r}"
        backoff = Backoff()
        deadline = time.monotonic() + RETRY_WAIT
        while True:
            try:
                node = find_coordinator(self.cluster, key, key_type).node_id
                resp = self.cluster.send(self.cluster.node(node), api_key, body)
                code, message = error_of(resp), None
            except UnreachableError as exc:
                code, message = None, str(exc)
            if code == ErrorCode.NONE:
                return resp
            if (code is not None and code not in _RETRY) or time.monotonic() >= deadline:
                if code is None:
                    raise BrokerError(message or "coordinator unreachable")
                raise_for(code, message, what)
            backoff.sleep()

    def init_producer_id(self, transactional_id: str, timeout_ms: int) -> tuple[int, int]:
        body = {"transactional_id": transactional_id, "transaction_timeout_ms": timeout_ms}
        try:
            resp = self.ask(transactional_id, TRANSACTION_KEY, ApiKey.INIT_PRODUCER_ID, body, lambda r: r.error_code)
        except BrokerError as exc:
            if exc.hint is not None or type(exc) is not BrokerError:
                raise
            # a cluster without transactions answers an error no table names (tests/test_bootstrap_errors.py)
            raise BrokerError(exc.message, hint="does this cluster support transactions? nothing was written"
                              ) from None
        return resp.producer_id, resp.producer_epoch

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[tuple[str, int]]) -> None:
        topics: dict[str, list[int]] = {}
        for topic, partition in partitions:
            topics.setdefault(topic, []).append(partition)
        body = {
            "transactional_id": transactional_id,
            "producer_id": producer_id,
            "producer_epoch": producer_epoch,
            "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        }
        self.ask(transactional_id, TRANSACTION_KEY, ApiKey.ADD_PARTITIONS_TO_TXN, body,
                 lambda r: _first_error(p.partition_error_code for t in r.results_by_topic
                                        for p in t.results_by_partition))

    def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int, group: str) -> None:
        body = {"transactional_id": transactional_id, "producer_id": producer_id,
                "producer_epoch": producer_epoch, "group_id": group}
        self.ask(transactional_id, TRANSACTION_KEY, ApiKey.ADD_OFFSETS_TO_TXN, body, lambda r: r.error_code)

    def txn_offset_commit(self, transactional_id: str, group: str, producer_id: int, producer_epoch: int,
                          offsets: Mapping[tuple[str, int], CommittedOffset]) -> None:
        topics: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), committed in offsets.items():
            topics.setdefault(topic, []).append({
                "partition_index": partition,
                "committed_offset": committed.offset,
                "committed_leader_epoch": committed.leader_epoch,
                "committed_metadata": committed.metadata,
            })
        body = {
            "transactional_id": transactional_id,
            "group_id": group,
            "producer_id": producer_id,
            "producer_epoch": producer_epoch,
            "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        }
        self.ask(group, GROUP_KEY, ApiKey.TXN_OFFSET_COMMIT, body,
                 lambda r: _first_error(p.error_code for t in r.topics for p in t.partitions))

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> None:
        body = {"transactional_id": transactional_id, "producer_id": producer_id,
                "producer_epoch": producer_epoch, "committed": commit}
        self.ask(transactional_id, TRANSACTION_KEY, ApiKey.END_TXN, body, lambda r: r.error_code)
