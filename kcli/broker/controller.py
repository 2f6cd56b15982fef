"""The controller duty every broker carries: the one holding the controller lock watches the others.

Every broker tries ``cluster/controller.lock`` at start and then on every tick; the first to get it is
the controller, and when it dies the kernel frees the lock for the next one.  The controller looks at
every broker (:mod:`kcli.broker.liveness`) and, when one is *lost* -- crashed, or hung past the session
timeout -- applies Kafka's rules (:func:`kcli.cluster.controller.on_brokers_lost`): drop it from every
ISR, elect a new leader for the partitions it led from the live in-sync replicas (highest log end offset
first, leader epoch bumped), or take them offline unless ``unclean.leader.election.enable`` allows any
live replica.  Offline partitions come back when an in-sync replica runs again.  Brokers watch the
metadata and start or stop leading accordingly; the decision itself is only a metadata record.
"""

from __future__ import annotations

import logging

from kcli.broker.liveness import BrokerStates, observe
from kcli.cluster.controller import on_brokers_lost, replica_leo
from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.config import LogConfig

log = logging.getLogger("kcli.broker")


def needs_election(state: ClusterState, states: BrokerStates) -> bool:
    """Whether some partition waits for the controller: a lost broker leads it or is in its ISR, or it is
    offline while a replica that could lead it runs."""
    for topic in state.topics.values():
        unclean = LogConfig.from_topic(topic.configs).unclean_leader_election
        for meta in topic.partitions:
            if meta.leader in states.lost or any(b in states.lost for b in meta.isr):
                return True
            if meta.leader < 0:
                candidates = meta.replicas if unclean else meta.isr
                if any(b in states.running for b in candidates):
                    return True
    return False


class Controller:
    """Controller election (a file lock) and the controller's tick."""

    def __init__(self, datadir: DataDir, broker_id: int, session_timeout: float) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self.session_timeout = session_timeout
        self.metadata = Metadata(datadir)
        self.lock = datadir.controller_lock()
        self._seen_lost: frozenset[int] = frozenset()

    @property
    def active(self) -> bool:
        return self.lock.held

    def tick(self) -> None:
        if not self.lock.held:
            if not self.lock.try_acquire():
                return
            log.info("broker %d is the controller", self.broker_id)
        state = self.metadata.load()
        states = observe(self.datadir, state.brokers, self.session_timeout)
        for b in sorted(states.lost - self._seen_lost):
            log.warning("broker %d is lost (%s)", b, self._why(b))
        self._seen_lost = states.lost
        if not needs_election(state, states):
            return

        def unclean_for(topic: str) -> bool:
            t = state.topics.get(topic)
            return t is not None and LogConfig.from_topic(t.configs).unclean_leader_election

        def look(now: ClusterState) -> tuple[set[int], set[int]]:
            # again, under the metadata lock: a broker may have come back since the look above
            fresh = observe(self.datadir, now.brokers, self.session_timeout)
            return set(fresh.running), set(fresh.lost)

        elections = on_brokers_lost(
            self.metadata, look, lambda t, p, b: replica_leo(self.datadir, t, p, b), unclean_for
        )
        for election in elections:
            (log.warning if election.unclean or election.new_leader < 0 else log.info)(
                "controller: %s", election.describe()
            )

    def _why(self, broker: int) -> str:
        from kcli.broker.liveness import heartbeat_age

        age = heartbeat_age(self.datadir, broker)
        if self.datadir.broker_lock(broker).is_locked():
            return f"no heartbeat for {age or 0:.1f}s"
        return "its process is gone"

    def release(self) -> None:
        self.lock.release()
