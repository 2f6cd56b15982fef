"""``kcli transaction``: list and describe transactional ids (kafka-transactions.sh list / describe)."""

from __future__ import annotations

import time

import click

from kcli.cli.output import emit_json, table
from kcli.errors import NotFoundError


def _source(env):  # -> kcli.client.txn_admin.LocalTransactions | ClusterTransactions
    """The cluster's transactional ids at --bootstrap-server, else the data dir's."""
    from kcli.client.txn_admin import open_transactions

    return open_transactions(None if env.bootstrap_server else env.datadir(), env.bootstrap_server)


def _info_json(info) -> dict[str, object]:
    return {
        "transactional_id": info.transactional_id,
        "producer_id": info.producer_id,
        "producer_epoch": info.producer_epoch,
        "state": info.state,
        "timeout_ms": info.timeout_ms,
        "start_ms": info.start_ms,
        "partitions": [{"topic": t, "partition": p} for t, p in info.partitions],
        "groups": list(info.groups),
    }


@click.group()
def transaction() -> None:
    """List and describe transactional ids and their open transactions."""


@transaction.command("list")
@click.option("--state", "states", multiple=True, metavar="STATE",
              help="Only ids in this state (repeatable): Empty, Ongoing, PrepareCommit, PrepareAbort, "
                   "CompleteCommit, CompleteAbort, PrepareEpochFence, Dead.")
@click.option("--producer-id", "producer_ids", type=click.IntRange(0), multiple=True, metavar="ID",
              help="Only ids of this producer id (repeatable).")
@click.option("--duration-filter", "duration_ms", type=int, default=-1, metavar="MS",
              help="Only transactions running longer than MS milliseconds (negative: all), as "
                   "kafka-transactions.sh's --duration-filter.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(env, states: tuple[str, ...], producer_ids: tuple[int, ...], duration_ms: int, as_json: bool) -> None:
    """List transactional ids with their producer and state, as kafka-transactions.sh list does.

    The state is the data directory's, which brokers and embedded producers share; with
    --bootstrap-server, every broker's (each lists the ids it coordinates).
    """
    source = _source(env)
    try:
        infos = source.list(states, producer_ids, duration_ms)
    finally:
        source.close()
    if as_json:
        emit_json([_info_json(i) for i in infos])
        return
    table(["TRANSACTIONAL_ID", "PRODUCER_ID", "PRODUCER_EPOCH", "STATE"],
          [(i.transactional_id, i.producer_id, i.producer_epoch, i.state) for i in infos])


@transaction.command("describe")
@click.argument("transactional_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def describe(env, transactional_id: str, as_json: bool) -> None:
    """Describe transactional id ID: producer, state, timeout and the open transaction's partitions.

    \b
    Examples:
      kcli transaction describe kcli-transform.upper.orders
    """
    source = _source(env)
    try:
        info = source.describe(transactional_id)
    finally:
        source.close()
    if info is None:
        raise NotFoundError(f"transactional id {transactional_id!r} does not exist",
                            hint="see `kcli transaction list`")
    if as_json:
        emit_json(_info_json(info))
        return
    duration = int(time.time() * 1000) - info.start_ms if info.start_ms >= 0 else None
    table(["TRANSACTIONAL_ID", "PRODUCER_ID", "PRODUCER_EPOCH", "STATE", "TIMEOUT_MS", "START_MS",
           "DURATION_MS", "PARTITIONS", "GROUPS"],
          [(info.transactional_id, info.producer_id, info.producer_epoch, info.state, info.timeout_ms,
            info.start_ms if info.start_ms >= 0 else None, duration,
            ",".join(f"{t}-{p}" for t, p in info.partitions) or None, ",".join(info.groups) or None)])
