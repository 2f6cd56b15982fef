"""Transaction markers: the control batches that end a producer's transaction in a partition.

Kafka's layout: a magic-2 batch with the TRANSACTIONAL and CONTROL attributes, base sequence -1, the
producer's id and epoch, and one record whose key is ``int16 version (0), int16 type`` (ABORT 0, COMMIT 1)
and whose value is ``int16 version (0), int32 coordinator epoch`` (Kafka's ControlRecordType and
EndTransactionMarker).  Readers never hand these records to applications.
"""

from __future__ import annotations

import struct
import time

from kcli.errors import CorruptRecordError
from kcli.storage import records

ABORT = 0
COMMIT = 1
_KEY = struct.Struct(">hh")  # version, type
_VALUE = struct.Struct(">hi")  # version, coordinator epoch


def control_batch(producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int = 0,
                  timestamp: int | None = None) -> bytes:
    """The COMMIT or ABORT marker of ``producer_id``'s transaction (offset 0: the log assigns it)."""
    ts = time.time_ns() // 1_000_000 if timestamp is None else timestamp
    key = _KEY.pack(0, COMMIT if commit else ABORT)
    value = _VALUE.pack(0, coordinator_epoch)
    section = records.record_section([(key, value, (), ts)])
    return records.frame(section, producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=-1,
                         transactional=True, control=True)


def first_record(buf: records.BytesLike, pos: int, header: records.BatchHeader) -> tuple[bytes, bytes]:
    """The key and value of the first record of the control batch at ``pos`` (markers are never compressed)."""
    end = pos + header.size
    try:
        p = pos + records.HEADER_SIZE
        _length, p = records.read_varint(buf, p)
        p += 1  # attributes
        _ts_delta, p = records.read_varint(buf, p)
        _off_delta, p = records.read_varint(buf, p)
        klen, p = records.read_varint(buf, p)
        key = bytes(buf[p : p + max(klen, 0)])
        p += max(klen, 0)
        vlen, p = records.read_varint(buf, p)
        value = bytes(buf[p : p + max(vlen, 0)])
        if p + max(vlen, 0) > end or header.codec:
            raise IndexError
    except IndexError:
        raise CorruptRecordError("malformed control record", position=pos) from None
    return key, value


def control_type(buf: records.BytesLike, pos: int, header: records.BatchHeader) -> int:
    """The type of the control batch at ``pos``: ABORT, COMMIT (or another number Kafka may add)."""
    key, _value = first_record(buf, pos, header)
    if len(key) < _KEY.size:
        raise CorruptRecordError(f"control record key of {len(key)} bytes, expected {_KEY.size}", position=pos)
    _version, kind = _KEY.unpack_from(key)
    return int(kind)


def coordinator_epoch(buf: records.BytesLike, pos: int, header: records.BatchHeader) -> int:
    """The coordinator epoch in the marker at ``pos`` (-1 when its value is not an end-transaction marker)."""
    _key, value = first_record(buf, pos, header)
    if len(value) < _VALUE.size:
        return -1
    return int(_VALUE.unpack_from(value)[1])
