"""Kafka's numeric error codes, with the names Kafka's ``Errors`` enum gives them, and the one table
between them and kcli's exceptions.

``ErrorCode`` is an IntEnum, so members go straight into an ``error_code`` field and compare equal
to the ints decoded from the wire.  ``RETRIABLE`` holds the codes whose Java exception is a
``RetriableException`` -- the ones a client should retry (usually after refreshing metadata).

Like Kafka's ``Errors.forException``, :func:`code_for` is the only place an exception becomes a code:
the broker answers with it whatever handler met the exception.  :func:`exception_for` is the other
direction, the kcli error a client raises for a code a broker answered with.  :class:`ApiError` is the
broker's own "answer with this code" signal, for answers that are not an exception of the library
(a stale leader epoch, an unsupported request)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

from kcli.errors import (
    AlreadyExistsError,
    AuthenticationError,
    AuthorizationError,
    BrokerError,
    ConcurrentTransactionsError,
    CorruptRecordError,
    DataDirError,
    GroupNotEmptyError,
    InvalidConfigError,
    InvalidProducerIdMappingError,
    InvalidRecordError,
    InvalidTopicError,
    InvalidTransactionTimeoutError,
    KcliError,
    LockTimeoutError,
    NotFoundError,
    OffsetOutOfRangeError,
    ProducerFencedError,
    ProtocolError,
    RecordTooLargeError,
    SequenceError,
    StorageError,
    TransactionAbortedError,
    TransactionError,
    UnavailableError,
    UsageError,
)


class ErrorCode(IntEnum):
    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    INVALID_FETCH_SIZE = 4
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    BROKER_NOT_AVAILABLE = 8
    REPLICA_NOT_AVAILABLE = 9
    MESSAGE_TOO_LARGE = 10
    STALE_CONTROLLER_EPOCH = 11
    OFFSET_METADATA_TOO_LARGE = 12
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    NOT_ENOUGH_REPLICAS = 19
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
    INVALID_REQUIRED_ACKS = 21
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_COMMIT_OFFSET_SIZE = 28
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_SASL_MECHANISM = 33
    ILLEGAL_SASL_STATE = 34
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_CONFIG = 40
    NOT_CONTROLLER = 41
    INVALID_REQUEST = 42
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    INVALID_PRODUCER_ID_MAPPING = 49
    INVALID_TRANSACTION_TIMEOUT = 50
    CONCURRENT_TRANSACTIONS = 51
    TRANSACTION_COORDINATOR_FENCED = 52
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    SECURITY_DISABLED = 54
    OPERATION_NOT_ATTEMPTED = 55
    KAFKA_STORAGE_ERROR = 56
    LOG_DIR_NOT_FOUND = 57
    SASL_AUTHENTICATION_FAILED = 58
    UNKNOWN_PRODUCER_ID = 59
    REASSIGNMENT_IN_PROGRESS = 60
    DELEGATION_TOKEN_AUTH_DISABLED = 61
    DELEGATION_TOKEN_NOT_FOUND = 62
    DELEGATION_TOKEN_OWNER_MISMATCH = 63
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = 64
    DELEGATION_TOKEN_AUTHORIZATION_FAILED = 65
    DELEGATION_TOKEN_EXPIRED = 66
    INVALID_PRINCIPAL_TYPE = 67
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    FETCH_SESSION_ID_NOT_FOUND = 70
    INVALID_FETCH_SESSION_EPOCH = 71
    LISTENER_NOT_FOUND = 72
    TOPIC_DELETION_DISABLED = 73
    FENCED_LEADER_EPOCH = 74
    UNKNOWN_LEADER_EPOCH = 75
    UNSUPPORTED_COMPRESSION_TYPE = 76
    STALE_BROKER_EPOCH = 77
    OFFSET_NOT_AVAILABLE = 78
    MEMBER_ID_REQUIRED = 79
    PREFERRED_LEADER_NOT_AVAILABLE = 80
    GROUP_MAX_SIZE_REACHED = 81
    FENCED_INSTANCE_ID = 82
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83
    ELECTION_NOT_NEEDED = 84
    NO_REASSIGNMENT_IN_PROGRESS = 85
    GROUP_SUBSCRIBED_TO_TOPIC = 86
    INVALID_RECORD = 87
    UNSTABLE_OFFSET_COMMIT = 88
    THROTTLING_QUOTA_EXCEEDED = 89
    PRODUCER_FENCED = 90
    RESOURCE_NOT_FOUND = 91
    DUPLICATE_RESOURCE = 92
    UNACCEPTABLE_CREDENTIAL = 93
    INCONSISTENT_VOTER_SET = 94
    INVALID_UPDATE_VERSION = 95
    FEATURE_UPDATE_FAILED = 96
    PRINCIPAL_DESERIALIZATION_FAILURE = 97
    SNAPSHOT_NOT_FOUND = 98
    POSITION_OUT_OF_RANGE = 99
    UNKNOWN_TOPIC_ID = 100
    DUPLICATE_BROKER_REGISTRATION = 101
    BROKER_ID_NOT_REGISTERED = 102
    INCONSISTENT_TOPIC_ID = 103
    INCONSISTENT_CLUSTER_ID = 104
    TRANSACTIONAL_ID_NOT_FOUND = 105
    FETCH_SESSION_TOPIC_ID_ERROR = 106
    FENCED_MEMBER_EPOCH = 110  # KIP-848 consumer groups (kcli.groups.consumer_group)
    UNRELEASED_INSTANCE_ID = 111
    UNSUPPORTED_ASSIGNOR = 112
    STALE_MEMBER_EPOCH = 113
    MISMATCHED_ENDPOINT_TYPE = 114
    UNSUPPORTED_ENDPOINT_TYPE = 115


RETRIABLE: frozenset[int] = frozenset(
    {
        ErrorCode.CORRUPT_MESSAGE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.REPLICA_NOT_AVAILABLE,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.NOT_CONTROLLER,
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
        ErrorCode.INVALID_FETCH_SESSION_EPOCH,
        ErrorCode.LISTENER_NOT_FOUND,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.OFFSET_NOT_AVAILABLE,
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
        ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
        ErrorCode.ELECTION_NOT_NEEDED,
        ErrorCode.UNSTABLE_OFFSET_COMMIT,
        ErrorCode.THROTTLING_QUOTA_EXCEEDED,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.INCONSISTENT_TOPIC_ID,
        ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR,
    }
)


def error_name(code: int) -> str:
    """Kafka's name for ``code`` (``"UNKNOWN_ERROR_CODE_<n>"`` for codes newer than this table)."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"UNKNOWN_ERROR_CODE_{code}"


def is_retriable(code: int) -> bool:
    return code in RETRIABLE


class ApiError(Exception):
    """A Kafka error code (and message) to answer one part of a request with, raised from deep inside a
    handler (Kafka's ``ApiError``): not a failure of the library, the answer itself."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


# What the broker answers when an exception reaches a handler; the exception's nearest class in this
# table wins (a subclass inherits its base's code unless it has its own).
CODES: Mapping[type[BaseException], ErrorCode] = {
    AuthenticationError: ErrorCode.SASL_AUTHENTICATION_FAILED,
    UsageError: ErrorCode.INVALID_REQUEST,
    InvalidTopicError: ErrorCode.INVALID_TOPIC_EXCEPTION,
    InvalidConfigError: ErrorCode.INVALID_CONFIG,
    OffsetOutOfRangeError: ErrorCode.OFFSET_OUT_OF_RANGE,
    NotFoundError: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    AlreadyExistsError: ErrorCode.TOPIC_ALREADY_EXISTS,
    GroupNotEmptyError: ErrorCode.NON_EMPTY_GROUP,
    LockTimeoutError: ErrorCode.REQUEST_TIMED_OUT,
    CorruptRecordError: ErrorCode.CORRUPT_MESSAGE,
    RecordTooLargeError: ErrorCode.MESSAGE_TOO_LARGE,
    InvalidRecordError: ErrorCode.INVALID_RECORD,
    SequenceError: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    ProducerFencedError: ErrorCode.INVALID_PRODUCER_EPOCH,
    ProtocolError: ErrorCode.INVALID_REQUEST,
    DataDirError: ErrorCode.KAFKA_STORAGE_ERROR,  # a log directory the broker cannot use
    UnavailableError: ErrorCode.LEADER_NOT_AVAILABLE,
    StorageError: ErrorCode.KAFKA_STORAGE_ERROR,
    TransactionError: ErrorCode.INVALID_TXN_STATE,
    ConcurrentTransactionsError: ErrorCode.CONCURRENT_TRANSACTIONS,
    InvalidProducerIdMappingError: ErrorCode.INVALID_PRODUCER_ID_MAPPING,
    TransactionAbortedError: ErrorCode.INVALID_TXN_STATE,
    InvalidTransactionTimeoutError: ErrorCode.INVALID_TRANSACTION_TIMEOUT,
    AuthorizationError: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,  # brokers answer the resource's own code
    OSError: ErrorCode.KAFKA_STORAGE_ERROR,  # the disk under a log failed in a way the library did not name
}
# Anything else (an unexpected failure) is Kafka's default too.
DEFAULT = ErrorCode.UNKNOWN_SERVER_ERROR


def code_for(exc: BaseException, overrides: Mapping[type[BaseException], ErrorCode] | None = None) -> ErrorCode:
    """The code to answer ``exc`` with: an :class:`ApiError`'s own code, else the entry of the nearest
    class in its MRO, in ``overrides`` (a call site's few codes of its own, for an API where Kafka gives
    the same exception another code) before :data:`CODES`, else :data:`DEFAULT`."""
    if isinstance(exc, ApiError):
        return exc.code
    for kind in type(exc).__mro__:
        if overrides and kind in overrides:
            return overrides[kind]
        if kind in CODES:
            return CODES[kind]
    return DEFAULT


def message_for(exc: BaseException) -> str | None:
    """What to put in a response's ``error_message`` for ``exc``: the message without the user hint."""
    if isinstance(exc, ApiError | KcliError):
        return exc.message
    return str(exc)


# The kcli error a client raises for a code a broker answered with (the user then gets the exit code the
# embedded path would give); any other code is a BrokerError.
EXCEPTIONS: Mapping[int, type[KcliError]] = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: NotFoundError,
    ErrorCode.CORRUPT_MESSAGE: CorruptRecordError,
    ErrorCode.INVALID_RECORD: InvalidRecordError,
    ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT: CorruptRecordError,
    ErrorCode.MESSAGE_TOO_LARGE: RecordTooLargeError,
    ErrorCode.RECORD_LIST_TOO_LARGE: RecordTooLargeError,
    ErrorCode.TOPIC_ALREADY_EXISTS: AlreadyExistsError,
    ErrorCode.INVALID_TOPIC_EXCEPTION: InvalidTopicError,
    ErrorCode.INVALID_CONFIG: InvalidConfigError,
    ErrorCode.OFFSET_OUT_OF_RANGE: OffsetOutOfRangeError,
    ErrorCode.INVALID_PARTITIONS: UsageError,
    ErrorCode.INVALID_REPLICATION_FACTOR: UsageError,
    ErrorCode.INVALID_REPLICA_ASSIGNMENT: UsageError,
    ErrorCode.INVALID_REQUEST: UsageError,
    ErrorCode.LEADER_NOT_AVAILABLE: UnavailableError,
    ErrorCode.NOT_ENOUGH_REPLICAS: UnavailableError,
    ErrorCode.KAFKA_STORAGE_ERROR: StorageError,
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER: SequenceError,
    ErrorCode.UNKNOWN_PRODUCER_ID: SequenceError,
    ErrorCode.INVALID_PRODUCER_EPOCH: ProducerFencedError,
    ErrorCode.PRODUCER_FENCED: ProducerFencedError,
    ErrorCode.INVALID_TXN_STATE: TransactionError,
    ErrorCode.CONCURRENT_TRANSACTIONS: ConcurrentTransactionsError,
    ErrorCode.INVALID_PRODUCER_ID_MAPPING: InvalidProducerIdMappingError,
    ErrorCode.INVALID_TRANSACTION_TIMEOUT: InvalidTransactionTimeoutError,
    ErrorCode.TRANSACTIONAL_ID_NOT_FOUND: NotFoundError,
    ErrorCode.RESOURCE_NOT_FOUND: NotFoundError,
    ErrorCode.DUPLICATE_RESOURCE: UsageError,
    ErrorCode.UNACCEPTABLE_CREDENTIAL: UsageError,
    ErrorCode.UNSUPPORTED_SASL_MECHANISM: AuthenticationError,
    ErrorCode.SASL_AUTHENTICATION_FAILED: AuthenticationError,
    ErrorCode.TOPIC_AUTHORIZATION_FAILED: AuthorizationError,
    ErrorCode.GROUP_AUTHORIZATION_FAILED: AuthorizationError,
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED: AuthorizationError,
    ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: AuthorizationError,
}


def exception_for(code: int) -> type[KcliError]:
    """The kcli error class for a code a broker answered with (:class:`BrokerError` for the rest)."""
    return EXCEPTIONS.get(code, BrokerError)
