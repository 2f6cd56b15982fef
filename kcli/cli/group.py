"""``kcli group``: list, describe, reset-offsets and delete consumer groups (kafka-consumer-groups)."""

from __future__ import annotations

import click

from kcli.cli.output import emit_json, is_terminal, table
from kcli.errors import NotFoundError, UsageError


def _transport(env):
    from kcli.client.connect import open_transport

    return open_transport(env.datadir(), auto_create=False)


@click.group()
def group() -> None:
    """List, describe, reset and delete consumer groups."""


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(env, as_json: bool) -> None:
    """List consumer groups.

    Names only when piped; with type (classic or consumer: KIP-848), state and member count on a
    terminal or with --json.
    """
    source = env.groups()
    try:
        names = source.names()
        if not as_json and not is_terminal():
            for name in names:
                click.echo(name)
            return
        views = []
        for name in names:
            try:
                views.append(source.describe(name))
            except NotFoundError:
                continue  # deleted since we listed it
    finally:
        source.close()
    rows = [(v.group, v.group_type, v.state, len(v.members)) for v in views]
    if as_json:
        emit_json([{"group": n, "type": t, "state": s, "members": m} for n, t, s, m in rows])
    else:
        table(["GROUP", "TYPE", "STATE", "#MEMBERS"], rows)


@group.command("describe")
@click.argument("groups", nargs=-1)
@click.option("--all-groups", is_flag=True, help="Describe every group.")
@click.option(
    "--members",
    "view",
    flag_value="members",
    help="Show members: id, host, client id, member epoch (consumer groups), assignment.",
)
@click.option(
    "--state",
    "view",
    flag_value="state",
    help="Show state: type, coordinator, assignment strategy, state, generation (a consumer group's epoch), "
    "member count.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the full description, whatever the view).")
@click.pass_obj
def describe(env, groups: tuple[str, ...], all_groups: bool, view: str | None, as_json: bool) -> None:
    """Describe consumer groups: offsets, lag, members, state.

    Shows the committed offset, log end offset, lag and owner of each partition of GROUPS.

    \b
    Examples:
      kcli group describe billing
      kcli group describe billing --members
      kcli group describe --all-groups --state
    """
    from kcli.groups.view import PARTITION_COLUMNS

    if all_groups == bool(groups):
        raise UsageError("name the groups to describe or use --all-groups, one of the two")
    source = env.groups()
    try:
        names = source.names() if all_groups else list(groups)
        views = [source.describe(name) for name in names]
    finally:
        source.close()
    if as_json:
        emit_json([v.to_json() for v in views])
        return
    if view == "state":
        table(
            ["GROUP", "TYPE", "COORDINATOR", "ASSIGNMENT-STRATEGY", "STATE", "GENERATION", "#MEMBERS"],
            [
                (v.group, v.group_type, v.coordinator, v.assignor, v.state, v.generation, len(v.members))
                for v in views
            ],
        )
        return
    if view == "members":
        rows = []
        for v in views:
            for m in v.members:
                parts = v.assignment.get(m.member_id, [])
                epoch = v.member_epochs.get(m.member_id)
                rows.append(
                    (v.group, m.member_id, m.host, m.client_id, epoch, len(parts), _assignment_text(parts))
                )
        table(["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "EPOCH", "#PARTITIONS", "ASSIGNMENT"], rows)
        return
    for v in views:
        if not v.members:
            click.echo(f"Consumer group {v.group!r} has no active members.", err=True)
    table(PARTITION_COLUMNS, [r.cells() for v in views for r in v.partitions])


def _assignment_text(parts: list[tuple[str, int]]) -> str:
    """Kafka's ``topic(0,1,2)`` notation; '-' when idle."""
    by_topic: dict[str, list[int]] = {}
    for t, p in parts:
        by_topic.setdefault(t, []).append(p)
    return ", ".join(f"{t}({','.join(map(str, ps))})" for t, ps in sorted(by_topic.items())) or "-"


@group.command("reset-offsets")
@click.argument("name", metavar="GROUP")
@click.option(
    "-t",
    "--topic",
    "topics",
    multiple=True,
    metavar="TOPIC[:P,...]",
    help="Reset this topic, or only the listed partitions (repeatable).",
)
@click.option("--all-topics", is_flag=True, help="Reset every topic the group has committed offsets for.")
@click.option("--to-earliest", "target", flag_value="earliest", help="To the log start offset.")
@click.option("--to-latest", "target", flag_value="latest", help="To the log end offset.")
@click.option("--to-offset", type=click.IntRange(0), metavar="N", help="To offset N (clamped into the log).")
@click.option("--shift-by", type=int, metavar="N", help="Move the committed offset by N (may be negative).")
@click.option("--to-datetime", metavar="ISO8601", help="To the first offset at or after this time.")
@click.option("--by-duration", metavar="PnDTnHnM", help="To the first offset at or after this long ago.")
@click.option("--execute", is_flag=True, help="Apply the plan (without it: print the plan only).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
def reset_offsets(
    env,
    name: str,
    topics: tuple[str, ...],
    all_topics: bool,
    target: str | None,
    to_offset: int | None,
    shift_by: int | None,
    to_datetime: str | None,
    by_duration: str | None,
    execute: bool,
    as_json: bool,
) -> None:
    """Reset committed offsets of GROUP.

    A dry run unless --execute; only for a group with no live members.  Prints GROUP TOPIC PARTITION NEW-OFFSET.

    \b
    Examples:
      kcli group reset-offsets billing --topic orders --to-earliest
      kcli group reset-offsets billing --topic orders:0,1 --shift-by -10 --execute
      kcli group reset-offsets billing --all-topics --by-duration PT1H --execute
    """
    from kcli.groups import reset
    from kcli.groups.membership import require_no_live_members
    from kcli.groups.offsets import OffsetStore

    chosen = [
        (k, v)
        for k, v in (
            ("target", target),
            ("offset", to_offset),
            ("shift", shift_by),
            ("datetime", to_datetime),
            ("duration", by_duration),
        )
        if v is not None
    ]
    if len(chosen) != 1:
        raise UsageError(
            "choose one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime, --by-duration"
        )
    kind, value = chosen[0]
    if kind == "target":
        spec = reset.ResetSpec(str(value))
    elif kind == "datetime":
        spec = reset.ResetSpec("timestamp", reset.parse_datetime(str(value)))
    elif kind == "duration":
        spec = reset.duration_spec(str(value))
    else:
        spec = reset.ResetSpec(kind, int(value))

    datadir = env.datadir()
    store = OffsetStore(datadir)
    check_empty = require_no_live_members(datadir, name, "reset offsets of")
    check_empty()
    transport = _transport(env)
    try:
        committed = store.fetch(name)
        partitions = reset.parse_scope(transport, topics, committed, all_topics)
        planned = reset.plan(transport, partitions, committed, spec)
    finally:
        transport.close(durable=False)
    if execute:
        store.commit(name, planned, precondition=check_empty)
    rows = [(name, t, p, o) for (t, p), o in sorted(planned.items())]
    if as_json:
        emit_json([{"group": g, "topic": t, "partition": p, "new_offset": o} for g, t, p, o in rows])
    else:
        table(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], rows)
    if not execute:
        click.echo("Dry run: nothing changed (add --execute to apply).", err=True)


@group.command("delete")
@click.argument("names", metavar="GROUP...", nargs=-1, required=True)
@click.pass_obj
def delete(env, names: tuple[str, ...]) -> None:
    """Delete consumer groups and their committed offsets.

    Refused for a group with live members.
    """
    from kcli.groups.membership import require_no_live_members
    from kcli.groups.offsets import OffsetStore

    datadir = env.datadir()
    store = OffsetStore(datadir)
    for name in names:
        store.delete_group(name, precondition=require_no_live_members(datadir, name, "delete"))
        click.echo(f"Deleted consumer group {name!r}.", err=True)
