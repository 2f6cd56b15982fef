"""The controller duty every broker carries: the running broker with the lowest id watches the others.

Every broker looks at every broker on each tick (:mod:`kcli.cluster.liveness`); the one that sees itself
as the lowest-id *running* broker acts as the controller.  No lock decides it: a controller that hangs
(SIGSTOP) would keep a lock for ever, and so keep every leadership it should move, its own included.
Its heartbeat ages instead, and after the session timeout the next broker sees it lost and takes over;
when it wakes it sees its own heartbeat stale, so it does nothing until it has beaten again.  Two
brokers may act for a moment at once (their looks a heartbeat apart); that is harmless, because every
decision is taken inside one metadata change against the state and a fresh look as they are then, so
the second finds the work done.  The controller looks at every broker (:mod:`kcli.cluster.liveness`)
and, when one is *lost* -- crashed, or hung past the session timeout -- applies Kafka's rules
(:func:`kcli.cluster.controller.on_brokers_lost`): drop it from every ISR, elect a new leader for the
partitions it led from the live in-sync replicas (highest log end offset first, leader epoch bumped),
or take them offline unless ``unclean.leader.election.enable`` allows any
live replica.  Offline partitions come back when an in-sync replica runs again.  Brokers watch the
metadata and start or stop leading accordingly; the decision itself is only a metadata record.  The
controller also takes pending partition reassignments their next step
(:func:`kcli.replica.reassignment.advance`).
"""

from __future__ import annotations

import logging

from kcli.cluster.configs import log_config
from kcli.cluster.controller import on_brokers_lost, replica_leo
from kcli.cluster.datadir import DataDir
from kcli.cluster.liveness import BrokerStates, observe
from kcli.cluster.metadata import ClusterState, Metadata
from kcli.replica.reassignment import advance

log = logging.getLogger("kcli.broker")


def needs_election(state: ClusterState, states: BrokerStates) -> bool:
    """Whether some partition waits for the controller: a lost broker leads it or is in its ISR, or it is
    offline while a replica that could lead it runs."""
    for topic in state.topics.values():
        unclean = log_config(state, topic).unclean_leader_election
        for meta in topic.partitions:
            if meta.leader in states.lost or any(b in states.lost for b in meta.isr):
                return True
            if meta.leader < 0:
                candidates = meta.replicas if unclean else meta.isr
                if any(b in states.running for b in candidates):
                    return True
    return False


def acting_controller(states: BrokerStates) -> int | None:
    """The broker that acts as the controller: the running one with the lowest id."""
    return min(states.running, default=None)


class Controller:
    """The controller's tick: who acts, and what it decides."""

    def __init__(self, datadir: DataDir, broker_id: int, session_timeout: float) -> None:
        self.datadir = datadir
        self.broker_id = broker_id
        self.session_timeout = session_timeout
        self.metadata = Metadata(datadir)
        self.active = False
        self._seen_lost: frozenset[int] = frozenset()

    def tick(self) -> None:
        state = self.metadata.load()
        states = observe(self.datadir, state.brokers, self.session_timeout)
        active = acting_controller(states) == self.broker_id
        if active != self.active:
            self.active = active
            log.info("broker %d %s the controller", self.broker_id, "is" if active else "is no longer")
            self._seen_lost = frozenset()
        if not active:
            return
        for b in sorted(states.lost - self._seen_lost):
            log.warning("broker %d is lost (%s)", b, self._why(b))
        self._seen_lost = states.lost
        for line in advance(self.metadata, set(states.running)):
            log.info("controller: reassignment of %s", line)
        if not needs_election(state, states):
            return

        def unclean_for(topic: str) -> bool:
            t = state.topics.get(topic)
            return t is not None and log_config(state, t).unclean_leader_election

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
        from kcli.cluster.liveness import heartbeat_age

        age = heartbeat_age(self.datadir, broker)
        if self.datadir.broker_lock(broker).is_locked():
            return f"no heartbeat for {age or 0:.1f}s"
        return "its process is gone"
