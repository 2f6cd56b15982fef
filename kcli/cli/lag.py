"""``kcli lag``: how far consumer groups are behind, per partition and in total, for dashboards and alerts."""

from __future__ import annotations

import click

from kcli.cli.output import emit_json, is_terminal, table
from kcli.errors import KcliError

LAG_COLUMNS = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]


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
    help="Exit 1 when the total lag is above N (after printing).",
)
@click.pass_obj
def lag(env, groups: tuple[str, ...], topics: tuple[str, ...], as_json: bool, max_lag: int | None) -> None:
    """Show consumer lag: log end offset minus committed offset, per partition and in total.

    Partitions a group has no committed offset for show '-' and count as no lag.

    \b
    Examples:
      kcli lag
      kcli lag --group billing --topic orders --json
      kcli lag --group billing --max-lag 1000 || notify-send 'billing is behind'
    """
    from kcli.client.connect import open_transport
    from kcli.groups.view import describe_group, list_groups

    datadir = env.datadir()
    names = list(groups) or list_groups(datadir)
    transport = open_transport(datadir, auto_create=False)
    try:
        views = [describe_group(datadir, transport, name, set(topics) if topics else None) for name in names]
    finally:
        transport.close(durable=False)
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
    if max_lag is not None and total > max_lag:
        raise LagExceededError(f"total lag {total} is above --max-lag {max_lag}")
