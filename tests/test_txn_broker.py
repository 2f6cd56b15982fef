"""The transaction APIs of a real ``kcli broker serve`` on the wire: Kafka's error codes for bad input and
for fencing, the produce check that a partition is in its transaction, and what read_committed and
read_uncommitted Fetch and ListOffsets answer around open, aborted and committed transactions."""

from __future__ import annotations

from support.brokers import call, connect

from kcli.broker.coordinator_choice import choose_coordinator
from kcli.protocol import ApiKey, ErrorCode
from kcli.storage import control, records
from kcli.storage.records import encode_batch

NO_TXN_ID = object()


def _init(sock, transactional_id: str, timeout_ms: int = 60000):
    body = {"transactional_id": transactional_id, "transaction_timeout_ms": timeout_ms}
    return call(sock, ApiKey.INIT_PRODUCER_ID, 1, body)


def _add(sock, tid: str, pid: int, epoch: int, topic: str, partitions: list[int], version: int = 2):
    body = {
        "transactional_id": tid,
        "producer_id": pid,
        "producer_epoch": epoch,
        "topics": [{"name": topic, "partitions": partitions}],
    }
    return {
        (t.name, r.partition_index): r.partition_error_code
        for t in call(sock, ApiKey.ADD_PARTITIONS_TO_TXN, version, body).results_by_topic
        for r in t.results_by_partition
    }


def _end(sock, tid: str, pid: int, epoch: int, commit: bool, version: int = 2) -> int:
    body = {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch, "committed": commit}
    return call(sock, ApiKey.END_TXN, version, body).error_code


def _batch(values: list[bytes], pid: int, epoch: int, seq: int, transactional: bool = True) -> bytes:
    rows = [(None, v, [], 1000 + i) for i, v in enumerate(values)]
    return encode_batch(
        rows, 0, producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=transactional
    )


def _produce(sock, topic: str, data: bytes, transactional_id=NO_TXN_ID, partition: int = 0):
    body = {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": data}]}],
    }
    if transactional_id is not NO_TXN_ID:
        body["transactional_id"] = transactional_id
    return call(sock, ApiKey.PRODUCE, 7, body).responses[0].partition_responses[0]


def _fetch(sock, topic: str, isolation: int, offset: int = 0):
    body = {
        "max_wait_ms": 0,
        "min_bytes": 0,
        "max_bytes": 1 << 20,
        "isolation_level": isolation,
        "topics": [
            {
                "topic": topic,
                "partitions": [{"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}],
            }
        ],
    }
    return call(sock, ApiKey.FETCH, 11, body).responses[0].partitions[0]


def _latest(sock, topic: str, isolation: int) -> int:
    body = {
        "isolation_level": isolation,
        "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}],
    }
    return call(sock, ApiKey.LIST_OFFSETS, 5, body).topics[0].partitions[0].offset


def _values(data: bytes) -> list[bytes]:
    """The records' values of data-batches (control batches left out, as a client does)."""
    out = []
    for pos, header in records.iter_batches(data):
        if not header.is_control:
            out += [r.value for r in records.decode_records(data, pos, header)]
    return out


def test_bad_transactional_input_gets_kafkas_codes(broker):
    broker.runner.in_process("topic", "create", "t")
    with connect(broker.socket_path) as sock:
        assert _init(sock, "").error_code == ErrorCode.INVALID_REQUEST
        assert _init(sock, "tx", timeout_ms=900_001).error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
        first = _init(sock, "tx")
        assert (first.error_code, first.producer_epoch) == (ErrorCode.NONE, 0) and first.producer_id >= 0
        pid = first.producer_id
        assert _end(sock, "tx", pid, 0, True) == ErrorCode.INVALID_TXN_STATE  # no transaction open
        assert _end(sock, "nobody", pid, 0, True) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
        assert _add(sock, "tx", pid, 0, "missing", [0]) == {
            ("missing", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        }
        assert _add(sock, "tx", pid, 0, "t", [0, 7]) == {
            ("t", 0): ErrorCode.OPERATION_NOT_ATTEMPTED,
            ("t", 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        }
        # a second producer with the same id fences the first: PRODUCER_FENCED from v2, older versions
        # INVALID_PRODUCER_EPOCH
        second = _init(sock, "tx")
        assert (second.producer_id, second.producer_epoch) == (pid, 1)
        assert _add(sock, "tx", pid, 0, "t", [0]) == {("t", 0): ErrorCode.PRODUCER_FENCED}
        assert _add(sock, "tx", pid, 0, "t", [0], version=0) == {("t", 0): ErrorCode.INVALID_PRODUCER_EPOCH}
        assert _end(sock, "tx", pid, 0, False, version=1) == ErrorCode.INVALID_PRODUCER_EPOCH
        # nothing was committed that was not asked for
        assert _fetch(sock, "t", 0).high_watermark == 0


def test_transactional_produce_needs_the_partition_in_the_transaction(broker):
    broker.runner.in_process("topic", "create", "t", "-p", 2)
    with connect(broker.socket_path) as sock:
        pid = _init(sock, "tx").producer_id
        batch = _batch([b"a"], pid, 0, 0)
        assert _produce(sock, "t", batch, "tx").error_code == ErrorCode.INVALID_TXN_STATE
        assert _produce(sock, "t", batch).error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        marker = control.control_batch(pid, 0, True)
        assert _produce(sock, "t", marker, "tx").error_code == ErrorCode.INVALID_RECORD
        assert _add(sock, "tx", pid, 0, "t", [0]) == {("t", 0): ErrorCode.NONE}
        assert _produce(sock, "t", batch, "tx").error_code == ErrorCode.NONE
        # partition 1 was not added
        assert _produce(sock, "t", _batch([b"b"], pid, 0, 0), "tx", partition=1).error_code == (
            ErrorCode.INVALID_TXN_STATE
        )
        # an older epoch is fenced on the produce path too
        assert (
            _produce(sock, "t", _batch([b"c"], pid, 1, 1), "tx").error_code
            == ErrorCode.INVALID_PRODUCER_EPOCH
        )


def test_read_committed_around_open_aborted_and_committed_transactions(broker):
    broker.runner.in_process("topic", "create", "t")
    with connect(broker.socket_path) as sock:
        plain = encode_batch([(None, b"plain", [], 1000)], 0)
        assert _produce(sock, "t", plain).base_offset == 0
        pid = _init(sock, "tx").producer_id
        assert _add(sock, "tx", pid, 0, "t", [0]) == {("t", 0): ErrorCode.NONE}
        assert _produce(sock, "t", _batch([b"a1", b"a2"], pid, 0, 0), "tx").base_offset == 1

        # open: read_committed stops at the last stable offset (1); read_uncommitted sees it all
        open_committed, open_uncommitted = _fetch(sock, "t", 1), _fetch(sock, "t", 0)
        assert (open_committed.high_watermark, open_committed.last_stable_offset) == (3, 1)
        assert _values(open_committed.records) == [b"plain"]
        assert _values(open_uncommitted.records) == [b"plain", b"a1", b"a2"]
        assert open_uncommitted.last_stable_offset == 1
        assert (_latest(sock, "t", 1), _latest(sock, "t", 0)) == (1, 3)

        assert _end(sock, "tx", pid, 0, False) == ErrorCode.NONE  # abort: marker at 3
        aborted = _fetch(sock, "t", 1)
        assert (aborted.high_watermark, aborted.last_stable_offset) == (4, 4)
        assert [(a.producer_id, a.first_offset) for a in aborted.aborted_transactions] == [(pid, 1)]
        assert _values(aborted.records) == [b"plain", b"a1", b"a2"]  # the client drops a1, a2
        assert _fetch(sock, "t", 0).aborted_transactions == []  # read_uncommitted needs no list

        assert _add(sock, "tx", pid, 0, "t", [0]) == {("t", 0): ErrorCode.NONE}
        assert _produce(sock, "t", _batch([b"c1"], pid, 0, 2), "tx").base_offset == 4
        assert _end(sock, "tx", pid, 0, True) == ErrorCode.NONE  # commit: marker at 5
        done = _fetch(sock, "t", 1, offset=4)
        assert (done.last_stable_offset, done.aborted_transactions) == (6, [])  # from 4 on nothing aborted
        assert _values(done.records) == [b"c1"]
        assert _latest(sock, "t", 1) == 6
        assert _end(sock, "tx", pid, 0, True) == ErrorCode.NONE  # a retried EndTxn is answered OK


def test_only_the_coordinator_of_a_transactional_id_serves_it(brokers):
    brokers.init(2)
    running = [brokers.spawn(b) for b in range(2)]
    for b in running:
        b.wait_ready()
    tid = next(f"tx-{i}" for i in range(100) if choose_coordinator(f"tx-{i}", [0, 1]) == 1)
    with connect(running[0].socket_path) as sock:
        assert _init(sock, tid).error_code == ErrorCode.NOT_COORDINATOR
        found = call(sock, ApiKey.FIND_COORDINATOR, 1, {"key": tid, "key_type": 1})
        assert (found.error_code, found.node_id, found.port) == (ErrorCode.NONE, 1, running[1].port)
    with connect(running[1].socket_path) as sock:
        assert _init(sock, tid).error_code == ErrorCode.NONE


def test_the_broker_takes_its_transaction_max_timeout(brokers):
    """--transaction-max-timeout-ms (Kafka's transaction.max.timeout.ms): a producer asking for more gets
    INVALID_TRANSACTION_TIMEOUT on the wire, and `kcli produce` one line and exit 2, nothing written."""
    broker = brokers.start(0, "--transaction-max-timeout-ms", "5000")
    brokers.kcli("topic", "create", "t")
    with connect(broker.socket_path) as sock:
        for timeout, code in ((5000, ErrorCode.NONE), (5001, ErrorCode.INVALID_TRANSACTION_TIMEOUT)):
            answer = call(sock, ApiKey.INIT_PRODUCER_ID, 1,
                          {"transactional_id": f"t-{timeout}", "transaction_timeout_ms": timeout})
            assert answer.error_code == code, (timeout, answer)
    proc = brokers.kcli("produce", "t", "--transactional-id", "p", "--transaction-timeout-ms", "6000",
                        input="a\n", ok=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "INVALID_TRANSACTION_TIMEOUT" in proc.stderr and "transaction.max.timeout.ms" in proc.stderr
    assert brokers.kcli("consume", "t", "-b", "-e", "--isolation-level", "read_uncommitted").stdout == ""
