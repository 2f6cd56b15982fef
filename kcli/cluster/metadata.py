"""Cluster metadata as a log of change records (the KRaft idea), replayed by every reader.

``cluster/metadata.log`` holds one JSON record per line, each with a increasing ``offset``;
``cluster/metadata.snapshot`` holds the full state as of some offset and lets the log be compacted.
Writers append under the metadata lock and fsync; a torn last line (a crash mid-append) is ignored by
readers and cut by the next writer.  Topic metadata is the single source of truth for replica placement.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcli.cluster.datadir import DataDir
from kcli.errors import (
    AlreadyExistsError,
    InvalidTopicError,
    KcliError,
    NotFoundError,
    StorageError,
    UsageError,
)
from kcli.storage.checkpoint import atomic_write
from kcli.storage.fileio import FILE_MODE, make_dirs

if TYPE_CHECKING:
    from kcli.security.acl import Acl  # imported where ACLs are read: most commands never need it

LOG_NAME = "metadata.log"
SNAPSHOT_NAME = "metadata.snapshot"
SNAPSHOT_EVERY = 1000
MAX_TOPIC_NAME = 249
MAX_PARTITIONS = 100_000  # per topic: a typo like -p 1000000000 must not try to lay out a billion replicas
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")

# One change record of the metadata log (or a snapshot) as JSON decodes it: its fields depend on its "type".
MetaRecord = dict[str, Any]


@dataclass
class PartitionMeta:
    replicas: list[int]
    leader: int
    isr: list[int]
    leader_epoch: int = 0
    # The metadata offset that last set this partition (at most the snapshot's when it came from one):
    # Kafka's partition epoch.  It only grows, so whoever holds two views of a partition keeps the newer,
    # and an ISR change based on an old view is refused.  Derived on replay, never written.
    version: int = field(default=-1, compare=False)

    def to_json(self) -> dict[str, object]:
        return {"replicas": self.replicas, "leader": self.leader, "isr": self.isr, "leader_epoch": self.leader_epoch}


@dataclass
class TopicMeta:
    name: str
    topic_id: str
    configs: dict[str, object] = field(default_factory=dict)
    partitions: list[PartitionMeta] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "topic_id": self.topic_id, "configs": self.configs,
                "partitions": [p.to_json() for p in self.partitions]}


def validate_topic_name(name: str) -> None:
    """Kafka's topic-name rules."""
    if not name:
        raise InvalidTopicError("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicError(f"topic name is {len(name)} characters; the limit is {MAX_TOPIC_NAME}")
    if not _LEGAL.match(name):
        raise InvalidTopicError(f"topic name {name!r} has characters other than ASCII letters, digits, '.', '_' and '-'")


def assign_replicas(brokers: list[int], partitions: int, replication_factor: int, start_index: int,
                    first_partition: int = 0) -> list[list[int]]:
    """Kafka's rack-unaware assignment: leaders rotate over the brokers and followers are shifted so that
    replicas of consecutive partitions land on different brokers."""
    n = len(brokers)
    if replication_factor > n:
        raise UsageError(f"replication factor {replication_factor} is larger than the {n} available brokers",
                         hint="use `kcli cluster init --brokers N` to add brokers")
    out = []
    shift = start_index % n
    for i in range(first_partition, first_partition + partitions):
        if i > 0 and i % n == 0:
            shift += 1
        first = (i + start_index) % n
        replicas = [brokers[first]]
        for j in range(replication_factor - 1):
            replicas.append(brokers[(first + 1 + (shift + j) % (n - 1)) % n])
        out.append(replicas)
    return out


def _set_or_drop(table: dict[str, dict[str, object]], key: str, configs: dict[str, object]) -> None:
    """A config record holds an entity's whole set: empty means none are left."""
    if configs:
        table[key] = dict(configs)
    else:
        table.pop(key, None)


class ClusterState:
    """The replayed state: cluster id, brokers and topics, as of ``offset``."""

    def __init__(self) -> None:
        self.offset = -1
        self.cluster_id = ""
        self.brokers: list[int] = []
        self.topics: dict[str, TopicMeta] = {}
        # dynamic broker configs by entity: "" the cluster-wide defaults, "N" broker N (kcli.cluster.configs)
        self.broker_configs: dict[str, dict[str, object]] = {}
        # each group's own configs (consumer.session.timeout.ms, ...; kcli.cluster.configs.GROUP_CONFIGS)
        self.group_configs: dict[str, dict[str, object]] = {}
        # the ACLs (kcli.cluster.acls), in the order they were created
        self.acls: tuple[Acl, ...] = ()

    def apply(self, rec: MetaRecord) -> None:
        kind = rec["type"]
        if kind == "cluster":
            self.cluster_id = rec["cluster_id"]
            self.brokers = list(rec["brokers"])
        elif kind == "brokers":
            self.brokers = list(rec["brokers"])
        elif kind == "topic":
            t = rec["topic"]
            self.topics[t["name"]] = TopicMeta(t["name"], t["topic_id"], dict(t["configs"]),
                                               [PartitionMeta(**p, version=rec["offset"]) for p in t["partitions"]])
        elif kind == "delete_topic":
            self.topics.pop(rec["name"], None)
        elif kind == "partition":
            topic = self.topics[rec["topic"]]
            meta = PartitionMeta(rec["replicas"], rec["leader"], rec["isr"], rec["leader_epoch"], rec["offset"])
            if rec["partition"] == len(topic.partitions):
                topic.partitions.append(meta)
            else:
                topic.partitions[rec["partition"]] = meta
        elif kind == "topic_config":
            self.topics[rec["name"]].configs = dict(rec["configs"])
        elif kind == "broker_config":
            _set_or_drop(self.broker_configs, rec["entity"], rec["configs"])
        elif kind == "group_config":
            _set_or_drop(self.group_configs, rec["group"], rec["configs"])
        elif kind == "acls":  # removed, then added: one record per CreateAcls or DeleteAcls
            from kcli.security.acl import Acl

            gone = {Acl.from_json(a) for a in rec["remove"]}
            kept = dict.fromkeys(a for a in self.acls if a not in gone)
            kept.update(dict.fromkeys(map(Acl.from_json, rec["add"])))
            self.acls = tuple(kept)
        self.offset = rec["offset"]

    def to_json(self) -> dict[str, object]:
        return {"offset": self.offset, "cluster_id": self.cluster_id, "brokers": self.brokers,
                "topics": [t.to_json() for t in self.topics.values()], "broker_configs": self.broker_configs,
                "group_configs": self.group_configs, "acls": [a.to_json() for a in self.acls]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterState:
        state = cls()
        state.offset = data["offset"]
        state.cluster_id = data["cluster_id"]
        state.brokers = data["brokers"]
        for t in data["topics"]:
            state.apply({"type": "topic", "topic": t, "offset": data["offset"]})
        state.broker_configs = {k: dict(v) for k, v in data.get("broker_configs", {}).items()}
        state.group_configs = {k: dict(v) for k, v in data.get("group_configs", {}).items()}
        if data.get("acls"):
            from kcli.security.acl import Acl

            state.acls = tuple(Acl.from_json(a) for a in data["acls"])
        return state

    def topic(self, name: str) -> TopicMeta:
        try:
            return self.topics[name]
        except KeyError:
            raise NotFoundError(f"topic {name!r} does not exist", hint="see `kcli topic list`") from None

    def partition(self, topic: str, partition: int) -> PartitionMeta:
        meta = self.topic(topic)
        if not 0 <= partition < len(meta.partitions):
            raise NotFoundError(f"topic {topic!r} has no partition {partition}",
                                hint=f"it has partitions 0..{len(meta.partitions) - 1}")
        return meta.partitions[partition]


class Metadata:
    """Reads and changes the metadata of one data directory."""

    def __init__(self, datadir: DataDir) -> None:
        self.datadir = datadir
        self.log_path = os.path.join(datadir.cluster_dir, LOG_NAME)
        self.snapshot_path = os.path.join(datadir.cluster_dir, SNAPSHOT_NAME)

    # ------------------------------------------------------------ reading
    def load(self) -> ClusterState:
        """Snapshot plus every complete record after it."""
        state = ClusterState()
        try:
            with open(self.snapshot_path, encoding="utf-8") as fh:
                state = ClusterState.from_json(json.load(fh))
        except FileNotFoundError:
            pass
        except ValueError as exc:
            raise KcliError(f"metadata snapshot {self.snapshot_path} is unreadable: {exc}") from None
        for rec, _end in self._records():
            if rec["offset"] > state.offset:
                state.apply(rec)
        return state

    def _records(self) -> Iterator[tuple[MetaRecord, int]]:
        try:
            with open(self.log_path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                return  # torn last line
            try:
                rec = json.loads(data[pos:nl])
            except ValueError:
                return
            yield rec, nl + 1
            pos = nl + 1

    def ensure(self, brokers: int = 1) -> ClusterState:
        """Initialise a fresh data dir (cluster id, broker folders) on first use; return the state."""
        if os.path.exists(self.log_path) or os.path.exists(self.snapshot_path):
            self.datadir.check_owner()
            state = self.load()
            if state.cluster_id:
                return state
        self.datadir.check_usable()
        self.datadir.create()
        make_dirs(self.datadir.cluster_dir)
        with self.datadir.metadata_lock():
            state = self.load()
            if state.cluster_id:
                return state
            # Kafka's form: a random 128-bit id in URL-safe base64 without padding (22 characters)
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
            ids = list(range(brokers))
            for b in ids:
                self._init_broker_dir(b, cluster_id)
            self._append([{"type": "cluster", "cluster_id": cluster_id, "brokers": ids}], state)
            return self.load()

    def _init_broker_dir(self, broker_id: int, cluster_id: str) -> None:
        path = self.datadir.broker_dir(broker_id)
        make_dirs(path)
        props = os.path.join(path, "meta.properties")
        if not os.path.exists(props):
            atomic_write(props, f"#kcli\nversion=1\ncluster.id={cluster_id}\nnode.id={broker_id}\n".encode())

    # ------------------------------------------------------------ writing
    def _append(self, recs: list[MetaRecord], state: ClusterState) -> None:
        """Append records (caller holds the metadata lock), cutting any torn tail first."""
        valid_end = 0
        for _rec, end in self._records():
            valid_end = end
        lines = []
        offset = state.offset
        for rec in recs:
            offset += 1
            rec["offset"] = offset
            lines.append(json.dumps(rec, separators=(",", ":"), sort_keys=True))
        try:
            fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                if os.fstat(fd).st_size != valid_end:
                    os.ftruncate(fd, valid_end)
                os.pwrite(fd, ("\n".join(lines) + "\n").encode(), valid_end)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # a full or failing disk: a torn tail is cut by the next append
            raise StorageError.of(exc, self.log_path) from None
        for rec in recs:
            state.apply(rec)
        if offset % SNAPSHOT_EVERY < len(recs):
            try:
                self._snapshot(state)
            except OSError:
                pass  # the records are stored; until a later snapshot, load() replays the longer log

    def _snapshot(self, state: ClusterState) -> None:
        atomic_write(self.snapshot_path, json.dumps(state.to_json()).encode())
        atomic_write(self.log_path, b"")

    def change(self, fn: Callable[[ClusterState], list[MetaRecord]]) -> ClusterState:
        """Run ``fn(state) -> list of records`` under the metadata lock and append what it returns."""
        self.ensure()
        with self.datadir.metadata_lock():
            state = self.load()
            recs = fn(state)
            if recs:
                self._append(recs, state)
            return state

    # ------------------------------------------------------------ operations
    def add_brokers(self, count: int) -> ClusterState:
        """Grow the cluster to ``count`` brokers (never shrinks: replicas may live on them)."""
        def fn(state: ClusterState) -> list[MetaRecord]:
            if count < len(state.brokers):
                raise UsageError(f"the cluster already has {len(state.brokers)} brokers; it cannot shrink to {count}",
                                 hint="move replicas away with `kcli reassign` first")
            ids = sorted(set(state.brokers) | set(range(count)))
            for b in ids:
                self._init_broker_dir(b, state.cluster_id)
            return [] if ids == state.brokers else [{"type": "brokers", "brokers": ids}]
        self.ensure(count)
        return self.change(fn)

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     configs: dict[str, object] | None = None, if_not_exists: bool = False,
                     check: Callable[[ClusterState], None] | None = None) -> TopicMeta:
        """Create topic ``name``; ``check`` sees the state under the metadata lock first (the configs'
        rules across names, which the config layer above this module knows) and may refuse."""
        validate_topic_name(name)
        if partitions < 1:
            raise UsageError(f"partition count must be at least 1 (got {partitions})")
        if partitions > MAX_PARTITIONS:
            raise UsageError(f"partition count {partitions} is too large (limit {MAX_PARTITIONS})")
        if replication_factor < 1:
            raise UsageError(f"replication factor must be at least 1 (got {replication_factor})")

        def fn(state: ClusterState) -> list[MetaRecord]:
            if name in state.topics:
                if if_not_exists:
                    return []
                raise AlreadyExistsError(f"topic {name!r} already exists")
            if check is not None:
                check(state)
            collision = name.replace(".", "_")
            for other in state.topics:
                if other.replace(".", "_") == collision:
                    raise InvalidTopicError(f"topic {name!r} collides with existing topic {other!r} ('.' and '_' clash)")
            start = sum(name.encode()) % len(state.brokers)
            replicas = assign_replicas(state.brokers, partitions, replication_factor, start)
            topic = TopicMeta(name, os.urandom(16).hex(), dict(configs or {}),
                              [PartitionMeta(r, r[0], list(r), 0) for r in replicas])
            return [{"type": "topic", "topic": topic.to_json()}]

        return self.change(fn).topics[name]

    def delete_topic(self, name: str) -> TopicMeta:
        def fn(state: ClusterState) -> list[MetaRecord]:
            state.topic(name)
            return [{"type": "delete_topic", "name": name}]

        deleted = self.load().topic(name)
        self.change(fn)
        return deleted

    def add_partitions(self, name: str, total: int) -> TopicMeta:
        if total > MAX_PARTITIONS:
            raise UsageError(f"partition count {total} is too large (limit {MAX_PARTITIONS})")

        def fn(state: ClusterState) -> list[MetaRecord]:
            topic = state.topic(name)
            current = len(topic.partitions)
            if total < current:
                raise UsageError(f"topic {name!r} has {current} partitions; the count can only grow",
                                 hint="a decrease would lose data and break key-to-partition mapping")
            if total == current:
                return []
            rf = len(topic.partitions[0].replicas)
            start = sum(name.encode()) % len(state.brokers)
            new = assign_replicas(state.brokers, total - current, rf, start, first_partition=current)
            return [{"type": "partition", "topic": name, "partition": current + i, "replicas": r, "leader": r[0],
                     "isr": list(r), "leader_epoch": 0} for i, r in enumerate(new)]

        return self.change(fn).topics[name]

    def set_topic_configs(self, name: str, updates: dict[str, object], remove: list[str] | None = None) -> TopicMeta:
        def fn(state: ClusterState) -> list[MetaRecord]:
            topic = state.topic(name)
            configs = dict(topic.configs)
            configs.update(updates)
            for key in remove or []:
                configs.pop(key, None)
            return [{"type": "topic_config", "name": name, "configs": configs}]

        return self.change(fn).topics[name]

    def update_partition(self, topic: str, partition: int, **changes: object) -> PartitionMeta:
        """Record a leader/ISR/epoch change for one partition."""
        def fn(state: ClusterState) -> list[MetaRecord]:
            meta = state.partition(topic, partition).to_json()
            meta.update(changes)
            return [{"type": "partition", "topic": topic, "partition": partition, **meta}]

        return self.change(fn).partition(topic, partition)
