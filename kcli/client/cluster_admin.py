"""Topic admin against a cluster reached by ``--bootstrap-server``: the :class:`~kcli.client.admin.Admin`
interface, answered from Metadata, ListOffsets and the topic requests instead of the data directory.

Why the same interface: ``kcli topic`` then prints a Kafka cluster's topics exactly as it prints local
ones, and the commands need only choose which admin to hold.  Topic ids come from Metadata v10+ (as the
hex kcli's own metadata keeps; empty from an older broker); configs are left empty.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from kcli.client.backoff import Backoff
from kcli.client.defaults import READ_COMMITTED
from kcli.client.remote import RemoteTransport
from kcli.client.remote_admin import RemoteAdmin
from kcli.cluster.metadata import ClusterState, PartitionMeta, TopicMeta
from kcli.errors import NotFoundError, UnavailableError
from kcli.protocol import ErrorCode
from kcli.protocol.types import ZERO_UUID

# how long a topic just created or grown may take to show in every broker's Metadata (Kafka propagates
# it asynchronously from the controller)
PROPAGATION_WAIT = 10.0


class ClusterAdmin:
    """Admin for a Kafka-protocol cluster; ``datadir`` is None so callers can tell the two apart."""

    datadir = None

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.transport = RemoteTransport(bootstrap=bootstrap, auto_create=False)

    def state(self) -> ClusterState:
        """Every topic the cluster's Metadata lists, as kcli's own metadata would describe it."""
        resp = self.transport.cluster.metadata(None)
        state = ClusterState()
        state.cluster_id = resp.cluster_id or ""
        state.brokers = sorted(b.node_id for b in resp.brokers)
        for t in resp.topics:
            if t.error_code != ErrorCode.NONE:
                continue
            parts = sorted(t.partitions, key=lambda p: p.partition_index)
            state.topics[t.name] = TopicMeta(
                t.name,
                t.topic_id.hex() if t.topic_id != ZERO_UUID else "",
                {},
                [
                    PartitionMeta(list(p.replica_nodes), p.leader_id, list(p.isr_nodes), p.leader_epoch)
                    for p in parts
                ],
            )
        return state

    def create_topic(
        self,
        name: str,
        partitions: int | None,
        replication_factor: int | None,
        configs: Mapping[str, object] | None = None,
        if_not_exists: bool = False,
    ) -> TopicMeta:
        """CreateTopics, then wait until Metadata shows the topic with a leader for every partition."""
        RemoteAdmin(bootstrap=self.bootstrap).create_topic(
            name, partitions, replication_factor, configs, if_not_exists
        )
        meta = self.wait_for_topic(name)
        meta.configs = dict(configs or {})  # what we asked for: Metadata does not echo configs
        return meta

    def add_partitions(self, name: str, total: int) -> TopicMeta:
        if total != len(self.state().topic(name).partitions):  # equal is a no-op, as on the data dir
            RemoteAdmin(bootstrap=self.bootstrap).add_partitions(name, total)
        return self.wait_for_topic(name, total)

    def delete_topic(self, name: str) -> None:
        RemoteAdmin(bootstrap=self.bootstrap).delete_topic(name)

    def wait_for_topic(self, name: str, partitions: int | None = None) -> TopicMeta:
        """The topic's metadata once it has ``partitions`` partitions (at least), each with a leader."""
        deadline = time.monotonic() + PROPAGATION_WAIT
        backoff = Backoff(cap=0.5)
        while True:
            meta = self.state().topics.get(name)
            if (
                meta is not None
                and all(p.leader >= 0 for p in meta.partitions)
                and (partitions is None or len(meta.partitions) >= partitions)
            ):
                return meta
            if time.monotonic() >= deadline:
                if meta is None:
                    raise NotFoundError(f"topic {name!r} does not show in the cluster's metadata")
                raise UnavailableError(f"topic {name!r} has partitions without a leader")
            backoff.sleep()

    def end_offsets(self, name: str) -> list[tuple[int | None, int | None, int | None]]:
        """(log start, log end, last stable offset) of each partition; Nones while it has no leader."""
        out: list[tuple[int | None, int | None, int | None]] = []
        for p, meta in enumerate(self.state().topic(name).partitions):
            if meta.leader < 0:
                out.append((None, None, None))
                continue
            out.append(
                (
                    self.transport.list_offset(name, p, "earliest"),
                    self.transport.list_offset(name, p, "latest"),
                    self.transport.list_offset(name, p, "latest", READ_COMMITTED),
                )
            )
        return out

    def close(self) -> None:
        self.transport.close(durable=False)
