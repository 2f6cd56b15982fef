"""read_committed: what a consumer of committed data keeps of fetched batches.

Kafka's consumer rule, per batch (never per record): a producer id becomes aborted when a batch reaches
the first offset of one of its aborted transactions, and stops being aborted at that producer's ABORT
marker; a transactional batch of an aborted producer is dropped, and so is every control batch.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable

from kcli.storage import records
from kcli.storage.control import ABORT, control_type
from kcli.storage.txnindex import AbortedTxn

_ATTRIBUTES = struct.Struct(">h")  # at byte 21 of a batch
_TXN_OR_CONTROL = records.ATTR_TRANSACTIONAL | records.ATTR_CONTROL


def committed(data: bytes, aborted: Iterable[AbortedTxn]) -> tuple[bytes, int]:
    """The whole batches of ``data`` minus control batches and the batches of ``aborted`` transactions,
    and the offset after the last batch of ``data`` (kept or not: a consumer moves past a run of dropped
    batches).  ``data`` starts on a batch boundary; a partial batch at its end is left out (its offset is
    not passed).  The offset is -1 when ``data`` holds no whole batch."""
    pending = sorted(aborted, key=lambda txn: txn.first_offset)
    aborting: set[int] = set()
    pieces: list[bytes] = []
    kept_from = 0  # start of the run of kept batches not yet in pieces
    pos = 0
    next_offset = -1
    size = len(data)
    while True:
        peek = records.peek_size(data, pos)
        if peek is None or pos + peek[1] > size or size - pos < records.HEADER_SIZE:
            break
        end = pos + peek[1]
        attributes = _ATTRIBUTES.unpack_from(data, pos + 21)[0]
        header = None
        drop = False
        if attributes & _TXN_OR_CONTROL:
            header = records.parse_header(data, pos)
            while pending and pending[0].first_offset <= header.last_offset:
                aborting.add(heapq.heappop(pending).producer_id)
            if attributes & records.ATTR_CONTROL:
                drop = True
                if header.producer_id in aborting and control_type(data, pos, header) == ABORT:
                    aborting.discard(header.producer_id)
            else:
                drop = header.producer_id in aborting
        if drop:
            if kept_from < pos:
                pieces.append(data[kept_from:pos])
            kept_from = end
        last = pos
        pos = end
    if pos:
        header = records.parse_header(data, last)
        next_offset = header.next_offset
    if kept_from == 0:
        return data[:pos], next_offset
    if kept_from < pos:
        pieces.append(data[kept_from:pos])
    return b"".join(pieces), next_offset
