"""Kafka error codes in answers, turned into the kcli errors a user gets from the embedded path."""

from __future__ import annotations

from kcli.errors import (
    AlreadyExistsError,
    BrokerError,
    CorruptRecordError,
    InvalidConfigError,
    InvalidTopicError,
    NotFoundError,
    RecordTooLargeError,
    SequenceError,
    StorageError,
    UnavailableError,
    UsageError,
)
from kcli.protocol import ErrorCode, error_name

# an idempotent producer's batch that the leader cannot place: storing it might duplicate or reorder
SEQUENCE_ERRORS: dict[int, str] = {
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER: "the leader lacks this producer's earlier batches",
    ErrorCode.INVALID_PRODUCER_EPOCH: "a newer session of this producer id fenced it",
    ErrorCode.UNKNOWN_PRODUCER_ID: "the leader no longer knows this producer (its records were deleted)",
}


def raise_for(code: int, message: str | None, what: str) -> None:
    """Turn a Kafka error code into the kcli error a user would get from the embedded path."""
    if code == ErrorCode.NONE:
        return
    text = f"{what}: {message}" if message else f"{what}: {error_name(code)}"
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFoundError(message or f"{what} does not exist", hint="see `kcli topic list`")
    if code in (
        ErrorCode.CORRUPT_MESSAGE,
        ErrorCode.INVALID_RECORD,
        ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    ):
        raise CorruptRecordError(text)
    if code in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE):
        raise RecordTooLargeError(text, hint="raise the topic's max.message.bytes or send smaller batches")
    if code == ErrorCode.TOPIC_ALREADY_EXISTS:
        raise AlreadyExistsError(message or f"{what} already exists")
    if code == ErrorCode.INVALID_TOPIC_EXCEPTION:
        raise InvalidTopicError(text)
    if code == ErrorCode.INVALID_CONFIG:
        raise InvalidConfigError(text)
    if code in (
        ErrorCode.INVALID_PARTITIONS,
        ErrorCode.INVALID_REPLICATION_FACTOR,
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ErrorCode.INVALID_REQUEST,
    ):
        raise UsageError(text)
    if code in (ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.NOT_ENOUGH_REPLICAS):
        raise UnavailableError(text)
    if code == ErrorCode.KAFKA_STORAGE_ERROR:  # the broker's disk refused the write; nothing of it was kept
        raise StorageError(text, "make room on (or repair) the broker's disk, then retry")
    if code in SEQUENCE_ERRORS:
        raise SequenceError(
            f"{what}: {message or SEQUENCE_ERRORS[code]} ({error_name(code)})",
            hint="records after the last acknowledged one may be missing: produce them again; "
            "--no-idempotence turns these checks off",
            fenced=code == ErrorCode.INVALID_PRODUCER_EPOCH,
        )
    raise BrokerError(f"{text} ({error_name(code)})" if message else text)
