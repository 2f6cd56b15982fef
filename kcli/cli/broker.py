"""``kcli broker``: run a broker in the foreground, list the live ones."""

from __future__ import annotations

import click

from kcli.cli.output import emit_json, table


class _StopBeforeServing(BaseException):
    """SIGTERM or SIGINT (``signum``) while the broker starts.  A BaseException, so that no handler of
    ordinary errors on the way (loading a partition, say) swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@click.group()
def broker() -> None:
    """Run a broker speaking Kafka's protocol, or list the live ones."""


@broker.command("serve")
@click.option(
    "--id", "broker_id", type=click.IntRange(0), required=True, help="Broker id (a broker-ID folder)."
)
@click.option(
    "--listener",
    metavar="[HOST:]PORT",
    help="Also listen on TCP for Kafka clients (host defaults to 127.0.0.1; port 0 picks a free one).",
)
@click.option(
    "--auto-create/--no-auto-create",
    default=True,
    show_default=True,
    help="Create a missing topic with the defaults when a client asks for it (auto.create.topics.enable).",
)
@click.option(
    "--max-request-size",
    type=click.IntRange(1024),
    default=100 * 1024 * 1024,
    show_default=True,
    metavar="BYTES",
    help="Close connections that send a larger request frame.",
)
@click.option(
    "--replica-lag-time-max-ms",
    type=click.IntRange(1),
    default=30000,
    show_default=True,
    metavar="MS",
    help="Drop a follower from the ISR once it has not caught up for this long (replica.lag.time.max.ms).",
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(1),
    default=9000,
    show_default=True,
    metavar="MS",
    help="The controller treats a broker whose heartbeat is older than this as lost (hung).",
)
@click.option(
    "--group-initial-rebalance-delay-ms",
    type=click.IntRange(0),
    default=3000,
    show_default=True,
    metavar="MS",
    help="How long a new consumer group waits for more members before its first rebalance "
    "(group.initial.rebalance.delay.ms).",
)
@click.option(
    "--transaction-max-timeout-ms",
    type=click.IntRange(1),
    default=900_000,
    show_default=True,
    metavar="MS",
    help="The longest transaction timeout a producer may ask for (transaction.max.timeout.ms); "
    "longer ones get INVALID_TRANSACTION_TIMEOUT.",
)
@click.option(
    "--transactional-id-expiration-ms",
    type=click.IntRange(1),
    default=604_800_000,
    show_default=True,
    metavar="MS",
    help="Forget a transactional id whose producer has been silent this long, with no transaction open "
    "(transactional.id.expiration.ms).",
)
@click.option(
    "--group-consumer-session-timeout-ms",
    type=click.IntRange(1),
    default=45_000,
    show_default=True,
    metavar="MS",
    help="A KIP-848 consumer group member silent this long is removed (group.consumer.session.timeout.ms).",
)
@click.option(
    "--group-consumer-heartbeat-interval-ms",
    type=click.IntRange(1),
    default=5_000,
    show_default=True,
    metavar="MS",
    help="How often KIP-848 consumer group members heartbeat (group.consumer.heartbeat.interval.ms).",
)
@click.option(
    "--group-consumer-assignors",
    default="uniform,range",
    show_default=True,
    metavar="LIST",
    help="The server assignors of KIP-848 consumer groups, the default first (group.consumer.assignors).",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log every connection event, not just the important ones."
)
@click.pass_obj
def serve(
    env,
    broker_id: int,
    listener: str | None,
    auto_create: bool,
    max_request_size: int,
    replica_lag_time_max_ms: int,
    session_timeout_ms: int,
    group_initial_rebalance_delay_ms: int,
    transaction_max_timeout_ms: int,
    transactional_id_expiration_ms: int,
    group_consumer_session_timeout_ms: int,
    group_consumer_heartbeat_interval_ms: int,
    group_consumer_assignors: str,
    verbose: bool,
) -> None:
    """Serve the partitions broker ID leads, in the foreground, until SIGTERM or Ctrl-C.

    Listens on a Unix socket in the broker's folder (broker.sock, mode 0600) and, with --listener, on
    TCP. While it runs, kcli commands on this data dir go through it. It follows (replicates) the
    partitions other brokers lead, and one running broker is the controller that moves leaderships
    away from crashed or hung brokers. SIGTERM hands its leaderships over before it exits.

    \b
    Examples:
      kcli broker serve --id 0 --listener 9092
      kcli broker serve --id 1 --listener 127.0.0.1:9093
    """
    import logging
    import signal
    import threading

    from kcli.broker.broker import Broker
    from kcli.broker.settings import BrokerSettings
    from kcli.cluster.broker_info import parse_listener

    tcp = parse_listener(listener) if listener else None
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s kcli broker {broker_id}: %(levelname)s %(message)s",
    )
    settings = BrokerSettings(
        listener=tcp,
        auto_create=auto_create,
        max_frame_size=max_request_size,
        replica_lag_time_ms=replica_lag_time_max_ms,
        session_timeout_ms=session_timeout_ms,
        group_initial_rebalance_delay_ms=group_initial_rebalance_delay_ms,
        transaction_max_timeout_ms=transaction_max_timeout_ms,
        transactional_id_expiration_ms=transactional_id_expiration_ms,
        group_consumer_session_timeout_ms=group_consumer_session_timeout_ms,
        group_consumer_heartbeat_interval_ms=group_consumer_heartbeat_interval_ms,
        group_consumer_assignors=consumer_assignors(group_consumer_assignors),
    )
    node = Broker(env.datadir(), broker_id, settings)

    serving = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        node.stop()  # serving: the clean stop that hands leaderships over
        if not serving.is_set():  # still starting: abort wherever it is
            raise _StopBeforeServing(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = node.start()
        serving.set()
    except _StopBeforeServing as stop:
        serving.set()  # from here on a second signal only asks for the stop under way
        node.shutdown()  # lets go of whatever start() had taken and not released itself
        logging.getLogger("kcli.broker").info("stopped by %s before serving", signal.Signals(stop.signum).name)
        return
    where = f"unix:{info.socket}" + (f" and tcp:{info.listener}" if info.listener else "")
    logging.getLogger("kcli.broker").info("serving on %s (pid %d)", where, info.pid)
    node.run()
    logging.getLogger("kcli.broker").info("stopped cleanly")


@broker.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(env, as_json: bool) -> None:
    """List live brokers (those holding their broker lock) and how to reach them."""
    import datetime

    from kcli.cluster.broker_info import live_brokers, socket_path

    datadir = env.datadir()
    datadir.check_usable()
    rows = []
    out = []
    for broker_id, info in sorted(live_brokers(datadir).items()):
        started = ""
        if info is not None and info.started_ms:
            started = datetime.datetime.fromtimestamp(info.started_ms / 1000).isoformat(timespec="seconds")
        rows.append(
            (
                broker_id,
                info.pid if info else None,
                info.socket if info else socket_path(datadir, broker_id),
                (info.listener if info else None) or "-",
                started or "starting",
            )
        )
        out.append(
            {
                "broker_id": broker_id,
                "pid": info.pid if info else None,
                "socket": info.socket if info else socket_path(datadir, broker_id),
                "listener": info.listener if info else None,
                "started_ms": info.started_ms if info else None,
            }
        )
    if as_json:
        emit_json(out)
        return
    table(["BROKER", "PID", "SOCKET", "LISTENER", "STARTED"], rows)


def consumer_assignors(value: str) -> tuple[str, ...]:
    """``--group-consumer-assignors``: known names, comma-separated (a usage error otherwise)."""
    from kcli.groups.server_assignors import SERVER_ASSIGNORS

    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in SERVER_ASSIGNORS]
    if not names or unknown:
        raise click.BadParameter(
            f"unknown assignor(s) {', '.join(unknown) or '(none given)'}; kcli has {', '.join(SERVER_ASSIGNORS)}",
            param_hint="--group-consumer-assignors",
        )
    return names
