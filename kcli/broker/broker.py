"""One broker process: what it holds, in which order it starts, and how it stops cleanly.

Start-up: take the broker lock (liveness = lock held, so a second broker with the same id is refused
and a crash is seen at once) -> first heartbeat -> take over the partitions it leads (their replica locks
and write sessions) and start following the others -> listen -> write ``broker.json``.  Clients can find
the broker as soon as the lock is held, so they retry briefly until the socket appears.  Then five
threads: maintenance (follow the metadata, ISR upkeep, checkpoints, retention), the controller duty
(:mod:`kcli.broker.controller`), the heartbeat, transaction upkeep (:mod:`kcli.broker.txn_service`), and
the log cleaner (compaction of the replicas it leads and follows).

Shutdown (SIGTERM, SIGINT, or :meth:`Broker.stop`) is a controlled shutdown: refuse new produce
requests to the partitions it leads, let running in-sync followers fetch the rest, and move each
leadership to one of them in the metadata -> end every write session and follower log durably (fsync,
checkpoints, the clean-shutdown state that spares the next writer a recovery), which frees the replica
locks the new leaders want and ends long polls -> stop listening and cut connections, waiting for
requests in progress -> remove the heartbeat (this broker stopped cleanly: its replicas are whole),
``broker.json`` and the socket -> release the broker lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from kcli.broker.context import BrokerContext
from kcli.broker.controller import Controller
from kcli.broker.dispatch import Dispatcher
from kcli.broker.partitions import LedPartition, LedPartitions
from kcli.broker.replication import FollowedReplica, Followers
from kcli.broker.server import Server
from kcli.broker.settings import BrokerSettings
from kcli.broker.txn_service import transactions
from kcli.cluster import liveness
from kcli.cluster.broker_info import BrokerInfo, Endpoint, LiveBrokers, remove_info, socket_path, write_info
from kcli.cluster.controller import hand_over
from kcli.cluster.datadir import DataDir, FileLock
from kcli.cluster.liveness import BrokerStates, observe
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.cluster.producers import ProducerIds
from kcli.errors import BrokerError, KcliError, LockTimeoutError, NotFoundError

log = logging.getLogger("kcli.broker")

TICK = 0.2  # how often the metadata is checked for changes
CHECKPOINT_INTERVAL = 5.0  # how often written partitions are fsynced and checkpointed
CONTROLLER_TICK = 0.25  # how often the controller looks at the brokers (and others try to become it)
TXN_TICK = 1.0  # how often timed-out and decided transactions are looked at
HAND_OVER_WAIT = 5.0  # how long a shutting-down leader lets its followers catch up before moving on


class Broker:
    def __init__(
        self,
        datadir: DataDir,
        broker_id: int,
        settings: BrokerSettings | None = None,
    ) -> None:
        settings = settings or BrokerSettings()
        self.datadir = datadir
        self.broker_id = broker_id
        self.advertised = settings.advertised
        self.session_timeout = settings.session_timeout_ms / 1000
        self.retention_interval = settings.retention_check_interval_ms / 1000
        self.metadata = Metadata(datadir)
        self.states = BrokerStates(frozenset(), frozenset(), frozenset())
        self.partitions = LedPartitions(
            datadir, broker_id, settings.replica_lag_time_ms / 1000, Followers(datadir, broker_id), lambda: self.states
        )
        self.controller = Controller(datadir, broker_id, self.session_timeout)
        self.ctx = BrokerContext(
            broker_id, datadir, self.partitions, LiveBrokers(datadir), ProducerIds(datadir), settings
        )
        self.server = Server(
            Dispatcher(self.ctx), socket_path(datadir, broker_id), settings.listeners, settings.max_frame_size,
            settings.tls,
        )
        self.info: BrokerInfo | None = None
        self._lock: FileLock | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._horizons: dict[tuple[str, int], int] = {}  # the log cleaner's: see _delete_horizons

    # ------------------------------------------------------------ start

    def start(self) -> BrokerInfo:
        state = Metadata(self.datadir).ensure()
        if self.broker_id not in state.brokers:
            raise NotFoundError(
                f"broker {self.broker_id} is not part of the cluster (brokers: "
                f"{', '.join(map(str, state.brokers))})",
                hint=f"grow the cluster with `kcli cluster init --brokers {self.broker_id + 1}`",
            )
        lock = self.datadir.broker_lock(self.broker_id)
        try:
            # short: only a liveness probe by another process can hold a free lock for a moment
            lock.acquire(timeout=2.0)
        except LockTimeoutError:
            raise BrokerError(
                f"broker {self.broker_id} is already running ({lock.holder()})",
                hint="stop it first, or start a broker with another --id",
            ) from None
        self._lock = lock
        try:
            self.server.bind()  # fail fast on a taken address, before loading any partition
            liveness.beat(self.datadir, self.broker_id)
            self._observe(state)
            self.partitions.refresh(force=True)
            self.server.serve()
            self.info = BrokerInfo(
                self.broker_id,
                os.getpid(),
                self.server.socket_path,
                started_ms=int(time.time() * 1000),
                endpoints=advertise(self.server.endpoints, self.advertised),
                listeners=self.server.endpoints,
            )
            self.ctx.info = self.info
            write_info(self.datadir, self.info)
        except BaseException:
            self.server.stop(timeout=1.0)
            self.partitions.close_all()
            self._release()
            raise
        for name, target in (
            ("maintenance", self._maintain),
            ("controller", self._control),
            ("heartbeat", self._beat),
            ("transactions", self._transactions),
            ("log-cleaner", self._clean),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self.info

    def _observe(self, state: ClusterState | None = None) -> None:
        state = state or self.partitions.state
        self.states = observe(self.datadir, state.brokers, self.session_timeout)

    def _beat(self) -> None:
        """The heartbeat, in a thread of its own so that slow disk work never makes us look hung."""
        while not self._stop.wait(liveness.HEARTBEAT_INTERVAL):
            try:
                liveness.beat(self.datadir, self.broker_id)
            except OSError as exc:
                log.error("heartbeat: %s", exc)

    def _control(self) -> None:
        while not self._stop.wait(CONTROLLER_TICK):
            try:
                self.controller.tick()
            except (KcliError, OSError) as exc:
                log.error("controller: %s", exc)
            except Exception:
                log.exception("controller tick failed")

    def _maintain(self) -> None:
        """Follow metadata changes, retry partitions whose lock was busy, write stopped brokers' replicas
        and shrink the ISR of led partitions, checkpoint written partitions, apply retention."""
        last_checkpoint = last_retention = time.monotonic()
        while not self._stop.wait(TICK):
            try:
                self._observe()
                self.partitions.refresh(retry_waiting=True)
                self.partitions.maintain()
                if time.monotonic() - last_retention >= self.retention_interval:
                    self.partitions.enforce_retention()
                    last_retention = time.monotonic()
                if time.monotonic() - last_checkpoint >= CHECKPOINT_INTERVAL:
                    self.partitions.checkpoint()
                    last_checkpoint = time.monotonic()
            except (KcliError, OSError) as exc:
                log.error("maintenance: %s", exc)
            except Exception:
                log.exception("maintenance failed")

    def _transactions(self) -> None:
        """Abort timed-out transactions and finish decided ones.  A thread of its own: writing a marker
        waits for the in-sync replicas, which may need the maintenance thread to shrink the ISR first."""
        service = transactions(self.ctx)
        while not self._stop.wait(TXN_TICK):
            try:
                service.maintain()
            except Exception:
                log.exception("transaction upkeep failed")

    def _clean(self) -> None:
        """Kafka's log cleaner thread: clean the dirtiest due replica (else one whose delete horizon
        passed), then look again at once; sleep log.cleaner.backoff.ms when the pass did not move the dirty
        part on, or none was picked (or log.cleaner.enable is off)."""
        from kcli.cluster.configs import BROKER_CONFIGS, static_configs

        backoff_ms = static_configs().get("log.cleaner.backoff.ms", BROKER_CONFIGS["log.cleaner.backoff.ms"].default)
        backoff = int(backoff_ms) / 1000  # type: ignore[arg-type]
        while True:
            try:
                progressed = self._clean_dirtiest()
            except Exception:
                log.exception("log cleaner failed")
                progressed = False
            if self._stop.wait(0 if progressed else backoff):
                return

    def _clean_dirtiest(self) -> bool:
        """One pass over the dirtiest due replica (led: under the lock appends take; followed: under the
        one fetched batches are appended under), recorded in the broker folder's cleaner-status.json (what
        ``kcli log-dirs`` shows); True when it moved the dirty part on.  When none is due, a pass over the
        one whose latest delete horizon passed longest ago (KIP-534): its tombstones and markers go even if
        nothing new comes in."""
        from kcli.cluster.configs import broker_value
        from kcli.replica.compaction import recorded_pass
        from kcli.storage.log import now_ms

        state = self.partitions.state
        if not broker_value(state, "log.cleaner.enable", self.broker_id):
            return False
        now = now_ms()
        followed = self.partitions.followers.replicas() if self.partitions.followers is not None else []
        replicas: list[LedPartition | FollowedReplica] = [*self.partitions.led(), *followed]
        horizons = self._delete_horizons(replicas)
        due, expired = [], []
        for replica in replicas:
            todo = replica.cleanable(now)
            if todo is None:
                continue
            if todo.due:
                due.append((todo.dirty_ratio, todo.first_dirty, replica))
            elif 0 <= horizons[(replica.topic, replica.partition)] <= now:
                expired.append((-horizons[(replica.topic, replica.partition)], todo.first_dirty, replica))
        if not due and not expired:
            return False
        _rank, first_dirty, chosen = max(due or expired, key=lambda d: d[0])
        map_bytes = int(broker_value(state, "log.cleaner.dedupe.buffer.size", self.broker_id))  # type: ignore[call-overload]
        done = recorded_pass(self.datadir, self.broker_id, chosen.topic, chosen.partition,
                             lambda: chosen.clean(now, map_bytes))
        if done is None:
            return False
        horizons[(chosen.topic, chosen.partition)] = done.result.latest_delete_horizon
        role = "follower" if isinstance(chosen, FollowedReplica) else "leader"
        log.info("log cleaner: %s-%d (%s): kept %d, removed %d records, %d -> %d bytes, dirty ratio %.2f%s",
                 chosen.topic, chosen.partition, role, done.result.records_kept, done.result.records_removed,
                 done.bytes_before, done.bytes_after, done.dirty_ratio, "" if due else ", delete horizon passed")
        return bool(done.result.first_dirty > first_dirty)

    def _delete_horizons(self, replicas: Sequence[LedPartition | FollowedReplica]) -> dict[tuple[str, int], int]:
        """The latest delete horizon of each replica's log (-1: none), as its last pass left it: kept in
        memory, read back from cleaner-status.json for a replica first seen (after a restart), and
        forgotten for a replica no longer held."""
        from kcli.storage.cleaner_status import read_status

        held = {(r.topic, r.partition) for r in replicas}
        known = self._horizons = {k: v for k, v in self._horizons.items() if k in held}
        if held - known.keys():
            status = read_status(self.datadir.broker_dir(self.broker_id))
            for key in held - known.keys():
                last = status[key].last if key in status else None
                known[key] = -1 if last is None else last.latest_delete_horizon
        return known

    # ------------------------------------------------------------ run and stop

    def run(self) -> None:
        """Serve until :meth:`stop` is called (from a signal handler), then shut down cleanly."""
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)
        try:
            self._hand_over()
        except (KcliError, OSError) as exc:
            log.error("controlled shutdown: moving leaderships failed: %s", exc)
        # let go of the partitions before the connections: the new leaders want the replicas we wrote, and
        # requests still in flight (a produce waiting for followers that left) get NOT_LEADER_OR_FOLLOWER
        self.partitions.close_all()
        self.server.stop()
        self._release()

    def _hand_over(self) -> None:
        """Controlled shutdown: move every leadership to a running in-sync follower that has everything."""
        if not self.partitions.led():
            return
        brokers = self.metadata.load().brokers

        def running() -> set[int]:
            return set(observe(self.datadir, brokers, self.session_timeout).running) - {self.broker_id}

        live = self.partitions.drain(running, HAND_OVER_WAIT)
        for election in hand_over(self.metadata, self.broker_id, live, self.partitions.replica_leo):
            log.info("controlled shutdown: %s", election.describe())

    def _release(self) -> None:
        if self._lock is None:
            return
        remove_info(self.datadir, self.broker_id)
        liveness.clear(self.datadir, self.broker_id)
        self._lock.release()
        self._lock = None


def advertise(bound: Sequence[Endpoint], advertised: Sequence[Endpoint]) -> list[Endpoint]:
    """What each listener tells its clients (advertised.listeners): the advertised endpoint of its name,
    else its own address as bound."""
    named = {e.listener: e for e in advertised}
    return [named.get(e.listener, e) for e in bound]
