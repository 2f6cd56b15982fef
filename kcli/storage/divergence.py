"""Where two replicas of a partition part ways, by leader epoch (KIP-101, KIP-279).

Offsets alone cannot tell a follower which of its records a new leader lacks: after a failover both logs
may reach offset 100 with different records at 90..99.  Leader epochs can: every batch carries the epoch
of the leader that wrote it, and ``leader-epoch-checkpoint`` says where each epoch started.  The leader
answers "epoch E ends at offset X" and the follower cuts its log to min(X, its own end of E).  Used by
the broker's followers (over OffsetForLeaderEpoch) and by a leader writing a stopped replica itself.
"""

from __future__ import annotations

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1

Epochs = list[tuple[int, int]]  # [(epoch, start offset)] in order, as in leader-epoch-checkpoint


def end_offset_for_epoch(epochs: Epochs, log_end: int, epoch: int) -> tuple[int, int]:
    """The leader's answer to "where does ``epoch`` end?": (the largest epoch it knows that is not newer,
    the start offset of the first newer epoch or its log end).  (-1, -1) when it knows no epoch at all
    that is that old or older, or ``epoch`` is newer than all it knows (Kafka's LeaderEpochFileCache)."""
    if epoch < 0 or not epochs:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if epochs[-1][0] == epoch:
        return epoch, log_end
    floor = None
    for e, start in epochs:
        if e > epoch:
            # an epoch older than every epoch known ends where the first known one starts
            return (floor if floor is not None else epoch), start
        floor = e
    return UNDEFINED_EPOCH, UNDEFINED_OFFSET


def truncation_offset(
    own_epochs: Epochs, own_end: int, leader_epoch: int, leader_end: int, fallback: int
) -> int:
    """Where a follower must cut its log given the leader's answer (``leader_epoch``, ``leader_end``) to
    "where does my latest epoch end?".  ``fallback`` (the follower's high watermark) is used when the
    leader could not answer, as Kafka does: everything below it was on every in-sync replica."""
    if leader_end < 0:
        return min(fallback, own_end)
    if leader_epoch < 0:
        return min(leader_end, own_end)
    _epoch, own_epoch_end = end_offset_for_epoch(own_epochs, own_end, leader_epoch)
    if own_epoch_end < 0:
        own_epoch_end = own_end
    return min(leader_end, own_epoch_end, own_end)


def without_newer(own_epochs: Epochs, own_end: int, latest: int) -> tuple[Epochs, int]:
    """Drop the epochs newer than ``latest`` (the leader's current epoch): records written in an epoch the
    leader never had cannot be on it.  Returns (the epochs left, where the log must end at most)."""
    kept = [(e, start) for e, start in own_epochs if e <= latest]
    cut = min([own_end] + [start for e, start in own_epochs if e > latest])
    return kept, cut


def divergence(leader_epochs: Epochs, leader_end: int, own_epochs: Epochs, own_end: int) -> int:
    """Both halves at once, for a leader that can read the follower's log itself: the offset from which
    ``own`` holds records the leader does not have (``own_end`` when it holds none)."""
    if not own_epochs:
        return min(own_end, leader_end)
    if not leader_epochs:
        return 0  # nothing to compare with: keep nothing that might differ
    kept, cut = without_newer(own_epochs, own_end, leader_epochs[-1][0])
    if not kept:
        return min(cut, leader_end)
    epoch, end = end_offset_for_epoch(leader_epochs, leader_end, kept[-1][0])
    return truncation_offset(kept, cut, epoch, end, 0)
