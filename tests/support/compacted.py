"""Writing a log as Kafka's cleaner leaves it, without a cleaner: for the tests of everything that reads a
log, which must accept offset gaps before any compaction produces them.

A compacted log keeps its offsets: records removed leave gaps between batches and inside them (a batch's
records have non-contiguous offset deltas, and its lastOffsetDelta keeps the original last offset, past its
last record), a cleaned segment keeps the name of the first segment of its group (so a file may be named
below its first batch's base offset), and the log start may be an offset no record has.

``LAYOUT`` is the standard gapped log (segments of batches of records); :func:`write_log` writes any such
layout into a partition directory, with index entries pointing at batch starts as a writer makes them;
:func:`make_compacted_topic` creates a topic with ``cleanup.policy=compact`` in the metadata (stored as
the metadata layer stores it) and writes the layout into every replica.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.storage import checkpoint, records
from kcli.storage.segment import segment_name


@dataclass
class Batch:
    """A batch at ``base``: records at ``offsets`` (increasing, >= base), last offset ``last`` (default: the
    last record's).  Values ``v<offset>``, keys ``k<offset>``; ``tombstones`` get a null value."""

    base: int
    offsets: list[int]
    last: int | None = None
    tombstones: set[int] = field(default_factory=set)

    @property
    def last_offset(self) -> int:
        return self.offsets[-1] if self.last is None else self.last


# (segment base, batches): the first segment is named 100, a gap (the log start no record has); its first
# batch starts at base 100 but its first record is 103 and its last offset (107) is past its last record
# (106); the second segment is named 130 but its first batch starts at 140; offsets 160..199 are a gap
# between a closed segment and the active one, which is contiguous (the cleaner never touches it).
LAYOUT: list[tuple[int, list[Batch]]] = [
    (100, [Batch(100, [103, 105, 106], last=107), Batch(110, [110, 114], tombstones={114}), Batch(120, [125], last=129)]),
    (130, [Batch(140, [140, 141, 142]), Batch(150, [155, 159])]),
    (200, [Batch(200, list(range(200, 205))), Batch(205, list(range(205, 210)))]),
]
LOG_START = 100
LOG_END = 210
OFFSETS = [o for _base, batches in LAYOUT for b in batches for o in b.offsets]
TOMBSTONES = {o for _base, batches in LAYOUT for b in batches for o in b.tombstones}
HEADERED = 105  # the record that carries a header (a cleaner keeps headers)


def value_of(offset: int) -> bytes | None:
    return None if offset in TOMBSTONES else f"v{offset}".encode()


def encode(batch: Batch, timestamp_of) -> bytes:
    """The batch as Kafka's cleaner leaves it: its records' offset deltas skip, its last offset is kept."""
    recs = [(f"k{o}".encode(), None if o in batch.tombstones else f"v{o}".encode(),
             [("h", b"x")] if o == HEADERED else [], timestamp_of(o)) for o in batch.offsets]
    stamps = [r[3] for r in recs]
    body = records.encode_records(recs, stamps[0], [o - batch.base for o in batch.offsets])
    return records.frame(records.Section(body, len(recs), stamps[0], max(stamps)), base_offset=batch.base,
                         partition_leader_epoch=0, last_offset_delta=batch.last_offset - batch.base)


def write_log(directory: str, layout: list[tuple[int, list[Batch]]] = LAYOUT, base_timestamp: int | None = None) -> None:
    """Replace the segments of the partition ``directory`` with ``layout``: .log files, offset index entries
    (last offset of the batch, its position) before every batch but a segment's first, and a time index
    entry for each segment's newest timestamp.  Timestamps are recent (``base_timestamp`` + offset), so
    time retention leaves them alone."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):  # an empty segment 0 or a writer's state from topic creation
        if name.endswith((".log", ".index", ".timeindex", ".snapshot", ".txnindex")) or name == "kcli-writer-state":
            os.unlink(os.path.join(directory, name))
    base_ts = int(time.time() * 1000) - 60_000 if base_timestamp is None else base_timestamp
    for seg_base, batches in layout:
        stem = os.path.join(directory, segment_name(seg_base))
        data, index = b"", b""
        max_ts, offset_of_max = -1, seg_base
        for batch in batches:
            if data:
                index += struct.pack(">ii", batch.last_offset - seg_base, len(data))
            data += encode(batch, lambda o: base_ts + o)
            if base_ts + batch.offsets[-1] > max_ts:
                max_ts, offset_of_max = base_ts + batch.offsets[-1], batch.last_offset  # as a writer notes it
        for suffix, content in ((".log", data), (".index", index),
                                (".timeindex", struct.pack(">qi", max_ts, offset_of_max - seg_base))):
            with open(stem + suffix, "wb") as fh:
                fh.write(content)
    checkpoint.write_epochs(os.path.join(directory, checkpoint.LEADER_EPOCH), [(0, layout[0][0])])


def make_compacted_topic(data_dir, topic: str = "gappy", replication_factor: int = 1,
                         layout: list[tuple[int, list[Batch]]] = LAYOUT, brokers: int | None = None) -> DataDir:
    """A data dir (initialised with ``brokers`` brokers, default the replication factor) holding ``topic``
    with one partition, ``cleanup.policy=compact`` in the metadata, and ``layout`` in every replica."""
    dd = DataDir(str(data_dir))
    md = Metadata(dd)
    md.ensure(brokers=brokers or replication_factor)
    meta = md.create_topic(topic, 1, replication_factor, {"cleanup.policy": "compact"})
    now = int(time.time() * 1000) - 60_000
    for broker in meta.partitions[0].replicas:  # identical replicas: the same timestamps
        write_log(dd.partition_dir(broker, topic, 0), layout, now)
    return dd
