"""Topic changes through a live broker: CreateTopics, DeleteTopics and CreatePartitions (the broker holds
the replica locks those changes need)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kcli.client.broker_pool import BrokerPool
from kcli.client.kafka_errors import raise_for
from kcli.cluster.datadir import DataDir
from kcli.errors import NotFoundError
from kcli.net.connection import REQUEST_TIMEOUT
from kcli.protocol import ApiKey, ErrorCode, Struct


class RemoteAdmin:
    """Topic changes through a live broker (it holds the replica locks they need)."""

    def __init__(
        self,
        datadir: DataDir | None = None,
        bootstrap: str | None = None,
        timeout: float = 2 * REQUEST_TIMEOUT,
    ) -> None:
        self.cluster = BrokerPool(datadir, bootstrap, timeout)
        self.timeout_ms = int(timeout * 1000)

    def _send(self, api_key: int, body: Mapping[str, Any]) -> Struct:
        try:
            return self.cluster.send(self.cluster.any(), api_key, body)
        finally:
            self.cluster.close()

    def create_topic(
        self,
        name: str,
        partitions: int | None,
        replication_factor: int | None,
        configs: Mapping[str, object] | None = None,
        if_not_exists: bool = False,
    ) -> None:
        entries = [{"name": k, "value": _config_text(v)} for k, v in (configs or {}).items()]
        body = {
            "topics": [
                {
                    "name": name,
                    "num_partitions": -1 if partitions is None else partitions,  # -1: the broker's default
                    "replication_factor": -1 if replication_factor is None else replication_factor,
                    "assignments": [],
                    "configs": entries,
                }
            ],
            "timeout_ms": self.timeout_ms,
            "validate_only": False,
        }
        result = self._send(ApiKey.CREATE_TOPICS, body).topics[0]
        if result.error_code == ErrorCode.TOPIC_ALREADY_EXISTS and if_not_exists:
            return
        raise_for(result.error_code, result.error_message, f"topic {name!r}")

    def delete_topic(self, name: str) -> None:
        # v6+ names topics in "topics" (by name or id), older versions in "topic_names"
        body = {"topics": [{"name": name, "topic_id": bytes(16)}], "topic_names": [name], "timeout_ms": self.timeout_ms}
        result = self._send(ApiKey.DELETE_TOPICS, body).responses[0]
        if result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise NotFoundError(f"topic {name!r} does not exist", hint="see `kcli topic list`")
        raise_for(result.error_code, None, f"topic {name!r}")

    def add_partitions(self, name: str, total: int) -> None:
        body = {
            "topics": [{"name": name, "count": total, "assignments": None}],
            "timeout_ms": self.timeout_ms,
            "validate_only": False,
        }
        result = self._send(ApiKey.CREATE_PARTITIONS, body).results[0]
        raise_for(result.error_code, result.error_message, f"topic {name!r}")


def _config_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
