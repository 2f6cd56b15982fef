"""``kcli cluster``: lay out brokers and show the cluster."""

from __future__ import annotations

import click

from kcli.cli.output import emit_json, table


@click.group()
def cluster() -> None:
    """Initialise the data directory and show the cluster."""


@cluster.command("init")
@click.option("-n", "--brokers", type=click.IntRange(1, 64), default=None,
              help="Number of brokers (folders broker-0 .. broker-N-1); an existing cluster can only grow "
                   "[default: 1 for a new cluster; an existing one keeps its brokers].")
@click.option("--secure", is_flag=True,
              help="Also make every folder of the data dir owner-only (0700) and every file 0600 (refused "
                   "when the data dir is another user's).")
@click.pass_obj
def init(env, brokers: int | None, secure: bool) -> None:
    """Create the data directory with N broker folders (or grow an existing cluster to N)."""
    from kcli.cluster.metadata import Metadata

    datadir = env.datadir(warn_open=not secure)
    if secure:
        from kcli.inspect.permissions import require_owner

        require_owner(datadir.root)
    metadata = Metadata(datadir)
    state = metadata.ensure() if brokers is None else metadata.add_brokers(brokers)
    click.echo(f"Cluster {state.cluster_id} in {env.data_dir} with brokers "
               f"{', '.join(map(str, state.brokers))}.", err=True)
    if secure:
        _secure(datadir.root)


def _secure(root: str) -> None:
    """Tighten the data dir (see kcli.inspect.permissions); what could not be tightened fails the run."""
    from kcli.errors import DataDirError
    from kcli.inspect.permissions import check_permissions

    report = check_permissions(root, fix=True)
    for finding in report.problems:
        click.echo(f"kcli: warning: {finding.line(root)}", err=True)
    if report.problems:
        n = len(report.problems)
        raise DataDirError(f"{n} path{'s' if n != 1 else ''} in {root} could not be made owner-only",
                           hint="see the warnings above; `kcli verify --permissions` checks again")
    click.echo(f"Data dir {root} is owner-only ({len(report.fixed)} of {report.checked} paths tightened).",
               err=True)


@cluster.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(env, as_json: bool) -> None:
    """Show brokers (live, hung or stopped), the controller, and partitions without a live leader.

    A broker is hung when it holds its lock but its heartbeat is older than the default session
    timeout (9 s): the controller moves its leaderships (sooner when brokers run with a shorter
    --session-timeout-ms)."""
    from kcli.broker.controller import acting_controller
    from kcli.cluster.liveness import DEFAULT_SESSION_TIMEOUT_MS, heartbeat_age, observe
    from kcli.cluster.metadata import Metadata

    datadir = env.datadir()
    state = Metadata(datadir).ensure()
    live = set(datadir.live_brokers())
    states = observe(datadir, state.brokers, DEFAULT_SESSION_TIMEOUT_MS / 1000)
    hung = sorted(live & states.lost)
    controller = acting_controller(states)
    offline = []
    if live:
        for t in state.topics.values():
            for p, meta in enumerate(t.partitions):
                if meta.leader not in live:
                    offline.append(f"{t.name}-{p}")
    info = {"cluster_id": state.cluster_id, "data_dir": datadir.root, "brokers": state.brokers,
            "live_brokers": sorted(live), "hung_brokers": hung, "controller": controller,
            "mode": "brokers" if live else "embedded", "topics": len(state.topics),
            "offline_partitions": offline}
    if as_json:
        emit_json(info)
        return

    def describe(b: int) -> str:
        if b in hung:
            return f"hung (no heartbeat for {heartbeat_age(datadir, b) or 0:.0f}s)"
        if b in live:
            return "live, controller" if b == controller else "live"
        return "stopped"

    click.echo(f"cluster {state.cluster_id} at {datadir.root} ({info['mode']} mode)")
    table(["BROKER", "STATE"], [(b, describe(b)) for b in state.brokers])
    if offline:
        click.echo(f"partitions without a live leader: {', '.join(offline)}")
