"""``kcli leader-election`` and ``kcli reassign``: moving leadership and replicas."""

from __future__ import annotations

import json

import click

from kcli.errors import UsageError


def _targets(state, topic: str | None, partition: int | None, all_: bool) -> list[tuple[str, int]]:
    if all_ == bool(topic):
        raise UsageError("give either --topic (with optional --partition) or --all")
    if partition is not None and not topic:
        raise UsageError("--partition needs --topic")
    if all_:
        return [(t.name, p) for t in state.topics.values() for p in range(len(t.partitions))]
    assert topic is not None  # given exactly when --all is not
    meta = state.topic(topic)
    if partition is not None:
        state.partition(topic, partition)
        return [(topic, partition)]
    return [(topic, p) for p in range(len(meta.partitions))]


@click.command("leader-election")
@click.option(
    "--preferred", "mode", flag_value="preferred", help="Move leadership to each partition's first replica."
)
@click.option(
    "--unclean",
    "mode",
    flag_value="unclean",
    help="Give a leaderless partition any live replica as leader, accepting data loss.",
)
@click.option("-t", "--topic", help="Only this topic.")
@click.option("-p", "--partition", type=click.IntRange(0), help="Only this partition (with --topic).")
@click.option("--all", "all_", is_flag=True, help="Every partition of every topic.")
@click.pass_obj
def leader_election(env, mode: str | None, topic: str | None, partition: int | None, all_: bool) -> None:
    """Run a preferred or unclean leader election (prints one line per change).

    While brokers run, only a running broker can become leader: the election goes to a broker as Kafka's
    ElectLeaders request, and the brokers hand the partition over."""
    from kcli.client.elections import run_election
    from kcli.cluster.metadata import Metadata

    if mode is None:
        raise UsageError("choose --preferred or --unclean")
    datadir = env.datadir()
    targets = _targets(Metadata(datadir).ensure(), topic, partition, all_)
    changes = run_election(datadir, mode, targets)
    for change in changes:
        click.echo(change.describe())
    if not changes:
        click.echo("No partition needed an election.", err=True)


@click.command("reassign")
@click.option("-t", "--topic", help="Topic of the partition to move (or to cancel the move of).")
@click.option("-p", "--partition", type=click.IntRange(0), help="Partition to move (or to cancel the move of).")
@click.option("-r", "--replicas", metavar="B1,B2,...", help="New replica list, preferred leader first.")
@click.option(
    "--reassignment-json-file",
    "--plan",
    "plan_file",
    type=click.File("r"),
    metavar="FILE",
    help='Kafka\'s reassignment JSON file: {"version": 1, "partitions": [{"topic", "partition", "replicas"}]}.',
)
@click.option("--execute", is_flag=True, help="Do it (without this, print the plan only).")
@click.option("--list", "list_", is_flag=True, help="List the reassignments in progress, as Kafka's --list.")
@click.option("--cancel", is_flag=True, help="Cancel the reassignment of --topic/--partition (or of the file's "
              "partitions): back to its original replicas.")
@click.pass_obj
def reassign(
    env, topic: str | None, partition: int | None, replicas: str | None, plan_file, execute: bool, list_: bool,
    cancel: bool,
) -> None:
    """Move partition replicas between brokers, copying data to new replicas (dry run by default); list
    or cancel the reassignments in progress.

    While brokers run, the new replicas' brokers must run too: the move goes to a broker as Kafka's
    AlterPartitionReassignments request, the new replicas fetch the partition from its leader, and the
    controller drops the old replicas once the new ones are in sync; the command waits (with progress)
    until then. Without brokers, the data is copied here. A plan is checked whole before anything
    moves. --list and --cancel use ListPartitionReassignments and AlterPartitionReassignments while
    brokers run; without brokers, the moves that stopped brokers left in progress."""
    from kcli.client.elections import check_plan

    datadir = env.datadir()
    if list_:
        if topic or partition is not None or replicas or plan_file or execute or cancel:
            raise UsageError("--list takes no other option")
        _list(datadir)
        return
    if cancel:
        if replicas or execute:
            raise UsageError("--cancel takes --topic and --partition, or --reassignment-json-file")
        _cancel(datadir, topic, partition, plan_file)
        return
    plan = _plan(topic, partition, replicas, plan_file)
    check_plan(datadir, plan)
    _move(datadir, plan, execute)


def _list(datadir) -> None:
    from kcli.client.elections import list_reassignments

    found = list_reassignments(datadir)
    if not found:
        click.echo("No partition reassignments found.")
        return
    click.echo("Current partition reassignments:")
    for r in found:
        click.echo(f"{r.topic}-{r.partition}: replicas: {_ids(r.replicas)}. adding: {_ids(r.adding)}. "
                   f"removing: {_ids(r.removing)}.")


def _ids(brokers: list[int]) -> str:
    return ",".join(map(str, brokers))


def _cancel(datadir, topic: str | None, partition: int | None, plan_file) -> None:
    from kcli.client.elections import cancel_reassignments

    if plan_file is not None:
        if topic or partition is not None:
            raise UsageError("use either --reassignment-json-file or --topic/--partition")
        keys = [(t, p) for t, p, _r in _read_plan(plan_file)]
    elif topic is None or partition is None:
        raise UsageError("--cancel needs --topic and --partition (or --reassignment-json-file)")
    else:
        keys = [(topic, partition)]
    cancel_reassignments(datadir, keys)
    for t, p in keys:
        click.echo(f"{t}-{p}: reassignment cancelled")


def _move(datadir, plan, execute: bool) -> None:
    from kcli.cli.output import progress
    from kcli.client.elections import reassign as do_reassign
    from kcli.client.elections import replica_leo
    from kcli.cluster.metadata import Metadata

    state = Metadata(datadir).ensure()
    for t, p, reps in plan:
        click.echo(f"{t}-{p}: replicas {_ids(state.partition(t, p).replicas)} -> {_ids(reps)}")
    if not execute:
        click.echo("Dry run: add --execute to move the replicas.", err=True)
        return
    for t, p, reps in plan:
        meta = state.partition(t, p)
        new = [b for b in reps if b not in meta.isr]
        total = len(new) * max(0, replica_leo(datadir, t, p, meta.leader)) if meta.leader >= 0 else 0
        with progress(total, f"copying {t}-{p}") as bar:
            click.echo(do_reassign(datadir, t, p, reps, progress=bar.advance), err=True)


def _plan(topic, partition, replicas, plan_file) -> list[tuple[str, int, list[int]]]:
    if plan_file is not None:
        if topic or replicas or partition is not None:
            raise UsageError("use either --reassignment-json-file or --topic/--partition/--replicas")
        return _read_plan(plan_file)
    if topic is None or partition is None or not replicas:
        raise UsageError("give --topic, --partition and --replicas, or --reassignment-json-file FILE")
    try:
        return [(topic, partition, [int(b) for b in replicas.split(",")])]
    except ValueError:
        raise UsageError(f"bad replica list {replicas!r}", hint="use broker ids like 1,2,0") from None


def _read_plan(plan_file) -> list[tuple[str, int, list[int]]]:
    """The moves of Kafka's reassignment JSON file (version 1; ``log_dirs``, when given, must be all
    "any": a kcli broker has one log dir).  Any fault is a UsageError naming it."""
    try:
        doc = json.load(plan_file)
    except ValueError as exc:
        raise UsageError(f"bad reassignment file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version", 1) != 1:
        raise UsageError("bad reassignment file: only version 1 is supported")
    entries = doc.get("partitions")
    if not isinstance(entries, list) or not entries:
        raise UsageError("bad reassignment file: \"partitions\" must be a non-empty list")
    plan = []
    for e in entries:
        if not (isinstance(e, dict) and isinstance(e.get("topic"), str) and _is_int(e.get("partition"))
                and isinstance(e.get("replicas"), list) and all(_is_int(b) for b in e["replicas"])):
            raise UsageError(f"bad reassignment file entry {json.dumps(e)}",
                             hint='each needs "topic" (string), "partition" (int) and "replicas" (ints)')
        dirs = e.get("log_dirs", ["any"] * len(e["replicas"]))
        if not isinstance(dirs, list) or len(dirs) != len(e["replicas"]) or any(d != "any" for d in dirs):
            raise UsageError(f"bad reassignment file entry {json.dumps(e)}: log_dirs other than \"any\"",
                             hint="a kcli broker has one log dir")
        plan.append((e["topic"], e["partition"], list(e["replicas"])))
    return plan


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
