"""``kcli dump-log``, ``log-dirs``, ``verify`` and ``repair``: thin click commands over ``kcli.inspect``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from kcli.cli import output
from kcli.errors import UsageError
from kcli.inspect.errors import ProblemsFound

_MIB = 1 << 20


class _Throttle:
    """Feeds a progress bar in steps of about a MiB, so per-batch callbacks stay cheap."""

    def __init__(self, advance: Callable[[int], None]) -> None:
        self.advance = advance
        self.pending = 0

    def __call__(self, n: int) -> None:
        self.pending += n
        if self.pending >= _MIB:
            self.advance(self.pending)
            self.pending = 0


@contextmanager
def _progress(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None] | None]:
    """A throttled advance callback for a bar on a terminal's stderr, or None when no bar is shown."""
    if not enabled or total <= 0 or not sys.stderr.isatty():
        yield None
        return
    with output.progress(total, description) as bar:
        yield _Throttle(bar.advance)


def _writer(stream) -> Callable[[str], None]:
    write = stream.write
    return lambda line: write(line + "\n")


# ---------------------------------------------------------------- dump-log


@click.command("dump-log")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--deep-iteration", is_flag=True, help="Print every record, not only batch headers.")
@click.option(
    "--print-data-log", is_flag=True, help="Print record keys and values too (implies --deep-iteration)."
)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=0),
    metavar="BYTES",
    help="Read only the batches within the first BYTES of each .log file.",
)
@click.option(
    "--verify-index-only", is_flag=True, help="Check index entries against the log without printing them."
)
@click.option(
    "--index-sanity-check",
    is_flag=True,
    help="Only run the sanity check a broker runs on startup (exit 1 if an index fails it).",
)
@click.option(
    "--skip-record-metadata", is_flag=True, help="With --print-data-log, print only keys and values."
)
@click.option(
    "--transaction-log-decoder", "transaction_log", is_flag=True,
    help="Decode records as Kafka's __transaction_state records (implies --print-data-log): for a real "
         "Kafka log directory; kcli keeps its transaction state in cluster/transactions/.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per batch, record or index entry.")
def dump_log(
    files: tuple[str, ...],
    deep_iteration: bool,
    print_data_log: bool,
    max_bytes: int | None,
    verify_index_only: bool,
    index_sanity_check: bool,
    skip_record_metadata: bool,
    transaction_log: bool,
    as_json: bool,
) -> None:
    """Print the batches of .log files and the entries of .index, .timeindex, .txnindex and .snapshot
    files, in the format of Kafka's kafka-dump-log, and the topic id of partition.metadata files; a
    partition directory dumps its partition.metadata, all of its segments, then its producer snapshots.  Transaction markers show as ``endTxnMarker: COMMIT`` (or ABORT) records.

    Index entries that do not match the log, non-consecutive offsets and invalid bytes at the end of a
    log are reported like Kafka does; a corrupt batch is reported with its position.
    """
    from kcli.inspect.dump import DumpOptions, dump_file, resolve_inputs
    from kcli.inspect.dumptext import TextRenderer

    paths = resolve_inputs(files)
    opts = DumpOptions(
        deep_iteration, print_data_log, max_bytes, verify_index_only, index_sanity_check, skip_record_metadata,
        transaction_log,
    )
    out, err = _writer(sys.stdout), _writer(sys.stderr)
    renderer = TextRenderer(out, err, opts)
    total = sum(os.path.getsize(p) for p in paths)
    failed = 0
    # on a terminal the scrolling lines are the progress; the bar is for dumps sent to a file or a pipe
    with _progress(total, "dump-log", enabled=not sys.stdout.isatty()) as advance:
        for path in paths:
            for event in dump_file(path, opts, advance):
                if event["type"] == "sanity" and not event["ok"]:
                    failed += 1
                if not as_json:
                    renderer(event)
                elif event["type"] not in ("file", "log_start"):
                    out(json.dumps(event, separators=(",", ":")))
    renderer.finish()
    if failed:
        sys.stdout.flush()
        raise ProblemsFound(f"{failed} index file{'s' if failed != 1 else ''} failed the sanity check")


# ---------------------------------------------------------------- log-dirs


@click.command("log-dirs")
@click.option("--topic", "-t", metavar="TOPIC", help="Only this topic's partitions.")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON output (the default when stdout is not a terminal)."
)
@click.pass_obj
def log_dirs(env, topic: str | None, as_json: bool) -> None:
    """Show each broker's partition replicas: size, segments, log start and end offsets, high watermark;
    for compacted topics also the log cleaner's progress: the cleaner checkpoint against the log end, the
    dirty ratio and cleanable bytes, the last pass and a pass running now."""
    from kcli.inspect.logdirs import describe_log_dirs, log_dirs_json, replica_dirs

    datadir = env.datadir()
    warn = _writer(sys.stderr)
    count = len(replica_dirs(datadir, topic)) if os.path.isdir(datadir.root) else 0
    with _progress(count, "log-dirs") as advance:
        infos = describe_log_dirs(
            datadir, topic, warn=lambda m: warn(f"kcli: warning: {m}"), progress=advance
        )
    if as_json or not output.is_terminal():
        output.emit_json(log_dirs_json(datadir, infos))
        return
    rows = []
    for i in infos:
        role = i.role if i.in_sync in (True, None) else f"{i.role} (out of sync)"
        rows.append(
            [
                i.broker,
                f"{i.topic}-{i.partition}",
                role,
                _human(i.size),
                i.segments,
                i.log_start_offset,
                i.log_end_offset,
                i.high_watermark,
            ]
        )
    output.table(["BROKER", "PARTITION", "ROLE", "SIZE", "SEGMENTS", "LOG-START", "LOG-END", "HW"], rows)
    cleaned = [i for i in infos if i.cleaner is not None]
    if cleaned:
        output.table(["BROKER", "PARTITION", "CLEANED-TO", "LOG-END", "DIRTY-RATIO", "CLEANABLE", "LAST-PASS",
                      "KEPT", "REMOVED", "BYTES", "TOOK", "RUNNING"],
                     [_cleaner_row(i) for i in cleaned], title="log cleaner")


def _cleaner_row(info) -> list[object]:
    """A compacted replica's row of the log cleaner table: its checkpoint against its log end, what a
    pass could take now, its last pass and the one running now ("-" where unknown or none)."""
    c = info.cleaner
    last = c.status.last
    row: list[object] = [info.broker, f"{info.topic}-{info.partition}", c.first_dirty_offset, info.log_end_offset,
                         None if c.dirty_ratio is None else f"{c.dirty_ratio:.2f}",
                         None if c.cleanable_bytes is None else _human(c.cleanable_bytes)]
    if last is None:
        row += [None] * 5
    else:
        row += [_clock(last.ended_ms), last.records_kept, last.records_removed,
                f"{_human(last.bytes_before)} -> {_human(last.bytes_after)}",
                f"{(last.ended_ms - last.started_ms) / 1000:.1f} s"]
    row.append(None if c.status.running_since is None else f"since {_clock(c.status.running_since)}")
    return row


def _clock(ms: int) -> str:
    """A moment in local time, to the second."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _human(size: int) -> str:
    """Bytes for people: 1023 B, 4.0 KiB, 1.0 GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


# ---------------------------------------------------------------- verify


@click.command()
@click.argument("target", required=False, metavar="[TOPIC|PATH]")
@click.option("--deep", is_flag=True, help="Also decode every record (slower: decompresses every batch).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document with the problems and a summary.")
@click.option("--permissions", is_flag=True,
              help="Check modes and owners instead: every folder and file must be the user's own and "
                   "closed to group and others (0700/0600).")
@click.option("--fix", is_flag=True, help="With --permissions: remove the group and other bits it finds.")
@click.pass_context
def verify(ctx: click.Context, target: str | None, deep: bool, as_json: bool, permissions: bool,
           fix: bool) -> None:
    """Check CRCs, offset continuity, indexes and in-sync replica consistency; exit 1 on any problem.

    TOPIC limits the check to one topic of the data dir.  A PATH (anything with a '/') checks a
    partition directory, or every partition of a log directory such as a Kafka broker's, without
    metadata (so without the replica comparison).
    """
    if fix and not permissions:
        raise UsageError("--fix works with --permissions only", hint="kcli verify --permissions --fix")
    if permissions:
        _verify_permissions(ctx, target, fix, as_json)
        return
    from kcli.inspect.verify import datadir_bytes, path_bytes, verify_datadir, verify_path

    if target is not None and os.sep in target:
        with _progress(path_bytes(target), "verify") as advance:
            report = verify_path(target, deep, advance)
        root = os.path.dirname(os.path.abspath(target))
    else:
        datadir = ctx.obj.datadir()
        with _progress(datadir_bytes(datadir, target), "verify") as advance:
            report = verify_datadir(datadir, target, deep, advance)
        root = datadir.root
    if as_json:
        output.emit_json(report.to_json())
    else:
        for finding in report.findings:
            click.echo(finding.line(root))
        click.echo(report.summary())
    if report.problems:
        n = len(report.problems)
        raise ProblemsFound(f"verify found {n} problem{'s' if n != 1 else ''}")


def _verify_permissions(ctx: click.Context, target: str | None, fix: bool, as_json: bool) -> None:
    """``verify --permissions``: the data dir's (or PATH's) modes and owners (kcli.inspect.permissions)."""
    from kcli.inspect.permissions import check_permissions

    if target is not None and os.sep not in target:
        raise UsageError("--permissions checks the whole data dir or a PATH, not a topic",
                         hint="drop the topic, or give a path such as ./broker-0")
    root = target if target is not None else ctx.obj.datadir(warn_open=False).root
    report = check_permissions(root, fix)
    if as_json:
        output.emit_json(report.to_json())
    else:
        for finding in report.findings:
            click.echo(finding.line(report.root))
        click.echo(report.summary())
    if report.problems:
        n = len(report.problems)
        raise ProblemsFound(f"verify --permissions found {n} problem{'s' if n != 1 else ''}")


# ---------------------------------------------------------------- repair


@click.command()
@click.argument("directory", metavar="PARTITION-DIR")
@click.option(
    "--execute", "do_execute", is_flag=True, help="Apply the repair (default: only say what it would do)."
)
@click.option(
    "--index-interval",
    type=click.IntRange(min=0),
    metavar="BYTES",
    help="index.interval.bytes for rebuilt indexes [default: the topic's, else 4096].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def repair(directory: str, do_execute: bool, index_interval: int | None, as_json: bool) -> None:
    """Cut a torn tail or the bytes from the first corrupt batch on, and rebuild broken indexes, as
    Kafka's recovery does.  Later segments stay when their offsets continue the log, and are moved
    aside otherwise; whatever is removed is kept as SEGMENT.log.POSITION.damaged, never deleted.  A dry
    run unless --execute; refuses while a writer holds the partition's lock."""
    from kcli.inspect import layout
    from kcli.inspect.repair import execute, partition_guard, plan_repair

    location = layout.locate_partition(directory)
    total = sum(
        os.path.getsize(layout.segment_path(location.directory, b, ".log"))
        for b in layout.log_bases(location.directory)
    )
    with partition_guard(location):
        with _progress(total, "repair") as advance:
            plan = plan_repair(location, index_interval, advance)
        if do_execute and plan.actions:
            execute(plan)
            leftover = plan_repair(location, plan.index_interval)
            if leftover.actions:
                raise ProblemsFound(
                    f"{directory} still needs repair after the repair: {leftover.actions[0].describe()}"
                )
    if as_json:
        output.emit_json({**plan.to_json(), "executed": bool(do_execute and plan.actions)})
        return
    where = f"{location.directory} (topic {location.topic}, partition {location.partition})"
    if not plan.actions:
        click.echo(
            f"nothing to repair in {where}: {plan.segments} segments, log end offset {plan.log_end_before}"
        )
        return
    click.echo(f"{'Repaired' if do_execute else 'Repair plan for'} {where}:")
    for action in plan.actions:
        click.echo(f"  {action.describe()}")
    if do_execute:
        click.echo(f"log end offset is now {plan.log_end_after} (was {plan.log_end_before})")
    else:
        click.echo(f"log end offset would go from {plan.log_end_before} to {plan.log_end_after}")
        click.echo("dry run: nothing was changed; run again with --execute to apply this plan")
