"""The follower side of replication: fetch from leaders like Kafka's replica fetcher threads.

For every partition this broker holds a replica of but does not lead, it fetches from the leader with
``replica_id`` = its broker id, from its log end offset, and appends what comes back as it is (offsets,
leader epochs, bytes).  One thread per leader broker fetches all the partitions that broker leads.

Who writes a replica's folder: whoever holds its replica lock (kcli.cluster.datadir).  A running broker
is the only writer of its own replicas.  While its broker is stopped, the leader (or an embedded writer)
may write it; so a follower opens a replica only after the leader answered its first request about it,
an OffsetForLeaderEpoch sent with ``replica_id`` -- the leader stops writing that replica before
answering -- and then takes the replica lock without waiting (a leader that hung while writing it keeps
it until it wakes: the follower asks again later).  The same answer is the
start of every leadership the follower sees (KIP-101): "your epoch E ends at offset X on me", and the
follower cuts its log to min(X, its own end of E) before fetching, so a returning old leader drops
records the new leader never had.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kcli.cluster.broker_info import socket_path
from kcli.cluster.configs import hosted_configs
from kcli.cluster.controller import leave_isr
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata, PartitionMeta
from kcli.errors import KcliError, ProtocolError, StorageError
from kcli.protocol import ApiKey, ErrorCode, Struct, error_name
from kcli.replica.checkpoints import (
    advance_log_start,
    checkpointed_high_watermark,
    follower_config,
    recovery_point,
    write_checkpoints,
)
from kcli.replica.compaction import Pass, clean_pass
from kcli.storage import checkpoint, partition_metadata, records
from kcli.storage.cleaner import Cleanable, cleanable
from kcli.storage.config import LogConfig
from kcli.storage.divergence import truncation_offset, without_newer
from kcli.storage.fileio import takes_writes
from kcli.storage.log import PartitionLog, parse_partition_dir

log = logging.getLogger("kcli.broker")

if TYPE_CHECKING:
    from kcli.net.connection import BrokerConnection

Key = tuple[str, int]
FETCH_WAIT_MS = 500
FETCH_MAX_BYTES = 8 << 20
PARTITION_MAX_BYTES = 1 << 20
REQUEST_TIMEOUT = 30.0
STORAGE_RETRY = 1.0  # how often a replica whose disk refused writes probes it
RETRY_BACKOFF = 0.5  # after a partition error (the leader is not ready, or moved)
CONNECT_BACKOFF = (0.1, 1.0)  # first and longest wait between attempts to reach a leader
# leadership problems that resolve themselves once the metadata moves on
_WAIT_FOR_METADATA = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    ErrorCode.LEADER_NOT_AVAILABLE,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.UNKNOWN_LEADER_EPOCH,
}


class FollowedReplica:
    """One partition this broker follows: its log (once the leader has handed it over) and where it
    stands.  ``mutex`` guards the log; ``generation`` moves whenever the leader or epoch changes, so an
    answer to a request sent before the change is dropped."""

    def __init__(
        self,
        datadir: DataDir,
        broker_id: int,
        topic: str,
        partition: int,
        meta: PartitionMeta,
        configs: dict[str, object],
    ) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self.topic = topic
        self.partition = partition
        self.leader = meta.leader
        self.epoch = meta.leader_epoch
        self.configs = configs  # the topic's effective configs on this broker, as last seen
        self.config = follower_config(LogConfig.from_topic(configs))
        self.log: PartitionLog | None = None
        self.lock = datadir.replica_lock(broker_id, topic, partition)
        self.held_elsewhere = False  # the last handshake found our replica lock taken
        self.hw = checkpointed_high_watermark(datadir, broker_id, topic, partition) or 0
        self.mutex = threading.Lock()
        self.generation = 0
        self.truncated = False  # the KIP-101 step is done for the current leader and epoch
        self.retry_at = 0.0
        self.stopped = False
        self.dirty = False
        # bytes our disk must take before we fetch again: it refused a write (see usable())
        self.suspect = 0

    @property
    def key(self) -> Key:
        return self.topic, self.partition

    @property
    def directory(self) -> str:
        return self.datadir.partition_dir(self.broker_id, self.topic, self.partition)

    def retarget(self, meta: PartitionMeta) -> None:
        with self.mutex:
            self.leader, self.epoch = meta.leader, meta.leader_epoch
            self.generation += 1
            self.truncated = False
            self.retry_at = 0.0

    def reconfigure(self, configs: dict[str, object]) -> None:
        """A dynamic config change (the topic's or a broker default): the open log follows it at once, as
        the leader's does, and the next checkpoint applies retention under it."""
        with self.mutex:
            self.configs = configs
            self.config = follower_config(LogConfig.from_topic(configs))
            if self.log is not None:
                self.log.config = self.config
                self.dirty = True
        log.info("replica %s-%d: configs changed", self.topic, self.partition)

    def restart(self) -> None:
        """A new connection to the leader: start again with the handshake."""
        with self.mutex:
            self.generation += 1
            self.truncated = False

    def backoff(self, seconds: float = RETRY_BACKOFF) -> None:
        self.retry_at = time.monotonic() + seconds

    def may_ask(self, now: float) -> bool:
        """Whether to send the handshake now.  Not while someone else still holds our replica lock after
        the leader already let go of it (a broker that wrote it for us, then hung): every handshake
        would restart our lag clock on the leader, which must instead see us lag and drop us from the
        ISR until that process wakes or dies.  Nor while our disk refuses writes (:meth:`usable`)."""
        if self.truncated or self.stopped or self.retry_at > now:
            return False
        if self.held_elsewhere and self.lock.is_locked():
            self.backoff()
            return False
        return self.usable()

    def usable(self) -> bool:
        """Whether to fetch: not while our disk refuses writes.  A replica that fetched without storing
        would look caught up at the leader's end and rejoin the ISR, holding up every acks=all write;
        so after a failed write it waits until a probe of a fetch's worth of bytes goes through."""
        if not self.suspect:
            return True
        if time.monotonic() < self.retry_at:
            return False
        if takes_writes(self.directory, self.suspect):
            log.info("replica %s-%d: the disk takes writes again; fetching", self.topic, self.partition)
            self.suspect = 0
            return True
        self.backoff(STORAGE_RETRY)
        return False

    # ------------------------------------------------------------ the KIP-101 step

    def question(self) -> tuple[int, int]:
        """(generation, epoch to ask the leader about): our newest epoch not newer than the leader's."""
        with self.mutex:
            if self.log is not None:
                epochs, end = self.log.epochs(), self.log.log_end_offset
            else:  # not ours to open yet: read the epoch file (written atomically) without opening
                try:
                    epochs = checkpoint.read_epochs(os.path.join(self.directory, checkpoint.LEADER_EPOCH))
                except KcliError:
                    epochs = []
                end = 0
            kept, _cut = without_newer(epochs, end, self.epoch)
            return self.generation, (kept[-1][0] if kept else -1)

    def on_epoch_end(self, generation: int, code: int, leader_epoch: int, end_offset: int) -> None:
        """The leader's answer: open our log if it is not open yet, and cut what diverged."""
        with self.mutex:
            if self.stopped or generation != self.generation:
                return
            if code != ErrorCode.NONE:
                self._error(code, "OffsetForLeaderEpoch")
                return
            if self.log is None:
                self.held_elsewhere = not self.lock.try_acquire()
                if self.held_elsewhere:
                    log.warning(
                        "replica %s-%d is held by %s; following once it lets go",
                        self.topic,
                        self.partition,
                        self.lock.holder(),
                    )
                    self.backoff()
                    return
                try:
                    self.log = PartitionLog(self.directory, self.config)
                    point = recovery_point(self.datadir, self.broker_id, self.topic, self.partition)
                    problems = self.log.open_for_append(point)
                    topic = Metadata(self.datadir).load().topics.get(self.topic)
                    partition_metadata.ensure(self.directory, topic.topic_id if topic is not None else "")
                except BaseException:
                    self.log = None
                    self.lock.release()
                    raise
                for problem in problems:
                    log.warning("recovered replica %s-%d: %s", self.topic, self.partition, problem)
            end = self.log.log_end_offset
            kept, cut = without_newer(self.log.epochs(), end, self.epoch)
            target = truncation_offset(kept, cut, leader_epoch, end_offset, self.hw)
            if target < end:
                self.log.truncate_to(target)
                self.dirty = True
                log.info(
                    "replica %s-%d: truncated from %d to %d (leader %d, epoch %d ends at %d)",
                    self.topic,
                    self.partition,
                    end,
                    self.log.log_end_offset,
                    self.leader,
                    leader_epoch,
                    end_offset,
                )
            self.truncated = True

    # ------------------------------------------------------------ fetching

    def position(self) -> tuple[int, int, int] | None:
        """(generation, fetch offset, our log start), or None when it is not time to fetch this replica."""
        with self.mutex:
            if self.stopped or not self.truncated or self.log is None or not self.usable():
                return None
            if time.monotonic() < self.retry_at:
                return None
            return self.generation, self.log.log_end_offset, self.log.log_start_offset

    def on_fetch(self, generation: int, part: Struct) -> None:
        """Append a Fetch answer's batches as they are (offsets, epochs, bytes)."""
        with self.mutex:
            if self.stopped or generation != self.generation or self.log is None:
                return
            code = part.error_code
            if code == ErrorCode.OFFSET_OUT_OF_RANGE:
                start = part.log_start_offset
                if start is not None and start > self.log.log_end_offset:
                    self.log.truncate_to(start)  # fell behind the leader's retention: start over there
                    self.dirty = True
                else:
                    self.truncated = False
                return
            if code != ErrorCode.NONE:
                self._error(code, "Fetch")
                return
            data = part.records
            if data:
                self._append(memoryview(data), part.log_start_offset)
            if part.high_watermark >= 0:
                self.hw = min(part.high_watermark, self.log.log_end_offset)
            start = part.log_start_offset
            if start is not None and start > self.log.log_start_offset:
                # the leader's DeleteRecords (or retention): follow it, up to what we know is committed
                advance_log_start(
                    self.datadir, self.broker_id, self.topic, self.partition, self.log, min(start, self.hw), self.hw
                )

    def _append(self, data: memoryview, leader_start: int | None) -> None:
        assert self.log is not None
        for pos, header in records.iter_batches(data):
            end = self.log.log_end_offset
            if header.next_offset <= end:
                continue
            if header.base_offset > end and (leader_start is None or leader_start > end):
                self.log.truncate_to(header.base_offset)  # the leader's log starts past ours
            elif header.base_offset < end == self.log.log_start_offset:
                # we started over at the leader's log start, which lies inside this batch: start at the
                # batch (Kafka's UnexpectedAppendOffsetException); the start moves up after the append
                self.log.truncate_fully(header.base_offset)
            elif header.base_offset < end:
                log.error(
                    "replica %s-%d: batch at %d overlaps our end %d; starting over",
                    self.topic,
                    self.partition,
                    header.base_offset,
                    end,
                )
                self.truncated = False
                return
            # past our end is an offset gap of a compacted leader: keep it, as Kafka's appendAsFollower
            self.log.append(data[pos : pos + header.size], header.partition_leader_epoch, keep_offsets=True)
            self.dirty = True

    def _error(self, code: int, what: str) -> None:
        if code in _WAIT_FOR_METADATA:
            log.debug(
                "replica %s-%d: %s from leader %d: %s",
                self.topic,
                self.partition,
                what,
                self.leader,
                error_name(code),
            )
            self.truncated = False  # whatever changed, the next leadership starts with the handshake
        else:
            log.warning(
                "replica %s-%d: %s from leader %d failed: %s",
                self.topic,
                self.partition,
                what,
                self.leader,
                error_name(code),
            )
        self.backoff()

    # ------------------------------------------------------------ upkeep

    def checkpoint(self) -> None:
        with self.mutex:
            if self.log is None or not self.dirty:
                return
            self.log.delete_old_segments()
            self.log.flush()
            write_checkpoints(self.datadir, self.broker_id, self.topic, self.partition, self.log, self.hw)
            self.dirty = False

    def flush_if_due(self) -> None:
        """fsync once the oldest unsynced record is older than flush.ms."""
        with self.mutex:
            if self.log is not None:
                self.log.flush_if_due()

    # ------------------------------------------------------------ compaction

    def _upper(self) -> int | None:
        """Where a cleaner pass must stop (mutex held): our high watermark, never past an open
        transaction; None when there is nothing of ours to clean."""
        if self.stopped or self.log is None or not self.config.compact:
            return None
        return min(self.hw, self.log.last_stable_offset())

    def cleanable(self, now: int) -> Cleanable | None:
        """What a cleaner pass over our replica could do now (Kafka's followers compact their own)."""
        with self.mutex:
            upper = self._upper()
            if upper is None or self.log is None:
                return None
            return cleanable(self.log, self.config, upper=upper, now_ms=now)

    def clean(self, now: int, max_map_bytes: int) -> Pass | None:
        """One cleaner pass over our replica, under the mutex fetched batches are appended under."""
        with self.mutex:
            upper = self._upper()
            if upper is None or self.log is None:
                return None
            done = clean_pass(self.log, self.config, upper=upper, now_ms=now, max_map_bytes=max_map_bytes,
                              checkpoint_lock=self.datadir.checkpoint_lock(self.broker_id))
            self.dirty = True
            return done

    def close(self) -> int:
        """Stop following and leave the log as a clean writer would; returns our high watermark."""
        with self.mutex:
            self.stopped = True
            self.generation += 1
            if self.log is not None:
                try:
                    self.log.flush()
                    write_checkpoints(
                        self.datadir, self.broker_id, self.topic, self.partition, self.log, self.hw
                    )
                finally:
                    self.log.release()
                    self.log = None
                    self.lock.release()
            return self.hw


class LeaderFetcher:
    """Fetches every partition one leader broker leads and this broker follows (Kafka's
    ReplicaFetcherThread): the handshake for those that need it, then one long-polling Fetch for all."""

    def __init__(self, datadir: DataDir, broker_id: int, leader: int) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self.leader = leader
        self.replicas: dict[Key, FollowedReplica] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.conn: BrokerConnection | None = None
        self.thread = threading.Thread(target=self._run, name=f"fetcher-{leader}", daemon=True)
        self.thread.start()

    def add(self, replica: FollowedReplica) -> None:
        with self.lock:
            self.replicas[replica.key] = replica
        self.wake.set()

    def remove(self, key: Key) -> None:
        with self.lock:
            self.replicas.pop(key, None)

    def empty(self) -> bool:
        with self.lock:
            return not self.replicas

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    def _snapshot(self) -> list[FollowedReplica]:
        with self.lock:
            return list(self.replicas.values())

    def _run(self) -> None:
        backoff = CONNECT_BACKOFF[0]
        while not self.stopping:
            replicas = self._snapshot()
            if not replicas:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            try:
                if self.conn is None:
                    self.conn = self._connect()
                    for r in replicas:
                        r.restart()
                self._round(replicas)
                backoff = CONNECT_BACKOFF[0]
            except (KcliError, ProtocolError, OSError) as exc:
                log.debug("fetching from broker %d: %s", self.leader, exc)
                self._disconnect()
                self.wake.wait(backoff)
                self.wake.clear()
                backoff = min(backoff * 2, CONNECT_BACKOFF[1])
            except Exception:
                log.exception("fetcher for broker %d failed; retrying", self.leader)
                self._disconnect()
                self.wake.wait(CONNECT_BACKOFF[1])
        self._disconnect()

    def _connect(self) -> BrokerConnection:
        from kcli.net.connection import BrokerConnection

        return BrokerConnection(
            socket_path(self.datadir, self.leader),
            REQUEST_TIMEOUT,
            client_id=f"kcli-replica-{self.broker_id}",
        )

    def _disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _round(self, replicas: list[FollowedReplica]) -> None:
        now = time.monotonic()
        ask = [r for r in replicas if r.may_ask(now)]
        if ask:
            self._handshake(ask)
        fetch = [(r, pos) for r in replicas if (pos := r.position()) is not None]
        if fetch:
            self._fetch(fetch)
        elif not ask:
            soonest = min((r.retry_at for r in replicas), default=now + 0.5)
            self.wake.wait(min(max(soonest - now, 0.02), 0.5))
            self.wake.clear()

    def _handshake(self, replicas: list[FollowedReplica]) -> None:
        asked = {r.key: (r, *r.question()) for r in replicas}
        topics: dict[str, list[dict[str, int]]] = {}
        for (topic, p), (r, _gen, epoch) in asked.items():
            topics.setdefault(topic, []).append(
                {"partition": p, "current_leader_epoch": r.epoch, "leader_epoch": epoch}
            )
        body = {
            "replica_id": self.broker_id,
            "topics": [{"topic": t, "partitions": parts} for t, parts in topics.items()],
        }
        assert self.conn is not None  # connected by the run loop before each round
        resp = self.conn.request(ApiKey.OFFSET_FOR_LEADER_EPOCH, body)
        for t in resp.topics:
            for part in t.partitions:
                entry = asked.get((t.topic, part.partition))
                if entry is not None:
                    r, gen, _epoch = entry
                    try:
                        r.on_epoch_end(gen, part.error_code, part.leader_epoch, part.end_offset)
                    except (KcliError, OSError) as exc:  # e.g. recovery on a full disk: this one waits
                        log.error("replica %s-%d: opening or cutting failed: %s", r.topic, r.partition, exc)
                        r.backoff()

    def _fetch(self, fetch: list[tuple[FollowedReplica, tuple[int, int, int]]]) -> None:
        sent: dict[Key, tuple[FollowedReplica, int]] = {}
        topics: dict[str, list[dict[str, int]]] = {}
        for r, (gen, offset, start) in fetch:
            sent[r.key] = (r, gen)
            topics.setdefault(r.topic, []).append(
                {
                    "partition": r.partition,
                    "current_leader_epoch": r.epoch,
                    "fetch_offset": offset,
                    "log_start_offset": start,
                    "partition_max_bytes": PARTITION_MAX_BYTES,
                }
            )
        body = {
            "replica_id": self.broker_id,
            "max_wait_ms": FETCH_WAIT_MS,
            "min_bytes": 1,
            "max_bytes": FETCH_MAX_BYTES,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [{"topic": t, "partitions": parts} for t, parts in topics.items()],
            "forgotten_topics_data": [],
            "rack_id": "",
        }
        assert self.conn is not None  # connected by the run loop before each round
        resp = self.conn.request(ApiKey.FETCH, body)
        if resp.error_code != ErrorCode.NONE:
            raise KcliError(f"Fetch refused: {error_name(resp.error_code)}")
        for t in resp.responses:
            for part in t.partitions:
                entry = sent.get((t.topic, part.partition_index))
                if entry is not None:
                    r, gen = entry
                    try:
                        r.on_fetch(gen, part)
                    except (KcliError, OSError) as exc:
                        log.error(
                            "replica %s-%d: appending fetched batches failed: %s", r.topic, r.partition, exc
                        )
                        r.restart()
                        r.backoff()
                        if isinstance(exc, StorageError):
                            r.suspect = PARTITION_MAX_BYTES
                            self._leave_isr(r)


    def _leave_isr(self, replica: FollowedReplica) -> None:
        try:
            if leave_isr(Metadata(self.datadir), replica.topic, replica.partition, self.broker_id):
                log.warning("replica %s-%d: left the ISR until our disk takes writes again", *replica.key)
        except (KcliError, OSError) as exc:  # the metadata may be on the same full disk
            log.error("replica %s-%d: leaving the ISR failed: %s", *replica.key, exc)


class Followers:
    """Every partition this broker follows, following the metadata (like :class:`LedPartitions` for
    the partitions it leads)."""

    def __init__(self, datadir: DataDir, broker_id: int) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self._replicas: dict[Key, FollowedReplica] = {}
        self._fetchers: dict[int, LeaderFetcher] = {}
        self._last_hw: dict[Key, int] = {}
        self._suspect: dict[Key, int] = {}  # partitions we stopped leading because our disk refused writes
        self._lock = threading.RLock()
        self.stopping = False

    def sync(self, state: ClusterState, leading: Iterable[Key], fenced: Iterable[str] = ()) -> None:
        """Start, move and stop following to match ``state``; ``leading``: partitions we lead (or are
        about to), whose follower logs must be closed before the leader opens them."""
        leading, fenced = set(leading), set(fenced)

        def follows(key: Key, meta: PartitionMeta) -> bool:
            return (self.broker_id in meta.replicas and 0 <= meta.leader != self.broker_id
                    and key not in leading and key[0] not in fenced)

        wanted = {} if self.stopping else hosted_configs(state, self.broker_id, follows)
        with self._lock:
            for key in list(self._replicas):
                if key not in wanted:
                    self._stop(key)
            for key, (meta, configs) in wanted.items():
                replica = self._replicas.get(key)
                if replica is None:
                    replica = FollowedReplica(self.datadir, self.broker_id, key[0], key[1], meta, configs)
                    replica.suspect = self._suspect.pop(key, 0)
                    self._replicas[key] = replica
                    self._fetcher(meta.leader).add(replica)
                    log.info(
                        "following partition %s-%d (leader %d, epoch %d)",
                        key[0],
                        key[1],
                        meta.leader,
                        meta.leader_epoch,
                    )
                    continue
                if replica.configs != configs:
                    replica.reconfigure(configs)
                if (replica.leader, replica.epoch) != (meta.leader, meta.leader_epoch):
                    old = replica.leader
                    replica.retarget(meta)
                    if old != meta.leader:
                        self._fetchers[old].remove(key)
                        self._fetcher(meta.leader).add(replica)
                    log.info(
                        "partition %s-%d: following leader %d, epoch %d",
                        key[0],
                        key[1],
                        meta.leader,
                        meta.leader_epoch,
                    )
            for leader in [b for b, f in self._fetchers.items() if f.empty()]:
                self._fetchers.pop(leader).stop()
        self._delete_strays(state, leading | set(wanted), fenced)

    def _fetcher(self, leader: int) -> LeaderFetcher:
        fetcher = self._fetchers.get(leader)
        if fetcher is None:
            fetcher = self._fetchers[leader] = LeaderFetcher(self.datadir, self.broker_id, leader)
        return fetcher

    def _stop(self, key: Key) -> None:
        replica = self._replicas.pop(key)
        fetcher = self._fetchers.get(replica.leader)
        if fetcher is not None:
            fetcher.remove(key)
        try:
            self._last_hw[key] = replica.close()
        except (KcliError, OSError) as exc:
            log.error("closing replica %s-%d: %s", key[0], key[1], exc)
        log.info("stopped following partition %s-%d", key[0], key[1])

    def _delete_strays(self, state: ClusterState, kept: set[Key], fenced: set[str]) -> None:
        """Delete our replicas of partitions no longer assigned to us (after a reassignment)."""
        try:
            names = os.listdir(self.datadir.broker_dir(self.broker_id))
        except FileNotFoundError:
            return
        for name in names:
            parsed = parse_partition_dir(name)
            if parsed is None or parsed in kept or parsed[0] in fenced:
                continue
            topic = state.topics.get(parsed[0])
            if topic is None or not 0 <= parsed[1] < len(topic.partitions):
                continue
            if self.broker_id not in topic.partitions[parsed[1]].replicas:
                shutil.rmtree(os.path.join(self.datadir.broker_dir(self.broker_id), name), ignore_errors=True)
                log.info("deleted replica %s: partition no longer assigned to this broker", name)

    def suspend(self, key: Key) -> None:
        """We gave up leading ``key`` because our disk refused its writes: follow it only once the disk
        takes writes again (see :meth:`FollowedReplica.usable`)."""
        with self._lock:
            self._suspect[key] = PARTITION_MAX_BYTES

    def last_hw(self, key: Key) -> int | None:
        """The high watermark we knew when we stopped following ``key`` (a new leader starts from it)."""
        return self._last_hw.get(key)

    def replicas(self) -> list[FollowedReplica]:
        """The replicas followed now."""
        with self._lock:
            return list(self._replicas.values())

    def checkpoint(self) -> None:
        self._each(FollowedReplica.checkpoint, "checkpoint")

    def flush_if_due(self) -> None:
        self._each(FollowedReplica.flush_if_due, "fsync")

    def _each(self, action: Callable[[FollowedReplica], None], what: str) -> None:
        """``action`` on every followed replica; one that fails is logged and the others go on."""
        with self._lock:
            replicas = list(self._replicas.values())
        for replica in replicas:
            try:
                action(replica)
            except (KcliError, OSError) as exc:
                log.error("%s of replica %s-%d failed: %s", what, replica.topic, replica.partition, exc)

    def close_all(self) -> None:
        with self._lock:
            self.stopping = True
            for fetcher in self._fetchers.values():
                fetcher.stop()
            self._fetchers.clear()
            for key in list(self._replicas):
                self._stop(key)
