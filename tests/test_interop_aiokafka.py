"""aiokafka against a real ``kcli broker serve``: a plain produce/consume round trip, and its transactional
producer (begin, send to several partitions, send_offsets_to_transaction, commit; abort) read back by a
read_committed AIOKafkaConsumer that sees exactly the committed records (and a read_uncommitted one that
sees the aborted ones too).  aiokafka is asyncio-only: each test runs its coroutine with asyncio.run.
"""

from __future__ import annotations

import asyncio

import pytest

aiokafka = pytest.importorskip("aiokafka")
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

PARTITIONS = 3
TIMEOUT = 30.0


async def _read_to_end(bootstrap: str, topic: str, isolation: str, partitions: int = PARTITIONS) -> list:
    """Every record a consumer with ``isolation`` gets up to each partition's end as it is now (the last
    stable offset under read_committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got = []
        async with asyncio.timeout(TIMEOUT):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += records
        return got
    finally:
        await consumer.stop()


def _values(records: list) -> list[str]:
    return sorted(r.value.decode() for r in records)


def test_plain_round_trip(broker):
    broker.kcli("topic", "create", "plain", "-p", PARTITIONS)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for i in range(30):
                await producer.send_and_wait("plain", f"m-{i}".encode(), key=f"k-{i}".encode())
        finally:
            await producer.stop()
        got = await _read_to_end(broker.bootstrap, "plain", "read_uncommitted")
        assert _values(got) == sorted(f"m-{i}" for i in range(30))
        assert {r.key.decode(): r.value.decode() for r in got} == {f"k-{i}": f"m-{i}" for i in range(30)}

    asyncio.run(run())
    # and kcli reads what aiokafka wrote
    assert sorted(broker.kcli("consume", "plain", "-b", "-e").stdout.split()) == sorted(
        f"m-{i}" for i in range(30)
    )


def test_transactional_producer_commit_with_offsets_and_abort(broker):
    broker.kcli("topic", "create", "in")
    broker.kcli("topic", "create", "out", "-p", PARTITIONS)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-tx")
        await producer.start()
        try:
            await producer.begin_transaction()
            for i in range(9):
                await producer.send("out", f"committed-{i}".encode(), partition=i % PARTITIONS)
            await producer.send_offsets_to_transaction({TopicPartition("in", 0): 7}, "aio-group")
            await producer.commit_transaction()

            await producer.begin_transaction()
            for i in range(6):
                await producer.send_and_wait("out", f"aborted-{i}".encode(), partition=i % PARTITIONS)
            await producer.send_offsets_to_transaction({TopicPartition("in", 0): 99}, "aio-group")
            await producer.abort_transaction()

            async with producer.transaction():
                await producer.send("out", b"committed-last", partition=2)
        finally:
            await producer.stop()

        committed = await _read_to_end(broker.bootstrap, "out", "read_committed")
        expected = sorted([f"committed-{i}" for i in range(9)] + ["committed-last"])
        assert _values(committed) == expected
        everything = await _read_to_end(broker.bootstrap, "out", "read_uncommitted")
        assert _values(everything) == sorted(expected + [f"aborted-{i}" for i in range(6)])

    asyncio.run(run())
    # the committed transaction moved the group's offset; the aborted one did not
    described = broker.kcli("group", "describe", "aio-group").stdout
    assert any(line.split()[1:4] == ["in", "0", "7"] for line in described.splitlines()), described
    state = broker.kcli("transaction", "describe", "aio-tx").stdout
    assert "CompleteCommit" in state, state


def test_read_committed_consumer_waits_for_an_open_transaction(broker):
    broker.kcli("topic", "create", "open")

    async def run() -> None:
        plain = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-open")
        await plain.start()
        await producer.start()
        try:
            await plain.send_and_wait("open", b"before", partition=0)
            await producer.begin_transaction()
            await producer.send_and_wait("open", b"pending", partition=0)
            await plain.send_and_wait("open", b"after", partition=0)
            assert _values(await _read_to_end(broker.bootstrap, "open", "read_committed", 1)) == ["before"]
            await producer.commit_transaction()
        finally:
            await plain.stop()
            await producer.stop()
        got = await _read_to_end(broker.bootstrap, "open", "read_committed", 1)
        assert [r.value for r in got] == [b"before", b"pending", b"after"]

    asyncio.run(run())


def test_a_zombie_is_fenced_by_a_newer_instance(broker):
    broker.kcli("topic", "create", "zombies", "-p", PARTITIONS)

    async def run() -> None:
        zombie = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-zombie")
        newer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-zombie")
        await zombie.start()
        try:
            await zombie.begin_transaction()
            for i in range(6):
                await zombie.send_and_wait("zombies", f"zombie-{i}".encode(), partition=i % PARTITIONS)
            await newer.start()  # InitProducerId: bumps the epoch and aborts the zombie's transaction
            async with newer.transaction():
                for i in range(6):
                    await newer.send("zombies", f"newer-{i}".encode(), partition=i % PARTITIONS)
            with pytest.raises((ProducerFenced, InvalidProducerEpoch)):
                await zombie.send_and_wait("zombies", b"zombie-late", partition=0)
                await zombie.commit_transaction()
        finally:
            await newer.stop()
            await zombie.stop()
        committed = await _read_to_end(broker.bootstrap, "zombies", "read_committed")
        assert _values(committed) == sorted(f"newer-{i}" for i in range(6))
        everything = _values(await _read_to_end(broker.bootstrap, "zombies", "read_uncommitted"))
        assert "zombie-late" not in everything and {f"zombie-{i}" for i in range(6)} <= set(everything)

    asyncio.run(run())
