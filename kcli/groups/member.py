"""What every kind of group member shares: its settings, its consumer, and its bookkeeping of what the
caller was given and what is committed.  The embedded member (:mod:`kcli.groups.consumer`) coordinates
through the data directory, the remote one (:mod:`kcli.client.group_member`) through a coordinator."""

from __future__ import annotations

from collections.abc import Sequence

from kcli.client.consumer import RESETS, Consumer
from kcli.errors import UsageError
from kcli.groups.assignors import get_assignor

TopicPartition = tuple[str, int]


class GroupReader:
    """Settings and positions of one group member consuming ``topics``."""

    def __init__(
        self,
        transport,
        group: str,
        topics: Sequence[str],
        *,
        assignor: str,
        reset: str,
        commit_offsets: bool,
        commit_interval: float,
        exit_on_eof: bool,
        client_id: str,
        poll_interval: float,
    ) -> None:
        if reset not in RESETS:
            raise UsageError(f"unknown reset policy {reset!r}", hint="use earliest or latest")
        self.transport = transport
        self.group = group
        self.topics = list(topics)
        self.assignor = assignor
        self.assign = get_assignor(assignor)
        self.reset = reset
        self.commit_offsets = commit_offsets
        self.commit_interval = commit_interval
        self.exit_on_eof = exit_on_eof
        self.client_id = client_id
        self.consumer = Consumer(transport, poll_interval=poll_interval)
        self.assignment: set[TopicPartition] = set()
        self.delivered: dict[TopicPartition, int] = {}  # next offset after what the caller was given
        self.committed: dict[TopicPartition, int | None] = {}
        self._stop = False

    def stop(self) -> None:
        """Ask the stream to end at its next step (safe from a signal handler)."""
        self._stop = True

    def _forget(self, tp: TopicPartition) -> None:
        """A partition no longer ours: drop its position and bookkeeping."""
        self.consumer.positions.pop(tp, None)
        self.delivered.pop(tp, None)
        self.committed.pop(tp, None)
