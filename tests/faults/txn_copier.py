"""A transactional copier (Kafka's TransactionalMessageCopier, with confluent-kafka) for the fault tests.

Copies one partition of the input topic to the same partition of the output topic, in transactions of up
to ``--per-txn`` records that also commit the group's offset of the input partition
(send_offsets_to_transaction).  Each copied value gets ``|<instance>:<transaction>`` appended, so a
record of an aborted transaction can be told from its committed copy.  Every ``--abort-every``-th
transaction is aborted on purpose after its records reached the brokers.  After an abort the copier
rewinds to the group's committed offset.  Exits 0 once the committed offset reaches ``--total``; a fatal
error (fenced by a newer instance, or a timeout abort) exits 1, and the test starts a new instance.

    python txn_copier.py BOOTSTRAP PARTITION INSTANCE --total N
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

INPUT, OUTPUT, GROUP = "input", "output", "copiers"
TIMEOUT = 60.0
# what a consumer's committed() may meet while a broker restarts
TRANSIENT = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("partition", type=int)
    parser.add_argument("instance")
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--per-txn", type=int, default=20)
    parser.add_argument("--abort-every", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.05)
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1)  # the test asks a copier that hangs where it is
    p = args.partition
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": f"copier-{p}",
            "transaction.timeout.ms": 30000,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(TIMEOUT)

    def rewind() -> int:
        """Back to the group's committed offset (asked again while the group coordinator moves)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                committed = consumer.committed([TopicPartition(INPUT, p)], 10)[0].offset
                break
            except KafkaException as exc:
                if exc.args[0].code() not in TRANSIENT or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        consumer.assign([TopicPartition(INPUT, p, max(committed, 0))])
        return committed

    position = rewind()
    say(f"starting at {position}")
    txn = 0
    while position < args.total:
        messages = [m for m in consumer.consume(args.per_txn, 1.0) if m.error() is None]
        if not messages:
            continue
        txn += 1
        say(f"transaction {txn}: {len(messages)} records from {messages[0].offset()}")
        producer.begin_transaction()
        for m in messages:
            producer.produce(OUTPUT, value=m.value() + f"|{args.instance}:{txn}".encode(), partition=p)
        after = messages[-1].offset() + 1
        try:
            if args.abort_every and txn % args.abort_every == 0:
                producer.flush(TIMEOUT)
                producer.abort_transaction(TIMEOUT)
                position = rewind()
                say(f"transaction {txn} aborted on purpose; back at {position}")
                continue
            offsets = [TopicPartition(INPUT, p, after)]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT)
            commit(producer)
            position = after
            say(f"transaction {txn} committed up to {position}")
        except KafkaException as exc:
            error = exc.args[0]
            if not error.txn_requires_abort():
                raise
            say(f"transaction {txn}: aborting: {error}")
            producer.abort_transaction(TIMEOUT)
            position = rewind()
        time.sleep(args.pause)
    consumer.close()
    return 0


def say(text: str) -> None:
    """Progress, on stdout (librdkafka logs to stderr): the test restarts a copier whose progress stalls."""
    print(f"{time.strftime('%H:%M:%S')} copier: {text}", flush=True)


def commit(producer: Producer) -> None:
    """commit_transaction, retried while librdkafka says the commit may be retried."""
    while True:
        try:
            producer.commit_transaction(TIMEOUT)
            return
        except KafkaException as exc:
            if not exc.args[0].retriable():
                raise
            say(f"retrying the commit: {exc.args[0]}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as exc:
        say(f"failed: {exc.args[0]}")
        sys.exit(1)
