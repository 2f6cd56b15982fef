"""What a reader of a compacted replica ends up with: the newest committed record of every key.

Each broker compacts its own replica, on its own clock, so below their cleaner checkpoints the replicas of
one partition hold the same records in different batches (a delete horizon stamped at another moment,
groups cut at other points, a tombstone already removed on one and not yet on another).  verify compares
such replicas by this view instead of batch by batch.

A replica is read once per bucket of keys and reduced to one entry per key: a 64-bit hash of the key ->
(offset, 64-bit digest of value, headers and timestamp, whether it is a tombstone), never the values
themselves; when a bucket grows past ``KEYS_PER_PASS`` keys it is split in two and the other half read in
another pass, so memory stays bounded whatever the number of keys.  Records of aborted transactions, and
of transactions still open, are not committed and not counted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import blake2b

from kcli.errors import CorruptRecordError
from kcli.inspect import layout, scan
from kcli.storage import control, records
from kcli.storage.segment import LOG_SUFFIX

KEYS_PER_PASS = 1 << 19  # entries of one replica's map in one pass (about 70 MB)
_OFFSET_BITS = 64
_LENGTH = struct.Struct(">q")

# a bucket of keys: those whose hash h has h & mask == value
Bucket = tuple[int, int]
# key hash -> digest << 64 | offset << 1 | tombstone
Newest = dict[int, int]


@dataclass(frozen=True)
class Last:
    """The newest record of a key on one replica."""

    offset: int
    digest: int
    tombstone: bool


def _unpack(entry: int) -> Last:
    return Last((entry & ((1 << _OFFSET_BITS) - 1)) >> 1, entry >> _OFFSET_BITS, bool(entry & 1))


def _hash(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def _digest(record: records.Record) -> int:
    """Value (null apart from empty), headers and timestamp of a record, as 64 bits."""
    h = blake2b(digest_size=8)
    h.update(_LENGTH.pack(record.timestamp))
    parts = [record.value]
    for name, value in record.headers:
        parts += [name.encode(), value]
    for part in parts:
        h.update(_LENGTH.pack(-1 if part is None else len(part)))
        h.update(part or b"")
    return int.from_bytes(h.digest(), "big")


def _batches(directory: str, limit: int) -> Iterator[scan.Batch]:
    """The replica's whole batches with their bytes, in offset order, below ``limit``; reading stops where
    a segment does (damage the per-replica checks report)."""
    for base in layout.log_bases(directory):
        if base >= limit:
            return
        for item in scan.scan_log(layout.segment_path(directory, base, LOG_SUFFIX), with_data=True):
            if isinstance(item, scan.Stop):
                break
            if item.header.base_offset >= limit:
                return
            yield item


def _records(batch: scan.Batch) -> list[records.Record]:
    try:
        return records.decode_records(batch.data, 0, batch.header, verify_crc=False)  # type: ignore[arg-type]
    except CorruptRecordError:
        return []  # a batch the per-replica checks report


def newest_records(directory: str, start: int, limit: int, bucket: Bucket = (0, 0),
                   max_keys: int | None = None) -> tuple[Newest, Bucket, list[Bucket]]:
    """The newest committed record of each key of ``bucket`` among the records in [start, limit) of the
    replica in ``directory``.  With ``max_keys``, the bucket is halved whenever it holds more keys: returns
    the map, the bucket it covers, and the buckets split off (to read in later passes)."""
    mask, value = bucket
    split: list[Bucket] = []
    newest: Newest = {}
    pending: dict[int, list[tuple[int, int]]] = {}  # producer id -> (key hash, entry) of its open transaction

    def put(key: int, entry: int) -> None:
        old = newest.get(key)
        if old is None or (entry & ((1 << _OFFSET_BITS) - 1)) > (old & ((1 << _OFFSET_BITS) - 1)):
            newest[key] = entry

    for batch in _batches(directory, limit):
        header = batch.header
        if header.is_control:
            try:
                kind = control.control_type(batch.data, 0, header)  # type: ignore[arg-type]
            except CorruptRecordError:
                continue
            done = pending.pop(header.producer_id, [])
            if kind == control.COMMIT:
                for key, entry in done:
                    if key & mask == value:
                        put(key, entry)
            continue
        for record in _records(batch):
            if record.key is None or not start <= record.offset < limit:
                continue
            key = _hash(record.key)
            if key & mask != value:
                continue
            entry = _digest(record) << _OFFSET_BITS | record.offset << 1 | (record.value is None)
            if header.is_transactional:
                pending.setdefault(header.producer_id, []).append((key, entry))
            else:
                put(key, entry)
            if max_keys is not None and len(newest) > max_keys:
                split.append((mask << 1 | 1, value | (mask + 1)))
                mask = mask << 1 | 1
                newest = {k: e for k, e in newest.items() if k & mask == value}
    return newest, (mask, value), split


@dataclass(frozen=True)
class Difference:
    """A key whose newest record differs between two replicas (None: the replica has no record of it)."""

    key_hash: int
    mine: Last | None
    theirs: Last | None

    @property
    def offset(self) -> int:
        return min(x.offset for x in (self.mine, self.theirs) if x is not None)


def first_difference(mine: Newest, theirs: Newest, my_cleaned: int, their_cleaned: int) -> Difference | None:
    """The difference at the lowest offset between two replicas' newest records, or None.  A tombstone on
    one side and no record on the other agree where the side without it has cleaned past it (its delete
    horizon may have passed there, and not yet on the other)."""
    found: Difference | None = None
    for key in mine.keys() | theirs.keys():
        a, b = mine.get(key), theirs.get(key)
        if a == b:
            continue
        la, lb = (None if a is None else _unpack(a)), (None if b is None else _unpack(b))
        if la is None and lb is not None and lb.tombstone and my_cleaned > lb.offset:
            continue
        if lb is None and la is not None and la.tombstone and their_cleaned > la.offset:
            continue
        diff = Difference(key, la, lb)
        if found is None or diff.offset < found.offset:
            found = diff
    return found


def key_at(directory: str, offset: int, limit: int) -> bytes | None:
    """The key of the record at ``offset`` (to name a key in a report)."""
    for batch in _batches(directory, limit):
        if batch.header.base_offset <= offset <= batch.header.last_offset and not batch.header.is_control:
            return next((r.key for r in _records(batch) if r.offset == offset), None)
    return None
