"""``kcli topic``: create, list, describe, alter, delete, configs."""

from __future__ import annotations

import click

from kcli.cli.output import emit_json, is_terminal, table
from kcli.errors import UsageError


def _admin(env):
    """The data dir's admin, or the cluster's at --bootstrap-server (same interface, datadir None)."""
    if env.bootstrap_server:
        from kcli.client.cluster_admin import ClusterAdmin

        return ClusterAdmin(env.bootstrap_server)
    from kcli.client.admin import Admin

    return Admin(env.datadir())


@click.group()
def topic() -> None:
    """Create, list, describe, alter and delete topics."""


@topic.command("create")
@click.argument("name")
@click.option("-p", "--partitions", type=int,
              help="Number of partitions (default: the broker config num.partitions, 1 unless set).")
@click.option("-r", "--replication-factor", type=int,
              help="Replicas of each partition, at most the number of brokers (default: the broker config "
                   "default.replication.factor, 1 unless set).")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Topic config (repeatable); see `kcli topic configs`.")
@click.option("--if-not-exists", is_flag=True, help="Succeed quietly if the topic exists.")
@click.pass_obj
def create(env, name: str, partitions: int | None, replication_factor: int | None, configs: tuple[str, ...],
           if_not_exists: bool) -> None:
    """Create topic NAME."""
    from kcli.storage.config import parse_config_pairs

    parsed = parse_config_pairs(configs)
    admin = _admin(env)
    meta = admin.create_topic(name, partitions, replication_factor, parsed, if_not_exists)
    from kcli.cluster.advice import topic_name_warnings

    for warning in topic_name_warnings(name):
        click.echo(f"kcli: warning: {warning}", err=True)
    _warn_replication(meta)
    _warn_partitions(admin.datadir, meta)
    click.echo(f"Created topic {name} with {len(meta.partitions)} partition(s), replication factor "
               f"{len(meta.partitions[0].replicas)}.", err=True)


def _warn_replication(meta) -> None:
    """Print Kafka's replication guidance for this topic's settings on stderr."""
    from kcli.cluster.advice import replication_warnings
    from kcli.storage.config import TOPIC_CONFIGS

    min_insync = int(meta.configs.get("min.insync.replicas", TOPIC_CONFIGS["min.insync.replicas"][0]))
    rf = len(meta.partitions[0].replicas)
    for warning in replication_warnings(rf, min_insync):
        click.echo(f"kcli: warning: {warning}", err=True)


def _warn_partitions(datadir, meta) -> None:
    """Print Kafka's partition-count guidance, measured against the groups that consume the topic."""
    from kcli.cluster.advice import partition_warnings
    from kcli.groups.trend import consuming_groups

    if datadir is None:  # a cluster's groups are not measured here
        return
    for warning in partition_warnings(meta.name, len(meta.partitions), consuming_groups(datadir, meta.name)):
        click.echo(f"kcli: warning: {warning}", err=True)


@topic.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(env, as_json: bool) -> None:
    """List topics."""
    state = _admin(env).state()
    rows = [(t.name, len(t.partitions), len(t.partitions[0].replicas) if t.partitions else 0)
            for t in sorted(state.topics.values(), key=lambda t: t.name)]
    if as_json:
        emit_json([{"name": n, "partitions": p, "replication_factor": r} for n, p, r in rows])
    elif is_terminal():
        table(["TOPIC", "PARTITIONS", "REPLICATION"], rows)
    else:
        for name, _p, _r in rows:
            click.echo(name)


@topic.command("describe")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--under-replicated-partitions", "only", flag_value="under-replicated",
              help="Only partitions whose ISR is smaller than their replica set.")
@click.option("--unavailable-partitions", "only", flag_value="unavailable",
              help="Only partitions without a leader (or whose leader's broker is down while brokers run).")
@click.option("--under-min-isr-partitions", "only", flag_value="under-min-isr",
              help="Only partitions with fewer in-sync replicas than min.insync.replicas.")
@click.pass_obj
def describe(env, names: tuple[str, ...], as_json: bool, only: str | None) -> None:
    """Show partitions, leaders, replicas, ISR and offsets of topics (all when none named); for compacted
    topics also each leader replica's dirty ratio and cleanable bytes (read from the data dir, so not
    with --bootstrap-server)."""
    from kcli.cluster.configs import log_config
    from kcli.storage.log import now_ms

    admin = _admin(env)
    state = admin.state()
    live = (set(admin.datadir.live_brokers()) if admin.datadir else set()) or set(state.brokers)
    chosen = [state.topic(n) for n in names] if names else sorted(state.topics.values(), key=lambda t: t.name)
    rows: list[list[object]] = []
    cleaner_cells: list[list[object]] = []  # per row: dirty ratio, cleanable bytes ("-": not compacted)
    out = []
    any_unstable = False  # an open transaction holds read_committed readers back somewhere
    now = now_ms()
    for t in chosen:
        # the data dir's leader logs are opened once for both; a cluster at --bootstrap-server has no cleaner view
        offsets, cleanables = admin.leader_offsets(t.name, now) if admin.datadir else (admin.end_offsets(t.name), [])
        parts = []
        min_isr = log_config(state, t).min_insync_replicas
        for p, meta in enumerate(t.partitions):
            if only == "under-replicated" and len(meta.isr) >= len(meta.replicas):
                continue
            if only == "unavailable" and meta.leader in live:
                continue
            if only == "under-min-isr" and len(meta.isr) >= min_isr:
                continue
            start, end, stable = offsets[p]
            unstable = stable is not None and stable != end
            any_unstable = any_unstable or unstable
            rows.append([t.name, p, meta.leader, ",".join(map(str, meta.replicas)), ",".join(map(str, meta.isr)),
                         meta.leader_epoch, start, end, stable if unstable else ""])
            part = {"partition": p, "leader": meta.leader, "replicas": meta.replicas, "isr": meta.isr,
                    "leader_epoch": meta.leader_epoch, "log_start_offset": start, "log_end_offset": end,
                    "last_stable_offset": stable}
            if cleanables:
                todo = cleanables[p]
                part["dirty_ratio"] = None if todo is None else round(todo.dirty_ratio, 4)
                part["cleanable_bytes"] = None if todo is None else todo.cleanable_bytes
                cleaner_cells.append([None if todo is None else f"{todo.dirty_ratio:.2f}",
                                      None if todo is None else todo.cleanable_bytes])
            else:
                cleaner_cells.append([None, None])
            parts.append(part)
        out.append({"name": t.name, "topic_id": t.topic_id, "configs": t.configs, "partitions": parts})
    if as_json:
        emit_json(out)
        return
    for t in out:
        if t["configs"]:
            cfg = ",".join(f"{k}={v}" for k, v in sorted(t["configs"].items()))
            click.echo(f"# {t['name']} configs: {cfg}", err=not is_terminal())
    headers = ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "EPOCH", "LOG-START", "LOG-END"]
    if any_unstable:  # the last stable offset, shown only where it differs from the log end
        headers.append("LAST-STABLE")
    else:
        rows = [row[:-1] for row in rows]
    if any(cell != [None, None] for cell in cleaner_cells):  # compacted topics: what the cleaner would take
        headers += ["DIRTY-RATIO", "CLEANABLE-BYTES"]
        rows = [row + cells for row, cells in zip(rows, cleaner_cells, strict=True)]
    table(headers, rows)


@topic.command("alter")
@click.argument("name")
@click.option("-p", "--partitions", type=int, help="New partition count (can only grow).")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE", help="Set a config (repeatable).")
@click.option("--delete-config", "removed", multiple=True, metavar="KEY", help="Reset a config to its default.")
@click.pass_obj
def alter(env, name: str, partitions: int | None, configs: tuple[str, ...], removed: tuple[str, ...]) -> None:
    """Add partitions to NAME or change its configs."""
    from kcli.errors import InvalidConfigError, UsageError
    from kcli.storage.config import TOPIC_CONFIGS, parse_config_pairs

    if partitions is None and not configs and not removed:
        raise UsageError("nothing to change", hint="give --partitions, --config or --delete-config")
    admin = _admin(env)
    parse_config_pairs(configs)  # every change is checked before any is made
    for key in removed:
        if key not in TOPIC_CONFIGS:
            raise InvalidConfigError(f"unknown topic config {key!r}")
    admin.state().topic(name)
    if partitions is not None:
        meta = admin.add_partitions(name, partitions)
        _warn_partitions(admin.datadir, meta)
        click.echo(f"Topic {name} now has {len(meta.partitions)} partition(s).", err=True)
    if configs or removed:  # the one implementation of `kcli config alter --topic`
        from kcli.client.config_admin import open_configs, parse_ops
        from kcli.client.config_admin import topic as topic_resource

        open_configs(admin.datadir, env.bootstrap_server).alter(topic_resource(name), parse_ops(configs, removed))
        _warn_replication(admin.state().topic(name))
        click.echo(f"Updated configs of topic {name}.", err=True)


@topic.command("delete")
@click.argument("name")
@click.pass_obj
def delete(env, name: str) -> None:
    """Delete topic NAME and all its data."""
    _admin(env).delete_topic(name)
    click.echo(f"Deleted topic {name}.", err=True)


@topic.command("configs")
def configs() -> None:
    """List topic configs with their defaults."""
    from kcli.storage.config import TOPIC_CONFIGS

    table(["CONFIG", "DEFAULT", "MEANING"], [(k, v[0], v[2]) for k, v in sorted(TOPIC_CONFIGS.items())])


@topic.command("delete-records")
@click.argument("name", required=False)
@click.option("-p", "--partition", type=int, help="Only this partition (default: every partition of NAME).")
@click.option("--before", "offset", type=int, metavar="OFFSET",
              help="Delete the records before OFFSET (-1: everything up to the high watermark).")
@click.option("--json-file", "json_file", type=click.File("r"), metavar="FILE",
              help='Targets in kafka-delete-records\' format: {"partitions": [{"topic": T, "partition": P, '
                   '"offset": O}], "version": 1}.')
@click.option("--timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds to wait for the in-sync replicas to follow (through brokers).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def delete_records(env, name: str | None, partition: int | None, offset: int | None, json_file,
                   timeout: float, as_json: bool) -> None:
    """Delete the records before an offset (Kafka's DeleteRecords): the partition's log start moves
    there, readers start there, and whole segments below it are deleted.  Prints each partition's new
    low watermark.  Exit 2 for bad input (an offset past the high watermark, a bad JSON file), 3 for an
    unknown topic or partition; nothing is changed then."""
    from kcli.client.records_admin import delete_records as run

    if json_file is not None:
        if name or partition is not None or offset is not None:
            raise UsageError("use either --json-file or NAME with --before")
        targets = _records_plan(json_file)
    else:
        if not name or offset is None:
            raise UsageError("give NAME and --before OFFSET, or --json-file FILE")
        if partition is not None:
            targets = [(name, partition, offset)]
        else:
            targets = [(name, p, offset) for p in range(len(_admin(env).state().topic(name).partitions))]
    for topic_name, p, _offset in targets:
        if p < 0:
            raise UsageError(f"partition {p} of {topic_name!r} is negative")
    datadir = None if env.bootstrap_server else env.datadir()
    marks = run(datadir, targets, bootstrap=env.bootstrap_server, timeout=timeout)
    if as_json:
        emit_json([{"topic": t, "partition": p, "low_watermark": low} for (t, p), low in sorted(marks.items())])
        return
    for (t, p), low in sorted(marks.items()):
        click.echo(f"partition: {t}-{p}\tlow_watermark: {low}")


def _records_plan(json_file) -> list[tuple[str, int, int]]:
    """The targets of a kafka-delete-records offset JSON file."""
    import json

    try:
        doc = json.load(json_file)
        entries = doc["partitions"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("'partitions' must be a non-empty list")
        targets = []
        for e in entries:
            values = (e["topic"], e["partition"], e["offset"])
            if not isinstance(values[0], str) or not all(type(v) is int for v in values[1:]):
                raise ValueError(f"bad entry {e}: topic must be a string, partition and offset integers")
            targets.append(values)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"bad delete-records JSON file {json_file.name}: {exc}") from None
    if len({(t, p) for t, p, _o in targets}) != len(targets):
        raise UsageError(f"bad delete-records JSON file {json_file.name}: a partition appears twice")
    return targets


@topic.command("compact")
@click.argument("name")
@click.option("-p", "--partition", type=int, help="Only this partition (default: every partition of NAME).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def compact(env, name: str, partition: int | None, as_json: bool) -> None:
    """Compact topic NAME now (its cleanup.policy must hold compact): one cleaner pass per partition keeps
    the newest record of each key (offsets stay, gaps appear), drops tombstones older than
    delete.retention.ms, and brings the in-sync followers to the leader's bytes.  Only with no broker
    running: brokers compact on their own (log.cleaner.enable).  Exit 2 for a topic that is not compacted
    or while brokers run."""
    from kcli.cli.output import progress
    from kcli.replica.compaction import check_compactable, compact_partition, leader_bytes
    from kcli.storage.log import now_ms

    datadir = env.datadir()
    count = check_compactable(datadir, name)
    if partition is not None and not 0 <= partition < count:
        raise UsageError(f"topic {name!r} has no partition {partition}: it has partitions 0..{count - 1}")
    parts = range(count) if partition is None else [partition]
    now = now_ms()
    done = []
    for p in parts:
        total = 2 * leader_bytes(datadir, name, p)  # a pass reads the dirty part, then rewrites the rest
        with progress(total, f"compacting {name}-{p}") as bar:
            done.append(compact_partition(datadir, name, p, now, progress=bar.advance))
    if as_json:
        emit_json([{"topic": c.topic, "partition": c.partition, "records_kept": c.leader.result.records_kept,
                    "records_removed": c.leader.result.records_removed, "bytes_before": c.leader.bytes_before,
                    "bytes_after": c.leader.bytes_after, "dirty_ratio": round(c.leader.dirty_ratio, 4),
                    "followers": c.followers} for c in done])
        return
    for c in done:
        click.echo(f"partition: {c.topic}-{c.partition}\tkept: {c.leader.result.records_kept}\t"
                   f"removed: {c.leader.result.records_removed}\t"
                   f"bytes: {c.leader.bytes_before} -> {c.leader.bytes_after}\tdirty_ratio: {c.leader.dirty_ratio:.2f}")
