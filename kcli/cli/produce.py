"""``kcli produce``: one message per input line."""

from __future__ import annotations

import os
import select
import sys

import click

from kcli.errors import UsageError

_CHUNK = 1 << 20


def _parse_headers(pairs: tuple[str, ...]) -> list[tuple[str, bytes]]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"header {pair!r} is not key=value")
        out.append((key, value.encode()))
    return out


def _idle(fd: int, seconds: float) -> bool:
    """True when nothing more arrives on ``fd`` within ``seconds`` (always False for regular files)."""
    try:
        ready, _, _ = select.select([fd], [], [], seconds)
    except (OSError, ValueError):
        return False
    return not ready


def read_lines(fd: int, linger: float, on_idle):
    """Yield input lines (without the newline) as they arrive; call ``on_idle`` whenever the input pauses
    for ``linger`` seconds, so `tail -f | kcli produce` delivers promptly yet fast input is batched."""
    rest = b""
    while True:
        if _idle(fd, linger):
            on_idle()
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        data = rest + chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


@click.command()
@click.argument("topic")
@click.option("-f", "--file", "path", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Read messages from FILE instead of stdin.")
@click.option("-K", "--key-separator", metavar="SEP", help="Split each line at the first SEP into key and value.")
@click.option("-p", "--partition", type=click.IntRange(0), help="Write every message to this partition.")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE", help="Add a header (repeatable).")
@click.option("-z", "--compression", type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]), default="none",
              show_default=True, help="Batch compression codec.")
@click.option("--batch-size", type=click.IntRange(1), default=16384, show_default=True, metavar="BYTES",
              help="Send a batch when it holds this many bytes.")
@click.option("--linger-ms", type=click.IntRange(0), default=5, show_default=True, metavar="MS",
              help="Send pending messages when input pauses this long.")
@click.option("--json", "json_input", is_flag=True,
              help="Each line is a JSON object {key, value, headers, partition, timestamp} as `consume --json` prints.")
@click.option("--print-offsets", is_flag=True, help="Print `topic partition offset` for each stored message.")
@click.pass_obj
def produce(env, topic: str, path: str, key_separator: str | None, partition: int | None, headers: tuple[str, ...],
            compression: str, batch_size: int, linger_ms: int, json_input: bool, print_offsets: bool) -> None:
    """Write messages to TOPIC, one per input line.

    A missing topic is created with the defaults. Exits 0 only if every message was stored.

    \b
    Examples:
      cat app.log | kcli produce logs
      printf 'user1:hello\\n' | kcli produce chat -K:
    """
    from kcli.client.connect import open_transport
    from kcli.client.producer import Producer
    from kcli.cluster.metadata import validate_topic_name
    from kcli.storage.compression import codec_id

    validate_topic_name(topic)
    if key_separator == "":
        raise UsageError("--key-separator must not be empty")
    header_list = _parse_headers(headers)
    sep = key_separator.encode() if key_separator else None
    out = sys.stdout.buffer

    def report(t: str, p: int, o: int) -> None:
        out.write(f"{t} {p} {o}\n".encode())

    transport = open_transport(env.datadir())
    producer = Producer(transport, codec=codec_id(compression), batch_size=batch_size,
                        on_delivery=report if print_offsets else None)

    def on_idle() -> None:
        if producer.pending:
            producer.flush()
            if print_offsets:
                out.flush()

    fd = sys.stdin.fileno() if path == "-" else os.open(path, os.O_RDONLY)
    send = producer.send
    try:
        for lineno, line in enumerate(read_lines(fd, linger_ms / 1000, on_idle), 1):
            if line.endswith(b"\r"):
                line = line[:-1]
            if json_input:
                from kcli.cli.recordio import JsonInput

                if not line.strip():
                    continue
                rec = JsonInput(line, lineno)
                send(topic, rec.value, rec.key, rec.headers + header_list,
                     partition if partition is not None else rec.partition, rec.timestamp)
            elif sep is not None:
                key, found, value = line.partition(sep)
                if found:
                    send(topic, value, key, header_list, partition)
                else:
                    send(topic, line, None, header_list, partition)
            else:
                send(topic, line, None, header_list, partition)
        producer.close()
    finally:
        transport.release()
        if print_offsets:
            out.flush()
        for warning in getattr(transport, "warnings", []):
            click.echo(f"kcli: warning: recovered {warning}", err=True)
