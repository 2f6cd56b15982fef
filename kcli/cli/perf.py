"""``kcli perf``: throughput and latency tests in the shape of Kafka's perf-test tools.

``perf produce`` prints what kafka-producer-perf-test prints and ``perf consume`` what
kafka-consumer-perf-test prints, so results can be set side by side with a real cluster's.
Both drive the client library in-process (no subprocesses), like Kafka's tools drive its client.
"""

from __future__ import annotations

import click

from kcli.cli.options import (
    ACKS,
    acks_option,
    batch_size_option,
    compression_option,
    idempotence_option,
    idempotent,
)


@click.group()
def perf() -> None:
    """Measure produce and consume throughput like Kafka's perf-test tools."""


@perf.command("produce")
@click.argument("topic")
@click.option("--num-records", type=click.IntRange(1), required=True, metavar="N", help="Records to send.")
@click.option(
    "--record-size", type=click.IntRange(0), required=True, metavar="BYTES", help="Bytes per record."
)
@click.option(
    "--throughput",
    type=float,
    default=-1,
    show_default=True,
    metavar="RECORDS/S",
    help="Cap the send rate (-1: as fast as possible).",
)
@compression_option()
@batch_size_option()
@acks_option()
@idempotence_option()
@click.option(
    "--linger-ms",
    type=click.IntRange(0),
    default=5,
    show_default=True,
    metavar="MS",
    help="With --throughput: send a partial batch once its first record waited this long.",
)
@click.pass_obj
def produce(
    env,
    topic: str,
    num_records: int,
    record_size: int,
    throughput: float,
    compression: str,
    batch_size: int,
    acks: str,
    idempotence: bool | None,
    linger_ms: int,
) -> None:
    """Send N records of BYTES random letters to TOPIC and report throughput and latency.

    Prints a progress line every 5 seconds and a final line like kafka-producer-perf-test's
    (latency is from send() to the delivery report).  A missing topic is created with the defaults.

    \b
    Example:
      kcli perf produce bench --num-records 1000000 --record-size 100
    """
    from kcli.client.connect import open_transport
    from kcli.cluster.metadata import validate_topic_name
    from kcli.perf.producer import run_produce
    from kcli.storage.compression import codec_id

    validate_topic_name(topic)
    idempotence = idempotent(idempotence, acks)
    transport = open_transport(env.datadir(), acks=ACKS[acks])
    with _progress(num_records, "producing") as bar:
        summary = run_produce(
            transport,
            topic,
            num_records,
            record_size,
            throughput=throughput,
            codec=codec_id(compression),
            batch_size=batch_size,
            linger_ms=linger_ms,
            idempotence=idempotence,
            emit=click.echo,
            on_progress=bar.advance,
        )
    click.echo(summary)


@perf.command("consume")
@click.argument("topic")
@click.option("--messages", type=click.IntRange(1), required=True, metavar="N", help="Records to read.")
@click.option(
    "--timeout",
    "timeout_ms",
    type=click.IntRange(0),
    default=10_000,
    show_default=True,
    metavar="MS",
    help="Stop early when no record arrives for this long.",
)
@click.option("--from-latest", is_flag=True, help="Start at the end of each partition, not the beginning.")
@click.option("--hide-header", is_flag=True, help="Print the figures without the column names.")
@click.option("--show-detailed-stats", is_flag=True, help="Also print a line every --reporting-interval.")
@click.option(
    "--reporting-interval",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    metavar="MS",
    help="Interval of the detailed stats lines.",
)
@click.pass_obj
def consume(
    env,
    topic: str,
    messages: int,
    timeout_ms: int,
    from_latest: bool,
    hide_header: bool,
    show_detailed_stats: bool,
    reporting_interval: int,
) -> None:
    """Read N records from TOPIC and report throughput like kafka-consumer-perf-test.

    rebalance.time.ms is the time to assign partitions and look up start offsets (there is no group).

    \b
    Example:
      kcli perf consume bench --messages 1000000
    """
    from kcli.client.connect import open_transport
    from kcli.perf.consumer import DETAIL_HEADER, HEADER, run_consume

    transport = open_transport(env.datadir(), auto_create=False)
    detail = None
    if show_detailed_stats:
        if not hide_header:
            click.echo(DETAIL_HEADER)
        detail = click.echo
    try:
        with _progress(messages, "consuming") as bar:
            result = run_consume(
                transport,
                topic,
                messages,
                timeout_ms=timeout_ms,
                from_latest=from_latest,
                detail=detail,
                detail_interval=reporting_interval / 1000,
                on_progress=bar.advance,
            )
    finally:
        transport.close(durable=False)
    if result.timed_out:
        click.echo(
            f"kcli: warning: exiting before consuming the expected number of messages: timeout "
            f"({timeout_ms} ms) exceeded after {result.messages}",
            err=True,
        )
    if not hide_header:
        click.echo(HEADER)
    click.echo(result.line())


def _progress(total: int, description: str):
    from kcli.cli.output import progress

    return progress(total, description)


@perf.command("codecs")
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Sample the lines of FILE ('-' for stdin), as `kcli produce` would send them.",
)
@click.option(
    "-t", "--topic", metavar="TOPIC", help="Sample the newest records of TOPIC (keys and headers too)."
)
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    metavar="N",
    help="Messages to sample: the first N lines of FILE, or the newest N records of TOPIC.",
)
@batch_size_option("Cut the sample into batches as `kcli produce --batch-size` does.")
@click.option(
    "--optimize",
    type=click.Choice(["balanced", "disk"]),
    default="balanced",
    show_default=True,
    help="Recommend the fastest codec within 5% of the best ratio, or the best ratio.",
)
@click.option(
    "--min-time",
    type=click.FloatRange(0),
    default=0.2,
    show_default=True,
    metavar="SECONDS",
    help="Repeat each codec's compression and decompression for at least this long.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def codecs(
    env,
    path: str | None,
    topic: str | None,
    sample: int,
    batch_size: int,
    optimize: str,
    min_time: float,
    as_json: bool,
) -> None:
    """Compare compression codecs on a sample of your own messages, and recommend one.

    Builds real record batches of the sample with none, gzip, snappy, lz4 and zstd (levels 1, 3, 9
    and 19) and prints, per codec, the ratio (uncompressed / compressed batch bytes), compression and
    decompression speed (MB/s of uncompressed batches), and the log bytes a million such messages take.

    \b
    Examples:
      kcli perf codecs --file access.log
      kcli perf codecs --topic orders --sample 50000 --optimize disk
    """
    from kcli.cli.output import emit_json, table
    from kcli.cluster.advice import codec_recommendation, recommend_codec
    from kcli.errors import UsageError
    from kcli.perf import codecs as bench

    if (path is None) == (topic is None):
        raise UsageError("give --file or --topic, one of the two")
    if path is not None:
        parts = bench.file_sample(path, sample)
    else:
        from kcli.client.connect import open_transport

        transport = open_transport(env.datadir(), auto_create=False)
        assert topic is not None  # --file or --topic, checked above
        try:
            parts = bench.topic_sample(transport, topic, sample)
        finally:
            transport.close(durable=False)
    batches = bench.sample_batches(parts, batch_size)
    with _progress(len(bench.VARIANTS), "measuring codecs") as bar:
        results = bench.measure_all(batches, min_time=min_time, on_done=lambda _result: bar.advance())
    chosen = recommend_codec(results, optimize)
    figures = {
        "messages": results[0].messages,
        "batches": len(batches),
        "batch_size": batch_size,
        "uncompressed_bytes": results[0].uncompressed_bytes,
    }
    if as_json:
        emit_json(
            {
                "sample": figures,
                "codecs": [r.to_json() for r in results],
                "optimize": optimize,
                "recommended": chosen.name,
            }
        )
        return
    click.echo(
        "Sample: {messages} messages in {batches} batches (--batch-size {batch_size}), "
        "{uncompressed_bytes} bytes uncompressed.".format(**figures),
        err=True,
    )
    table(bench.COLUMNS, [r.row() for r in results])
    click.echo(f"{codec_recommendation(results, optimize)}; use {bench.usage_hint(chosen)}")
