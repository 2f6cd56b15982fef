"""repair: Kafka's recovery after an unclean shutdown, run on demand over a whole partition dir.

``plan_repair`` reads everything and decides; ``execute`` applies the plan with the storage layer's own
recovery (``LogSegment.recover(0, ...)``), so the repaired files are exactly what a kcli writer would
have rebuilt.  The cut is where recovery stops: the first torn, corrupt or CRC-failing batch, or a batch
whose offsets go backwards.  When the next segment starts where the intact batches before the cut end
(damaged bytes after a closed segment's last batch), only those bytes go and the later segments stay.
Otherwise, like Kafka, every segment after the cut goes too (its data is unreachable once the log has a
hole), leader epochs starting at or after the new log end are dropped, and the log dir's checkpoints
(high watermark, recovery point, log start) are capped at the new end.  Nothing is deleted: the bytes cut
from a segment and the segments dropped are moved aside as ``<segment>.log.<position>.damaged`` files
(the bytes of that .log from that position on).  Indexes are rebuilt only where they fail the checks
verify applies.

A repair never runs behind a writer's back: the caller holds ``partition_guard`` while planning and
executing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from kcli.cluster.configs import log_config
from kcli.cluster.datadir import DataDir, FileLock
from kcli.cluster.metadata import Metadata
from kcli.errors import KcliError
from kcli.inspect import indexes, layout, scan
from kcli.inspect.errors import PartitionLockedError
from kcli.inspect.layout import PartitionLocation
from kcli.inspect.logdirs import log_end_offset
from kcli.storage import checkpoint
from kcli.storage.config import LogConfig
from kcli.storage.fileio import write_file
from kcli.storage.log import WRITER_STATE
from kcli.storage.producer_snapshot import list_snapshots, snapshot_name
from kcli.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, LogSegment, segment_name

Progress = Callable[[int], None]


@dataclass
class Action:
    """One change: ``kind`` is truncate, delete_segment, rebuild_indexes, delete_orphan, trim_epochs,
    clamp_checkpoint or remove_state."""

    kind: str
    path: str
    detail: str
    base: int | None = None
    position: int | None = None

    def describe(self) -> str:
        name = os.path.basename(self.path)
        verbs = {
            "truncate": f"truncate {name}",
            "delete_segment": f"move segment {segment_name(self.base or 0)} aside",
            "rebuild_indexes": f"rebuild the indexes of segment {segment_name(self.base or 0)}",
            "delete_orphan": f"delete {name}",
            "trim_epochs": f"rewrite {name}",
            "clamp_checkpoint": f"rewrite {name}",
            "remove_state": f"remove {name}",
        }
        return f"{verbs[self.kind]}: {self.detail}"


@dataclass
class RepairPlan:
    location: PartitionLocation
    index_interval: int
    log_end_before: int
    log_end_after: int
    segments: int = 0
    actions: list[Action] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "directory": self.location.directory,
            "topic": self.location.topic,
            "partition": self.location.partition,
            "segments": self.segments,
            "logEndOffsetBefore": self.log_end_before,
            "logEndOffsetAfter": self.log_end_after,
            "actions": [asdict(a) for a in self.actions],
        }


# ---------------------------------------------------------------- locking


def _kafka_lock_held(log_dir: str) -> bool:
    """Whether a Kafka broker holds the log dir's ``.lock`` (a POSIX record lock, as Java's FileLock takes)."""
    path = os.path.join(log_dir, ".lock")
    if not os.path.exists(path):
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the probe lock
    return False


@contextmanager
def partition_guard(location: PartitionLocation) -> Iterator[None]:
    """Hold the partition's lock for the duration, or refuse at once if a writer or broker has it."""
    if location.root is None:
        log_dir = os.path.dirname(location.directory)
        if _kafka_lock_held(log_dir):
            raise PartitionLockedError(
                f"a Kafka broker holds {os.path.join(log_dir, '.lock')}",
                hint="stop the broker before repairing its log dir",
            )
        yield
        return
    datadir = DataDir(location.root)
    if location.broker_id is not None:
        broker_lock = FileLock(os.path.join(datadir.broker_dir(location.broker_id), "broker.lock"))
        if broker_lock.is_locked():
            raise PartitionLockedError(
                f"broker {location.broker_id} is running (it holds {broker_lock.path})",
                hint="stop the broker before repairing its partitions",
            )
    lock = datadir.partition_lock(location.topic, location.partition)
    if not lock.try_acquire():
        raise PartitionLockedError(
            f"partition {location.topic}-{location.partition} is locked by {lock.holder()}, a writer is active",
            hint="stop the writer and run repair again",
        )
    replica = None if location.broker_id is None else datadir.replica_lock(
        location.broker_id, location.topic, location.partition
    )
    if replica is not None and not replica.try_acquire():  # a leader writes this stopped broker's replica
        lock.release()
        raise PartitionLockedError(
            f"the replica is locked by {replica.holder()}, a writer is active",
            hint="stop the writer and run repair again",
        )
    try:
        yield
    finally:
        if replica is not None:
            replica.release()
        lock.release()


def index_interval_for(location: PartitionLocation) -> int:
    """The topic's index.interval.bytes when the partition is in a kcli data dir, else Kafka's default."""
    if location.root is not None:
        state = Metadata(DataDir(location.root)).load()
        topic = state.topics.get(location.topic)
        if topic is not None:
            return log_config(state, topic).index_interval_bytes
    return LogConfig().index_interval_bytes


# ---------------------------------------------------------------- planning


def _scan_segment(
    log_path: str, base: int, progress: Progress | None
) -> tuple[indexes.SegmentBatches, int, int, tuple[int, str] | None]:
    """(batches, valid end, next offset, cut) with the conditions ``LogSegment.recover`` cuts at."""
    seg = indexes.SegmentBatches()
    next_offset, valid_end = base, 0
    for item in scan.scan_log(log_path):
        if isinstance(item, scan.Stop):
            what = "torn tail" if item.kind == scan.TORN else "corrupt batch header"
            return seg, valid_end, next_offset, (item.position, f"{what}: {item.reason}")
        h = item.header
        if not item.crc_ok:
            return (
                seg,
                valid_end,
                next_offset,
                (item.position, f"CRC mismatch in batch {h.base_offset}..{h.last_offset}"),
            )
        if item.position > 0 and h.base_offset < next_offset:
            return (
                seg,
                valid_end,
                next_offset,
                (
                    item.position,
                    f"batch {h.base_offset}..{h.last_offset} goes back before offset {next_offset}",
                ),
            )
        if progress is not None:
            progress(h.size)
        seg.add(item.position, h.base_offset, h.last_offset, h.max_timestamp)
        next_offset, valid_end = h.next_offset, item.position + h.size
    return seg, valid_end, next_offset, None


def plan_repair(
    location: PartitionLocation, index_interval: int | None = None, progress: Progress | None = None
) -> RepairPlan:
    """Decide what repairing ``location`` takes; changes nothing."""
    directory = location.directory
    interval = index_interval_for(location) if index_interval is None else index_interval
    end_before = log_end_offset(directory)
    plan = RepairPlan(location, interval, end_before, end_before)
    files = layout.segment_files(directory)
    bases = sorted(b for b, f in files.items() if LOG_SUFFIX in f)
    plan.segments = len(bases)
    for b in sorted(set(files) - set(bases)):
        for path in files[b].values():
            plan.actions.append(Action("delete_orphan", path, "an index file without its .log segment", b))
    for n, base in enumerate(bases):
        log_path = files[base][LOG_SUFFIX]
        stem = os.path.join(directory, segment_name(base))
        seg, valid_end, next_offset, cut = _scan_segment(log_path, base, progress)
        if cut is not None and bases[n + 1 : n + 2] == [next_offset]:
            _plan_truncate(plan, base, cut, "the next segment continues the log")
            continue
        if cut is not None:
            _plan_cut(plan, bases[n:], cut, next_offset)
            break
        issues = indexes.check_offset_index(
            stem + INDEX_SUFFIX, base, seg, valid_end
        ) + indexes.check_time_index(stem + TIMEINDEX_SUFFIX, base, seg)
        if issues:
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            plan.actions.append(Action("rebuild_indexes", stem + INDEX_SUFFIX, issues[0] + more, base))
    _plan_checkpoints(plan)
    if plan.actions:
        states = [(WRITER_STATE, "the next writer recovers the log instead of resuming")]
        states += [(snapshot_name(offset), "producer state past the repaired log end")
                   for offset in list_snapshots(directory) if offset > plan.log_end_after]
        for name, why in states:
            state = os.path.join(directory, name)
            if os.path.exists(state):
                plan.actions.append(Action("remove_state", state, why))
    return plan


def _plan_cut(plan: RepairPlan, bases: list[int], cut: tuple[int, str], next_offset: int) -> None:
    """Truncate ``bases[0]`` at the cut and delete every later segment."""
    directory = plan.location.directory
    end = plan.log_end_before
    _plan_truncate(plan, bases[0], cut, f"offsets {next_offset}..{end - 1} are dropped" if next_offset < end else "")
    for later in bases[1:]:
        path = layout.segment_path(directory, later, LOG_SUFFIX)
        detail = f"{os.path.getsize(path)} bytes after the truncation point, kept in {damaged_name(path, 0)}"
        plan.actions.append(Action("delete_segment", path, detail, later, 0))
    plan.log_end_after = next_offset
    _plan_epochs(plan, next_offset)


def _plan_truncate(plan: RepairPlan, base: int, cut: tuple[int, str], consequence: str) -> None:
    position, reason = cut
    log_path = layout.segment_path(plan.location.directory, base, LOG_SUFFIX)
    detail = f"from {os.path.getsize(log_path)} to {position} bytes ({reason} at position {position})"
    if consequence:
        detail += f"; {consequence}"
    detail += f"; the cut bytes are kept in {damaged_name(log_path, position)}; its indexes are rebuilt"
    plan.actions.append(Action("truncate", log_path, detail, base, position))


def damaged_name(log_path: str, position: int) -> str:
    """Where repair keeps the bytes of ``log_path`` from ``position`` on instead of deleting them."""
    return f"{os.path.basename(log_path)}.{position}.damaged"


def _move_aside(log_path: str, position: int) -> None:
    """Copy the bytes of ``log_path`` from ``position`` on to their .damaged file, synced, before they go."""
    with open(log_path, "rb") as src:
        src.seek(position)
        data = src.read()
    write_file(os.path.join(os.path.dirname(log_path), damaged_name(log_path, position)), data, sync=True)


def _plan_epochs(plan: RepairPlan, new_end: int) -> None:
    path = os.path.join(plan.location.directory, checkpoint.LEADER_EPOCH)
    try:
        epochs = checkpoint.read_epochs(path)
    except (KcliError, ValueError, IndexError):
        return
    dropped = [e for e, start in epochs if start >= new_end]
    if dropped:
        plan.actions.append(
            Action(
                "trim_epochs", path, f"drop leader epochs {dropped} that start at or after offset {new_end}"
            )
        )


_CLAMPED = (checkpoint.HIGH_WATERMARK, checkpoint.RECOVERY_POINT, checkpoint.LOG_START)


def _plan_checkpoints(plan: RepairPlan) -> None:
    """The log dir's checkpoints must not point past the repaired log's end (a broker would cap them the
    same way when it loads the log)."""
    loc = plan.location
    for name in _CLAMPED:
        path = os.path.join(os.path.dirname(loc.directory), name)
        try:
            offsets = checkpoint.read_offsets(path)
        except (KcliError, ValueError, IndexError):
            continue
        value = offsets.get((loc.topic, loc.partition))
        if value is not None and value > plan.log_end_after:
            plan.actions.append(
                Action(
                    "clamp_checkpoint",
                    path,
                    f"{loc.topic} {loc.partition}: {value} becomes {plan.log_end_after}, the log end",
                )
            )


# ---------------------------------------------------------------- executing


def execute(plan: RepairPlan) -> None:
    """Apply ``plan`` (the caller holds ``partition_guard``).  Later segments go first, so a crash half way
    leaves a log that a second repair cuts at the same place."""
    directory = plan.location.directory
    order = [
        "delete_orphan",
        "delete_segment",
        "truncate",
        "rebuild_indexes",
        "trim_epochs",
        "clamp_checkpoint",
        "remove_state",
    ]
    actions = sorted(plan.actions, key=lambda a: (order.index(a.kind), -(a.base or 0)))
    for action in actions:
        if action.kind in ("delete_orphan", "remove_state"):
            _unlink(action.path)
        elif action.kind == "delete_segment":
            _move_aside(action.path, 0)
            LogSegment(directory, action.base or 0).delete()
        elif action.kind in ("truncate", "rebuild_indexes"):
            if action.kind == "truncate":
                _move_aside(action.path, action.position or 0)
            seg = LogSegment(directory, action.base or 0, plan.index_interval)
            seg.recover(0, plan.index_interval)
            if not _is_last(directory, seg) and seg.max_timestamp >= 0:
                # a rolled segment keeps a final time index entry (Kafka's onBecomeInactiveSegment)
                seg.time_index.maybe_append(seg.max_timestamp, seg.offset_of_max_timestamp)
            seg.close()
        elif action.kind == "clamp_checkpoint":
            _clamp(plan, action.path)
        elif action.kind == "trim_epochs":
            path = action.path
            epochs = [(e, s) for e, s in checkpoint.read_epochs(path) if s < plan.log_end_after]
            checkpoint.write_epochs(path, epochs)


def _clamp(plan: RepairPlan, path: str) -> None:
    """Rewrite one log-dir checkpoint with this partition's entry capped at the new log end, under the
    broker's checkpoint lock in a kcli data dir (other partitions' writers update the same file)."""
    loc = plan.location
    lock = None
    if loc.root is not None and loc.broker_id is not None:
        lock = DataDir(loc.root).checkpoint_lock(loc.broker_id).acquire()
    try:
        offsets = checkpoint.read_offsets(path)
        key = (loc.topic, loc.partition)
        if offsets.get(key, -1) > plan.log_end_after:
            offsets[key] = plan.log_end_after
            checkpoint.write_offsets(path, offsets)
    finally:
        if lock is not None:
            lock.release()


def _is_last(directory: str, seg: LogSegment) -> bool:
    bases = layout.log_bases(directory)
    return bool(bases) and bases[-1] == seg.base_offset


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
