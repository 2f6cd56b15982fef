"""``kcli broker``: run a broker in the foreground, list the live ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kcli.cli.output import emit_json, table

if TYPE_CHECKING:
    from kcli.storage.config import ConfigValue


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
    metavar="[SASL_PLAINTEXT://][HOST:]PORT",
    help="Also listen on TCP for Kafka clients (host defaults to 127.0.0.1; port 0 picks a free one); "
    "with SASL_PLAINTEXT:// they must authenticate (PLAIN or SCRAM, users from `kcli user create`).",
)
@click.option(
    "--override",
    "overrides",
    multiple=True,
    metavar="NAME=VALUE",
    help="A broker config by Kafka's name, as kafka-server-start's --override (repeatable); wins over "
    "kcli.toml's [broker] table. See `kcli config describe --broker ID` for the names.",
)
@click.option(
    "--num-partitions",
    type=click.IntRange(1),
    metavar="N",
    help="Partitions of topics created without a count, e.g. auto-created (num.partitions; default 1).",
)
@click.option(
    "--default-replication-factor",
    type=click.IntRange(1),
    metavar="N",
    help="Replication factor of topics created without one (default.replication.factor; default 1).",
)
@click.option(
    "--auto-create/--no-auto-create",
    default=None,
    help="Create a missing topic with the defaults when a client asks for it (auto.create.topics.enable; "
    "default on).",
)
@click.option(
    "--max-request-size",
    type=click.IntRange(1024),
    metavar="BYTES",
    help="Close connections that send a larger request frame (socket.request.max.bytes; default 104857600).",
)
@click.option(
    "--replica-lag-time-max-ms",
    type=click.IntRange(1),
    metavar="MS",
    help="Drop a follower from the ISR once it has not caught up for this long (replica.lag.time.max.ms; "
    "default 30000).",
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(1),
    metavar="MS",
    help="The controller treats a broker whose heartbeat is older than this as lost (hung) "
    "(broker.session.timeout.ms; default 9000).",
)
@click.option(
    "--group-initial-rebalance-delay-ms",
    type=click.IntRange(0),
    metavar="MS",
    help="How long a new consumer group waits for more members before its first rebalance "
    "(group.initial.rebalance.delay.ms; default 3000).",
)
@click.option(
    "--transaction-max-timeout-ms",
    type=click.IntRange(1),
    metavar="MS",
    help="The longest transaction timeout a producer may ask for (transaction.max.timeout.ms; default "
    "900000); longer ones get INVALID_TRANSACTION_TIMEOUT.",
)
@click.option(
    "--transactional-id-expiration-ms",
    type=click.IntRange(1),
    metavar="MS",
    help="Forget a transactional id whose producer has been silent this long, with no transaction open "
    "(transactional.id.expiration.ms; default 604800000).",
)
@click.option(
    "--group-consumer-session-timeout-ms",
    type=click.IntRange(1),
    metavar="MS",
    help="A KIP-848 consumer group member silent this long is removed (group.consumer.session.timeout.ms; "
    "default 45000).",
)
@click.option(
    "--group-consumer-heartbeat-interval-ms",
    type=click.IntRange(1),
    metavar="MS",
    help="How often KIP-848 consumer group members heartbeat (group.consumer.heartbeat.interval.ms; "
    "default 5000).",
)
@click.option(
    "--group-consumer-assignors",
    metavar="LIST",
    help="The server assignors of KIP-848 consumer groups, the default first (group.consumer.assignors; "
    "default uniform,range).",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log every connection event, not just the important ones."
)
@click.pass_obj
def serve(
    env,
    broker_id: int,
    listener: str | None,
    overrides: tuple[str, ...],
    verbose: bool,
    **flags: object,
) -> None:
    """Serve the partitions broker ID leads, in the foreground, until SIGTERM or Ctrl-C.

    Listens on a Unix socket in the broker's folder (broker.sock, mode 0600) and, with --listener, on
    TCP. While it runs, kcli commands on this data dir go through it. It follows (replicates) the
    partitions other brokers lead, and one running broker is the controller that moves leaderships
    away from crashed or hung brokers. SIGTERM hands its leaderships over before it exits.

    \b
    Broker configs (Kafka's server.properties) come from kcli.toml's [broker] table, then these
    flags and --override; dynamic ones can change at run time with `kcli config alter`.

    \b
    Examples:
      kcli broker serve --id 0 --listener 9092
      kcli broker serve --id 1 --listener 127.0.0.1:9093 --num-partitions 4 --override log.retention.hours=24
    """
    import logging
    import signal
    import threading

    from kcli.broker.broker import Broker
    from kcli.broker.settings import BrokerSettings
    from kcli.cluster.broker_info import parse_listener
    from kcli.cluster.configs import set_static

    # SASL_PLAINTEXT://HOST:PORT: the TCP listener's clients must authenticate first (the one Kafka
    # listener scheme kcli parses so far)
    scheme, sep, rest = (listener or "").partition("://")
    sasl = bool(sep) and scheme.upper() == "SASL_PLAINTEXT"
    tcp = parse_listener(rest if sasl else listener) if listener else None
    configs = static_broker_configs(flags, overrides)
    set_static(configs)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s kcli broker {broker_id}: %(levelname)s %(message)s",
    )
    settings = BrokerSettings.from_configs(tcp, configs)
    node = Broker(env.datadir(), broker_id, settings)
    if sasl:
        node.server.tcp_security_protocol = "SASL_PLAINTEXT"

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


# serve's flags -> the broker configs they set
_FLAG_CONFIGS = {
    "num_partitions": "num.partitions",
    "default_replication_factor": "default.replication.factor",
    "auto_create": "auto.create.topics.enable",
    "max_request_size": "socket.request.max.bytes",
    "replica_lag_time_max_ms": "replica.lag.time.max.ms",
    "session_timeout_ms": "broker.session.timeout.ms",
    "group_initial_rebalance_delay_ms": "group.initial.rebalance.delay.ms",
    "transaction_max_timeout_ms": "transaction.max.timeout.ms",
    "transactional_id_expiration_ms": "transactional.id.expiration.ms",
    "group_consumer_session_timeout_ms": "group.consumer.session.timeout.ms",
    "group_consumer_heartbeat_interval_ms": "group.consumer.heartbeat.interval.ms",
    "group_consumer_assignors": "group.consumer.assignors",
}


def static_broker_configs(flags: dict[str, object], overrides: tuple[str, ...]) -> dict[str, ConfigValue]:
    """kcli.toml's [broker] configs, then the flags given, then each --override NAME=VALUE, validated:
    a bad one is a usage error before anything starts."""
    from kcli.cluster.configs import parse_broker_config, static_configs
    from kcli.errors import UsageError

    out = static_configs()
    for flag, name in _FLAG_CONFIGS.items():
        value = flags.get(flag)
        if isinstance(value, int | bool | str):  # None: not given
            out[name] = value
    for pair in overrides:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--override {pair!r} is not NAME=VALUE")
        out[name.strip()] = parse_broker_config(name.strip(), value.strip())
    return out


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
