"""The transactional producer: batches and group offsets that become visible together, or never.

Like Kafka's producer with ``transactional.id``: ``init_transactions`` takes the id's next epoch from its
transaction coordinator (fencing any older instance of the same id and aborting what it left open);
between ``begin_transaction`` and ``commit_transaction`` every batch is flagged transactional, and each
partition is added to the transaction (AddPartitionsToTxn) before its first batch; offsets sent with
``send_offsets_to_transaction`` are applied to the group only when the transaction commits.  Commit
sends every pending batch first; abort drops the pending ones.  Per batch work only: the records are
batched exactly as the plain producer batches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kcli.client.defaults import TRANSACTION_TIMEOUT_MS
from kcli.client.producer import Producer
from kcli.errors import TransactionError, UsageError

if TYPE_CHECKING:
    from kcli.client.transport import Transport
    from kcli.groups.offsets import CommittedOffset


class TransactionalProducer(Producer):
    """A :class:`Producer` whose batches belong to transactions of ``transactional_id``."""

    transactional = True

    def __init__(self, transport: Transport, transactional_id: str, *,
                 transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS, **options: Any) -> None:
        from kcli.transactions.coordinator import check_transactional_id

        check_transactional_id(transactional_id)
        if transaction_timeout_ms <= 0:
            raise UsageError(f"transaction timeout must be positive, not {transaction_timeout_ms}")
        super().__init__(transport, idempotence=True, **options)
        self.transactional_id = transactional_id
        self.timeout_ms = transaction_timeout_ms
        self._joined: set[tuple[str, int]] | None = None  # partitions in the open transaction; None: none open
        self._offsets_groups: set[str] = set()

    # ------------------------------------------------------------ lifecycle
    def init_transactions(self) -> None:
        """Take the id's next epoch: an older instance is fenced, what it left open is aborted (or, when
        its commit had begun, completed) before this returns."""
        self._identity = self.transport.init_producer_id(self.transactional_id, self.timeout_ms)
        self._sequences.clear()

    @property
    def in_transaction(self) -> bool:
        return self._joined is not None

    def begin_transaction(self) -> None:
        if self._identity is None:
            raise TransactionError("init_transactions() must come before a transaction")
        if self._joined is not None:
            raise TransactionError("a transaction is already open")
        self._joined = set()
        self._offsets_groups.clear()

    def send_offsets_to_transaction(self, offsets: Mapping[tuple[str, int], CommittedOffset], group: str) -> None:
        """Commit ``offsets`` for ``group`` with the transaction (TxnOffsetCommit), not before."""
        producer_id, epoch = self._open()
        if group not in self._offsets_groups:
            self.transport.add_offsets_to_txn(self.transactional_id, producer_id, epoch, group)
            self._offsets_groups.add(group)
        self.transport.txn_offset_commit(self.transactional_id, group, producer_id, epoch, offsets)

    def commit_transaction(self) -> None:
        """Send what is pending, then commit: every batch and offset of the transaction becomes visible."""
        producer_id, epoch = self._open()
        self.send_pending()
        self._end(producer_id, epoch, True)

    def abort_transaction(self) -> None:
        """Drop what is pending and abort: nothing of the transaction is ever visible to read_committed."""
        producer_id, epoch = self._open()
        self._pending.clear()
        if self._compressor is not None:
            self._compressor.finish()  # compressed for nothing: dropped
        self._end(producer_id, epoch, False)

    def _end(self, producer_id: int, epoch: int, commit: bool) -> None:
        joined, self._joined = self._joined, None
        if joined or self._offsets_groups:  # an empty transaction has nothing to end (as Kafka's producer)
            self.transport.end_txn(self.transactional_id, producer_id, epoch, commit)
        self._offsets_groups.clear()
        self.transport.release()

    def _open(self) -> tuple[int, int]:
        if self._joined is None or self._identity is None:
            raise TransactionError("no transaction is open")
        return self._identity

    # ------------------------------------------------------------ hooks of Producer
    def _join(self, tp: tuple[str, int]) -> None:
        joined = self._joined
        if joined is None:
            raise TransactionError("no transaction is open")
        if tp not in joined:
            assert self._identity is not None
            self.transport.add_partitions_to_txn(self.transactional_id, *self._identity, [tp])
            joined.add(tp)

    def _init_producer_id(self) -> tuple[int, int] | None:
        raise TransactionError("init_transactions() must come before a transaction")

    def _lost(self) -> None:
        """A batch of unknown fate: the transaction can only be aborted (its epoch stays: abort needs it)."""

    def close(self) -> None:
        """End the session.  A transaction still open is not committed: abort it first, or its coordinator
        aborts it once it times out (embedded: once another process finds this one gone)."""
        if self._compressor is not None:
            self._compressor.close()
        self.transport.close(durable=True)
