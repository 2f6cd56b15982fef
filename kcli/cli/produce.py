"""``kcli produce``: one message per input line."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator

import click

from kcli.cli.options import (
    ACKS,
    acks_option,
    batch_size_option,
    compression_option,
    idempotence_option,
    idempotent,
)
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


def _widen_pipe(fd: int) -> None:
    """Ask for a pipe buffer of _CHUNK bytes when reading a pipe (Linux): a fast writer then hands over
    up to 1 MiB per read instead of 64 KiB, a sixteenth of the reads and wake-ups.  Reads still return as
    soon as anything arrives, so slow input is not delayed.  Best effort: refusals are ignored."""
    import fcntl
    import stat

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, set_size, _CHUNK)
    except OSError:
        pass


def _strip_cr(lines: list[bytes]) -> list[bytes]:
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def read_chunks(fd: int, linger: float, on_idle) -> Iterator[list[bytes]]:
    """Yield the complete input lines of each read (without the newline or a CR before it) as they
    arrive; call ``on_idle`` whenever the input pauses for ``linger`` seconds, so `tail -f | kcli produce`
    delivers promptly yet fast input is batched.  Lists rather than single lines let the caller hand a
    whole read to the producer at once."""
    rest = b""
    while True:
        if _idle(fd, linger):
            on_idle()
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        data = rest + chunk if rest else chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        if b"\r" in data:
            lines = _strip_cr(lines)
        yield lines
    if rest:
        yield _strip_cr([rest])


def read_lines(fd: int, linger: float, on_idle) -> Iterator[bytes]:
    """Input lines one by one, as ``read_chunks`` reads them."""
    for lines in read_chunks(fd, linger, on_idle):
        yield from lines


@click.command()
@click.argument("topic")
@click.option("-f", "--file", "path", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Read messages from FILE instead of stdin.")
@click.option("-K", "--key-separator", metavar="SEP", help="Split each line at the first SEP into key and value.")
@click.option("-p", "--partition", type=click.IntRange(0), help="Write every message to this partition.")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE", help="Add a header (repeatable).")
@compression_option()
@batch_size_option()
@acks_option()
@idempotence_option()
@click.option("--linger-ms", type=click.IntRange(0), default=5, show_default=True, metavar="MS",
              help="Send pending messages when input pauses this long.")
@click.option("--json", "json_input", is_flag=True,
              help="Each line is a JSON object {key, value, headers, partition, timestamp} as `consume --json` prints.")
@click.option("--print-offsets", is_flag=True, help="Print `topic partition offset` for each stored message.")
@click.pass_obj
def produce(env, topic: str, path: str, key_separator: str | None, partition: int | None, headers: tuple[str, ...],
            compression: str, batch_size: int, acks: str, idempotence: bool | None, linger_ms: int,
            json_input: bool, print_offsets: bool) -> None:
    """Write messages to TOPIC, one per input line.

    A missing topic is created with the defaults. Exits 0 only if every message was stored.

    \b
    Examples:
      cat app.log | kcli produce logs
      printf 'user1:hello\\n' | kcli produce chat -K:
    """
    from kcli.client.producer import Producer
    from kcli.cluster.metadata import validate_topic_name
    from kcli.storage.compression import codec_id

    validate_topic_name(topic)
    if key_separator == "":
        raise UsageError("--key-separator must not be empty")
    header_list = _parse_headers(headers)
    idempotence = idempotent(idempotence, acks)
    sep = key_separator.encode() if key_separator else None
    out = sys.stdout.buffer

    def report(t: str, p: int, o: int) -> None:
        out.write(f"{t} {p} {o}\n".encode())

    transport = env.transport(acks=ACKS[acks])
    producer = Producer(transport, codec=codec_id(compression), batch_size=batch_size,
                        on_delivery=report if print_offsets else None, idempotence=idempotence)

    def on_idle() -> None:
        if producer.pending:
            producer.flush()
            if print_offsets:
                out.flush()

    fd = sys.stdin.fileno() if path == "-" else os.open(path, os.O_RDONLY)
    _widen_pipe(fd)
    send = producer.send
    chunks = read_chunks(fd, linger_ms / 1000, on_idle)
    try:
        if json_input:
            from kcli.cli.recordio import JsonInput

            for lineno, line in enumerate((line for lines in chunks for line in lines), 1):
                if not line.strip():
                    continue
                rec = JsonInput(line, lineno)
                send(topic, rec.value, rec.key, [*rec.headers, *header_list],
                     partition if partition is not None else rec.partition, rec.timestamp)
        elif sep is not None:
            for lines in chunks:
                for line in lines:
                    key, found, value = line.partition(sep)
                    if found:
                        send(topic, value, key, header_list, partition)
                    else:
                        send(topic, line, None, header_list, partition)
        else:
            # one call per read, not per line: see Producer.send_many
            send_many = producer.send_many
            for lines in chunks:
                send_many(topic, lines, header_list, partition)
        producer.close()
    finally:
        transport.release()
        if print_offsets:
            out.flush()
        for warning in transport.warnings:
            click.echo(f"kcli: warning: recovered {warning}", err=True)
        for warning in producer.warnings:
            click.echo(f"kcli: warning: {warning}", err=True)
