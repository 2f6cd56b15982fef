"""One broker process: what it holds, in which order it starts, and how it stops cleanly.

Start-up: take the broker lock (liveness = lock held, so a second broker with the same id is refused
and a crash is seen at once) -> take over the partitions it leads (their locks and write sessions) ->
listen -> write ``broker.json``.  Clients can find the broker as soon as the lock is held, so they
retry briefly until the socket appears.

Shutdown (SIGTERM, SIGINT, or :meth:`Broker.stop`): stop long polls -> stop listening and cut
connections, waiting for requests in progress -> end every write session durably (fsync, checkpoints,
the clean-shutdown state that spares the next writer a recovery) -> remove ``broker.json`` and the
socket -> release the broker lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from kcli.broker.context import BrokerContext
from kcli.broker.dispatch import Dispatcher
from kcli.broker.info import BrokerInfo, LiveBrokers, remove_info, socket_path, write_info
from kcli.broker.partitions import LedPartitions
from kcli.broker.producers import ProducerIds
from kcli.broker.server import Server
from kcli.cluster.datadir import DataDir, FileLock
from kcli.cluster.metadata import Metadata
from kcli.errors import BrokerError, KcliError, LockTimeoutError, NotFoundError
from kcli.protocol import DEFAULT_MAX_FRAME_SIZE

log = logging.getLogger("kcli.broker")

TICK = 0.2  # how often the metadata is checked for changes
CHECKPOINT_INTERVAL = 5.0  # how often written partitions are fsynced and checkpointed
RETENTION_INTERVAL = 300.0  # Kafka's log.retention.check.interval.ms


class Broker:
    def __init__(
        self,
        datadir: DataDir,
        broker_id: int,
        listener: tuple[str, int] | None = None,
        auto_create: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self.listener = listener
        self.partitions = LedPartitions(datadir, broker_id)
        self.ctx = BrokerContext(
            broker_id, datadir, self.partitions, LiveBrokers(datadir), ProducerIds(datadir), auto_create
        )
        self.server = Server(Dispatcher(self.ctx), socket_path(datadir, broker_id), listener, max_frame_size)
        self.info: BrokerInfo | None = None
        self._lock: FileLock | None = None
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None

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
            self.partitions.refresh(force=True)
            self.server.start()
            tcp = self.server.tcp_address
            self.info = BrokerInfo(
                self.broker_id,
                os.getpid(),
                self.server.socket_path,
                tcp[0] if tcp else None,
                tcp[1] if tcp else None,
                int(time.time() * 1000),
            )
            self.ctx.info = self.info
            write_info(self.datadir, self.info)
        except BaseException:
            self.server.stop(timeout=1.0)
            self.partitions.close_all()
            self._release()
            raise
        self._maintenance = threading.Thread(target=self._maintain, name="maintenance", daemon=True)
        self._maintenance.start()
        return self.info

    def _maintain(self) -> None:
        """Follow metadata changes, retry partitions whose lock was busy, checkpoint written partitions,
        apply retention."""
        last_checkpoint = last_retention = time.monotonic()
        while not self._stop.wait(TICK):
            try:
                self.partitions.refresh(retry_waiting=True)
                if time.monotonic() - last_retention >= RETENTION_INTERVAL:
                    self.partitions.enforce_retention()
                    last_retention = time.monotonic()
                if time.monotonic() - last_checkpoint >= CHECKPOINT_INTERVAL:
                    self.partitions.checkpoint()
                    last_checkpoint = time.monotonic()
            except (KcliError, OSError) as exc:
                log.error("maintenance: %s", exc)
            except Exception:
                log.exception("maintenance failed")

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
        if self._maintenance is not None:
            self._maintenance.join(5.0)
        self.partitions.stopping = True
        self.partitions.wake()
        self.server.stop()
        self.partitions.close_all()
        self._release()

    def _release(self) -> None:
        if self._lock is None:
            return
        remove_info(self.datadir, self.broker_id)
        self._lock.release()
        self._lock = None
