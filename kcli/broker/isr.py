"""A leader's view of its followers: how far each has fetched, who is in sync, the high watermark.

Kafka's rules, kept free of I/O so they can be tested alone:

- a follower's log end offset is the offset of its last Fetch (it asks for what it does not have yet);
- it is *caught up* at a moment when it has fetched everything the leader had at that moment; Kafka
  records when it last was (``lastCaughtUpTimeMs``) and drops it from the ISR once that is more than
  ``replica.lag.time.max.ms`` ago;
- an out-of-sync follower rejoins once it has reached the high watermark and the start of the current
  leader epoch;
- the high watermark is the smallest log end offset in the ISR and never moves back while one leader
  leads.  Followers the leader writes itself (stopped brokers' replicas) are always at the leader's end.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FollowerProgress:
    leo: int | None = None  # unknown until its first Fetch in this leadership
    last_caught_up: float = 0.0
    last_fetch_time: float = 0.0
    last_fetch_leader_leo: int = -1


class ReplicaTracker:
    """Followers of one led partition.  Times are ``time.monotonic()`` seconds."""

    def __init__(self, leader: int, isr: list[int], hw: int, lag_time: float, now: float) -> None:
        self.leader = leader
        self.isr = list(isr)
        self.hw = hw
        self.lag_time = lag_time
        self.started = now
        self.progress: dict[int, FollowerProgress] = {}

    def _get(self, follower: int) -> FollowerProgress:
        prog = self.progress.get(follower)
        if prog is None:
            # a follower gets a full lag time from the start of the leadership (or of its handshake)
            prog = self.progress[follower] = FollowerProgress(last_caught_up=self.started)
        return prog

    def restart(self, follower: int, now: float) -> None:
        """The follower (re)started fetching from us: its position is unknown until it fetches."""
        self.progress[follower] = FollowerProgress(last_caught_up=now)

    def forget(self, follower: int) -> None:
        self.progress.pop(follower, None)

    def on_fetch(self, follower: int, offset: int, leader_leo: int, now: float) -> None:
        """``follower`` asked for ``offset`` when the leader's log ended at ``leader_leo``."""
        prog = self._get(follower)
        if offset >= leader_leo:
            prog.last_caught_up = now
        elif prog.last_fetch_leader_leo >= 0 and offset >= prog.last_fetch_leader_leo:
            prog.last_caught_up = max(prog.last_caught_up, prog.last_fetch_time)
        prog.leo = offset
        prog.last_fetch_time = now
        prog.last_fetch_leader_leo = leader_leo

    def leo(self, follower: int) -> int | None:
        prog = self.progress.get(follower)
        return None if prog is None else prog.leo

    def high_watermark(self, leader_leo: int, written_here: set[int]) -> int:
        """Advance (never lower) the high watermark to the smallest log end offset in the ISR."""
        low = leader_leo
        for b in self.isr:
            if b == self.leader or b in written_here:
                continue
            leo = self.leo(b)
            if leo is None:
                return self.hw  # a member we have not heard from yet holds it where it is
            low = min(low, leo)
        self.hw = max(self.hw, min(low, leader_leo))
        return self.hw

    def lagging(self, now: float, written_here: set[int]) -> list[int]:
        """In-sync followers that have not caught up for longer than the lag time."""
        out = []
        for b in self.isr:
            if b == self.leader or b in written_here:
                continue
            if now - self._get(b).last_caught_up > self.lag_time:
                out.append(b)
        return out

    def may_join(self, follower: int, epoch_start: int) -> bool:
        """Whether an out-of-sync follower has caught up enough to rejoin the ISR."""
        leo = self.leo(follower)
        return follower not in self.isr and leo is not None and leo >= self.hw and leo >= epoch_start
