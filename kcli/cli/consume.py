"""``kcli consume``: print messages of a topic."""

from __future__ import annotations

import sys

import click

from kcli.errors import UsageError


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
@click.pass_obj
def consume(env, topic: str, from_beginning: bool, offset_spec: str | None, partitions: tuple[int, ...],
            max_messages: int | None, exit_on_eof: bool, fmt: str | None, as_json: bool) -> None:
    """Read messages from TOPIC and print them to stdout.

    \b
    Examples:
      kcli consume logs --from-beginning -e
      kcli consume chat -o -10 -f '%k: %s (offset %o)\\n'
    """
    from kcli.cli.recordio import compile_format, record_to_json
    from kcli.client.connect import open_transport
    from kcli.client.consumer import Consumer, resolve_start

    if from_beginning and offset_spec:
        raise UsageError("use either --from-beginning or --offset, not both")
    if fmt and as_json:
        raise UsageError("use either --format or --json, not both")
    spec = "earliest" if from_beginning else (offset_spec or "latest")
    transport = open_transport(env.datadir(), auto_create=False)
    count = transport.partition_count(topic)
    chosen = list(partitions) or list(range(count))
    for p in chosen:
        if p >= count:
            raise UsageError(f"topic {topic!r} has no partition {p} (it has {count})")
    consumer = Consumer(transport)
    consumer.assign({(topic, p): resolve_start(transport, topic, p, spec) for p in chosen})
    ends = {(topic, p): transport.list_offset(topic, p, "latest") for p in chosen} if exit_on_eof else None

    out = sys.stdout.buffer
    if as_json:
        def render(t, p, rec):
            return (record_to_json(t, p, rec) + "\n").encode()
    else:
        render = compile_format(fmt or "%s\\n")
    interactive = out.isatty()
    seen = 0
    buf: list[bytes] = []
    try:
        for item in consumer.stream(ends):
            if item is None:  # waiting for new messages: show what we have
                out.write(b"".join(buf))
                buf.clear()
                out.flush()
                continue
            buf.append(render(*item))
            seen += 1
            if max_messages is not None and seen >= max_messages:
                break
            if interactive or len(buf) >= 4096:
                out.write(b"".join(buf))
                buf.clear()
                out.flush()
        out.write(b"".join(buf))
        out.flush()
    finally:
        transport.close(durable=False)
