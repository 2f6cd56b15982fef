"""One error vocabulary: every kcli exception has one Kafka error code (kcli.protocol.error_codes), the
broker answers through that table whichever handler meets the exception, and a client turns the code
back into the same kcli error."""

from __future__ import annotations

import inspect

import pytest
from support.brokers import call, connect

from kcli import errors
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
    NoProducerIdError,
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
from kcli.protocol import ApiKey, ErrorCode
from kcli.protocol.error_codes import DEFAULT, EXCEPTIONS, ApiError, code_for, exception_for, message_for
from kcli.storage.records import encode_batch

# every class of kcli.errors, with the code a broker answers it with
EXPECTED = {
    KcliError: ErrorCode.UNKNOWN_SERVER_ERROR,
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
    BrokerError: ErrorCode.UNKNOWN_SERVER_ERROR,
    AuthenticationError: ErrorCode.SASL_AUTHENTICATION_FAILED,
    NoProducerIdError: ErrorCode.UNKNOWN_SERVER_ERROR,
    ProtocolError: ErrorCode.INVALID_REQUEST,
    DataDirError: ErrorCode.KAFKA_STORAGE_ERROR,
    UnavailableError: ErrorCode.LEADER_NOT_AVAILABLE,
    StorageError: ErrorCode.KAFKA_STORAGE_ERROR,
    TransactionError: ErrorCode.INVALID_TXN_STATE,
    ConcurrentTransactionsError: ErrorCode.CONCURRENT_TRANSACTIONS,
    InvalidProducerIdMappingError: ErrorCode.INVALID_PRODUCER_ID_MAPPING,
    TransactionAbortedError: ErrorCode.INVALID_TXN_STATE,
    InvalidTransactionTimeoutError: ErrorCode.INVALID_TRANSACTION_TIMEOUT,
    AuthorizationError: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
}


def test_every_kcli_error_class_is_in_the_expectations():
    """A new class in kcli.errors must get a decision about its Kafka code (here and in the table)."""
    declared = {
        obj
        for _name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, KcliError) and obj.__module__ == errors.__name__
    }
    assert declared == set(EXPECTED)


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda kind: kind.__name__)
def test_each_kcli_error_maps_to_its_kafka_code(kind):
    assert code_for(kind("what went wrong")) == EXPECTED[kind]


def test_subclasses_take_their_nearest_base_code_and_the_default_is_kafkas():
    class TopicGone(NotFoundError):
        pass

    class Odd(KcliError):
        pass

    assert code_for(TopicGone("t")) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert code_for(Odd("?")) == DEFAULT == ErrorCode.UNKNOWN_SERVER_ERROR
    assert code_for(ValueError("a bug")) == ErrorCode.UNKNOWN_SERVER_ERROR
    assert code_for(FileNotFoundError(2, "gone")) == ErrorCode.KAFKA_STORAGE_ERROR  # via OSError
    assert code_for(StorageError("full")) == ErrorCode.KAFKA_STORAGE_ERROR


def test_an_api_error_answers_with_its_own_code():
    assert code_for(ApiError(ErrorCode.FENCED_LEADER_EPOCH)) == ErrorCode.FENCED_LEADER_EPOCH
    assert message_for(ApiError(ErrorCode.FENCED_LEADER_EPOCH)) is None
    assert message_for(ApiError(ErrorCode.INVALID_REQUEST, "acks=2")) == "acks=2"


def test_overrides_apply_at_their_place_in_the_mro():
    """A call site's override wins over the table for its class and the classes below it, but a subclass
    with its own table entry keeps it (the nearest class decides)."""
    group_api = {NotFoundError: ErrorCode.GROUP_ID_NOT_FOUND, UsageError: ErrorCode.INVALID_GROUP_ID}
    assert code_for(NotFoundError("g"), group_api) == ErrorCode.GROUP_ID_NOT_FOUND
    assert code_for(UsageError("g"), group_api) == ErrorCode.INVALID_GROUP_ID
    assert code_for(InvalidTopicError("t"), group_api) == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert code_for(LockTimeoutError("l"), {KcliError: ErrorCode.COORDINATOR_NOT_AVAILABLE}) == (
        ErrorCode.REQUEST_TIMED_OUT
    )
    assert code_for(BrokerError("b"), {KcliError: ErrorCode.COORDINATOR_NOT_AVAILABLE}) == (
        ErrorCode.COORDINATOR_NOT_AVAILABLE
    )


def test_the_wire_message_is_the_message_without_the_hint():
    exc = NotFoundError("topic 't' does not exist", hint="see `kcli topic list`")
    assert message_for(exc) == "topic 't' does not exist"
    assert str(exc) == "topic 't' does not exist (see `kcli topic list`)"
    assert message_for(CorruptRecordError("bad CRC", "/d/t-0/0.log", 61)) == "bad CRC in /d/t-0/0.log at position 61"


def test_a_code_and_back_gives_the_same_kcli_error():
    """exception_for (what a client raises) inverts code_for (what a broker answers) on every class a
    client can raise; codes without a class of their own are a BrokerError."""
    for kind in set(EXCEPTIONS.values()) | {BrokerError}:
        assert exception_for(code_for(kind("x"))) is kind, kind
    assert exception_for(ErrorCode.NOT_COORDINATOR) is BrokerError
    assert exception_for(ErrorCode.INVALID_PRODUCER_EPOCH) is ProducerFencedError


def test_a_fenced_epoch_is_its_own_class():
    fenced = ProducerFencedError("epoch 0 is older than 1")
    assert isinstance(fenced, SequenceError) and fenced.fenced and fenced.exit_code == 1


# ---------------------------------------------------------------- through a real broker


@pytest.fixture
def broker(brokers):
    b = brokers.start(0)
    brokers.runner.in_process("topic", "create", "t", "--partitions", 1)
    return b


def _produce(sock, partition: int, records: bytes):
    body = {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [{"name": "t", "partition_data": [{"index": partition, "records": records}]}],
    }
    return call(sock, ApiKey.PRODUCE, 8, body).responses[0].partition_responses[0]  # v8: error_message


def test_create_an_existing_topic_is_topic_already_exists(broker):
    topic = {"name": "t", "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}
    with connect(broker.socket_path) as sock:
        body = call(sock, ApiKey.CREATE_TOPICS, 4, {"topics": [topic], "timeout_ms": 1000, "validate_only": False})
    answer = body.topics[0]
    assert (answer.error_code, answer.error_message) == (ErrorCode.TOPIC_ALREADY_EXISTS, "topic 't' already exists")


def test_produce_answers_from_the_table(broker):
    """A missing partition, a fenced producer epoch, a gap in the sequence, a read past the log end: each
    partition answer is the table's code, with the exception's own message."""
    with connect(broker.socket_path) as sock:
        missing = _produce(sock, 5, encode_batch([(None, b"v", [], 1)]))
        assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        pid = call(sock, ApiKey.INIT_PRODUCER_ID, 1, {"transaction_timeout_ms": 1000}).producer_id

        def batch(epoch: int, seq: int) -> bytes:
            return encode_batch([(None, b"v", [], 1)], producer_id=pid, producer_epoch=epoch, base_sequence=seq)

        assert _produce(sock, 0, batch(1, 0)).error_code == ErrorCode.NONE
        fenced = _produce(sock, 0, batch(0, 1))
        assert fenced.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
        assert fenced.error_message == f"producer {pid}: epoch 0 is older than 1: a newer session of the producer fenced it"
        gap = _produce(sock, 0, batch(1, 5))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert gap.error_message == f"producer {pid}: expected sequence 1, got 5"
        fetch = {
            "max_wait_ms": 0,
            "min_bytes": 0,
            "max_bytes": 1 << 20,
            "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 7, "partition_max_bytes": 1024}]}],
        }
        out = call(sock, ApiKey.FETCH, 11, fetch).responses[0].partitions[0]
        assert (out.error_code, out.log_start_offset) == (ErrorCode.OFFSET_OUT_OF_RANGE, 0)


@pytest.mark.parametrize("code", sorted(EXCEPTIONS), ids=lambda code: ErrorCode(code).name)
@pytest.mark.parametrize("message", [None, "what the broker said"])
def test_the_client_raises_the_tables_class_for_every_code(code: int, message: str | None) -> None:
    """raise_for builds each class of the table the way that class is built (a CorruptRecordError
    takes no hint), with the broker's message when it sent one."""
    from kcli.client.kafka_errors import raise_for

    with pytest.raises(EXCEPTIONS[code]) as caught:
        raise_for(code, message, "topic 't'")
    assert type(caught.value) is EXCEPTIONS[code]
    if message:
        assert message in str(caught.value)
