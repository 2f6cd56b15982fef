"""Reading a partition's segment files independently of kcli's log code, and checking them whole: for the
storage tests, which must not take the log's own word for what is on disk."""

from __future__ import annotations

import glob
import os
import struct

from kcli.storage import records


def segment_files(directory) -> list[str]:
    return sorted(glob.glob(os.path.join(str(directory), "*.log")))


def read_segment(path: str) -> tuple[bytes, list[tuple[int, records.BatchHeader]]]:
    with open(path, "rb") as fh:
        data = fh.read()
    return data, list(records.iter_batches(data))


def all_records(directory) -> list[records.Record]:
    out = []
    for path in segment_files(directory):
        data, batches = read_segment(path)
        for pos, header in batches:
            out += records.decode_records(data, pos, header)
    return out


def index_entries(log_path: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(offset index, time index) entries, decoded straight from the files with absolute offsets."""
    base = int(os.path.basename(log_path)[:20])
    stem = log_path[: -len(".log")]
    offs, times = [], []
    if os.path.exists(stem + ".index"):
        with open(stem + ".index", "rb") as fh:
            raw = fh.read()
        assert len(raw) % 8 == 0, f"{stem}.index is not a whole number of entries"
        offs = [(base + rel, pos) for rel, pos in struct.iter_unpack(">ii", raw)]
    if os.path.exists(stem + ".timeindex"):
        with open(stem + ".timeindex", "rb") as fh:
            raw = fh.read()
        assert len(raw) % 12 == 0, f"{stem}.timeindex is not a whole number of entries"
        times = [(ts, base + rel) for ts, rel in struct.iter_unpack(">qi", raw)]
    return offs, times


def check_segments(directory, interval: int | None = None) -> int:
    """Every segment: named after its first offset, batches valid and contiguous across segments, index and
    time index entries pointing at the right batches.  Returns the log end offset."""
    expected = None
    for path in segment_files(directory):
        data, batches = read_segment(path)
        base = int(os.path.basename(path)[:20])
        consumed = sum(h.size for _p, h in batches)
        assert consumed == len(data), f"{path}: {len(data) - consumed} stray bytes at the end"
        if batches:
            assert batches[0][1].base_offset == base, f"{path} is not named after its first offset"
        by_pos = {p: h for p, h in batches}
        for pos, header in batches:
            assert records.crc_valid(data, pos, header)
            if expected is not None:
                assert header.base_offset == expected, f"{path}@{pos}: offsets not contiguous"
            expected = header.next_offset
        offs, times = index_entries(path)
        assert [o for o, _p in offs] == sorted({o for o, _p in offs}), "offset index not strictly increasing"
        for offset, pos in offs:
            assert pos in by_pos, f"{path}: index entry ({offset}, {pos}) is not a batch start"
            assert by_pos[pos].last_offset == offset, (
                f"{path}: index entry ({offset}, {pos}) names another batch"
            )
        if interval is not None and offs:
            positions = [0] + [p for _o, p in offs]
            assert all(b - a > interval for a, b in zip(positions, positions[1:], strict=False))
        assert [t for t, _o in times] == sorted({t for t, _o in times}), "time index not strictly increasing"
        for ts, offset in times:
            owner = [h for _p, h in batches if h.base_offset <= offset <= h.last_offset]
            assert owner and owner[0].max_timestamp <= ts
        if times and batches:
            assert max(t for t, _o in times) <= max(h.max_timestamp for _p, h in batches)
    return expected if expected is not None else 0
