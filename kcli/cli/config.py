"""``kcli config``: describe and alter configs of topics, brokers, the cluster-wide broker defaults and
groups, like kafka-configs (embedded on the data dir, or through the brokers)."""

from __future__ import annotations

import click

from kcli.cli.output import emit_json, table


def _entity(f):
    """The options naming what the configs belong to (exactly one)."""
    f = click.option("--broker-defaults", is_flag=True, help="The cluster-wide broker defaults (Kafka's --entity-default).")(f)
    f = click.option("--broker", "broker_id", type=click.IntRange(0), metavar="ID", help="Broker ID's configs.")(f)
    f = click.option("--group", metavar="NAME", help="Group NAME's configs (consumer.session.timeout.ms, "
                     "consumer.heartbeat.interval.ms).")(f)
    f = click.option("--topic", metavar="NAME", help="Topic NAME's configs.")(f)
    return f


def _resource(topic: str | None, group: str | None, broker_id: int | None, broker_defaults: bool):
    from kcli.client import config_admin
    from kcli.errors import UsageError

    if sum((topic is not None, group is not None, broker_id is not None, broker_defaults)) != 1:
        raise UsageError("name exactly one of --topic, --group, --broker and --broker-defaults")
    if topic is not None:
        return config_admin.topic(topic)
    if group is not None:
        return config_admin.group(group)
    return config_admin.broker(broker_id)


def _configs(env):
    from kcli.client.config_admin import open_configs

    if env.bootstrap_server:
        return open_configs(None, env.bootstrap_server)
    return open_configs(env.datadir())


@click.group()
def config() -> None:
    """Describe and change configs of topics, brokers, the cluster-wide broker defaults and groups.

    A topic's own config wins over the broker config of the same meaning (retention.ms over
    log.retention.ms), which comes from the broker itself, then the cluster-wide defaults, then
    kcli.toml's [broker] table and `kcli broker serve` flags, then Kafka's default.  A group's
    consumer.session.timeout.ms and consumer.heartbeat.interval.ms likewise win over the broker's
    group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms, within the broker's
    group.consumer.min/max.* bounds.
    """


@config.command("describe")
@_entity
@click.option("--name", "names", multiple=True, metavar="KEY", help="Only this config (repeatable).")
@click.option("--synonyms", is_flag=True, help="Also show where each value could come from, in order.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def describe(env, topic: str | None, group: str | None, broker_id: int | None, broker_defaults: bool,
             names: tuple[str, ...], synonyms: bool, as_json: bool) -> None:
    """Show every config of a topic, broker or group, its value and where the value comes from.

    \b
    Examples:
      kcli config describe --topic orders
      kcli config describe --broker 0 --name log.retention.ms --synonyms
      kcli config describe --broker-defaults
      kcli config describe --group orders-app
    """
    from kcli.cluster.configs import SOURCE_NAMES

    resource = _resource(topic, group, broker_id, broker_defaults)
    entries = _configs(env).describe(resource, list(names) or None)
    if as_json:
        kind = "topic" if topic is not None else "group" if group is not None else "broker"
        emit_json({"resource": {"type": kind, "name": resource.name},
                   "configs": [e.to_json() for e in entries]})
        return
    rows = []
    for e in entries:
        rows.append((e.name, e.value, SOURCE_NAMES.get(e.source, "UNKNOWN"), "yes" if e.read_only else "no"))
        if synonyms:
            rows += [(f"  {n}", v, SOURCE_NAMES.get(s, "UNKNOWN"), "") for n, v, s in e.synonyms]
    table(["CONFIG", "VALUE", "SOURCE", "READ-ONLY"], rows)


@config.command("alter")
@_entity
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config (repeatable).")
@click.option("--delete", "deletes", multiple=True, metavar="KEY",
              help="Remove a config, so it falls back to the next source (repeatable).")
@click.option("--validate-only", is_flag=True, help="Check the change without applying it.")
@click.pass_obj
def alter(env, topic: str | None, group: str | None, broker_id: int | None, broker_defaults: bool,
          sets: tuple[str, ...],           deletes: tuple[str, ...], validate_only: bool) -> None:
    """Change configs of a topic, a broker, the cluster-wide broker defaults or a group, all or none.

    Broker configs that Kafka can change at run time (log.retention.ms, min.insync.replicas, ...)
    reach running brokers at once; the others are read-only here (set them in kcli.toml's [broker]
    table or with `kcli broker serve --override`).

    \b
    Examples:
      kcli config alter --topic orders --set retention.ms=86400000 --delete segment.bytes
      kcli config alter --broker-defaults --set log.retention.ms=3600000
      kcli config alter --group orders-app --set consumer.heartbeat.interval.ms=8000
    """
    from kcli.client.config_admin import parse_ops
    from kcli.errors import UsageError

    if not sets and not deletes:
        raise UsageError("nothing to change", hint="give --set KEY=VALUE or --delete KEY")
    resource = _resource(topic, group, broker_id, broker_defaults)
    _configs(env).alter(resource, parse_ops(sets, deletes), validate_only)
    what = "Validated" if validate_only else "Updated"
    click.echo(f"{what} configs of {resource.label()}.", err=True)
