"""Leader election and ISR changes: the controller's decisions, recorded in the metadata log.

The rules are Kafka's: a new leader comes from the live in-sync replicas, highest log end offset first
(ties go to the earlier replica in the assignment, i.e. the preferred one); with no live in-sync replica
the partition goes offline (leader -1, the last ISR kept so its members can return) unless unclean
election is allowed, which picks any live replica and says that data may be lost.  Every leader change
bumps the leader epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kcli.cluster.metadata import Metadata, PartitionMeta

NO_LEADER = -1


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
        what = "offline (no in-sync replica alive)" if self.new_leader == NO_LEADER else f"leader {self.new_leader}"
        text = f"{self.topic}-{self.partition}: {what} (was {self.old_leader}), epoch {self.leader_epoch}, " \
               f"isr {','.join(map(str, self.isr)) or '-'}"
        if self.unclean:
            text += "; UNCLEAN election: records the old leader had may be lost"
        return text + (f"; {self.note}" if self.note else "")


def choose_leader(meta: PartitionMeta, live: set[int], leo: Callable[[int], int],
                  unclean_allowed: bool) -> tuple[int, list[int], bool]:
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


def _record(metadata: Metadata, election: Election) -> None:
    metadata.update_partition(election.topic, election.partition, leader=election.new_leader, isr=election.isr,
                              leader_epoch=election.leader_epoch)


def on_brokers_lost(metadata: Metadata, live: set[int], leo: Callable[[str, int, int], int],
                    unclean_for: Callable[[str], bool]) -> list[Election]:
    """Drop dead brokers from every ISR and re-elect leaders they held.  ``leo(topic, p, broker)``."""
    out = []
    state = metadata.load()
    for topic in state.topics.values():
        for p, meta in enumerate(topic.partitions):
            dead_in_isr = [b for b in meta.isr if b not in live]
            leader_ok = meta.leader in live
            if leader_ok and not dead_in_isr:
                continue
            if leader_ok:
                isr = [b for b in meta.isr if b in live]
                metadata.update_partition(topic.name, p, isr=isr)
                continue
            leader, isr, unclean = choose_leader(meta, live, lambda b, t=topic.name, q=p: leo(t, q, b),
                                                 unclean_for(topic.name))
            if leader == meta.leader == NO_LEADER:
                continue
            election = Election(topic.name, p, meta.leader, leader, isr, meta.leader_epoch + 1, unclean)
            _record(metadata, election)
            out.append(election)
    return out


def elect(metadata: Metadata, targets: Iterable[tuple[str, int]], mode: str, live: set[int],
          leo: Callable[[str, int, int], int]) -> list[Election]:
    """Run a preferred or unclean election on ``targets``; partitions already right are left alone."""
    out = []
    state = metadata.load()
    for topic, p in targets:
        meta = state.partition(topic, p)
        if mode == "preferred":
            preferred = meta.replicas[0]
            if meta.leader == preferred or preferred not in live or preferred not in meta.isr:
                continue
            election = Election(topic, p, meta.leader, preferred, list(meta.isr), meta.leader_epoch + 1)
        elif mode == "unclean":
            if meta.leader in live:
                continue  # unclean election only helps a partition without a live leader
            leader, isr, unclean = choose_leader(meta, live, lambda b, t=topic, q=p: leo(t, q, b), True)
            if leader == NO_LEADER:
                continue
            election = Election(topic, p, meta.leader, leader, isr, meta.leader_epoch + 1, unclean)
        else:
            raise ValueError(mode)
        _record(metadata, election)
        out.append(election)
    return out
