"""Topic admin for commands: straight on the data directory, or through a running broker while one lives
(it holds the replica locks a change needs, so commands never change topics behind its back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kcli.cluster.metadata import TopicMeta
from kcli.cluster.topics import TopicAdmin

if TYPE_CHECKING:
    from kcli.client.remote_admin import RemoteAdmin


class Admin(TopicAdmin):
    """:class:`TopicAdmin` that sends topic changes to a live broker when there is one."""

    def _broker(self) -> RemoteAdmin | None:  # imported lazily: the wire code is heavy
        from kcli.client.connect import live_brokers

        if not live_brokers(self.datadir):
            return None
        from kcli.client.remote_admin import RemoteAdmin

        return RemoteAdmin(self.datadir)

    def create_topic(self, name: str, partitions: int | None = None, replication_factor: int | None = None,
                     configs: dict[str, object] | None = None, if_not_exists: bool = False) -> TopicMeta:
        broker = self._broker()
        if broker is None:
            return super().create_topic(name, partitions, replication_factor, configs, if_not_exists)
        broker.create_topic(name, partitions, replication_factor, configs, if_not_exists)
        return self.metadata.load().topic(name)

    def add_partitions(self, name: str, total: int) -> TopicMeta:
        broker = self._broker()
        if broker is None:
            return super().add_partitions(name, total)
        if total != len(self.state().topic(name).partitions):  # equal is a no-op, as embedded
            broker.add_partitions(name, total)
        return self.metadata.load().topic(name)

    def delete_topic(self, name: str) -> None:
        broker = self._broker()
        if broker is None:
            super().delete_topic(name)
        else:
            broker.delete_topic(name)
