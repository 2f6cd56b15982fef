"""``kcli produce``: one message per input line."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from kcli.cli.options import (
    ACKS,
    acks_option,
    batch_size_option,
    compression_option,
    idempotence_option,
    idempotent,
    transaction_timeout_option,
)
from kcli.errors import UsageError

if TYPE_CHECKING:
    from kcli.client.transactional import TransactionalProducer

_CHUNK = 1 << 20


def _transaction_settings(transactional_id: str | None, max_records: int | None, idempotence: bool | None,
                          acks: str) -> int | None:
    """Check the transaction flags before anything is written; returns the records per transaction
    (0: all of the input), None without --transactional-id."""
    if transactional_id is None:
        ctx = click.get_current_context()
        if max_records is not None:
            raise UsageError("--transaction-max-records needs --transactional-id")
        if ctx.get_parameter_source("transaction_timeout_ms") in (ParameterSource.COMMANDLINE,
                                                                  ParameterSource.ENVIRONMENT):
            raise UsageError("--transaction-timeout-ms needs --transactional-id")
        return None
    from kcli.transactions.coordinator import check_transactional_id

    check_transactional_id(transactional_id)
    if ACKS[acks] != -1 or idempotence is False:
        raise UsageError("--transactional-id needs an idempotent producer with --acks all",
                         hint="drop --acks/--no-idempotence")
    return max_records or 0


def _transactions(producer: TransactionalProducer, per_txn: int, chunks: Iterator[list[bytes]],
                  send_input: Callable[[Iterator[list[bytes]]], None]) -> None:
    """The input as transactions: one up to EOF, or one every ``per_txn`` lines; EOF commits the last.
    A failure, Ctrl-C or SIGTERM aborts the open one (see kcli.cli.txnrun)."""
    from kcli.cli.txnrun import aborting

    producer.init_transactions()  # refused (a bad timeout, fenced): nothing was begun, nothing to abort
    with aborting(producer):
        producer.begin_transaction()
        send_input(_every(chunks, per_txn, producer) if per_txn else chunks)
        producer.commit_transaction()


def _every(chunks: Iterator[list[bytes]], per_txn: int, producer: TransactionalProducer) -> Iterator[list[bytes]]:
    """The lines of ``chunks``, cut so that a transaction is committed after every ``per_txn`` of them
    (each piece is sent before the generator resumes)."""
    room = per_txn
    for lines in chunks:
        while len(lines) >= room:
            yield lines[:room]
            lines = lines[room:]
            producer.commit_transaction()
            producer.begin_transaction()
            room = per_txn
        if lines:
            yield lines
            room -= len(lines)


def _parse_headers(pairs: tuple[str, ...]) -> list[tuple[str, bytes]]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"header {pair!r} is not key=value")
        out.append((key, value.encode()))
    return out


def _null_rule(null_value: str | None, empty_is_null: bool) -> Callable[[bytes], bytes | None] | None:
    """What --null-value TOKEN and -Z make of a key or value read from a line: None (a null) for TOKEN,
    and for b"" with -Z; None when neither was given, so the plain paths keep no per-record call."""
    if null_value is None and not empty_is_null:
        return None
    nulls = {b""} if empty_is_null else set()
    if null_value is not None:
        nulls.add(null_value.encode())

    def value_of(data: bytes) -> bytes | None:
        return None if data in nulls else data

    return value_of


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
@click.option("--null-value", metavar="TOKEN",
              help="A value (the part after SEP with -K, else the whole line) equal to TOKEN is sent as null: a "
                   "tombstone, which deletes its key from a compacted topic. TOKEN must not be empty (that is -Z).")
@click.option("-Z", "--empty-is-null", is_flag=True,
              help="Send an empty value as null (as kcat -Z), and with -K an empty key as a null key. Neither this "
                   "nor --null-value goes with --json, where null is JSON null.")
@click.option("--print-offsets", is_flag=True, help="Print `topic partition offset` for each stored message.")
@click.option("--transactional-id", metavar="ID",
              help="Write the input as one transaction of this transactional id (committed at EOF), fencing "
                   "any other producer with the same id.")
@click.option("--transaction-max-records", type=click.IntRange(1), metavar="N",
              help="With --transactional-id: commit every N records (for unbounded input).")
@transaction_timeout_option()
@click.pass_obj
def produce(env, topic: str, path: str, key_separator: str | None, partition: int | None, headers: tuple[str, ...],
            compression: str, batch_size: int, acks: str, idempotence: bool | None, linger_ms: int,
            json_input: bool, null_value: str | None, empty_is_null: bool, print_offsets: bool, transactional_id: str | None,
            transaction_max_records: int | None, transaction_timeout_ms: int) -> None:
    """Write messages to TOPIC, one per input line.

    A missing topic is created with the defaults. Exits 0 only if every message was stored.

    An empty line is an empty value, not a null one: --null-value TOKEN and -Z send nulls (tombstones)
    instead, and with --json a key or value is null when it is JSON null.

    With --transactional-id the input up to EOF is one transaction (or one every N records with
    --transaction-max-records): read_committed consumers see all of it or none of it.  EOF commits (exit
    0); a failure aborts the open transaction (exit 1), as do Ctrl-C (130) and SIGTERM (143); records
    of transactions committed before stay committed.  A second producer with the same id fences the
    first, whose open transaction is aborted; so is a transaction open longer than
    --transaction-timeout-ms (then the commit fails: exit 1).

    \b
    Examples:
      cat app.log | kcli produce logs
      printf 'user1:hello\\n' | kcli produce chat -K:
      printf 'user1:DELETE\\n' | kcli produce profiles -K: --null-value DELETE
      kcli produce orders --transactional-id orders-load < orders.txt
    """
    from kcli.client.producer import Producer
    from kcli.cluster.metadata import validate_topic_name
    from kcli.storage.compression import codec_id

    validate_topic_name(topic)
    if key_separator == "":
        raise UsageError("--key-separator must not be empty")
    if null_value == "":
        raise UsageError("--null-value must not be empty", hint="use -Z to send empty values as null")
    if json_input and (null_value is not None or empty_is_null):
        raise UsageError("--json input spells a null key or value as null",
                         hint="drop --null-value/-Z")
    null_rule = _null_rule(null_value, empty_is_null)
    header_list = _parse_headers(headers)
    idempotence = idempotent(idempotence, acks)
    txn = _transaction_settings(transactional_id, transaction_max_records, idempotence, acks)
    sep = key_separator.encode() if key_separator else None
    out = sys.stdout.buffer

    def report(t: str, p: int, o: int) -> None:
        out.write(f"{t} {p} {o}\n".encode())

    transport = env.transport(acks=ACKS[acks])
    options: dict[str, Any] = {"codec": codec_id(compression), "batch_size": batch_size, "on_delivery": report if print_offsets else None}
    producer: Producer
    transactional: TransactionalProducer | None = None
    if transactional_id is not None:
        from kcli.client.transactional import TransactionalProducer

        producer = transactional = TransactionalProducer(transport, transactional_id, transaction_timeout_ms=transaction_timeout_ms,
                                         **options)
    else:
        producer = Producer(transport, idempotence=idempotence, **options)

    def on_idle() -> None:
        if producer.pending:
            producer.flush()
            if print_offsets:
                out.flush()

    fd = sys.stdin.fileno() if path == "-" else os.open(path, os.O_RDONLY)
    _widen_pipe(fd)
    send = producer.send

    def send_input(chunks: Iterator[list[bytes]]) -> None:
        if json_input:
            from kcli.cli.recordio import JsonInput

            for lineno, line in enumerate((line for lines in chunks for line in lines), 1):
                if not line.strip():
                    continue
                rec = JsonInput(line, lineno)
                send(topic, rec.value, rec.key, [*rec.headers, *header_list],
                     partition if partition is not None else rec.partition, rec.timestamp)
        elif null_rule is not None:
            for lines in chunks:
                for line in lines:
                    key, found, value = line.partition(sep) if sep is not None else (b"", b"", b"")
                    if found:  # -Z makes an empty key null too; TOKEN is for values only
                        send(topic, null_rule(value), (key or None) if empty_is_null else key, header_list,
                             partition)
                    else:
                        send(topic, null_rule(line), None, header_list, partition)
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

    chunks = read_chunks(fd, linger_ms / 1000, on_idle)
    try:
        if transactional is None or txn is None:
            send_input(chunks)
        else:
            _transactions(transactional, txn, chunks, send_input)
        producer.close()
    finally:
        transport.release()
        if print_offsets:
            out.flush()
        for warning in transport.warnings:
            click.echo(f"kcli: warning: {warning}", err=True)
        for warning in producer.warnings:
            click.echo(f"kcli: warning: {warning}", err=True)
