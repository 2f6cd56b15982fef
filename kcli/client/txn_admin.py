"""Transactional ids as an operator sees them (kafka-transactions.sh list / describe): the data dir's
coordinator state, or a cluster's at ``--bootstrap-server``.

A Kafka cluster keeps each id at its coordinator broker, so, as Kafka's admin client does, the cluster's
list asks every broker ListTransactions (each answers for the ids it coordinates; the filters travel with
the request) and describe asks the id's coordinator (FindCoordinator key type 1) DescribeTransactions.
ListTransactions has no producer epoch, timeout or partitions, so the ids listed are then described at the
broker that listed them, for the same rows as the data dir's.  Both APIs are flexible-only (request
header v2, response header v1).  DescribeTransactions does not name the consumer groups of a transaction
(Kafka holds them as __consumer_offsets partitions), so through a broker ``groups`` is empty.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from kcli.client.broker_pool import BrokerPool
from kcli.client.coordinators import COORDINATOR_MOVED
from kcli.client.kafka_errors import raise_for
from kcli.client.remote_txn import TransactionCalls
from kcli.cluster.datadir import DataDir
from kcli.errors import BrokerError
from kcli.net.connection import REQUEST_TIMEOUT
from kcli.protocol import ApiKey, ErrorCode, Struct
from kcli.protocol.apis.groups import TRANSACTION_KEY
from kcli.transactions.state import TransactionInfo, running_longer, states_named


class LocalTransactions:
    """The data dir's transaction state, read as every coordinator reads it (nothing is written)."""

    def __init__(self, datadir: DataDir) -> None:
        from kcli.client.embedded import EmbeddedTransport

        self.coordinator = EmbeddedTransport(datadir, auto_create=False).coordinator()

    def list(self, states: Iterable[str] = (), producer_ids: Iterable[int] = (),
             duration_ms: int = -1) -> builtins.list[TransactionInfo]:
        now = self.coordinator.clock()
        return [i for i in self.coordinator.list(states, producer_ids) if running_longer(i, now, duration_ms)]

    def describe(self, transactional_id: str) -> TransactionInfo | None:
        return self.coordinator.describe(transactional_id)

    def close(self) -> None:
        return None


class ClusterTransactions:
    """The transactional ids of a cluster reached by ``bootstrap``: ``list``, ``describe``, ``close``."""

    def __init__(self, bootstrap: str) -> None:
        self.cluster = BrokerPool(None, bootstrap, 2 * REQUEST_TIMEOUT)
        self.calls = TransactionCalls(self.cluster)

    def list(self, states: Iterable[str] = (), producer_ids: Iterable[int] = (),
             duration_ms: int = -1) -> builtins.list[TransactionInfo]:
        body = {
            "state_filters": sorted(s.value for s in states_named(states)),  # Kafka's spelling
            "producer_id_filters": sorted(set(producer_ids)),
            "duration_filter": duration_ms,
        }
        listed: dict[int, builtins.list[str]] = {}
        for broker in self.cluster.metadata([]).brokers:
            conn = self.cluster.node(broker.node_id)
            if duration_ms >= 0 and conn.version(ApiKey.LIST_TRANSACTIONS) < 1:
                raise BrokerError(f"broker at {conn.label} does not support ListTransactions v1 "
                                  "(its duration filter)")
            resp = self.cluster.send(conn, ApiKey.LIST_TRANSACTIONS, body)
            raise_for(resp.error_code, None, f"listing transactions at broker {broker.node_id}")
            listed[broker.node_id] = [t.transactional_id for t in resp.transaction_states]
        found: dict[str, TransactionInfo] = {}
        for node, ids in listed.items():
            for info in self._described_at(node, ids):
                found[info.transactional_id] = info
        return [found[t] for t in sorted(found)]

    def describe(self, transactional_id: str) -> TransactionInfo | None:
        """The id's state at its coordinator; None when the cluster has no state for it."""
        self.cluster.any().version(ApiKey.DESCRIBE_TRANSACTIONS)  # one clear line if it is not served
        resp = self.calls.ask(  # the coordinator search and retries of the producer's calls
            transactional_id, TRANSACTION_KEY, ApiKey.DESCRIBE_TRANSACTIONS,
            {"transactional_ids": [transactional_id]}, _describe_error,
        )
        state = resp.transaction_states[0]
        return None if state.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND else _info(state)

    def close(self) -> None:
        self.cluster.close()

    def _described_at(self, node: int, ids: builtins.list[str]) -> builtins.list[TransactionInfo]:
        """``ids`` described at ``node``, which listed them; an id that moved since is described at its
        coordinator, one that expired since is left out."""
        if not ids:
            return []
        resp = self.cluster.send(self.cluster.node(node), ApiKey.DESCRIBE_TRANSACTIONS, {"transactional_ids": ids})
        out = []
        for state in resp.transaction_states:
            info: TransactionInfo | None
            if state.error_code in COORDINATOR_MOVED:
                info = self.describe(state.transactional_id)
            elif state.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND:
                info = None
            else:
                raise_for(state.error_code, None, f"transactional id {state.transactional_id!r}")
                info = _info(state)
            if info is not None:
                out.append(info)
        return out


def open_transactions(datadir: DataDir | None, bootstrap: str | None) -> LocalTransactions | ClusterTransactions:
    """The transactional ids a command shows: the cluster's at ``bootstrap`` when given, else ``datadir``'s."""
    if bootstrap:
        return ClusterTransactions(bootstrap)
    assert datadir is not None
    return LocalTransactions(datadir)


def _describe_error(resp: Struct) -> int:
    """The code to act on; an unknown id is an answer (None), not an error."""
    if len(resp.transaction_states) != 1:
        return ErrorCode.UNKNOWN_SERVER_ERROR
    code: int = resp.transaction_states[0].error_code
    return ErrorCode.NONE if code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND else code


def _info(state: Struct) -> TransactionInfo:
    partitions = sorted((t.topic, p) for t in state.topics for p in t.partitions)
    return TransactionInfo(state.transactional_id, state.producer_id, state.producer_epoch,
                           state.transaction_state, state.transaction_timeout_ms,
                           state.transaction_start_time_ms, tuple(partitions), ())
