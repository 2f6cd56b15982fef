"""What every request handler gets: this broker's identity, its data dir and its shared state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from kcli.broker.partitions import LedPartitions
from kcli.broker.settings import BrokerSettings
from kcli.cluster.broker_info import BrokerInfo, LiveBrokers
from kcli.cluster.datadir import DataDir
from kcli.cluster.producers import ProducerIds


@dataclass
class BrokerContext:
    broker_id: int
    datadir: DataDir
    partitions: LedPartitions
    peers: LiveBrokers
    producer_ids: ProducerIds
    settings: BrokerSettings = field(default_factory=BrokerSettings)
    # this broker's own listener, known before broker.json is written
    info: BrokerInfo | None = None
    # {api_key: (min, max)} answered in ApiVersions: exactly the APIs with a handler
    advertised: dict[int, tuple[int, int]] = field(default_factory=dict)
    # services made on the first request that needs them (see made_once), by name
    services: dict[str, object] = field(default_factory=dict)

    @property
    def auto_create(self) -> bool:
        return self.settings.auto_create

    def broker_info(self, broker_id: int) -> BrokerInfo | None:
        if broker_id == self.broker_id and self.info is not None:
            return self.info
        return self.peers.get().get(broker_id)

    def live_ids(self) -> set[int]:
        return set(self.peers.get()) | {self.broker_id}


_T = TypeVar("_T")
_services_lock = threading.Lock()


def made_once(ctx: BrokerContext, name: str, make: Callable[[BrokerContext], _T]) -> _T:
    """The broker's ``name`` service, made by ``make`` on first use: a broker that never sees a group or
    transaction request never starts their machinery, and two first requests at once share one."""
    found = ctx.services.get(name)
    if found is None:
        with _services_lock:
            found = ctx.services.get(name)
            if found is None:
                found = ctx.services[name] = make(ctx)
    return cast(_T, found)
