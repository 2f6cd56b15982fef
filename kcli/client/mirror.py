"""Copying a topic from one transport to another -- the data dir and a Kafka-protocol cluster -- so that
a rerun after any interruption continues where the last run stopped and never sends twice what the target
acknowledged.

What is kept: each record's key, value, headers and timestamp, and its partition number (source
partition p goes to target partition p, so keyed placement survives).  Offsets are the target's own.

How resuming works.  A checkpoint file records per partition the next source offset to copy and the
target's log end after the last acknowledged chunk; it is written atomically (temp, fsync, rename) once
before the first record is sent and after every acknowledged chunk.  A process killed between an
acknowledgement and the checkpoint write leaves records at the target that the checkpoint does not
count; the next run finds the target's end past the recorded one, reads those records back, checks that
they are the next source records, and skips them.  Records it cannot account for (another writer), or a
target that ends before the recorded end (deleted and recreated, truncated), stop the mirror with an
error instead of a guess.  So: the target partitions must be written by this mirror alone.

Copying is sequential per partition, one source fetch (``batch_bytes``) at a time, through the same
:class:`~kcli.client.consumer.Consumer` and :class:`~kcli.client.producer.Producer` the CLI uses.  The
source is read read_committed (up to its last stable offset): records of aborted transactions are not
copied, and those of open transactions wait until they commit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcli.client.consumer import Consumer
from kcli.client.defaults import READ_COMMITTED
from kcli.client.producer import Producer
from kcli.cluster.datadir import DataDir, FileLock
from kcli.errors import KcliError, NotFoundError
from kcli.storage import compression
from kcli.storage.checkpoint import atomic_write
from kcli.storage.fileio import make_dirs
from kcli.storage.records import Record

if TYPE_CHECKING:
    from kcli.client.transport import Transport  # a Protocol: for annotations only

CHECKPOINT_VERSION = 1
IDLE_WAIT = 0.2  # --follow: pause between rounds that found nothing new


class MirrorError(KcliError):
    """The mirror cannot continue without risking loss or duplicates (exit 1)."""


@dataclass
class Endpoint:
    """One side of a mirror: a transport, a way to create a topic on that side, and a name for messages."""

    transport: Transport
    create_topic: Callable[[str, int], None]
    label: str


@dataclass
class Progress:
    """Per partition: next source offset to copy, target log end after our last acknowledged record, and
    records copied over all runs."""

    source: int
    target: int
    copied: int = 0


# ---------------------------------------------------------------- the checkpoint file


def checkpoint_path(datadir: DataDir, direction: str, topic: str, server: str, target_topic: str) -> str:
    """``<data dir>/cluster/mirror/<direction>-<topic>-<server>[-<target topic>].json``; the server is the
    first --to/--from address as given, with ':' spelt '_'."""
    first = server.split(",")[0].strip()
    name = f"{direction}-{topic}-{_safe(first)}"
    if target_topic != topic:
        name += f"-{target_topic}"
    return os.path.join(datadir.cluster_dir, "mirror", name + ".json")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


class Checkpoint:
    """The progress file of one mirror (direction, topic, server, target topic), and its lock: two runs
    of the same mirror at once would both send the same records."""

    def __init__(self, path: str, identity: dict[str, str]) -> None:
        self.path = path
        self.identity = identity
        self.lock = FileLock(path + ".lock", 0, f"mirror checkpoint {os.path.basename(path)}")

    def acquire(self) -> None:
        make_dirs(os.path.dirname(self.path))
        self.lock.acquire()

    def release(self) -> None:
        self.lock.release()

    def load(self) -> dict[int, Progress] | None:
        """The recorded progress, or None when this mirror never ran."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = json.load(fh)
            if doc.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"version {doc.get('version')!r}")
            parts = {
                int(p): Progress(int(e["source"]), int(e["target"]), int(e["copied"]))
                for p, e in doc["partitions"].items()
            }
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MirrorError(
                f"cannot read mirror checkpoint {self.path}: {exc}",
                hint="delete it to copy from the start again",
            ) from None
        theirs = {k: doc.get(k) for k in self.identity}
        if theirs != self.identity:
            raise MirrorError(
                f"mirror checkpoint {self.path} belongs to another mirror ({theirs})",
                hint="move it away, or mirror with a different --to-topic",
            )
        return parts

    def save(self, parts: dict[int, Progress]) -> None:
        doc = {
            "version": CHECKPOINT_VERSION,
            **self.identity,
            "updated_ms": time.time_ns() // 1_000_000,
            "partitions": {
                str(p): {"source": e.source, "target": e.target, "copied": e.copied}
                for p, e in sorted(parts.items())
            },
        }
        atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode())


# ---------------------------------------------------------------- the copy


@dataclass
class MirrorResult:
    partitions: int = 0
    copied: int = 0  # records sent and acknowledged in this run
    recovered: int = 0  # records found at the target that an interrupted run had sent
    created: bool = False  # the target topic was created
    resumed: bool = False  # a checkpoint existed
    remaining: int = 0  # offsets up to the end offsets at start (the progress bar's total)
    warnings: list[str] = field(default_factory=list)


class Mirror:
    """Copy ``topic`` from ``source`` to ``target_topic`` at ``target``; see the module docstring."""

    def __init__(
        self,
        source: Endpoint,
        target: Endpoint,
        topic: str,
        target_topic: str,
        checkpoint: Checkpoint,
        *,
        codec: int = compression.NONE,
        batch_bytes: int = 1 << 20,
    ) -> None:
        self.source = source
        self.target = target
        self.topic = topic
        self.target_topic = target_topic
        self.checkpoint = checkpoint
        self.codec = codec
        self.batch_bytes = batch_bytes
        self.result = MirrorResult()
        self.parts: dict[int, Progress] = {}
        self.ends: dict[int, int] = {}

    # ------------------------------------------------------------ before copying

    def prepare(self) -> MirrorResult:
        """Check or create the target topic, reconcile the checkpoint with both logs, fix the end offsets
        (for a run without --follow) and record the starting point; nothing is sent yet."""
        src, dst = self.source.transport, self.target.transport
        count = src.partition_count(self.topic)
        self.result.partitions = count
        try:
            have = dst.partition_count(self.target_topic)
        except NotFoundError:
            self.target.create_topic(self.target_topic, count)
            self.result.created = True
            have = dst.partition_count(self.target_topic)
        if have < count:
            raise MirrorError(
                f"target topic {self.target_topic!r} at {self.target.label} has {have} partition(s), fewer than "
                f"the {count} of {self.topic!r}: records could not keep their partitions",
                hint=f"add partitions to it (kcli topic alter {self.target_topic} -p {count}), "
                "or mirror to a new topic with --to-topic",
            )
        recorded = self.checkpoint.load()
        self.result.resumed = recorded is not None
        for p in range(count):
            start = src.list_offset(self.topic, p, "earliest")
            self.ends[p] = end = src.list_offset(self.topic, p, "latest", READ_COMMITTED)
            target_end = dst.list_offset(self.target_topic, p, "latest")
            entry = (recorded or {}).get(p)
            if entry is None:
                if target_end > 0 and not self.result.created:
                    self.result.warnings.append(
                        f"target partition {self.target_topic}-{p} already holds records (up to offset "
                        f"{target_end}); the copy goes after them"
                    )
                entry = Progress(start, target_end)
            else:
                self._reconcile(p, entry, start, end, target_end)
            self.parts[p] = entry
            self.result.remaining += max(0, end - entry.source)
        self.checkpoint.save(self.parts)
        return self.result

    def _reconcile(self, p: int, entry: Progress, start: int, end: int, target_end: int) -> None:
        restart = f"delete {self.checkpoint.path} to copy from the start again"
        if entry.source > end:
            raise MirrorError(
                f"source partition {self.topic}-{p} at {self.source.label} ends at offset {end}, before the "
                f"{entry.source} this mirror reached: it was deleted and recreated or truncated",
                hint=restart,
            )
        if target_end < entry.target:
            raise MirrorError(
                f"target partition {self.target_topic}-{p} at {self.target.label} ends at offset {target_end}, "
                f"before the {entry.target} this mirror had written: it was deleted and recreated or truncated",
                hint=restart,
            )
        if target_end > entry.target:
            self._adopt(p, entry, target_end)
        if entry.source < start:
            self.result.warnings.append(
                f"source partition {self.topic}-{p} deleted offsets {entry.source}..{start - 1} (retention) "
                f"before they were copied"
            )
            entry.source = start

    def _adopt(self, p: int, entry: Progress, target_end: int) -> None:
        """The target has records past the recorded end: an interrupted run's acknowledged chunk, if they
        are the next source records.  Count them as copied and move past them in the source."""
        extra = target_end - entry.target
        theirs = _read(self.target.transport, self.target_topic, p, entry.target, target_end, extra)
        ours = _read(self.source.transport, self.topic, p, entry.source, None, len(theirs))
        same = len(ours) == len(theirs) == extra and all(
            (a.key, a.value, list(a.headers)) == (b.key, b.value, list(b.headers))
            for a, b in zip(ours, theirs, strict=True)
        )
        if not same:
            raise MirrorError(
                f"target partition {self.target_topic}-{p} at {self.target.label} has {extra} record(s) after "
                f"offset {entry.target} that are not the next records of {self.topic}-{p}: did something else "
                "write to it?",
                hint=f"mirror into a new topic with --to-topic, or delete {self.checkpoint.path} to append a "
                "fresh copy after them",
            )
        entry.source = ours[-1].offset + 1
        entry.target = target_end
        entry.copied += extra
        self.result.recovered += extra

    # ------------------------------------------------------------ copying

    def run(self, follow: bool = False, on_progress: Callable[[int], None] | None = None) -> MirrorResult:
        """Copy up to the end offsets found by :meth:`prepare` (with ``follow``: until the process is
        interrupted); a checkpoint after every chunk."""
        consumer = Consumer(self.source.transport, max_bytes=self.batch_bytes, isolation=READ_COMMITTED)
        consumer.assign({(self.topic, p): e.source for p, e in self.parts.items()})
        acked: dict[int, int] = {}

        def delivered(_topic: str, partition: int, offset: int) -> None:
            acked[partition] = offset

        producer = Producer(
            self.target.transport, codec=self.codec, batch_size=self.batch_bytes, on_delivery=delivered
        )
        while True:
            moved = False
            for p, entry in self.parts.items():
                upto = None if follow else self.ends[p]
                if upto is not None and entry.source >= upto:
                    continue
                records = consumer.fetch_partition(self.topic, p, upto)
                position = consumer.positions[(self.topic, p)]
                if position == entry.source:
                    continue
                if records:
                    acked.pop(p, None)
                    for rec in records:
                        producer.send(self.target_topic, rec.value, rec.key, rec.headers, p, rec.timestamp)
                    producer.flush()
                    entry.target = acked[p] + 1
                    entry.copied += len(records)
                    self.result.copied += len(records)
                moved = True
                step = position - entry.source
                entry.source = position
                self.checkpoint.save(self.parts)
                if on_progress is not None:
                    on_progress(step)
            if not follow and all(e.source >= self.ends[p] for p, e in self.parts.items()):
                return self.result
            if not moved:
                time.sleep(IDLE_WAIT)


def _read(transport: Transport, topic: str, partition: int, start: int, upto: int | None, count: int) -> list[Record]:
    """Up to ``count`` records of a partition from ``start`` (bounded by ``upto``)."""
    consumer = Consumer(transport, isolation=READ_COMMITTED)
    consumer.assign({(topic, partition): start})
    out: list[Record] = []
    while len(out) < count:
        got = consumer.fetch_partition(topic, partition, upto)
        if not got and consumer.positions[(topic, partition)] == start:
            break
        start = consumer.positions[(topic, partition)]
        out += got
    return out[:count]
