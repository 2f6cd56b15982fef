"""``kcli lag``: how far consumer groups are behind, per partition and in total, for dashboards and alerts.

``--watch`` samples again every few seconds and shows which way lag moves, the messages per second
going in and out, and -- when a group already has a consumer on every partition yet falls further
behind -- that the topic needs more partitions (the one Kafka scaling step that more consumers cannot
replace).
"""

from __future__ import annotations

import time
from collections import deque

import click

from kcli.cli.output import emit_json, is_terminal, table
from kcli.errors import KcliError, NotFoundError

LAG_COLUMNS = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
WATCH_COLUMNS = [*LAG_COLUMNS, "TREND", "IN/S", "OUT/S"]
# samples kept for trends: enough to span a few commits at the default interval and commit interval
WATCH_HISTORY = 10


class LagExceededError(KcliError):
    """Total lag above --max-lag: exit 1 so cron or a monitor can alert."""


@click.command()
@click.option(
    "-g",
    "--group",
    "groups",
    multiple=True,
    metavar="GROUP",
    help="Only this group (repeatable) [default: every group].",
)
@click.option("-t", "--topic", "topics", multiple=True, metavar="TOPIC", help="Only this topic (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: partitions, per-group and total lag.")
@click.option(
    "--max-lag",
    type=click.IntRange(0),
    metavar="N",
    help="Exit 1 when the total lag is above N (after printing; with --watch, after the last refresh).",
)
@click.option(
    "-w", "--watch", is_flag=True, help="Refresh until interrupted, with trends, rates and scaling advice."
)
@click.option(
    "--interval",
    type=click.FloatRange(0.05),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="With --watch: time between refreshes.",
)
@click.option("--count", type=click.IntRange(1), metavar="N", help="With --watch: stop after N refreshes.")
@click.pass_obj
def lag(
    env,
    groups: tuple[str, ...],
    topics: tuple[str, ...],
    as_json: bool,
    max_lag: int | None,
    watch: bool,
    interval: float,
    count: int | None,
) -> None:
    """Show consumer lag: log end offset minus committed offset, per partition and in total.

    Partitions a group has no committed offset for show '-' and count as no lag.

    With --watch, each refresh adds TREND (lag growing, shrinking or steady, judged at the group's
    commits), IN/S (messages appended per second) and OUT/S (messages committed per second), a line
    per group and topic, and advice when a group with a consumer on every partition keeps falling
    behind.  On a terminal the table redraws in place; otherwise each refresh prints a block followed
    by a blank line (with --json, one JSON line).

    \b
    Examples:
      kcli lag
      kcli lag --group billing --topic orders --json
      kcli lag --group billing --max-lag 1000 || notify-send 'billing is behind'
      kcli lag --watch --interval 5
    """
    if not watch and count is not None:
        from kcli.errors import UsageError

        raise UsageError("--count needs --watch")
    if watch:
        total = _watch(env, groups, topics, as_json, interval, count)
    else:
        views = _views(env, groups, topics)
        total = _print_once(views, as_json)
    if max_lag is not None and total > max_lag:
        raise LagExceededError(f"total lag {total} is above --max-lag {max_lag}")


def _views(
    env, groups: tuple[str, ...], topics: tuple[str, ...], counts: dict[str, int] | None = None
) -> list:
    """describe_group for each chosen group (every known group when none is named; one deleted meanwhile
    is skipped); ``counts`` is filled with the partition count of each topic shown."""
    source = env.groups()
    views = []
    try:
        names = list(groups) or source.names()
        for name in names:
            try:
                views.append(source.describe(name, set(topics) if topics else None))
            except NotFoundError:
                if groups:
                    raise
        if counts is not None:
            for topic in {r.topic for v in views for r in v.partitions}:
                try:
                    counts[topic] = source.transport.partition_count(topic)
                except NotFoundError:
                    pass
    finally:
        source.close()
    return views


def _print_once(views: list, as_json: bool) -> int:
    rows = [r for v in views for r in v.partitions]
    total = sum(v.total_lag for v in views)
    if as_json:
        emit_json(
            {
                "partitions": [
                    {k: v for k, v in r.to_json().items() if k not in ("consumer_id", "host", "client_id")}
                    for r in rows
                ],
                "groups": {v.group: v.total_lag for v in views},
                "total_lag": total,
            }
        )
    else:
        table(LAG_COLUMNS, [r.cells()[:6] for r in rows])
        if is_terminal():
            click.echo(f"Total lag: {total}")
    return total


# ---------------------------------------------------------------- --watch


def _snapshot(env, groups: tuple[str, ...], topics: tuple[str, ...]):
    from kcli.groups.trend import Snapshot

    counts: dict[str, int] = {}
    views = _views(env, groups, topics, counts)
    offsets = {
        (r.group, r.topic, r.partition): (r.current_offset, r.log_end_offset)
        for v in views
        for r in v.partitions
    }
    members = {(v.group, t): sum(t in m.topics for m in v.members) for v in views for t in counts}
    return Snapshot(time.monotonic(), offsets, members, counts)


def _watch(
    env, groups: tuple[str, ...], topics: tuple[str, ...], as_json: bool, interval: float, count: int | None
) -> int:
    """Sample every ``interval`` seconds (on a fixed schedule, so rates are not skewed by the time a
    sample takes) and draw each refresh; returns the last total lag."""
    history: deque = deque(maxlen=WATCH_HISTORY)
    live = _LiveScreen() if is_terminal() and not as_json else None
    next_at = 0.0
    total = 0
    refresh = 0
    try:
        while True:
            history.append(_snapshot(env, groups, topics))
            next_at = (next_at or history[-1].at) + interval  # the first sample pays for imports
            refresh += 1
            report = _Report(list(history))
            total = report.total
            if as_json:
                emit_json(report.to_json())
            elif live is not None:
                live.show(report)
            else:
                report.echo(refresh, count)
            if count is not None and refresh >= count:
                return total
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:  # a sample took longer than the interval (or the machine slept): no burst to catch up
                next_at = time.monotonic()
    finally:
        if live is not None:
            live.stop()


class _Report:
    """One refresh: partition and group trends, advice, and their text, table and JSON forms."""

    def __init__(self, history: list) -> None:
        from kcli.cluster.advice import scale_out_advice
        from kcli.groups.trend import group_trends, partition_trends

        self.partitions = partition_trends(history)
        self.groups = group_trends(history, self.partitions)
        self.total = sum(p.lag or 0 for p in self.partitions)
        self.advice = [
            a
            for g in self.groups
            if (
                a := scale_out_advice(
                    g.group, g.topic, g.members, g.partitions, g.falling_behind, g.in_rate, g.out_rate
                )
            )
        ]

    def rows(self) -> list[list[object]]:
        return [
            [
                p.group,
                p.topic,
                p.partition,
                p.committed,
                p.log_end,
                p.lag,
                p.direction,
                _rate(p.in_rate),
                _rate(p.out_rate),
            ]
            for p in self.partitions
        ]

    def summary(self) -> list[str]:
        lines = []
        for g in self.groups:
            window = f" over {g.span:.1f} s" if g.span > 0 else ""
            lines.append(
                f"group {g.group}, topic {g.topic}: lag {g.lag} ({g.direction}), in {_rate(g.in_rate)}/s, "
                f"out {_rate(g.out_rate)}/s{window}; {g.members} consumer(s) for "
                f"{g.partitions} partition(s)"
            )
        lines.append(f"total lag: {self.total}")
        return lines + self.advice

    def echo(self, refresh: int, count: int | None) -> None:
        of = f" of {count}" if count is not None else ""
        click.echo(f"lag at {time.strftime('%Y-%m-%d %H:%M:%S')} (refresh {refresh}{of})")
        table(WATCH_COLUMNS, self.rows())
        for line in self.summary():
            click.echo(line)
        click.echo("")

    def to_json(self) -> dict:
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "partitions": [
                {
                    "group": p.group,
                    "topic": p.topic,
                    "partition": p.partition,
                    "current_offset": p.committed,
                    "log_end_offset": p.log_end,
                    "lag": p.lag,
                    "trend": p.direction,
                    "in_per_s": p.in_rate,
                    "out_per_s": p.out_rate,
                }
                for p in self.partitions
            ],
            "groups": [
                {
                    "group": g.group,
                    "topic": g.topic,
                    "lag": g.lag,
                    "trend": g.direction,
                    "in_per_s": g.in_rate,
                    "out_per_s": g.out_rate,
                    "window_s": g.span,
                    "members": g.members,
                    "partitions": g.partitions,
                    "falling_behind": g.falling_behind,
                }
                for g in self.groups
            ],
            "total_lag": self.total,
            "advice": self.advice,
        }


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class _LiveScreen:
    """The terminal view: a rich table redrawn in place, summary and advice under it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        from kcli.cli.output import use_color

        self.color = use_color()
        self.live = Live(console=Console(no_color=not self.color, highlight=False), auto_refresh=False)
        self.live.start()

    def show(self, report: _Report) -> None:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        t = Table(
            show_edge=False,
            header_style="bold" if self.color else None,
            title=f"lag at {time.strftime('%H:%M:%S')} (Ctrl-C to stop)",
        )
        for col in WATCH_COLUMNS:
            t.add_column(col)
        for row in report.rows():
            t.add_row(*("-" if v is None else str(v) for v in row))
        lines = [Text(line) for line in report.summary()[: -len(report.advice) or None]]
        lines += [Text(a, style="bold yellow" if self.color else "") for a in report.advice]
        self.live.update(Group(t, *lines), refresh=True)

    def stop(self) -> None:
        self.live.stop()
