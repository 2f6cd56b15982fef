"""What every kind of group member shares: its settings, its consumer, and its bookkeeping of what the
caller was given and what is committed.  The embedded member (:mod:`kcli.client.embedded_group`)
coordinates through the data directory, the remote one (:mod:`kcli.client.group_member`) through a
coordinator; :func:`kcli.client.groups.open_group_member` picks one for a transport."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcli.client.consumer import RESETS, Consumer
from kcli.client.defaults import ISOLATION_LEVELS, READ_UNCOMMITTED
from kcli.errors import UsageError
from kcli.groups.assignors import get_assignor
from kcli.storage.records import Record

if TYPE_CHECKING:
    from kcli.client.transport import Transport  # a Protocol: for annotations only

TopicPartition = tuple[str, int]
GROUP_PROTOCOLS = ("classic", "consumer")  # Kafka's group.protocol


@dataclass(frozen=True)
class MemberSettings:
    """How a group member consumes and commits, whichever kind it is (checked when made).

    ``commit_interval`` is in seconds; ``exit_on_eof`` ends the stream once every assigned partition
    is read to the end it had when assigned."""

    assignor: str = "range"
    reset: str = "latest"
    commit_offsets: bool = True
    commit_interval: float = 5.0
    exit_on_eof: bool = False
    client_id: str = "kcli"
    isolation: str = READ_UNCOMMITTED  # read_committed: only committed transactions, up to the stable offset
    group_protocol: str = "classic"  # or "consumer": KIP-848, the coordinator assigns (a remote member only)

    def __post_init__(self) -> None:
        if self.reset not in RESETS:
            raise UsageError(f"unknown reset policy {self.reset!r}", hint="use earliest or latest")
        if self.isolation not in ISOLATION_LEVELS:
            raise UsageError(f"unknown isolation level {self.isolation!r}", hint="use read_committed or read_uncommitted")
        get_assignor(self.assignor)  # an unknown name is a usage error now, not at the first rebalance
        if self.group_protocol not in GROUP_PROTOCOLS:
            raise UsageError(f"unknown group protocol {self.group_protocol!r}", hint="use classic or consumer")


class GroupReader(ABC):
    """Settings and positions of one group member consuming ``topics``; the CLI drives any kind through
    start, stream, stop and close."""

    def __init__(
        self,
        transport: Transport,
        group: str,
        topics: Sequence[str],
        settings: MemberSettings,
        poll_interval: float,
    ) -> None:
        self.transport = transport
        self.group = group
        self.topics = list(topics)
        self.settings = settings
        self.assign = get_assignor(settings.assignor)
        self.consumer = Consumer(transport, poll_interval=poll_interval, isolation=settings.isolation)
        self.assignment: set[TopicPartition] = set()
        self.delivered: dict[TopicPartition, int] = {}  # next offset after what the caller was given
        self.committed: dict[TopicPartition, int | None] = {}
        self._stop = False

    @abstractmethod
    def start(self) -> None:
        """Join the group (the first assignment may come later, from the stream)."""

    @abstractmethod
    def stream(self) -> Iterator[tuple[str, int, Record] | None]:
        """(topic, partition, record) as they come; ``None`` before every commit and hand-over, when the
        caller must flush what it wrote out (only what it was given before is committed)."""

    @abstractmethod
    def close(self, commit: bool = True) -> None:
        """Leave the group, committing what was delivered unless ``commit`` is False."""

    def stop(self) -> None:
        """Ask the stream to end at its next step (safe from a signal handler)."""
        self._stop = True

    def _forget(self, tp: TopicPartition) -> None:
        """A partition no longer ours: drop its position and bookkeeping."""
        self.consumer.positions.pop(tp, None)
        self.delivered.pop(tp, None)
        self.committed.pop(tp, None)
