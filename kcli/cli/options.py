"""Options several commands share, declared once so their names, choices and defaults cannot drift."""

from __future__ import annotations

from collections.abc import Callable

import click

from kcli.storage.compression import CODECS


def compression_option(help_text: str = "Batch compression codec.") -> Callable:
    """``-z/--compression`` with every codec kcli writes."""
    return click.option("-z", "--compression", type=click.Choice(list(CODECS)), default="none",
                        show_default=True, help=help_text)


def batch_size_option(help_text: str = "Send a batch when it holds this many bytes.") -> Callable:
    """``--batch-size`` in bytes, with the Kafka producer's default (batch.size 16384)."""
    return click.option("--batch-size", type=click.IntRange(1), default=16384, show_default=True, metavar="BYTES",
                        help=help_text)
