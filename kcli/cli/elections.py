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
@click.option("-t", "--topic", help="Topic of the partition to move.")
@click.option("-p", "--partition", type=click.IntRange(0), help="Partition to move.")
@click.option("-r", "--replicas", metavar="B1,B2,...", help="New replica list, preferred leader first.")
@click.option(
    "--plan",
    "plan_file",
    type=click.File("r"),
    metavar="FILE",
    help='A Kafka reassignment JSON file: {"partitions": [{"topic", "partition", "replicas"}]}.',
)
@click.option("--execute", is_flag=True, help="Do it (without this, print the plan only).")
@click.pass_obj
def reassign(
    env, topic: str | None, partition: int | None, replicas: str | None, plan_file, execute: bool
) -> None:
    """Move partition replicas between brokers, copying data to new replicas (dry run by default).

    While brokers run, the new replicas' brokers must run too: the move goes to a broker as Kafka's
    AlterPartitionReassignments request, the new replicas fetch the partition from its leader, and the
    controller drops the old replicas once the new ones are in sync; the command waits (with progress)
    until then. Without brokers, the data is copied here."""
    from kcli.cli.output import progress
    from kcli.client.elections import reassign as do_reassign
    from kcli.client.elections import replica_leo
    from kcli.cluster.metadata import Metadata

    plan = _plan(topic, partition, replicas, plan_file)
    datadir = env.datadir()
    state = Metadata(datadir).ensure()
    for t, p, reps in plan:
        meta = state.partition(t, p)
        click.echo(f"{t}-{p}: replicas {','.join(map(str, meta.replicas))} -> {','.join(map(str, reps))}")
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
        if topic or replicas:
            raise UsageError("use either --plan or --topic/--partition/--replicas")
        try:
            doc = json.load(plan_file)
            return [
                (e["topic"], int(e["partition"]), [int(b) for b in e["replicas"]]) for e in doc["partitions"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"bad reassignment plan: {exc}") from None
    if topic is None or partition is None or not replicas:
        raise UsageError("give --topic, --partition and --replicas, or --plan FILE")
    try:
        return [(topic, partition, [int(b) for b in replicas.split(",")])]
    except ValueError:
        raise UsageError(f"bad replica list {replicas!r}", hint="use broker ids like 1,2,0") from None
