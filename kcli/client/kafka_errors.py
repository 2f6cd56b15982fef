"""Kafka error codes in answers, turned into the kcli errors a user gets from the embedded path."""

from __future__ import annotations

from kcli.errors import (
    AlreadyExistsError,
    AuthorizationError,
    BrokerError,
    InvalidTransactionTimeoutError,
    KcliError,
    NotFoundError,
    ProducerFencedError,
    RecordTooLargeError,
    SequenceError,
    StorageError,
)
from kcli.protocol import ErrorCode, error_name
from kcli.protocol.error_codes import exception_for

# an idempotent producer's batch that the leader cannot place: storing it might duplicate or reorder
SEQUENCE_ERRORS: dict[int, str] = {
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER: "the leader lacks this producer's earlier batches",
    ErrorCode.INVALID_PRODUCER_EPOCH: "a newer session of this producer id fenced it",
    ErrorCode.PRODUCER_FENCED: "a newer producer with the same transactional id fenced this one",
    ErrorCode.UNKNOWN_PRODUCER_ID: "the leader no longer knows this producer (its records were deleted)",
}


# what to do about it, for the errors a user can act on
_HINTS: dict[type[KcliError], str] = {
    NotFoundError: "see `kcli topic list`",
    AuthorizationError: "an ACL must allow it: see `kcli acl list`",
    RecordTooLargeError: "raise the topic's max.message.bytes or send smaller batches",
    StorageError: "make room on (or repair) the broker's disk, then retry",  # nothing of the write was kept
    InvalidTransactionTimeoutError: "use a --transaction-timeout-ms within the cluster's "
    "transaction.max.timeout.ms",
    ProducerFencedError: "a newer producer with the same id took over: this one stops (any transaction it "
    "had open was aborted)",
    SequenceError: "records after the last acknowledged one may be missing: produce them again; "
    "--no-idempotence turns these checks off",
}


def raise_for(code: int, message: str | None, what: str) -> None:
    """Turn a Kafka error code into the kcli error a user would get from the embedded path (the class
    from the one table both directions share, :data:`kcli.protocol.error_codes.EXCEPTIONS`)."""
    if code == ErrorCode.NONE:
        return
    kind = exception_for(code)
    if issubclass(kind, SequenceError):
        text = f"{what}: {message or SEQUENCE_ERRORS[code]} ({error_name(code)})"
    elif kind is NotFoundError:
        text = message or f"{what} does not exist"
    elif kind is AlreadyExistsError:
        text = message or f"{what} already exists"
    elif kind is BrokerError and message:
        text = f"{what}: {message} ({error_name(code)})"
    else:
        text = f"{what}: {message or error_name(code)}"
    hint = next((h for base, h in _HINTS.items() if issubclass(kind, base)), None)
    raise kind(text, hint=hint)
