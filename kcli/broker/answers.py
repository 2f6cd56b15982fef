"""How a broker request answers an exception: the code from the one table
(:func:`kcli.protocol.error_codes.code_for`), and a log line when the failure is the broker's own.

A client is told what went wrong in the response; the broker's log keeps only what its operator must
see: a failure without a code of its own (a bug, or something the library did not name) or a disk.  The
data path (:func:`kcli.broker.handlers.answering`) logs more sparingly, as a full disk fails every
produce until it is cleared and stored damage is met by every retry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kcli.protocol.error_codes import DEFAULT, ErrorCode, code_for

log = logging.getLogger("kcli.broker")


def answer_for(
    exc: BaseException, what: str, overrides: Mapping[type[BaseException], ErrorCode] | None = None
) -> ErrorCode:
    """The code to answer ``exc`` with (``overrides``: the call site's own, see :func:`code_for`); the
    broker's own failures are logged as "``what`` failed"."""
    code = code_for(exc, overrides)
    if code in (DEFAULT, ErrorCode.KAFKA_STORAGE_ERROR):
        log.error("%s failed: %s", what, exc)
    return code
