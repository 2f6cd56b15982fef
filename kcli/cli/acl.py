"""``kcli acl``: add, list and remove the cluster's ACLs, in kafka-acls.sh's shape (embedded on the data
dir, or through the brokers)."""

from __future__ import annotations

import sys

import click

from kcli.cli.output import emit_json, table


def _resources(f):
    """The options naming the resources (kafka-acls.sh's)."""
    f = click.option("--resource-pattern-type", "pattern", metavar="TYPE", default=None,
                     help="literal or prefixed (list and remove also: any, match); add's default literal, "
                     "list's any, remove's literal.")(f)
    f = click.option("--transactional-id", "txn_ids", multiple=True, metavar="ID",
                     help="A transactional id (repeatable; '*' every one).")(f)
    f = click.option("--cluster", is_flag=True, help="The cluster.")(f)
    f = click.option("--group", "groups", multiple=True, metavar="NAME", help="A group (repeatable; '*' every one).")(f)
    f = click.option("--topic", "topics", multiple=True, metavar="NAME", help="A topic (repeatable; '*' every one).")(f)
    return f


def _named(topics, groups, cluster, txn_ids):
    from kcli.security.acl import CLUSTER_NAME, ResourceType

    named = [(ResourceType.TOPIC, t) for t in topics] + [(ResourceType.GROUP, g) for g in groups]
    named += [(ResourceType.TRANSACTIONAL_ID, t) for t in txn_ids]
    if cluster:
        named.append((ResourceType.CLUSTER, CLUSTER_NAME))
    return named


def _pattern(text: str | None, default: str):
    from kcli.security.acl import PatternType, parse_enum

    return parse_enum(PatternType, text or default)


def _operations(ops: tuple[str, ...], default: str | None):
    from kcli.security.acl import Operation, parse_enum

    return [parse_enum(Operation, o) for o in ops] or ([parse_enum(Operation, default)] if default else [])


def _entries(allow: tuple[str, ...], deny: tuple[str, ...]):
    from kcli.security.acl import Permission, check_principal

    return [(check_principal(p), Permission.ALLOW) for p in allow] + [(check_principal(p), Permission.DENY) for p in deny]


def _acls(env):
    from kcli.client.acl_admin import open_acls

    return open_acls(None if env.bootstrap_server else env.datadir(), env.bootstrap_server)


def _show(acls, as_json: bool) -> None:
    if as_json:
        emit_json([a.to_json() for a in acls])
        return
    table(["RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"],
          [(a.resource_type.name, a.name, a.pattern.name, a.principal, a.host, a.operation.name, a.permission.name)
           for a in acls])


_PRINCIPALS = [
    click.option("--allow-principal", "allow", multiple=True, metavar="TYPE:NAME",
                 help="Allow this principal (repeatable; User:* is everyone)."),
    click.option("--deny-principal", "deny", multiple=True, metavar="TYPE:NAME",
                 help="Deny this principal (repeatable; DENY wins over ALLOW)."),
    click.option("--operation", "operations", multiple=True, metavar="OP",
                 help="Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, "
                 "AlterConfigs, IdempotentWrite or All (repeatable)."),
]


def _principal_options(f):
    for option in reversed(_PRINCIPALS):
        f = option(f)
    return f


@click.group()
def acl() -> None:
    """Add, list and remove ACLs: who may do what on which topic, group, transactional id or the cluster.

    Brokers allow a request when an ALLOW ACL matches it and no DENY ACL does; principals in the
    broker's super.users may do everything.  Where no ACL names a resource, allow.everyone.if.no.acl.found
    decides: true while every listener is PLAINTEXT (or the Unix socket), false once an SSL or SASL
    listener is configured.  Unix-socket clients are User:<their login name>; the broker's own user may
    do everything there.
    """


@acl.command("add")
@_principal_options
@click.option("--host", default="*", show_default=True, metavar="HOST",
              help="The client address the ACL applies to (an exact IP; * any).")
@_resources
@click.pass_obj
def add(env, allow, deny, operations, host, topics, groups, cluster, txn_ids, pattern) -> None:
    """Add ACLs: every principal x operation x resource given.

    \b
    Examples:
      kcli acl add --allow-principal User:alice --operation Read --topic orders --group billing
      kcli acl add --allow-principal User:bob --operation Write --topic orders- --resource-pattern-type prefixed
      kcli acl add --deny-principal User:mallory --operation All --topic '*'
    """
    from kcli.errors import UsageError
    from kcli.security.acl import Acl

    entries = _entries(allow, deny)
    named = _named(topics, groups, cluster, txn_ids)
    if not entries:
        raise UsageError("no principal", hint="give --allow-principal or --deny-principal")
    if not named:
        raise UsageError("no resource", hint="give --topic, --group, --transactional-id or --cluster")
    kind = _pattern(pattern, "literal")
    ops = _operations(operations, "All")
    acls = [Acl(rtype, name, kind, principal, host, op, perm).validate()
            for rtype, name in named for principal, perm in entries for op in ops]
    _acls(env).create(acls)
    for a in acls:
        click.echo(f"Added ACL {a.describe()}", err=True)


def _filters(named, entries, ops, host, pattern):
    from kcli.security.acl import AclFilter, Operation, Permission, ResourceType

    resources = named or [(ResourceType.ANY, None)]
    principals = entries or [(None, Permission.ANY)]
    return [AclFilter(rtype, name, pattern, principal, host, op, perm)
            for rtype, name in resources for principal, perm in principals for op in (ops or [Operation.ANY])]


@acl.command("list")
@click.option("--principal", "principals", multiple=True, metavar="TYPE:NAME", help="Only this principal's ACLs "
              "(repeatable).")
@_resources
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(env, principals, topics, groups, cluster, txn_ids, pattern, as_json) -> None:
    """List ACLs (all, or those of the resources and principals given).

    With --resource-pattern-type match, a topic's listing also shows the ACLs that apply to it through
    a '*' or a prefix.

    \b
    Examples:
      kcli acl list
      kcli acl list --topic orders --resource-pattern-type match
      kcli acl list --principal User:alice --json
    """
    from kcli.security.acl import Permission, check_principal

    store = _acls(env)
    entries = [(check_principal(p), Permission.ANY) for p in principals]
    filters = _filters(_named(topics, groups, cluster, txn_ids), entries, [], None, _pattern(pattern, "any"))
    _show(list(dict.fromkeys(a for f in filters for a in store.find(f))), as_json)


@acl.command("remove")
@_principal_options
@click.option("--host", default=None, metavar="HOST", help="Only ACLs for this host.")
@_resources
@click.option("--force", is_flag=True, help="Remove without asking, however many ACLs match.")
@click.pass_obj
def remove(env, allow, deny, operations, host, topics, groups, cluster, txn_ids, pattern, force) -> None:
    """Remove the ACLs of the resources given (only those of the principals, operations and host given,
    when given).  Asks first when more than one ACL would go (--force does not ask).

    \b
    Examples:
      kcli acl remove --allow-principal User:alice --operation Read --topic orders
      kcli acl remove --topic orders --force
    """
    from kcli.errors import UsageError

    named = _named(topics, groups, cluster, txn_ids)
    if not named:
        raise UsageError("no resource", hint="give --topic, --group, --transactional-id or --cluster")
    filters = _filters(named, _entries(allow, deny), _operations(operations, None), host, _pattern(pattern, "literal"))
    store = _acls(env)
    matched = list(dict.fromkeys(a for f in filters for a in store.find(f)))
    if not matched:
        click.echo("No ACL matches.", err=True)
        return
    if len(matched) > 1 and not force:
        if not sys.stdin.isatty():
            raise UsageError(f"{len(matched)} ACLs match", hint="give --force to remove them all")
        _show(matched, False)
        click.confirm(f"Remove these {len(matched)} ACLs?", abort=True, err=True)
    for a in store.delete(filters):
        click.echo(f"Removed ACL {a.describe()}", err=True)
