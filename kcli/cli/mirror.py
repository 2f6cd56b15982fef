"""``kcli mirror``: copy a topic from the data dir to a Kafka-protocol cluster, or from one into the data
dir -- the way off (or onto) one machine.  The copying and resuming live in :mod:`kcli.client.mirror`;
this module picks the two sides, shows progress and prints the summary."""

from __future__ import annotations

import time

import click

from kcli.cli.options import compression_option
from kcli.errors import UsageError


@click.command()
@click.argument("topic")
@click.option(
    "--to",
    "to_server",
    metavar="HOST:PORT[,HOST:PORT]",
    help="Copy TOPIC from the data directory to the cluster at this address.",
)
@click.option(
    "--from",
    "from_server",
    metavar="HOST:PORT[,HOST:PORT]",
    help="Copy TOPIC from the cluster at this address into the data directory.",
)
@click.option("--to-topic", metavar="NAME", help="Name of the copy [default: TOPIC].")
@click.option(
    "--follow",
    is_flag=True,
    help="Keep copying new records until interrupted [default: copy up to the end offsets at start, "
    "then exit].",
)
@compression_option("Batch compression codec of the copy.")
@click.option(
    "-r",
    "--replication-factor",
    type=click.IntRange(1),
    metavar="N",
    help="Replication factor when the target topic has to be created [default: the cluster's default; "
    "1 in the data directory].",
)
@click.option(
    "--batch-bytes",
    type=click.IntRange(1024),
    default=1 << 20,
    show_default=True,
    metavar="BYTES",
    help="Read and send at most this much per partition at a time (a checkpoint follows each).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_obj
def mirror(
    env,
    topic: str,
    to_server: str | None,
    from_server: str | None,
    to_topic: str | None,
    follow: bool,
    compression: str,
    replication_factor: int | None,
    batch_bytes: int,
    as_json: bool,
) -> None:
    """Copy TOPIC between the data directory and a Kafka-protocol cluster.

    Keys, values, headers and timestamps are kept, and every record stays in its partition number; a
    missing target topic is created with the same partition count, and a target with fewer partitions is
    refused.  Progress is checkpointed after every acknowledged chunk in
    DIR/cluster/mirror/<to|from>-<topic>-<server>[-<target topic>].json, so a rerun after an interruption
    continues there and never sends an acknowledged record twice.  The target topic should be written by
    this mirror alone.

    \b
    Examples:
      kcli mirror orders --to kafka1:9092,kafka2:9092
      kcli mirror orders --to kafka1:9092 --to-topic orders-archive --follow
      kcli mirror orders --from kafka1:9092 -z lz4
    """
    from kcli.client.mirror import Checkpoint, Mirror, checkpoint_path
    from kcli.cluster.metadata import validate_topic_name
    from kcli.storage.compression import codec_id

    if bool(to_server) == bool(from_server):
        raise UsageError("give exactly one of --to HOST:PORT and --from HOST:PORT")
    server = to_server or from_server
    assert server is not None  # exactly one is given, checked above
    direction = "to" if to_server else "from"
    target_topic = to_topic or topic
    validate_topic_name(topic)
    validate_topic_name(target_topic)
    datadir = env.local_datadir()
    local = _local_side(datadir, replication_factor)
    remote = _remote_side(server, replication_factor)
    source, target = (local, remote) if direction == "to" else (remote, local)
    identity = {"direction": direction, "topic": topic, "server": server, "target_topic": target_topic}
    checkpoint = Checkpoint(checkpoint_path(datadir, direction, topic, server, target_topic), identity)
    job = Mirror(
        source, target, topic, target_topic, checkpoint, codec=codec_id(compression), batch_bytes=batch_bytes
    )
    started = time.monotonic()
    checkpoint.acquire()
    try:
        result = job.prepare()
        for warning in result.warnings:
            click.echo(f"kcli: warning: {warning}", err=True)
        if result.created:
            click.echo(
                f"Created topic {target_topic} with {result.partitions} partition(s) at {target.label}.",
                err=True,
            )
        try:
            _copy(job, follow, result.remaining, f"{topic} -> {target.label}")
        except KeyboardInterrupt:
            _summary(job, source, target, time.monotonic() - started, as_json, interrupted=True)
            raise
    finally:
        checkpoint.release()
        source.transport.close(durable=False)
        target.transport.close(durable=True)
    _summary(job, source, target, time.monotonic() - started, as_json)


def _local_side(datadir, replication_factor: int | None):
    from kcli.client.admin import Admin
    from kcli.client.connect import open_transport
    from kcli.client.mirror import Endpoint

    def create(name: str, partitions: int) -> None:
        Admin(datadir).create_topic(name, partitions, replication_factor or 1)

    return Endpoint(open_transport(datadir, auto_create=False), create, "the data directory")


def _remote_side(server: str, replication_factor: int | None):
    from kcli.client.cluster_admin import ClusterAdmin
    from kcli.client.mirror import Endpoint
    from kcli.client.remote import RemoteTransport

    def create(name: str, partitions: int) -> None:
        admin = ClusterAdmin(server)
        try:
            # -1: the cluster's default.replication.factor (CreateTopics v4+)
            admin.create_topic(name, partitions, replication_factor or -1)
        finally:
            admin.close()

    return Endpoint(RemoteTransport(bootstrap=server, auto_create=False), create, server)


def _copy(job, follow: bool, total: int, description: str) -> None:
    from kcli.cli.output import progress

    with progress(total, description) as bar:
        job.run(follow=follow, on_progress=bar.advance)


def _summary(job, source, target, seconds: float, as_json: bool, interrupted: bool = False) -> None:
    from kcli.cli.output import emit_json

    r = job.result
    if as_json:
        emit_json(
            {
                "topic": job.topic,
                "target_topic": job.target_topic,
                "from": source.label,
                "to": target.label,
                "partitions": r.partitions,
                "copied": r.copied,
                "recovered": r.recovered,
                "created": r.created,
                "resumed": r.resumed,
                "interrupted": interrupted,
                "seconds": round(seconds, 3),
                "checkpoint": job.checkpoint.path,
            }
        )
        return
    line = (
        f"{'Interrupted: ' if interrupted else ''}mirrored {r.copied} record(s) of {job.topic} "
        f"({r.partitions} partition(s)) from {source.label} to {target.label}"
    )
    if job.target_topic != job.topic:
        line += f" as {job.target_topic}"
    line += f" in {seconds:.1f} s"
    if not (r.copied or r.recovered or interrupted):
        line += " (already up to date)"
    if r.recovered:
        line += f"; {r.recovered} record(s) sent by an interrupted run were already there"
    if interrupted:
        line += "; run it again to continue"
    click.echo(line[0].upper() + line[1:] + ".", err=True)
