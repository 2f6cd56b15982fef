"""Leader election and ISR changes: the controller's decisions, recorded in the metadata log.

The rules are Kafka's: a new leader comes from the live in-sync replicas, highest log end offset first
(ties go to the earlier replica in the assignment, i.e. the preferred one); with no live in-sync replica
the partition goes offline (leader -1, the last ISR kept so its members can return) unless unclean
election is allowed, which picks any live replica and says that data may be lost.  Every leader change
bumps the leader epoch.

Every change is decided inside one :meth:`Metadata.change`, i.e. under the metadata lock and against the
state as it is then, so a decision is never based on a view another writer has already changed.  ISR
changes a leader makes are fenced by leader and epoch (Kafka's AlterPartition check): a deposed leader
that has not noticed yet cannot undo the controller's work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import ClusterState, Metadata, MetaRecord, PartitionMeta, TopicMeta

NO_LEADER = -1

Leo = Callable[[str, int, int], int]  # (topic, partition, broker) -> that replica's log end offset


@dataclass
class Election:
    """One partition's leadership change."""

    topic: str
    partition: int
    old_leader: int
    new_leader: int
    isr: list[int]
    leader_epoch: int
    unclean: bool = False
    note: str = ""

    def describe(self) -> str:
        what = (
            "offline (no in-sync replica alive)"
            if self.new_leader == NO_LEADER
            else f"leader {self.new_leader}"
        )
        text = (
            f"{self.topic}-{self.partition}: {what} (was {self.old_leader}), epoch {self.leader_epoch}, "
            f"isr {','.join(map(str, self.isr)) or '-'}"
        )
        if self.unclean:
            text += "; UNCLEAN election: records the old leader had may be lost"
        return text + (f"; {self.note}" if self.note else "")


def choose_leader(
    meta: PartitionMeta, live: set[int], leo: Callable[[int], int], unclean_allowed: bool
) -> tuple[int, list[int], bool]:
    """(leader, isr, unclean) for a partition given the live brokers and each replica's log end offset."""
    order = {b: i for i, b in enumerate(meta.replicas)}
    live_isr = [b for b in meta.isr if b in live]
    if live_isr:
        best = max(live_isr, key=lambda b: (leo(b), -order.get(b, 99)))
        return best, live_isr, False
    if unclean_allowed:
        candidates = [b for b in meta.replicas if b in live]
        if candidates:
            best = max(candidates, key=lambda b: (leo(b), -order.get(b, 99)))
            return best, [best], True
    return NO_LEADER, list(meta.isr), False


def replica_leo(datadir: DataDir, topic: str, partition: int, broker: int) -> int:
    """A replica's log end offset as its files say (-1 when it has no folder)."""
    from kcli.storage.log import PartitionLog

    log = PartitionLog(datadir.partition_dir(broker, topic, partition))
    try:
        return log.log_end_offset
    except (OSError, ValueError):
        return -1
    finally:
        log.close()


def _record(election: Election, meta: PartitionMeta) -> MetaRecord:
    return {
        "type": "partition",
        "topic": election.topic,
        "partition": election.partition,
        "replicas": meta.replicas,
        "leader": election.new_leader,
        "isr": election.isr,
        "leader_epoch": election.leader_epoch,
    }


def _partitions(state: ClusterState) -> Iterator[tuple[TopicMeta, int, PartitionMeta]]:
    for topic in state.topics.values():
        for p, meta in enumerate(topic.partitions):
            yield topic, p, meta


def on_brokers_lost(
    metadata: Metadata,
    look: Callable[[ClusterState], tuple[set[int], set[int]]],
    leo: Leo,
    unclean_for: Callable[[str], bool],
) -> list[Election]:
    """Drop lost brokers from every ISR and re-elect the leaders they held; bring offline partitions back
    when an in-sync replica is live again.  ``look(state)`` gives (live, lost): the brokers that may lead
    and those known to be dead.  It is called under the metadata lock, so a broker that came back and
    rejoined an ISR before the decision is seen alive and keeps its place.  A broker in neither set --
    stopped cleanly, or never started -- keeps its place in the ISR: its replica is complete, and whoever
    leads writes it."""
    out: list[Election] = []

    def fn(state: ClusterState) -> list[MetaRecord]:
        live, gone = look(state)
        recs: list[MetaRecord] = []
        for topic, p, meta in _partitions(state):
            survivors = [b for b in meta.isr if b not in gone]
            if meta.leader >= 0 and meta.leader not in gone:
                if survivors != meta.isr:
                    recs.append(
                        {
                            "type": "partition",
                            "topic": topic.name,
                            "partition": p,
                            **{**meta.to_json(), "isr": survivors},
                        }
                    )
                continue
            # the leader is lost, or the partition is offline: elect among the live in-sync replicas
            leader, isr, unclean = choose_leader(
                meta, live, partial(leo, topic.name, p), unclean_for(topic.name)
            )
            if leader == meta.leader == NO_LEADER:
                continue
            if leader != NO_LEADER and not unclean:
                isr = survivors if leader in survivors else [leader] + survivors
            elif leader == NO_LEADER:
                isr = survivors or list(meta.isr)  # keep the last ISR so its members can come back
            election = Election(topic.name, p, meta.leader, leader, isr, meta.leader_epoch + 1, unclean)
            recs.append(_record(election, meta))
            out.append(election)
        return recs

    metadata.change(fn)
    return out


# why :func:`elect` left a partition alone (Kafka's ElectLeaders error codes name the same cases)
NOT_NEEDED = "election not needed"
PREFERRED_UNAVAILABLE = "preferred leader not available"
NO_ELIGIBLE = "no eligible leader"


def elect(
    metadata: Metadata,
    targets: Iterable[tuple[str, int]],
    mode: str,
    live: set[int],
    leo: Leo,
    skipped: dict[tuple[str, int], str] | None = None,
) -> list[Election]:
    """Run a preferred or unclean election on ``targets``; partitions already right are left alone, and
    ``skipped`` (when given) says why each partition left alone was (NOT_NEEDED: the preferred replica
    leads, or, unclean, a live leader does; PREFERRED_UNAVAILABLE: it is not live or not in sync;
    NO_ELIGIBLE: no live replica at all)."""
    if mode not in ("preferred", "unclean"):
        raise ValueError(mode)
    targets = list(targets)
    out: list[Election] = []
    why: dict[tuple[str, int], str] = {} if skipped is None else skipped

    def fn(state: ClusterState) -> list[MetaRecord]:
        recs: list[MetaRecord] = []
        for topic, p in targets:
            meta = state.partition(topic, p)
            if mode == "preferred":
                preferred = meta.replicas[0]
                if meta.leader == preferred:
                    why[(topic, p)] = NOT_NEEDED
                    continue
                if preferred not in live or preferred not in meta.isr:
                    why[(topic, p)] = PREFERRED_UNAVAILABLE
                    continue
                election = Election(topic, p, meta.leader, preferred, list(meta.isr), meta.leader_epoch + 1)
            else:
                if meta.leader in live:
                    why[(topic, p)] = NOT_NEEDED  # unclean election only helps a partition without a live leader
                    continue
                leader, isr, unclean = choose_leader(meta, live, partial(leo, topic, p), True)
                if leader == NO_LEADER:
                    why[(topic, p)] = NO_ELIGIBLE
                    continue
                election = Election(topic, p, meta.leader, leader, isr, meta.leader_epoch + 1, unclean)
            recs.append(_record(election, meta))
            out.append(election)
        return recs

    metadata.change(fn)
    return out


def hand_over(
    metadata: Metadata,
    broker: int,
    live: set[int],
    leo: Leo,
    only: set[tuple[str, int]] | None = None,
    failed: bool = False,
) -> list[Election]:
    """Controlled shutdown: move every leadership ``broker`` holds (or those in ``only``) to its live
    in-sync replica with the highest log end offset.  ``broker`` stays in the ISR (its replica is
    complete, and the new leader writes it while it is stopped) unless its replica ``failed`` (a disk
    that keeps refusing writes: it rejoins once it has caught up); a partition with no other live
    in-sync replica stays with it."""
    out: list[Election] = []

    def fn(state: ClusterState) -> list[MetaRecord]:
        recs: list[MetaRecord] = []
        for topic, p, meta in _partitions(state):
            if meta.leader != broker or (only is not None and (topic.name, p) not in only):
                continue
            others = live - {broker}
            leader, _isr, _unclean = choose_leader(
                meta, others, partial(leo, topic.name, p), False
            )
            if leader == NO_LEADER:
                continue
            election = Election(
                topic.name,
                p,
                broker,
                leader,
                [b for b in meta.isr if not (failed and b == broker)],
                meta.leader_epoch + 1,
                note="its disk refuses writes" if failed else "controlled shutdown",
            )
            recs.append(_record(election, meta))
            out.append(election)
        return recs

    metadata.change(fn)
    return out


def leave_isr(metadata: Metadata, topic: str, partition: int, broker: int) -> bool:
    """A follower whose disk refused a write leaves the partition's ISR, as Kafka's controller takes out a
    replica on a failed log dir: acks=all writes then stop waiting for it.  Never the leader, never the
    last member.  True if it left; it rejoins, through its leader, once it has caught up."""

    def fn(state: ClusterState) -> list[MetaRecord]:
        t = state.topics.get(topic)
        if t is None or not 0 <= partition < len(t.partitions):
            return []
        meta = t.partitions[partition]
        if broker not in meta.isr or broker == meta.leader or len(meta.isr) < 2:
            return []
        isr = [b for b in meta.isr if b != broker]
        return [{"type": "partition", "topic": topic, "partition": partition, **meta.to_json(), "isr": isr}]

    state = metadata.change(fn)
    t = state.topics.get(topic)
    return t is not None and broker not in t.partitions[partition].isr


def alter_isr(
    metadata: Metadata, topic: str, partition: int, view: PartitionMeta, isr: list[int]
) -> PartitionMeta | None:
    """Record the ISR a leader decided on from ``view``, its view of the partition, if it still leads
    ``topic-partition`` in that leader epoch and nobody changed the partition since (Kafka's
    AlterPartition checks the partition epoch the same way: the controller may have dropped a lost
    broker the leader's view still counts).  Returns the partition as recorded now -- with the new ISR,
    or unchanged when the view was old -- or None when the leader was deposed (or the topic went).

    A broker is added only while its process runs (holds its broker lock), as Kafka's controller accepts
    only unfenced brokers (KIP-841): the leader may act on a fetch a follower sent just before it died,
    after the controller already dropped it."""

    def fn(state: ClusterState) -> list[MetaRecord]:
        meta = led_by(state, topic, partition, view.leader, view.leader_epoch)
        if meta is None or meta.version != view.version:
            return []
        if any(b not in meta.isr and not metadata.datadir.broker_lock(b).is_locked() for b in isr):
            return []
        ordered = [b for b in meta.replicas if b in isr] + [b for b in isr if b not in meta.replicas]
        if ordered == meta.isr:
            return []
        return [
            {"type": "partition", "topic": topic, "partition": partition, **meta.to_json(), "isr": ordered}
        ]

    return led_by(metadata.change(fn), topic, partition, view.leader, view.leader_epoch)


def led_by(state: ClusterState, topic: str, partition: int, leader: int, epoch: int) -> PartitionMeta | None:
    """The partition, if ``leader`` leads it in ``epoch``."""
    t = state.topics.get(topic)
    if t is None or not 0 <= partition < len(t.partitions):
        return None
    meta = t.partitions[partition]
    return meta if meta.leader == leader and meta.leader_epoch == epoch else None
