"""Recognising segment files and partition directories, and finding the data dir a partition lives in.

Kept separate from ``kcli.storage`` because the storage layer trusts its directory, while these tools
are pointed at arbitrary paths by a user and must say clearly when a path is not what they expect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kcli.errors import NotFoundError, UsageError
from kcli.storage.log import parse_partition_dir
from kcli.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, TXN_SUFFIX, segment_name

SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXN_SUFFIX)
# files a partition dir may hold besides segments (kcli's and Kafka's)
PARTITION_MARKERS = ("leader-epoch-checkpoint", "partition.metadata", "kcli-writer-state")


def segment_base(path: str) -> int | None:
    """The base offset a segment file's 20-digit name encodes, or None for any other name."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


def segment_files(directory: str) -> dict[int, dict[str, str]]:
    """{base offset: {suffix: path}} for every segment file in ``directory``."""
    out: dict[int, dict[str, str]] = {}
    for name in os.listdir(directory):
        stem, ext = os.path.splitext(name)
        if ext in SEGMENT_SUFFIXES and len(stem) == 20 and stem.isdigit():
            out.setdefault(int(stem), {})[ext] = os.path.join(directory, name)
    return out


def log_bases(directory: str) -> list[int]:
    """Base offsets of the segments (those with a ``.log`` file), ascending."""
    return sorted(b for b, files in segment_files(directory).items() if LOG_SUFFIX in files)


def segment_path(directory: str, base: int, suffix: str) -> str:
    return os.path.join(directory, segment_name(base) + suffix)


def check_partition_dir(path: str) -> tuple[str, int]:
    """Refuse, with a one-line reason, a path that is not a partition directory; else (topic, partition).

    A partition dir is named ``<topic>-<partition>`` and holds segments (or at least the files Kafka
    and kcli create next to them), or nothing yet; that rules out a broker dir like ``broker-0``.
    """
    if not os.path.exists(path):
        raise NotFoundError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(
            f"{path} is not a directory", hint="give a partition directory such as broker-0/demo-0"
        )
    parsed = parse_partition_dir(os.path.basename(os.path.normpath(os.path.abspath(path))))
    names = os.listdir(path)
    has_segments = any(segment_base(n) is not None and n.endswith(LOG_SUFFIX) for n in names)
    # an empty dir is a partition created before its first write; anything else must show a partition's files
    if parsed is None or (names and not (has_segments or any(m in names for m in PARTITION_MARKERS))):
        raise UsageError(
            f"{path} does not look like a partition directory",
            hint="expected a <topic>-<partition> directory holding <20-digit offset>.log segments",
        )
    return parsed


@dataclass(frozen=True)
class PartitionLocation:
    """Where a partition dir sits: in a kcli data dir (root and broker known) or in a foreign log dir."""

    directory: str
    topic: str
    partition: int
    root: str | None  # the kcli data dir, when the parent is broker-<id> inside one (it has cluster/)
    broker_id: int | None


def locate_partition(path: str) -> PartitionLocation:
    """Check ``path`` is a partition dir and find the kcli data dir around it, if any."""
    topic, partition = check_partition_dir(path)
    directory = os.path.normpath(os.path.abspath(path))
    parent = os.path.dirname(directory)
    prefix, _, num = os.path.basename(parent).partition("-")
    root = os.path.dirname(parent)
    if prefix == "broker" and num.isdigit() and os.path.isdir(os.path.join(root, "cluster")):
        return PartitionLocation(directory, topic, partition, root, int(num))
    return PartitionLocation(directory, topic, partition, None, None)
