"""``kcli consume``: print messages of a topic."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from typing import Any, cast

import click
from click.core import ParameterSource

from kcli.cli.options import isolation_option
from kcli.errors import CorruptRecordError, UsageError


@click.command()
@click.argument("topic")
@click.option("-b", "--from-beginning", is_flag=True, help="Start at the earliest offset (same as --offset earliest).")
@click.option("-o", "--offset", "offset_spec", metavar="SPEC",
              help="Start at N, earliest, latest, -N (N before the end) or s@TIMESTAMP_MS [default: latest].")
@click.option("-p", "--partition", "partitions", type=click.IntRange(0), multiple=True,
              help="Read only this partition (repeatable) [default: all].")
@click.option("-c", "--max-messages", type=click.IntRange(1), metavar="N", help="Exit after N messages.")
@click.option("-e", "--exit-on-eof", is_flag=True,
              help="Read up to the end offsets as they are at start, then exit 0.")
@click.option("-f", "--format", "fmt", metavar="FMT",
              help="kcat-style format: %t %p %o %T %k %K %s %S %h, \\n \\t [default: '%s\\n'].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message (read back by `produce --json`).")
@click.option("-Z", "--show-null", is_flag=True,
              help="Print a null key, value or header value as NULL, as kcat -Z does (without it a null prints "
                   "as empty, like an empty one; %K and %S print -1 for null). JSON always shows null.")
@click.option("-g", "--group", metavar="GROUP",
              help="Consume as a member of consumer group GROUP: only its assigned partitions, from the "
                   "committed offsets, committing as it goes.")
@click.option("--reset", type=click.Choice(["earliest", "latest"]),
              help="With --group: where to start a partition with no committed offset [default: latest].")
@click.option("--commit-interval-ms", type=click.IntRange(1), metavar="MS",
              help="With --group: commit delivered offsets this often, and on exit [default: 5000].")
@click.option("--no-commit", is_flag=True, help="With --group: never commit (peek).")
@click.option("--assignor", type=click.Choice(["range", "roundrobin"]),
              help="With --group: how partitions are divided among members [default: range].")
@click.option("--client-id", metavar="ID", help="With --group: client id shown by `kcli group describe` [default: kcli].")
@click.option("--group-protocol", type=click.Choice(["classic", "consumer"]),
              help="With --group and --bootstrap-server: Kafka's group protocol; consumer (KIP-848) lets the "
                   "coordinator assign partitions [default: classic].")
@isolation_option("read_committed: only records of committed transactions (and of no transaction), up to the "
                  "last stable offset; read_uncommitted: every record up to the high watermark, aborted "
                  "ones too. Transaction markers are never printed.")
@click.pass_obj
def consume(env, topic: str, from_beginning: bool, offset_spec: str | None, partitions: tuple[int, ...],
            max_messages: int | None, exit_on_eof: bool, fmt: str | None, as_json: bool, show_null: bool,
            group: str | None,
            reset: str | None, commit_interval_ms: int | None, no_commit: bool, assignor: str | None,
            client_id: str | None, group_protocol: str | None, isolation: str) -> None:
    """Read messages from TOPIC and print them to stdout.

    With --group, members of the same group split the partitions and each message is delivered to one of
    them at least once; --exit-on-eof then reads up to the end offsets as they are at start, commits and
    exits 0 (for cron).  SIGTERM or Ctrl-C commits what was printed before exiting (143 and 130).

    Like a Kafka consumer with isolation.level=read_committed, it reads only committed data by default:
    records of transactions still open (and what follows them) wait until they end, and aborted ones are
    skipped; --isolation-level read_uncommitted shows everything written.

    \b
    Examples:
      kcli consume logs --from-beginning -e
      kcli consume chat -o -10 -f '%k: %s (offset %o)\\n'
      kcli consume orders --group billing --reset earliest -e
    """
    from kcli.cli.recordio import compile_format, record_to_json
    from kcli.client.consumer import Consumer, resolve_start

    if from_beginning and offset_spec:
        raise UsageError("use either --from-beginning or --offset, not both")
    if fmt and as_json:
        raise UsageError("use either --format or --json, not both")
    ctx = click.get_current_context()

    def typed(name: str) -> bool:  # given on the command line or in the environment, not by kcli.toml
        return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

    if group is None:
        used = [f"--{name.replace('_', '-')}" for name in ("reset", "commit_interval_ms", "no_commit", "assignor",
                                                          "client_id", "group_protocol") if typed(name)]
        if used:
            raise UsageError(f"{used[0]} needs --group")
    else:
        if partitions or offset_spec:
            raise UsageError("a group member reads the partitions the group assigns it, from the committed offsets",
                             hint="drop --partition/--offset, or use `kcli group reset-offsets`")
        if from_beginning and reset == "latest" and typed("reset"):
            raise UsageError("use either --from-beginning or --reset latest, not both")
        if from_beginning:
            reset = "earliest"
        if group_protocol == "consumer" and not env.bootstrap_server:
            raise UsageError("--group-protocol consumer needs --bootstrap-server (a coordinator broker runs the group)")
        if group_protocol == "consumer" and typed("assignor"):
            raise UsageError("with --group-protocol consumer the coordinator assigns the partitions",
                             hint="drop --assignor (brokers choose with group.consumer.assignors)")
    spec = "earliest" if from_beginning else (offset_spec or "latest")
    transport = env.transport(auto_create=False)
    count = transport.partition_count(topic)
    gc = None
    bulk = False
    # (topic, partition, a record, or a fetch's values with --bulk), or None: flush what you have
    source: Iterator[tuple[str, int, Any] | None]
    if group is not None:
        from kcli.client.group_reader import MemberSettings
        from kcli.client.groups import open_group_member

        settings = MemberSettings(assignor=assignor or "range", reset=reset or "latest", commit_offsets=not no_commit,
                                  commit_interval=(commit_interval_ms or 5000) / 1000, exit_on_eof=exit_on_eof,
                                  client_id=client_id or "kcli", isolation=isolation,
                                  group_protocol=group_protocol or "classic")
        # with --bootstrap-server the cluster's coordinator runs the group (Kafka's group protocol)
        datadir = None if env.bootstrap_server else env.datadir()
        gc = open_group_member(transport, datadir, group, [topic], settings)
        source = gc.stream()
    else:
        chosen = list(partitions) or list(range(count))
        for p in chosen:
            if p >= count:
                raise UsageError(f"topic {topic!r} has no partition {p} (it has {count})")
        consumer = Consumer(transport, isolation=isolation)
        consumer.assign({(topic, p): resolve_start(transport, topic, p, spec, isolation) for p in chosen})
        ends = {(topic, p): transport.list_offset(topic, p, "latest", isolation) for p in chosen} if exit_on_eof else None
        # the default format prints values only: take them a fetch at a time (see _value_lines)
        bulk = not as_json and fmt in (None, "%s\\n")
        source = consumer.stream_values(ends) if bulk else consumer.stream(ends)

    out = sys.stdout.buffer
    null = b"NULL" if show_null else b""
    if as_json:
        def render(t, p, rec):
            return (record_to_json(t, p, rec) + "\n").encode()
    else:
        render = compile_format(fmt or "%s\\n", null)
    interactive = out.isatty()
    seen = 0
    buf: list[bytes] = []
    stopper = _GracefulStop(gc) if gc is not None else None
    delivered = False
    try:
        if gc is not None:
            gc.start()
        for item in source:
            if item is None:  # waiting for new messages: show what we have
                out.write(b"".join(buf))
                buf.clear()
                out.flush()
                continue
            if bulk:
                values = cast("list[bytes | None]", item[2])  # a fetch's values (stream_values)
                if max_messages is not None and seen + len(values) > max_messages:
                    values = values[: max_messages - seen]
                seen += len(values)
                buf.append(_value_lines(values, null))
            else:
                buf.append(render(*item))
                seen += 1
            if max_messages is not None and seen >= max_messages:
                break
            if bulk or interactive or len(buf) >= 4096:
                out.write(b"".join(buf))
                buf.clear()
                out.flush()
        out.write(b"".join(buf))
        out.flush()
        delivered = True
    except CorruptRecordError:
        out.write(b"".join(buf))  # the records before a corrupt batch are still delivered
        out.flush()
        raise
    finally:
        try:
            if gc is not None:
                gc.close(commit=delivered)  # commit only what reached stdout
        finally:
            if stopper is not None:
                stopper.restore()
            transport.close(durable=False)
    if stopper is not None and stopper.signum == signal.SIGTERM:
        from kcli.cli.app import Terminated

        raise Terminated
    if stopper is not None and stopper.signum is not None:
        raise KeyboardInterrupt


def _value_lines(values: list[bytes | None], null: bytes) -> bytes:
    """What the default format '%s\\n' prints for a run of values, in one join instead of a format call
    per record; like the format, a null value prints as ``null``."""
    values.append(b"")  # the final newline, without copying the joined bytes again
    try:
        return b"\n".join(values)  # type: ignore[arg-type]  # a None raises TypeError: the slow path below
    except TypeError:
        return b"\n".join([null if v is None else v for v in values])


class _GracefulStop:
    """While a group member runs, the first SIGINT/SIGTERM asks it to stop after flushing and committing
    (a signal raised mid-commit would lose the final commit); a second one interrupts at once."""

    def __init__(self, gc) -> None:
        self.gc = gc
        self.signum: int | None = None
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self.gc.stop()

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
