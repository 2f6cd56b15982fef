"""The kcli error hierarchy.

Every failure a user can cause or meet is one of these; the CLI turns them into a one-line message on
stderr and the exit code below, in one place (kcli.cli.app).  Exit codes are documented in kcli(1).
"""

from __future__ import annotations

import errno as _errno


class KcliError(Exception):
    """Base of all kcli errors.  ``exit_code`` is what the CLI exits with; ``message`` says what went
    wrong and ``hint`` is an optional second clause telling the user what to do (kept apart, so a
    broker can answer with the message alone and the CLI can print both without parsing either)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class UsageError(KcliError):
    """A bad argument or flag value."""

    exit_code = 2


class InvalidTopicError(UsageError):
    """A topic name that breaks Kafka's naming rules."""


class InvalidConfigError(UsageError):
    """An unknown config key or an out-of-range value."""


class OffsetOutOfRangeError(UsageError):
    """An offset outside what a partition holds, e.g. DeleteRecords past the high watermark (Kafka's
    OFFSET_OUT_OF_RANGE)."""


class GroupNotEmptyError(KcliError):
    """An admin change refused because the group has live members (Kafka's NON_EMPTY_GROUP)."""


class NotFoundError(KcliError):
    """A topic, partition, group or file that does not exist."""

    exit_code = 3


class AlreadyExistsError(KcliError):
    """Creating something that is already there."""

    exit_code = 4


class LockTimeoutError(KcliError):
    """A lock held by another process for longer than we were willing to wait."""

    exit_code = 5


class CorruptRecordError(KcliError):
    """Stored or received bytes that are not a valid record batch (bad CRC, bad sizes, bad codec)."""

    exit_code = 6

    def __init__(self, message: str, path: str | None = None, position: int | None = None,
                 hint: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f" in {path}" + (f" at position {position}" if position is not None else "")
        super().__init__(message + where, hint)
        self.reason = message  # what is wrong, without where: for a message that says where itself
        self.path = path
        self.position = position


class InvalidRecordError(UsageError):
    """A record the partition refuses as Kafka's INVALID_RECORD: one without a key, to a topic whose
    cleanup.policy holds compact."""


class RecordTooLargeError(KcliError):
    """A message or batch larger than max.message.bytes."""

    exit_code = 7


class SequenceError(KcliError):
    """An idempotent producer's batch that cannot be stored without risking a duplicate or a reordering:
    a gap in its sequence numbers, an epoch older than the one stored, or a producer id the log no longer
    knows.  ``fenced``: the epoch was the problem (Kafka's INVALID_PRODUCER_EPOCH)."""

    fenced = False


class ProducerFencedError(SequenceError):
    """A batch from an older epoch of its producer id than the one stored: a newer session fenced it."""

    fenced = True


class TransactionError(KcliError):
    """A transactional request the transaction's state does not allow: EndTxn without a transaction, a
    partition added to a transaction being committed, a producer id that is not the transactional id's
    (Kafka's INVALID_TXN_STATE and its kin).  Nothing of the transaction is committed by it."""

    exit_code = 12


class ConcurrentTransactionsError(TransactionError):
    """The previous transaction of this transactional id is still being completed (its markers are being
    written): retry shortly (Kafka's retriable CONCURRENT_TRANSACTIONS)."""


class InvalidProducerIdMappingError(TransactionError):
    """A producer id that the transactional id does not (or no longer) map to."""


class TransactionAbortedError(TransactionError):
    """A transaction that was aborted, by the producer on a failure or a signal, or by the coordinator
    (a timeout, a newer producer): none of its records or offsets are visible to read_committed readers."""

    exit_code = 1


class InvalidTransactionTimeoutError(UsageError):
    """A transaction timeout above transaction.max.timeout.ms (or not positive)."""


class BrokerError(KcliError):
    """A broker that cannot be reached or answered with an error."""

    exit_code = 8


class AuthenticationError(BrokerError):
    """A broker that refused who we said we are (SASL_AUTHENTICATION_FAILED, or a mechanism it does not
    enable).  The message never holds the password."""

    exit_code = 13


class NoProducerIdError(BrokerError):
    """A cluster that hands out no producer ids (no InitProducerId, or it answers with an error), so an
    idempotent producer cannot number its batches there."""


class AuthorizationError(KcliError):
    """A broker refused the request: the principal lacks the ACL for it (Kafka's TOPIC_, GROUP_, CLUSTER_ and
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED)."""

    exit_code = 14


class ProtocolError(KcliError):
    """Bytes on the wire that do not follow Kafka's protocol."""

    exit_code = 8


class DataDirError(KcliError):
    """A data directory that cannot be used (permissions, ownership, not a kcli data dir)."""

    exit_code = 9


class UnavailableError(KcliError):
    """A partition with no leader, or too few in-sync replicas for the requested guarantee."""

    exit_code = 10


class StorageError(KcliError):
    """A disk that refused a write (full, over a size limit, failing): nothing of the failed write was kept.

    ``errno`` is the operating system's error, when known; :attr:`out_of_space` tells a full disk, which
    may clear once room is made, from a failing one."""

    exit_code = 11

    def __init__(self, message: str, hint: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, hint)
        self.errno = errno

    @classmethod
    def of(cls, exc: OSError, path: str | None = None) -> StorageError:
        """The error for a failed write to ``path`` (named: "No space left on device" alone does not say
        which disk filled up)."""
        path = path or exc.filename
        return cls(
            f"{exc.strerror or exc}" + (f": {path}" if path else ""),
            "make room on that disk, then retry: everything acknowledged before is kept"
            if exc.errno in _OUT_OF_SPACE
            else "the disk failed: check it (dmesg), then retry",
            exc.errno,
        )

    @property
    def out_of_space(self) -> bool:
        return self.errno in _OUT_OF_SPACE


_OUT_OF_SPACE = frozenset({_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG})  # EFBIG: a file size limit
