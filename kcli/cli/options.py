"""Options several commands share, declared once so their names, choices and defaults cannot drift."""

from __future__ import annotations

from collections.abc import Callable

import click

from kcli.storage.compression import CODECS


def compression_option(help_text: str = "Batch compression codec.") -> Callable:
    """``-z/--compression`` with every codec kcli writes."""
    return click.option("-z", "--compression", type=click.Choice(list(CODECS)), default="none",
                        show_default=True, help=help_text)


# The command line batches more than the Kafka producer's batch.size (16384, which the library keeps): the
# Java producer keeps five requests in flight, kcli's sends one batch per request, and kcat (librdkafka)
# and rpk batch up to 1 MB.  256 KiB measured fastest in benchmarks/, through a broker most of all (about
# three times 16384's throughput), and stays well under max.message.bytes.
DEFAULT_BATCH_SIZE = 262144


def batch_size_option(help_text: str = "Send a batch when it holds this many bytes.") -> Callable:
    """``--batch-size`` in bytes (default: DEFAULT_BATCH_SIZE)."""
    return click.option("--batch-size", type=click.IntRange(1), default=DEFAULT_BATCH_SIZE, show_default=True,
                        metavar="BYTES", help=help_text)


ACKS = {"all": -1, "-1": -1, "1": 1, "0": 0}


def acks_option() -> Callable:
    """``--acks`` as Kafka's producer takes it: how many replicas must have a write before it counts."""
    return click.option("--acks", type=click.Choice(list(ACKS)), default="all", show_default=True,
                        help="Through brokers: all = every in-sync replica (with min.insync.replicas), "
                             "1 = the leader, 0 = no answer (offsets are then unknown: -1). Embedded writes "
                             "always reach every in-sync replica.")


def idempotence_option() -> Callable:
    """``--idempotence/--no-idempotence``: whether the producer numbers its batches (see
    :func:`idempotent`)."""
    return click.option("--idempotence/--no-idempotence", default=None,
                        help="Number batches (producer id and sequence) so that a retry after a lost answer or "
                             "a leader change is never stored twice or out of order. Default: on, except "
                             "with --acks 0 or 1 (as Kafka's producer).")


def idempotent(idempotence: bool | None, acks: str) -> bool | None:
    """The Producer's ``idempotence`` for the flag and ``--acks``: as Kafka's producer (3.0+), idempotence is
    the default but needs acks=all, so with fewer acks it is off unless asked for, and asking for it is an
    error.  None: on where the cluster supports it (a warning says when it does not)."""
    if idempotence and ACKS[acks] != -1:
        from kcli.errors import UsageError

        raise UsageError(f"--idempotence needs --acks all, not {acks}",
                         hint="drop --idempotence or use --acks all")
    if idempotence is None and ACKS[acks] != -1:
        return False
    return idempotence


def transaction_timeout_option() -> Callable:
    """``--transaction-timeout-ms``: how long a transaction may stay open before its coordinator aborts it."""
    from kcli.client.defaults import TRANSACTION_TIMEOUT_MS

    return click.option("--transaction-timeout-ms", type=click.IntRange(1), default=TRANSACTION_TIMEOUT_MS,
                        show_default=True, metavar="MS",
                        help="The coordinator aborts a transaction open longer than this; at most its "
                             "transaction.max.timeout.ms (900000 unless a broker is configured otherwise).")


def isolation_option(help_text: str) -> Callable:
    """``--isolation-level``: read_committed (the default) or read_uncommitted."""
    from kcli.client.defaults import ISOLATION_LEVELS, READ_COMMITTED

    return click.option("--isolation-level", "isolation", type=click.Choice(ISOLATION_LEVELS), default=READ_COMMITTED,
                        show_default=True, help=help_text)
