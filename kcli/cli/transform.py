"""``kcli transform IN OUT --group G -- CMD ARGS...``: an exactly-once pipeline stage for cron."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import click

from kcli.cli.options import batch_size_option, transaction_timeout_option
from kcli.errors import TransactionAbortedError, UsageError


@click.command()
@click.argument("input_topic", metavar="IN")
@click.argument("output_topic", metavar="OUT")
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARG]...")
@click.option("-g", "--group", required=True, metavar="GROUP",
              help="The consumer group whose committed offsets on IN say what is new.")
@click.option("--reset", type=click.Choice(["earliest", "latest"]), default="earliest", show_default=True,
              help="Where to start a partition of IN for which GROUP has committed nothing.")
@click.option("-c", "--max-messages", type=click.IntRange(1), metavar="N",
              help="Take at most N input records this run (the rest waits for the next run).")
@click.option("--transactional-id", metavar="ID",
              help="The transactional id of this stage [default: kcli-transform.GROUP.IN]; a run fences "
                   "any other still running with the same id.")
@transaction_timeout_option()
@batch_size_option()
@click.option("--linger-ms", type=click.IntRange(0), default=5, show_default=True, metavar="MS",
              help="Send pending output when CMD's output pauses this long.")
@click.option("--null-value", metavar="TOKEN",
              help="Write a null input value (a tombstone) to CMD as the line TOKEN, and produce each line CMD "
                   "prints that equals TOKEN as a null value [default: a null is written as an empty line].")
@click.pass_obj
def transform(env, input_topic: str, output_topic: str, command: tuple[str, ...], group: str, reset: str,
              max_messages: int | None, transactional_id: str | None, transaction_timeout_ms: int,
              batch_size: int, linger_ms: int, null_value: str | None) -> None:
    """Pipe what is new for GROUP on IN through CMD into OUT, exactly once.

    Reads the records of IN after GROUP's committed offsets (read_committed, up to the end as it is at
    the start, like `consume -e`), writes their values to CMD's stdin one per line, produces each line
    CMD prints to OUT, and commits the output and GROUP's new offsets in one transaction.  If CMD exits
    non-zero, or kcli is stopped or killed, nothing of the run is visible in OUT to read_committed
    consumers and the offsets do not move: the next run processes the same input again.  CMD does not
    run when nothing is new.  Values must not contain newlines (each line is one record either way).
    Output records have no key, so OUT must not be a compacted topic (refused before anything runs).  A
    null value is written to CMD as an empty line, like an empty value, unless --null-value TOKEN tells
    them apart (as `produce --null-value` does): then it is written as TOKEN, and a line CMD prints that
    equals TOKEN becomes a null value in OUT.

    Exit status: 0 committed (or nothing new); 1 aborted (CMD failed, or an error); 2 bad usage (a
    compacted OUT among them); 130 Ctrl-C and 143
    SIGTERM (aborted).  Put `--` before CMD so that its options are not taken for kcli's.

    \b
    Examples:
      kcli transform orders orders-upper --group upper -- tr a-z A-Z
      kcli transform events counts -g hourly -c 100000 -- ./summarise.py
    """
    from kcli.cli.produce import read_chunks
    from kcli.cli.txnrun import aborting
    from kcli.client.transactional import TransactionalProducer
    from kcli.client.transform import commit_run, committed_offsets, default_transactional_id, read_input
    from kcli.cluster.metadata import validate_topic_name
    from kcli.groups.layout import check_group_id

    validate_topic_name(input_topic)
    validate_topic_name(output_topic)
    if input_topic == output_topic:
        raise UsageError("IN and OUT must be different topics")
    check_group_id(group)
    if null_value == "":
        raise UsageError("--null-value must not be empty", hint="an empty line is an empty value")
    token = None if null_value is None else null_value.encode()
    _refuse_compacted(env, output_topic)
    transport = env.transport()
    datadir = None if env.bootstrap_server else env.datadir()
    producer = TransactionalProducer(transport, transactional_id or default_transactional_id(group, input_topic),
                                     transaction_timeout_ms=transaction_timeout_ms, batch_size=batch_size)
    proc: subprocess.Popen[bytes] | None = None
    try:
        count = transport.partition_count(input_topic)
        producer.init_transactions()  # fences an older run, completing or aborting what it left
        committed = committed_offsets(datadir, env.bootstrap_server, group, input_topic, count)
        with tempfile.TemporaryFile() as spool:
            null_line = token or b""
            offsets = read_input(transport, input_topic, count, committed, reset, max_messages,
                                 lambda value: spool.write((null_line if value is None else value) + b"\n"))
            if not offsets:
                return
            spool.seek(0)
            proc = _start(command, spool.fileno())
        assert proc.stdout is not None
        producer.begin_transaction()
        with aborting(producer):
            chunks = read_chunks(proc.stdout.fileno(), linger_ms / 1000, producer.flush)
            for lines in chunks:
                if token is None:
                    producer.send_many(output_topic, lines)
                    continue
                for line in lines:
                    producer.send(output_topic, None if line == token else line)
            status = proc.wait()
            if status != 0:
                how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
                raise TransactionAbortedError(f"transaction aborted: {command[0]} {how}")
            commit_run(producer, group, offsets)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            producer.close()
        finally:
            for warning in transport.warnings:
                click.echo(f"kcli: warning: {warning}", err=True)


def _refuse_compacted(env, topic: str) -> None:
    """transform writes records without keys, which a compacted topic refuses: say so before any input
    is read or CMD runs, rather than abort the transaction after CMD did its work."""
    from kcli.client.config_admin import open_configs
    from kcli.client.config_admin import topic as topic_resource
    from kcli.errors import AuthorizationError, NotFoundError

    configs = open_configs(None if env.bootstrap_server else env.datadir(), env.bootstrap_server)
    try:
        entries = configs.describe(topic_resource(topic), ["cleanup.policy"])
    except (NotFoundError, AuthorizationError):
        return  # made on first write with the broker's default policy, or not ours to look at: the write tells
    policy = next((str(e.value) for e in entries if e.name == "cleanup.policy"), "")
    if "compact" in policy.split(","):
        raise UsageError(f"OUT topic {topic!r} is compacted (cleanup.policy={policy}): it refuses the records "
                         f"without keys that transform writes", hint="write to a topic whose cleanup.policy is delete")


def _start(command: tuple[str, ...], stdin: int) -> subprocess.Popen[bytes]:
    """Start CMD reading the spooled input; stderr is ours, so its messages reach the user."""
    try:
        return subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=sys.stderr.fileno(),
                                close_fds=True)
    except OSError as exc:
        raise UsageError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None

