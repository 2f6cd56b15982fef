"""Section 11: what a secured listener costs.  One broker with a PLAINTEXT and a SASL_SSL listener
(SCRAM-SHA-512 over TLS, certificates made at run time), and the same commands through each:
`cat lines | kcli --bootstrap-server HOST:PORT produce T --acks 1` and `kcli --bootstrap-server HOST:PORT
consume T -e`, kcli's client reading the SASL_SSL settings from ``--command-config FILE``.  Each SASL_SSL
figure is shown against the PLAINTEXT one as a ratio; both are the best of --repeat runs, the two
listeners taking turns run by run, so a burst of other load on the box falls on both alike.

With a secured listener configured the broker allows nothing without an ACL
(``allow.everyone.if.no.acl.found`` defaults to false), so both principals -- ``User:bench`` (SCRAM)
and ``User:ANONYMOUS`` (PLAINTEXT) -- get the same ACLs with `kcli acl add` (All on every topic and
group, IdempotentWrite on the cluster): both sides pay for the same authorization checks, and neither
is a super user, which would skip them.

With confluent-kafka installed, a confluent-kafka producer and consumer (``python -c``, librdkafka's TLS
and SCRAM) go through the same two listeners, to show the broker's share of the TLS cost apart from
kcli's client.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from broker import consume_rate, produce_rate
from cluster import live_brokers
from measure import env_with, run_pipeline
from table import Row

USER = "bench"
PASSWORD_ENV = "KCLI_BENCH_PASSWORD"
PASSWORD = "bench-secret"  # a throwaway user on a scratch data dir
MECHANISM = "SCRAM-SHA-512"
GOAL = 0.70  # SASL_SSL at 70% of PLAINTEXT or better
NAME = "produce/consume through SASL_SSL vs PLAINTEXT"

# confluent-kafka's side: a producer of every line of a file, and a consumer of N records from offset 0;
# its settings come as JSON in argv, the password from the environment
_CONFLUENT_PRODUCE = """
import json, os, sys
from confluent_kafka import Producer
conf = json.loads(sys.argv[1])
if "sasl.username" in conf:
    conf["sasl.password"] = os.environ["KCLI_BENCH_PASSWORD"]
producer, topic = Producer(conf), sys.argv[2]
with open(sys.argv[3], "rb") as fh:
    for line in fh:
        while True:
            try:
                producer.produce(topic, line[:-1])
                break
            except BufferError:
                producer.poll(0.05)
if producer.flush(60):
    sys.exit("records left unsent")
"""
_CONFLUENT_CONSUME = """
import json, os, sys
from confluent_kafka import Consumer, TopicPartition
conf = json.loads(sys.argv[1])
if "sasl.username" in conf:
    conf["sasl.password"] = os.environ["KCLI_BENCH_PASSWORD"]
# fetch.queue.backoff.ms: with its local queue full (queued.min.messages), librdkafka waits 1 s by default
# before it fetches again -- a pause that a fast (plaintext) broker hits and a slower one does not
conf.update({"group.id": "bench", "enable.auto.commit": False, "enable.partition.eof": False,
             "fetch.queue.backoff.ms": 10})
consumer, count, seen = Consumer(conf), int(sys.argv[3]), 0
consumer.assign([TopicPartition(sys.argv[2], 0, 0)])  # offset 0, not BEGINNING: no ListOffsets wait
while seen < count:
    batch = consumer.consume(10000, 30.0)
    if not batch:
        sys.exit(f"only {seen} of {count} records")
    for message in batch:
        if message.error():
            sys.exit(str(message.error()))
    seen += len(batch)
consumer.close()
"""


def measure(kcli: list[str], work: str, lines: str, count: int, repeat: int) -> list[Row]:
    try:
        return _measure(kcli, work, lines, count, repeat)
    except Exception as exc:  # reported in the table; the other sections stand
        return [Row("11", NAME, None, note=f"not measured: {exc}")]


def _measure(kcli: list[str], work: str, lines: str, count: int, repeat: int) -> list[Row]:
    pki = _pki(Path(work) / "pki")
    data = os.path.join(work, "secured")
    serve = ["--listener", "PLAINTEXT://127.0.0.1:0", "--listener", "SASL_SSL://127.0.0.1:0",
             "--ssl-certfile", str(pki.broker.cert), "--ssl-keyfile", str(pki.broker.key)]
    megabytes = os.path.getsize(lines) / 1e6
    with live_brokers(kcli, data, serve=serve):
        addresses = _listeners(data)
        _grant(kcli, data)
        config = _client_config(work, pki.ca.cert)
        through = {
            "PLAINTEXT": kcli + ["--bootstrap-server", addresses["PLAINTEXT"]],
            "SASL_SSL": kcli + ["--bootstrap-server", addresses["SASL_SSL"], "--command-config", config],
        }
        rates = _alternating(
            repeat,
            {name: (lambda run, name=name, client=client: produce_rate(
                client, data, lines, count, 1, options=("--acks", "1"), prefix=f"{name.lower()}-{run}-"))
             for name, client in through.items()},
            {name: (lambda topic, client=client: consume_rate(client, data, topic, count, 1))
             for name, client in through.items()},
        )
        rows = _rows("kcli", rates, count, megabytes,
                     note="`cat lines | kcli --bootstrap-server HOST:PORT produce T --acks 1`, one broker with a "
                          "PLAINTEXT and a SASL_SSL (SCRAM-SHA-512, TLS) listener; kcli's client reads the "
                          "SASL_SSL settings from --command-config; User:bench and User:ANONYMOUS hold the same "
                          "ACLs (no super user)")
        if importlib.util.find_spec("confluent_kafka") is not None:
            rows += _rows("confluent-kafka", _confluent(kcli, data, addresses, pki.ca.cert, lines, count, repeat),
                          count, megabytes,
                          note="a confluent-kafka Producer (acks=1) and an assigned Consumer in `python -c`, "
                               "through the same listeners: the broker's TLS and SASL cost apart from kcli's client")
    return rows


def _rows(client: str, rates: dict[str, tuple[float, float]], count: int, megabytes: float, note: str) -> list[Row]:
    rows = []
    for i, what in enumerate(("produce", "consume -e" if client == "kcli" else "consume")):
        plain, secured = rates["PLAINTEXT"][i], rates["SASL_SSL"][i]
        mb = f"PLAINTEXT {plain * megabytes / count:.1f} MB/s, SASL_SSL {secured * megabytes / count:.1f} MB/s"
        rows.append(Row("11", f"{client} {what}, PLAINTEXT listener", plain, "rec/s"))
        rows.append(Row("11", f"{client} {what}, SASL_SSL listener", secured, "rec/s", plain, "PLAINTEXT",
                        GOAL, on="ratio", note=(f"{note}; " if i == 0 else "") + mb))
    return rows


def _pki(folder: Path):
    """A CA and the broker's certificate for 127.0.0.1, from the tests' generator (the ``cryptography``
    package)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.append(root)
    from tests.support.tls import make_pki

    return make_pki(folder)


def _client_config(work: str, cafile: Path) -> str:
    """kcli's --command-config for the SASL_SSL listener; the password in a file of its own (0600)."""
    password = os.path.join(work, "bench-password")
    with open(os.open(password, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
        fh.write(PASSWORD)
    config = os.path.join(work, "sasl-ssl.properties")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(f"security.protocol=SASL_SSL\nsasl.mechanism={MECHANISM}\nsasl.username={USER}\n"
                 f"sasl.password.file={password}\nssl.cafile={cafile}\n")
    return config


def _listeners(data: str, wait: float = 10.0) -> dict[str, str]:
    """HOST:PORT of each TCP listener by its name, from the broker's broker.json (the ports were 0: the
    kernel picked free ones)."""
    from kcli.cluster.broker_info import read_info
    from kcli.cluster.datadir import DataDir

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        info = read_info(DataDir(data), 0)
        if info is not None and len(info.endpoints) == 2:
            return {e.listener: e.address for e in info.endpoints}
        time.sleep(0.05)
    raise RuntimeError("the broker did not publish its listeners in broker.json")


def _grant(kcli: list[str], data: str) -> None:
    """The SCRAM user, and the same ACLs for it and for PLAINTEXT's anonymous principal (through the
    broker's Unix socket, where the broker's own uid may do everything)."""
    env = env_with(data, **{PASSWORD_ENV: PASSWORD})
    steps = [
        ["user", "create", USER, "--mechanism", MECHANISM, "--password-env", PASSWORD_ENV],
        ["acl", "add", "--allow-principal", f"User:{USER}", "--allow-principal", "User:ANONYMOUS",
         "--operation", "All", "--topic", "*", "--group", "*"],
        ["acl", "add", "--allow-principal", f"User:{USER}", "--allow-principal", "User:ANONYMOUS",
         "--operation", "IdempotentWrite", "--cluster"],
    ]
    for args in steps:
        proc = subprocess.run(kcli + args, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"kcli {' '.join(args[:2])} exited {proc.returncode}: {proc.stderr.strip()}")


def _confluent(kcli: list[str], data: str, addresses: dict[str, str], cafile: Path, lines: str, count: int,
               repeat: int) -> dict[str, tuple[float, float]]:
    """(produce, consume) rec/s of confluent-kafka through each listener, best of ``repeat``; each
    produce run writes a new topic, the last one is read."""
    common = {"acks": "1", "linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
    settings = {
        "PLAINTEXT": {"bootstrap.servers": addresses["PLAINTEXT"]},
        "SASL_SSL": {"bootstrap.servers": addresses["SASL_SSL"], "security.protocol": "SASL_SSL",
                     "sasl.mechanism": MECHANISM, "sasl.username": USER, "ssl.ca.location": str(cafile)},
    }
    env = env_with(data, **{PASSWORD_ENV: PASSWORD})

    def produce(name: str, run: int) -> tuple[float, str]:
        topic = f"confluent-{name.lower()}-{run}"
        subprocess.run(kcli + ["topic", "create", topic], env=env, capture_output=True, check=True)
        conf = json.dumps({**settings[name], **common})
        done = run_pipeline([[sys.executable, "-c", _CONFLUENT_PRODUCE, conf, topic, lines]], env=env)
        return count / done.wall, topic

    def consume(name: str, topic: str) -> float:
        conf = json.dumps(settings[name])
        return count / run_pipeline([[sys.executable, "-c", _CONFLUENT_CONSUME, conf, topic, str(count)]], env=env).wall

    return _alternating(repeat, {name: partial(produce, name) for name in settings},
                        {name: partial(consume, name) for name in settings})


def _alternating(repeat: int, produce: dict[str, Callable[[int], tuple[float, str]]],
                 consume: dict[str, Callable[[str], float]]) -> dict[str, tuple[float, float]]:
    """The best (produce, consume) rates through each listener of ``repeat`` runs, the listeners taking
    turns run by run, so a burst of other load on the box falls on both alike.  ``produce[name](run)``
    gives a rate and the topic it wrote; ``consume[name](topic)`` reads that topic (the last run's)."""
    best = {name: [0.0, 0.0] for name in produce}
    topics: dict[str, str] = {}
    for run in range(repeat):
        for name, step in produce.items():
            rate, topics[name] = step(run)
            best[name][0] = max(best[name][0], rate)
    for _ in range(repeat):
        for name, read in consume.items():
            best[name][1] = max(best[name][1], read(topics[name]))
    return {name: (produced, consumed) for name, (produced, consumed) in best.items()}
