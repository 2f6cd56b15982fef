"""Which API versions clients really used against a kcli broker, to prove they negotiate the versions
kcli advertises (not just that the test passed on some older version).

Start the broker with :data:`LOG_REQUESTS` (``kcli broker serve -v``): it then logs each request's API,
version and client id at debug level, and :func:`versions_used` reads them back from its log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from support.brokers import BrokerProcess

LOG_REQUESTS = ("-v",)  # extra `broker serve` arguments
_REQUEST = re.compile(r"request (\w+) v(\d+) from client (.*)$", re.M)


def versions_used(broker: BrokerProcess, client: str | None = None) -> dict[str, set[int]]:
    """API name -> the versions requests came in, from clients whose id contains ``client`` (any)."""
    used: dict[str, set[int]] = {}
    for api, version, client_id in _REQUEST.findall(broker.log()):
        if client is None or client in client_id:
            used.setdefault(api, set()).add(int(version))
    return used


def assert_negotiated(broker: BrokerProcess, expected: Mapping[str, int], client: str | None = None) -> None:
    """Every API in ``expected`` was used, by ``client``, in exactly that version (its newest that kcli
    serves: a client negotiates min(its max, ours) and keeps to it)."""
    used = versions_used(broker, client)
    got = {api: used.get(api) for api in expected}
    assert got == {api: {v} for api, v in expected.items()}, (
        f"versions used by {client or 'any client'}: {used}"
    )
