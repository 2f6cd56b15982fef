"""A broker's transaction coordinator: one :class:`~kcli.transactions.TransactionCoordinator` per broker,
writing markers with :class:`~kcli.broker.txn_markers.BrokerMarkerWriter`, and its upkeep.

Which broker coordinates a transactional id is the groups' choice (:func:`coordinator_of`, keyed by the
id); the state itself lives in the data dir, so the broker that takes an id over after another stopped
or died finds it where that one left it.  The upkeep (:meth:`TransactionService.maintain`, from a broker
thread of its own) aborts transactions that outlived their timeout and rolls forward the decided ones
whose markers could not all be written (a leader was down) -- for every id, whichever broker
coordinates it, so one that died is covered too; an id another process holds is left to it.  Apart
from the handlers because the produce path and the upkeep thread use it too.
"""

from __future__ import annotations

import logging
import time

from kcli.broker.context import BrokerContext, made_once
from kcli.broker.coordinator_choice import coordinator_of
from kcli.broker.txn_markers import BrokerMarkerWriter
from kcli.errors import KcliError
from kcli.protocol import ErrorCode
from kcli.protocol.error_codes import ApiError
from kcli.storage.records import BatchHeader
from kcli.transactions.coordinator import TransactionCoordinator

log = logging.getLogger("kcli.broker")

EXPIRY_INTERVAL = 3600.0  # how often idle transactional ids are expired


class TransactionService:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self.coordinator = TransactionCoordinator(
            ctx.datadir, ctx.producer_ids, BrokerMarkerWriter(ctx),
            max_timeout_ms=ctx.settings.transaction_max_timeout_ms,
            id_expiration_ms=ctx.settings.transactional_id_expiration_ms,
        )
        self._next_expiry = time.monotonic() + EXPIRY_INTERVAL

    def owns(self, transactional_id: str) -> bool:
        """Whether this broker coordinates ``transactional_id`` (and is not shutting down)."""
        return (
            not self.ctx.partitions.stopping
            and coordinator_of(self.ctx, transactional_id) == self.ctx.broker_id
        )

    def maintain(self) -> None:
        """Abort timed-out transactions and finish decided ones; expire idle ids every EXPIRY_INTERVAL."""
        now = time.monotonic()
        try:
            for transactional_id in self.coordinator.abort_timed_out():
                log.info("transactional id %r: transaction timed out; aborted", transactional_id)
            for transactional_id in self.coordinator.finish_pending():
                log.info("transactional id %r: decided transaction completed", transactional_id)
            if now >= self._next_expiry:
                self._next_expiry = now + EXPIRY_INTERVAL
                for transactional_id in self.coordinator.expire_idle():
                    log.info("transactional id %r: expired after being idle", transactional_id)
        except (KcliError, OSError) as exc:
            log.error("transaction upkeep: %s", exc)


def transactions(ctx: BrokerContext) -> TransactionService:
    """The broker's transaction service, made on first use."""
    return made_once(ctx, "transactions", TransactionService)


class TransactionalProduceCheck:
    """KIP-890's verification for one Produce request: a transactional batch may be written only to a
    partition its transaction added -- INVALID_TXN_STATE otherwise; a fenced producer gets
    INVALID_PRODUCER_EPOCH and an unknown one INVALID_PRODUCER_ID_MAPPING (the coordinator's errors).
    The id's state is read once per request and producer, not once per partition."""

    def __init__(self, ctx: BrokerContext, transactional_id: str) -> None:
        self.ctx = ctx
        self.transactional_id = transactional_id
        self._partitions: dict[tuple[int, int], frozenset[tuple[str, int]]] = {}

    def __call__(self, header: BatchHeader, topic: str, partition: int) -> None:
        producer = (header.producer_id, header.producer_epoch)
        inside = self._partitions.get(producer)
        if inside is None:
            inside = self._partitions[producer] = transactions(self.ctx).coordinator.txn_partitions(
                self.transactional_id, *producer
            )
        if (topic, partition) not in inside:
            raise ApiError(
                ErrorCode.INVALID_TXN_STATE,
                f"{topic}-{partition} is not in the transaction of {self.transactional_id!r}: "
                "add it first (AddPartitionsToTxn)",
            )
