"""Output helpers: rich tables on a terminal, tab-separated text when piped, JSON on request.

rich is imported only when a table is actually drawn on a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import click


def is_terminal() -> bool:
    return sys.stdout.isatty()


def use_color() -> bool:
    """Colour only on a terminal, and not when NO_COLOR is set to a non-empty value (no-color.org)."""
    return is_terminal() and not os.environ.get("NO_COLOR")


def tsv_cell(value: str) -> str:
    r"""A cell of a tab-separated line: a backslash, tab, newline or carriage return inside it is written as
    ``\\``, ``\t``, ``\n``, ``\r`` so that every row stays one line with the same number of fields."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def emit_json(obj: object) -> None:
    click.echo(json.dumps(obj, separators=(",", ":"), default=str))


def table(columns: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    """A rich table on a terminal; otherwise a header line and tab-separated rows."""
    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title, show_edge=False, header_style="bold" if use_color() else None)
        for col in columns:
            t.add_column(col)
        for row in cells:
            t.add_row(*row)
        Console(no_color=not use_color(), highlight=False).print(t)
        return
    click.echo("\t".join(columns))
    for row in cells:
        click.echo("\t".join(tsv_cell(c) for c in row))


def progress(total: int, description: str):
    """A rich progress bar on a terminal (stderr), or a no-op context elsewhere."""
    if not sys.stderr.isatty():
        return _NoProgress()
    from rich.console import Console
    from rich.progress import Progress

    return _RichProgress(Progress(console=Console(stderr=True), transient=True), total, description)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None


class _RichProgress:
    def __init__(self, bar, total: int, description: str) -> None:
        self.bar = bar
        self.total = total
        self.description = description

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        self.task = self.bar.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)
