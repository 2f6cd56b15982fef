"""verify on the replicas of a compacted partition that each broker cleaned on its own clock: below the
cleaner checkpoints their batches differ (delete horizons stamped at other moments, tombstones removed on
one replica and not yet on the other) while readers see the same newest record of every key -- no problem;
a replica whose newest record of a key differs (another value, a missing record, an older version back
from the dead) is still reported.  Replicas are built with the library: the same records appended to each,
then the real cleaner's passes at different times, then the damage, batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.inspect import verify
from kcli.storage import records
from kcli.storage.cleaner import clean
from kcli.storage.config import LogConfig
from kcli.storage.log import PartitionLog

TOPIC = "c"
NOW = 1_700_000_000_000
RETENTION = 1000  # delete.retention.ms
CONFIG = LogConfig(segment_bytes=1024, compact=True, delete=False, delete_retention_ms=RETENTION)
KEYS, VERSIONS = 100, 3
DELETED = range(90, 100)  # their tombstones are offsets 300..309
ACTIVE = 310  # the one record of the active segment

Row = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]], int]  # offset, key, value, headers, ts
Batches = list[tuple[int, int, list[Row]]]  # base, last offset, records


def _key(k: int) -> bytes:
    return b"k%03d" % k


def _history(log: PartitionLog) -> None:
    """KEYS keys x VERSIONS versions (offset v * 100 + k) in batches of 10, tombstones for DELETED, then a
    roll and one record in the active segment."""
    for v in range(VERSIONS):
        for first in range(0, KEYS, 10):
            log.append(records.encode_batch([(_key(k), b"v%d" % v, [("h", b"%d" % v)], NOW + v * 100 + k)
                                             for k in range(first, first + 10)]))
    log.append(records.encode_batch([(_key(k), None, [], NOW + 300 + k) for k in DELETED]))
    log.roll()
    log.append(records.encode_batch([(b"active", b"a", [], NOW + 400)]))


def _pass(log: PartitionLog, now: int) -> None:
    clean(log, CONFIG, upper=log.log_end_offset, now_ms=now)


@pytest.fixture
def dd(tmp_path: Path) -> DataDir:
    """Two replicas of TOPIC-0, cleaned apart: the leader once (tombstones kept, with its horizon), the
    follower 3 ms later and again after its horizon (tombstones removed)."""
    dd = DataDir(str(tmp_path / "data"))
    md = Metadata(dd)
    md.ensure(brokers=2)
    meta = md.create_topic(TOPIC, 1, 2, {"cleanup.policy": "compact"}).partitions[0]
    for broker, passes in ((meta.leader, [NOW + 1000]), (_follower(dd), [NOW + 1003, NOW + 1003 + RETENTION])):
        log = PartitionLog(dd.partition_dir(broker, TOPIC, 0), CONFIG)
        log.open_for_append(None)
        _history(log)
        for now in passes:
            _pass(log, now)
        log.release()
    return dd


def _follower(dd: DataDir) -> int:
    meta = Metadata(dd).load().partition(TOPIC, 0)
    return next(b for b in meta.replicas if b != meta.leader)


def _batches(dd: DataDir, broker: int) -> Batches:
    log = PartitionLog(dd.partition_dir(broker, TOPIC, 0), CONFIG)
    out: Batches = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset)
        for pos, h in records.iter_batches(data):
            rows = [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in records.decode_records(data, pos, h)]
            out.append((h.base_offset, h.last_offset, rows))
            offset = h.next_offset
    log.close()
    return out


def _rewrite(dd: DataDir, broker: int, edit: Callable[[Batches], Batches]) -> None:
    """Replace ``broker``'s replica with its batches passed through ``edit``, each written back with its
    offsets (gaps kept) and a valid CRC: damage that only a comparison of contents can see."""
    batches = edit(_batches(dd, broker))
    log = PartitionLog(dd.partition_dir(broker, TOPIC, 0), CONFIG)
    log.open_for_append(None)
    log.truncate_fully(log.log_start_offset)
    for base, last, rows in batches:
        stamps = [r[4] for r in rows] or [NOW]
        body = records.encode_records([r[1:] for r in rows], stamps[0], [r[0] - base for r in rows])
        section = records.Section(body, len(rows), stamps[0], max(stamps))
        log.append(records.frame(section, base_offset=base, last_offset_delta=last - base), keep_offsets=True)
    log.release()


def _with(batches: Batches, offset: int, row: Row | None) -> Batches:
    """``batches`` with the record at ``offset`` replaced by ``row`` (None: removed), or ``row`` added
    where no record is: into the batch spanning ``offset``, or as a batch of its own in a gap."""
    out: Batches = []
    placed = row is None
    for base, last, rows in batches:
        if base <= offset <= last:
            rows = sorted([r for r in rows if r[0] != offset] + ([row] if row is not None else []))
            placed = True
        elif not placed and base > offset:
            out.append((offset, offset, [row]))  # type: ignore[list-item]
            placed = True
        out.append((base, last, rows))
    return out


def _problems(dd: DataDir) -> list[str]:
    return [p.line() for p in verify.verify_datadir(dd, TOPIC).problems]


def test_independently_compacted_replicas_agree(dd: DataDir) -> None:
    leader = Metadata(dd).load().partition(TOPIC, 0).leader
    assert _batches(dd, leader) != _batches(dd, _follower(dd))  # they differ byte for byte below the checkpoints
    tombstones = [r for _b, _l, rows in _batches(dd, leader) for r in rows if r[2] is None]
    assert len(tombstones) == len(DELETED) and not [
        r for _b, _l, rows in _batches(dd, _follower(dd)) for r in rows if r[2] is None]
    assert _problems(dd) == []


def _newest(k: int) -> int:
    return (VERSIONS - 1) * 100 + k


DAMAGES = {
    "another value": (lambda b: _with(b, _newest(10), (_newest(10), _key(10), b"XX", [("h", b"2")], NOW + _newest(10))),
                      "the newest record of key 'k010', at offset 210, has another value, headers or timestamp"),
    "another header": (lambda b: _with(b, _newest(12), (_newest(12), _key(12), b"v2", [("h", b"9")], NOW + _newest(12))),
                       "the newest record of key 'k012', at offset 212, has another value, headers or timestamp"),
    "newest record missing": (lambda b: _with(b, _newest(11), None),
                              "the newest record of key 'k011' is missing, on broker {leader} a record at offset 211"),
    "older version back": (lambda b: _with(b, 195, (195, _key(95), b"v1", [("h", b"1")], NOW + 195)),
                           "the newest record of key 'k095' is a record at offset 195, on broker {leader} a "
                           "tombstone at offset 305"),
}


def _damage_and_expect_it_reported(dd: DataDir, damage: str) -> None:
    """Apply DAMAGES[damage] to the follower: verify reports exactly that difference."""
    edit, message = DAMAGES[damage]
    follower, leader = _follower(dd), Metadata(dd).load().partition(TOPIC, 0).leader
    _rewrite(dd, follower, edit)
    assert _problems(dd) == [
        f"{TOPIC}-0: replica on broker {follower} differs from broker {leader} in what readers see: "
        + message.format(leader=leader)
    ]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_follower_of_a_compacted_partition_is_reported(dd: DataDir, damage: str) -> None:
    _damage_and_expect_it_reported(dd, damage)


def test_a_tombstone_is_missing_only_where_it_was_cleaned(dd: DataDir) -> None:
    """The leader's tombstone of a key, absent from the follower, is reported when the follower's cleaner
    never got past it (its checkpoint is below it): no horizon could have passed there."""
    from kcli.storage import checkpoint

    follower = _follower(dd)
    path = str(Path(dd.broker_dir(follower)) / checkpoint.CLEANER_OFFSET)
    checkpoint.set_offset(path, (TOPIC, 0), 303)
    problems = _problems(dd)
    assert len(problems) == 1 and "the newest record of key 'k093' is missing" in problems[0], problems


def test_damage_at_and_above_the_cleaner_checkpoints_is_found_batch_by_batch(dd: DataDir) -> None:
    """The active segment, never cleaned, must match byte for byte: a changed record there is reported
    by batch CRC, as for any topic."""
    follower, leader = _follower(dd), Metadata(dd).load().partition(TOPIC, 0).leader
    _rewrite(dd, follower, lambda b: _with(b, ACTIVE, (ACTIVE, b"active", b"b", [], NOW + 400)))
    [problem] = _problems(dd)
    assert problem.startswith(f"{TOPIC}-0: replica on broker {follower} differs from broker {leader} at offset "
                              f"{ACTIVE}: batch {ACTIVE}..{ACTIVE} crc ")


@pytest.mark.parametrize("damage", ["older version back", "newest record missing"])
def test_keys_read_in_many_passes_give_the_same_answer(dd: DataDir, damage: str, monkeypatch) -> None:
    """With room for only 7 keys a pass, the keys are read bucket by bucket (each halved when it fills)
    and the answers are the same."""
    from kcli.inspect import newest

    monkeypatch.setattr(newest, "KEYS_PER_PASS", 7)
    calls = []
    real = newest.newest_records
    monkeypatch.setattr(newest, "newest_records", lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    assert _problems(dd) == []
    assert len(calls) > 2 * (KEYS + 1) // 7  # every bucket read on both replicas
    _damage_and_expect_it_reported(dd, damage)


def test_an_unreadable_cleaner_checkpoint_is_a_warning(dd: DataDir) -> None:
    """A damaged checkpoint only costs its broker's cleaner a pass from the start; verify then compares
    that broker's replicas by what readers see all the way up."""
    from kcli.storage import checkpoint

    follower = _follower(dd)
    (Path(dd.broker_dir(follower)) / checkpoint.CLEANER_OFFSET).write_text("garbage\n")
    report = verify.verify_datadir(dd, TOPIC)
    assert report.problems == []
    assert [w.message.startswith("unreadable cleaner checkpoint") for w in report.warnings] == [True]
    _rewrite(dd, follower, DAMAGES["another value"][0])
    assert len(verify.verify_datadir(dd, TOPIC).problems) == 1
