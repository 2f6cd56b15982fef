"""Running a command's work as transactions: the one place where a failure, Ctrl-C or SIGTERM aborts the open transaction and becomes the exit status
(1 aborted by a failure, 130 by Ctrl-C, 143 by SIGTERM; kcli.cli.app turns the error into the exit)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from kcli.errors import KcliError, ProducerFencedError, TransactionAbortedError

if TYPE_CHECKING:
    from kcli.client.transactional import TransactionalProducer


class InterruptedAbortError(TransactionAbortedError):
    """A transaction aborted by Ctrl-C (SIGINT): exit status 130, as a shell reports SIGINT."""

    exit_code = 130


class TerminatedAbortError(TransactionAbortedError):
    """A transaction aborted by SIGTERM: exit status 143 (128 + 15), as a shell reports SIGTERM."""

    exit_code = 143


class _SigTerm(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt, past ``except Exception`` handlers."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise _SigTerm


@contextmanager
def aborting(producer: TransactionalProducer) -> Iterator[None]:
    """Run the body; when it fails or is stopped, abort the open transaction and raise the
    TransactionAbortedError (or subclass) that names the cause."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - every ending aborts; re-raised as the abort below
        if isinstance(exc, click.exceptions.Exit):
            raise
        error = _aborted(exc)
        if producer.in_transaction:
            try:
                producer.abort_transaction()
            except ProducerFencedError:
                pass  # a newer producer of the id, or the coordinator's timeout, has aborted it already
            except KcliError as failed:
                error = type(error)(f"{error.message}; the abort failed ({failed.message}): the coordinator "
                                    "aborts it when its timeout passes", hint=error.hint)
        raise error from exc
    finally:
        signal.signal(signal.SIGTERM, previous)


def _aborted(exc: BaseException) -> TransactionAbortedError:
    if isinstance(exc, KeyboardInterrupt):
        return InterruptedAbortError("transaction aborted: interrupted")
    if isinstance(exc, _SigTerm):
        return TerminatedAbortError("transaction aborted: terminated by SIGTERM")
    if isinstance(exc, TransactionAbortedError):
        return exc
    if isinstance(exc, KcliError):
        return TransactionAbortedError(f"transaction aborted: {exc.message}", hint=exc.hint)
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return TransactionAbortedError(f"transaction aborted: {reason}" + (f": {exc.filename}" if exc.filename else ""))
    return TransactionAbortedError(f"transaction aborted: {type(exc).__name__}: {exc}")
