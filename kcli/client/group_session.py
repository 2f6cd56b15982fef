"""The wire side of one consumer-group membership: the connection to the group's coordinator, and the
heartbeats that keep the membership alive.

The coordinator gets a connection of its own (not one shared with fetches): a JoinGroup may be held at
the broker for a whole rebalance timeout, longer than an ordinary request may take.  Heartbeats run on
a thread with yet another connection (Kafka's KIP-62 design), so a reader that is slow to take our
output does not cost the membership, and no socket is ever used by two threads.  The heartbeat thread
only *reports* that the group wants a rejoin; all group work happens on the caller's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from kcli.client.backoff import Backoff
from kcli.client.broker_pool import ATTEMPTS, BrokerPool
from kcli.client.coordinators import COORDINATOR_MOVED, find_coordinator
from kcli.client.kafka_errors import raise_for
from kcli.errors import KcliError, ProtocolError
from kcli.net.connection import BrokerConnection, UnreachableError
from kcli.protocol import ApiKey, ErrorCode, Struct

Address = tuple[str, int]


class Coordinator:
    """Requests to the coordinator of ``group``, found (again) through ``cluster`` when needed."""

    def __init__(self, cluster: BrokerPool, group: str, timeout: float, client_id: str) -> None:
        self.cluster = cluster
        self.group = group
        self.timeout = timeout
        self.client_id = client_id
        self.conn: BrokerConnection | None = None

    @property
    def address(self) -> Address:
        return self.connection().address  # type: ignore[return-value]

    def connection(self) -> BrokerConnection:
        if self.conn is None:
            found = find_coordinator(self.cluster, self.group)
            self.conn = BrokerConnection((found.host, found.port), self.timeout, client_id=self.client_id)
        return self.conn

    def send(self, api_key: int, body: Mapping[str, Any]) -> Struct:
        """One request; a lost connection is closed here and raised (the caller decides on a retry)."""
        conn = self.connection()
        try:
            return conn.request(api_key, body)
        except (UnreachableError, ProtocolError):
            self.forget()
            raise

    def version(self, api_key: int) -> int:
        return self.connection().version(api_key)

    def ask(self, api_key: int, body: Mapping[str, Any], error_of: Callable[[Struct], int], what: str) -> Struct:
        """``send`` with retries while the coordinator moves or its connection drops; other errors (as
        ``error_of`` reads them from the response) are raised as kcli errors."""
        backoff = Backoff()
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            try:
                resp = self.send(api_key, body)
            except UnreachableError:
                if last:
                    raise
                code: int = ErrorCode.COORDINATOR_NOT_AVAILABLE
            else:
                code = error_of(resp)
                if code == ErrorCode.NONE:
                    return resp
                if code not in COORDINATOR_MOVED or last:
                    raise_for(code, None, what)
                self.forget()
            backoff.sleep()
        raise AssertionError("unreachable")  # pragma: no cover

    def forget(self) -> None:
        """Drop the connection; the next request finds the coordinator again (it may have moved)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Heartbeats:
    """Heartbeats every ``interval`` seconds for the generation given to :meth:`follow`.

    ``needs_rejoin`` holds the error code (REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, ...) once the
    coordinator says the current generation is over; a failed connection counts as
    COORDINATOR_NOT_AVAILABLE.  Errors never escape the thread."""

    def __init__(self, group: str, interval: float, timeout: float, client_id: str) -> None:
        self.group = group
        self.interval = interval
        self.timeout = timeout
        self.client_id = client_id
        self._lock = threading.Lock()
        self._target: tuple[Address, int, str] | None = None  # (coordinator, generation, member id)
        self.needs_rejoin: int | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kcli-heartbeat", daemon=True)
        self._thread.start()

    def follow(self, address: Address, generation: int, member_id: str) -> None:
        with self._lock:
            self._target = (address, generation, member_id)
            self.needs_rejoin = None

    def flag(self, code: int) -> None:
        """The caller learnt (from a refused commit) that the generation is over."""
        with self._lock:
            self.needs_rejoin = code

    def pause(self) -> None:
        """No heartbeats while (re)joining: the pending JoinGroup keeps the member alive."""
        with self._lock:
            self._target = None

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        conn: BrokerConnection | None = None
        while not self._stopped.wait(self.interval):
            with self._lock:
                target = self._target
            if target is None:
                continue
            address, generation, member_id = target
            try:
                if conn is None or conn.address != address:
                    if conn is not None:
                        conn.close()
                    conn = None
                    conn = BrokerConnection(address, self.timeout, client_id=self.client_id)
                body = {"group_id": self.group, "generation_id": generation, "member_id": member_id}
                code = conn.request(ApiKey.HEARTBEAT, body).error_code
            except KcliError:
                if conn is not None:
                    conn.close()
                conn = None
                code = ErrorCode.COORDINATOR_NOT_AVAILABLE
            if code != ErrorCode.NONE:
                with self._lock:
                    if self._target == target:
                        self.needs_rejoin = code
        if conn is not None:
            conn.close()
