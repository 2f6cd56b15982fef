"""Writing a transaction's COMMIT or ABORT markers from a broker.

The coordinator (:mod:`kcli.transactions`) decides; this writes its decision into every partition of the
transaction: through our own write session for the partitions this broker leads, and with a
WriteTxnMarkers request to the leader of each of the others, which writes them the same way
(:func:`write_here`).  A marker counts once every in-sync replica has it (the high watermark passed it,
as Kafka appends markers with acks=all): a leader that dies before then may be succeeded by one without
it, and the coordinator, told of the failure, writes it again there.  Writing a marker twice is harmless
(the log skips one for a producer with no open transaction in that partition).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kcli.broker.answers import answer_for
from kcli.broker.context import BrokerContext
from kcli.broker.partitions import LedPartition
from kcli.errors import KcliError, UnavailableError
from kcli.net.connection import BrokerConnection
from kcli.protocol import ApiKey, ErrorCode, error_name
from kcli.protocol.error_codes import ApiError

log = logging.getLogger("kcli.broker")

Partition = tuple[str, int]
MARKER_WAIT = 10.0  # how long a marker may wait for the in-sync replicas before the write is retried
REMOTE_TIMEOUT = MARKER_WAIT + 5.0  # a WriteTxnMarkers request to another leader, which waits that long


def write_here(
    ctx: BrokerContext,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    coordinator_epoch: int,
    partitions: Iterable[Partition],
    wait: float = MARKER_WAIT,
) -> dict[Partition, int]:
    """Write the markers to partitions this broker leads: all appended first, then each waited for until
    the in-sync replicas have it.  The code per partition; NONE where the marker is safe."""
    out: dict[Partition, int] = {}
    written: list[tuple[Partition, LedPartition, int]] = []
    for key in partitions:
        try:
            led = ctx.partitions.get(*key)
            written.append(
                (key, led, led.write_marker(producer_id, producer_epoch, commit, coordinator_epoch))
            )
        except (ApiError, KcliError, OSError) as exc:  # that partition's answer
            out[key] = answer_for(exc, f"writing a transaction marker to {key[0]}-{key[1]}")
    if written:
        ctx.partitions.appended()  # followers long-polling for news fetch the markers now
    deadline = time.monotonic() + wait
    for key, led, last in written:
        out[key] = led.wait_committed(last, deadline)
    return out


class BrokerMarkerWriter:
    """The coordinator's :data:`~kcli.transactions.MarkerWriter` inside a broker."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def __call__(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        partitions: list[Partition],
    ) -> None:
        """Raise UnavailableError naming the partitions whose marker is not safely written yet."""
        state = self.ctx.partitions.refresh()
        by_leader: dict[int, list[Partition]] = {}
        for topic, partition in partitions:
            meta = state.topics.get(topic)
            if meta is None or not 0 <= partition < len(meta.partitions):
                continue  # deleted with its transaction's records: nothing left to mark (as Kafka does)
            by_leader.setdefault(meta.partitions[partition].leader, []).append((topic, partition))
        args = (producer_id, producer_epoch, commit, coordinator_epoch)
        results = write_here(self.ctx, *args, by_leader.pop(self.ctx.broker_id, []))
        for leader, led_there in by_leader.items():
            results.update(self._remote(leader, *args, led_there))
        failed = {key: code for key, code in results.items() if code != ErrorCode.NONE}
        if failed:
            raise UnavailableError(
                f"{'commit' if commit else 'abort'} markers of producer {producer_id} not written yet: "
                + ", ".join(f"{t}-{p} ({error_name(c)})" for (t, p), c in sorted(failed.items()))
            )

    def _remote(
        self,
        leader: int,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        partitions: list[Partition],
    ) -> dict[Partition, int]:
        """WriteTxnMarkers to ``leader`` for its partitions; every partition fails alike when it cannot be
        asked (not running, unreachable)."""
        info = self.ctx.broker_info(leader) if leader in self.ctx.live_ids() else None
        if info is None:
            return dict.fromkeys(partitions, int(ErrorCode.LEADER_NOT_AVAILABLE))
        topics: dict[str, list[int]] = {}
        for topic, partition in partitions:
            topics.setdefault(topic, []).append(partition)
        marker = {
            "producer_id": producer_id,
            "producer_epoch": producer_epoch,
            "transaction_result": commit,
            "topics": [{"name": t, "partition_indexes": ps} for t, ps in topics.items()],
            "coordinator_epoch": coordinator_epoch,
        }
        out: dict[Partition, int] = dict.fromkeys(partitions, ErrorCode.UNKNOWN_SERVER_ERROR)
        try:
            conn = BrokerConnection(info.socket, timeout=REMOTE_TIMEOUT)
            try:
                body = conn.request(ApiKey.WRITE_TXN_MARKERS, {"markers": [marker]})
            finally:
                conn.close()
        except (KcliError, OSError) as exc:
            log.info("cannot ask broker %d to write transaction markers: %s", leader, exc)
            return dict.fromkeys(partitions, int(ErrorCode.NETWORK_EXCEPTION))
        for result in body.markers:
            for topic in result.topics:
                for p in topic.partitions:
                    out[(topic.name, p.partition_index)] = p.error_code
        return out
