"""Kafka's ``__transaction_state`` records, as ``kafka-dump-log --transaction-log-decoder`` prints them.

kcli keeps its own transaction state in JSON files (kcli.transactions), but ``dump-log`` reads real
Kafka log directories too, and a Kafka cluster keeps each transactional id's state as records of that
internal topic: key TransactionLogKey (version 0: the id), value TransactionLogValue (version 0, or the
flexible version 1 with tagged fields), a null value deleting the id.
"""

from __future__ import annotations

import struct

from kcli.errors import ProtocolError
from kcli.protocol.types import decode_unsigned_varint

# TransactionState ids as Kafka stores them (TransactionMetadata.scala)
STATES = ("Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead",
          "PrepareEpochFence")


class _Reader:
    """A cursor over one record's key or value; struct.error, IndexError or ProtocolError (a varint)
    when it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fixed(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def uvarint(self) -> int:
        value, self.pos = decode_unsigned_varint(self.data, self.pos)
        return value

    def string(self, compact: bool) -> str:
        size = self.uvarint() - 1 if compact else self.fixed(">h")
        text = self.data[self.pos : self.pos + size].decode("utf-8", "replace")
        self.pos += size
        return text

    def length(self, compact: bool) -> int:
        """An array's element count; -1 for null."""
        return self.uvarint() - 1 if compact else self.fixed(">i")

    def skip_tagged(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # the tag
            size = self.uvarint()  # (read before pos is taken: `pos += uvarint()` would lose its advance)
            self.pos += size


def decode(key: bytes | None, value: bytes | None) -> tuple[str, str | None]:
    """(key, payload) of one record the way Kafka's TransactionLog.formatRecordKeyAndValue writes them."""
    try:
        reader = _Reader(key or b"")
        version = reader.fixed(">h")
        if version != 0:
            return f"unknown::version={version}", None
        transactional_id = reader.string(compact=False)
    except (struct.error, IndexError, ValueError, ProtocolError):
        return "unknown::version=-1", None
    name = f"transaction_metadata::transactionalId={transactional_id}"
    if value is None:
        return name, "<DELETE>"
    try:
        return name, _value(_Reader(value))
    except (struct.error, IndexError, ValueError, ProtocolError) as exc:
        return name, f"<undecodable transaction state: {exc or 'too short'}>"


def _value(reader: _Reader) -> str:
    version = reader.fixed(">h")
    flexible = version >= 1
    producer_id = reader.fixed(">q")
    epoch = reader.fixed(">h")
    timeout_ms = reader.fixed(">i")
    status = reader.fixed(">b")
    partitions: list[str] = []
    for _ in range(max(reader.length(flexible), 0)):
        topic = reader.string(flexible)
        partitions += [f"{topic}-{reader.fixed('>i')}" for _ in range(max(reader.length(flexible), 0))]
        if flexible:
            reader.skip_tagged()
    last_update = reader.fixed(">q")
    reader.fixed(">q")  # the start timestamp: Kafka's line leaves it out
    state = STATES[status] if 0 <= status < len(STATES) else f"Unknown({status})"
    return (f"producerId:{producer_id},producerEpoch:{epoch},state={state},partitions=[{','.join(partitions)}],"
            f"txnLastUpdateTimestamp={last_update},txnTimeoutMs={timeout_ms}")
