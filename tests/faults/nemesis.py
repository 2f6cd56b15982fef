"""The fault suite's nemesis and checker: a three-broker cluster under kill -9, SIGSTOP, bounces, a full
disk and damaged bytes, while idempotent producers write unique values with acks=all (Jepsen's idea,
and Kafka's ``replication_test`` / ``log_dir_failure_test`` in spirit).

Writers: one ``kcli produce -p P --acks all --print-offsets`` per partition (a new session whenever one
exits), and one librdkafka producer (confluent-kafka, ``enable.idempotence=true``).  A librdkafka
consumer polls all partitions throughout.  The nemesis picks a fault every few seconds from a seeded
random generator:

- ``kill``: kill -9 a partition leader or the controller, restart it a moment later;
- ``pause``: SIGSTOP a leader for longer than the session timeout, then SIGCONT;
- ``bounce``: SIGTERM a broker (a controlled shutdown), start it again;
- ``disk``: fill the data dir's disk (a small tmpfs; root only), hold it full, free it;
- ``corrupt``: while a broker is down, append garbage or zeros to one of its replicas' active segment
  (a torn tail), then start it again.

The checker then heals the cluster, waits for every replica to be in sync, and reports what was
acknowledged and how much of it was lost, duplicated or reordered, offsets that disagree between the
acknowledgement, the consumers (through the brokers and straight from the files) and the replicas, and
polls whose offsets went backwards.  Every count but ``acknowledged`` must be 0.

Operators run a long soak from the ``tests`` folder of a checkout (root for the disk fault)::

    cd tests && ../.venv/bin/python -m faults.nemesis --minutes 30 --seed 7
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from support.runner import KCLI

from kcli.cluster.datadir import DataDir
from kcli.cluster.metadata import Metadata
from kcli.errors import KcliError
from kcli.storage import records

from .harness import Piped, replica_batches

TOPIC = "nemesis"
FAULTS = ("kill", "pause", "bounce", "disk", "corrupt")
_KCLI_VALUE = re.compile(r"^k(\d+)s(\d+)-(\d+)$")  # k<partition>s<session>-<seq>
_RDK_VALUE = re.compile(r"^rdk-(\d+)$")


@dataclass
class Config:
    seconds: float = 60.0
    seed: int = 1
    faults: tuple[str, ...] = FAULTS
    partitions: int = 3
    session_timeout_ms: int = 3000
    interval: tuple[float, float] = (1.0, 3.0)  # seconds between faults
    disk_mb: int = 0  # the tmpfs for the data dir; 0: enough for the run (three replicas of every write)
    workdir: Path | None = None


@dataclass
class Report:
    acknowledged: int = 0
    indeterminate: int = 0  # sent, never acknowledged: may be stored at most once
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    inconsistent_offsets: int = 0
    non_monotonic_polls: int = 0
    resent_by_client: int = 0  # librdkafka re-sent a possibly stored record under a bumped epoch
    faults: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return (self.lost + self.duplicated + self.reordered + self.inconsistent_offsets
                + self.non_monotonic_polls)

    def summary(self) -> str:
        done = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return (f"acknowledged {self.acknowledged}, lost {self.lost}, duplicated {self.duplicated}, "
                f"reordered {self.reordered}, inconsistent offsets {self.inconsistent_offsets}, "
                f"non-monotonic polls {self.non_monotonic_polls} (indeterminate {self.indeterminate}, "
                f"re-sent by librdkafka under a new epoch {self.resent_by_client}; faults: {done})")

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


# ---------------------------------------------------------------- the cluster


class Cluster:
    """Three brokers on one data dir; broker processes are ours to kill, pause and restart."""

    def __init__(self, data_dir: Path, logs: Path, session_timeout_ms: int) -> None:
        self.data_dir = data_dir
        self.logs = logs
        self.session_timeout_ms = session_timeout_ms
        self.env = {**os.environ, "KCLI_DATA_DIR": str(data_dir), "NO_COLOR": "1"}
        self.env.pop("XDG_DATA_HOME", None)
        self.datadir = DataDir(str(data_dir))
        self.procs: dict[int, subprocess.Popen] = {}
        self.paused: set[int] = set()
        self.starts = 0

    def kcli(self, *args: object, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*KCLI, *map(str, args)], input=input, capture_output=True, env=self.env,
                              timeout=timeout)

    def start(self, broker: int, wait: bool = True) -> None:
        self.starts += 1
        log = open(self.logs / f"broker-{broker}.log", "ab")  # noqa: SIM115 - the process keeps it
        log.write(f"----- start {self.starts}\n".encode())
        log.flush()
        self.procs[broker] = subprocess.Popen(
            [*KCLI, "broker", "serve", "--id", str(broker), "--listener", "127.0.0.1:0",
             "--session-timeout-ms", str(self.session_timeout_ms), "--replica-lag-time-max-ms", "5000"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_ready(broker)

    def wait_ready(self, broker: int, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        path = self.data_dir / f"broker-{broker}" / "broker.json"
        while time.monotonic() < deadline:
            proc = self.procs[broker]
            if proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, ValueError):
                if json.loads(path.read_text()).get("pid") == proc.pid:
                    return True
            time.sleep(0.05)
        return False

    def running(self, broker: int) -> bool:
        proc = self.procs.get(broker)
        return proc is not None and proc.poll() is None

    def bootstrap(self) -> str:
        addresses = []
        for broker in self.procs:
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = json.loads((self.data_dir / f"broker-{broker}" / "broker.json").read_text())
                addresses.append(f"127.0.0.1:{info['port']}")
        return ",".join(addresses)

    def leader(self, partition: int) -> int:
        return Metadata(self.datadir).load().partition(TOPIC, partition).leader

    def controller(self) -> int | None:
        """The controller: the lowest-id running broker that is not paused."""
        running = [b for b in self.procs if self.running(b) and b not in self.paused]
        return min(running) if running else None

    def signal(self, broker: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.procs[broker].send_signal(sig)
        if sig == signal.SIGSTOP:
            self.paused.add(broker)
        elif sig == signal.SIGCONT:
            self.paused.discard(broker)

    def kill(self, broker: int) -> None:
        self.signal(broker, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            self.procs[broker].kill()
        self.procs[broker].wait(30)

    def stop(self, broker: int, timeout: float = 30) -> None:
        self.signal(broker, signal.SIGCONT)
        proc = self.procs[broker]
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)

    def heal(self, brokers: list[int]) -> None:
        for broker in brokers:
            self.signal(broker, signal.SIGCONT)
            if not self.running(broker):
                self.start(broker)

    def in_sync(self, partitions: int) -> bool:
        """Every replica in the ISR and at the same log end offset."""
        state = Metadata(self.datadir).load()
        for p in range(partitions):
            meta = state.partition(TOPIC, p)
            if meta.leader < 0 or sorted(meta.isr) != sorted(meta.replicas):
                return False
            ends = {replica_end(self.datadir, b, p) for b in meta.replicas}
            if len(ends) != 1:
                return False
        return True

    def stop_all(self) -> None:
        for broker in list(self.procs):
            self.stop(broker)


def replica(datadir: DataDir, broker: int, partition: int) -> list[tuple[int, bytes]] | str:
    """The batches of one replica's files, or what is wrong with them."""
    try:
        return replica_batches(datadir.partition_dir(broker, TOPIC, partition))[1]
    except (KcliError, OSError) as exc:
        return f"replica on broker {broker} is damaged: {exc}"


def replica_end(datadir: DataDir, broker: int, partition: int) -> int | str:
    batches = replica(datadir, broker, partition)
    if isinstance(batches, str) or not batches:
        return batches or 0
    return records.parse_header(batches[-1][1]).last_offset + 1


# ---------------------------------------------------------------- the writers and the poller


class KcliWriters:
    """One ``kcli produce -p P --acks all`` per partition; a session that ends (its process failed) is
    followed by a new one, so values are ``k<P>s<session>-<seq>``."""

    def __init__(self, cluster: Cluster, partitions: int, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.partitions = partitions
        self.sessions: list[tuple[int, list[str], Piped]] = []
        self.next_session = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kcli-writers", daemon=True)
        self._live: dict[int, Piped] = {}

    def start(self) -> None:
        self._thread.start()

    def _session(self, partition: int) -> None:
        self.next_session += 1
        lines = [f"k{partition}s{self.next_session}-{i}" for i in range(100_000)]
        argv = [*KCLI, "produce", TOPIC, "-p", str(partition), "--acks", "all", "--print-offsets"]
        piped = Piped(argv, self.cluster.env, lines, self.rng, pace=0.05)
        self.sessions.append((partition, lines, piped))
        self._live[partition] = piped

    def _run(self) -> None:
        for p in range(self.partitions):
            self._session(p)
        while not self._stop.wait(0.2):
            for p, piped in list(self._live.items()):
                if piped.proc.poll() is not None:
                    piped.wait()
                    self._session(p)

    def stop(self) -> None:
        """Close every live session's input and let it deliver what it read."""
        self._stop.set()
        self._thread.join(30)
        for piped in self._live.values():
            piped.lines = piped.lines[: piped.sent]  # the feeder stops and closes the pipe
        for piped in self._live.values():
            try:
                piped.wait(timeout=90)
            except subprocess.TimeoutExpired:
                piped.kill()

    def acknowledged(self) -> dict[str, tuple[int, int]]:
        """value -> (partition, offset) of every acknowledged line (the k-th ack is the k-th line)."""
        out = {}
        for partition, lines, piped in self.sessions:
            for k, (_topic, p, offset) in enumerate(piped.acks):
                out[lines[k]] = (p, offset)
                assert p == partition
        return out

    def sent(self) -> int:
        return sum(piped.sent for _p, _l, piped in self.sessions)


class RdkWriter:
    """A librdkafka idempotent producer writing ``rdk-<seq>`` round the partitions."""

    def __init__(self, cluster: Cluster, partitions: int) -> None:
        self.cluster = cluster
        self.partitions = partitions
        self.acked: dict[str, tuple[int, int]] = {}
        self.sent = 0
        self.fatal: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdk-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import KafkaException, Producer

        producer = Producer({"bootstrap.servers": self.cluster.bootstrap(), "enable.idempotence": True,
                             "acks": "all", "linger.ms": 5, "message.timeout.ms": 120000,
                             "log_level": 0})

        def delivered(err, msg) -> None:
            if err is None:
                self.acked[msg.value().decode()] = (msg.partition(), msg.offset())
            elif err.fatal():
                self.fatal.append(str(err))

        seq = 0
        while not self._stop.is_set() and not self.fatal:
            try:
                producer.produce(TOPIC, f"rdk-{seq}".encode(), partition=seq % self.partitions,
                                 on_delivery=delivered)
            except BufferError:
                producer.poll(0.1)
                continue
            except KafkaException as exc:
                self.fatal.append(str(exc))
                break
            seq += 1
            self.sent = seq
            producer.poll(0.01)
        producer.flush(120)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(150)


class Poller:
    """A librdkafka consumer on every partition from the start, checking each poll's offset is past the
    last one it saw on that partition."""

    def __init__(self, cluster: Cluster, partitions: int, report: Report) -> None:
        self.cluster = cluster
        self.partitions = partitions
        self.report = report
        self.polled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.cluster.bootstrap(), "group.id": "nemesis-poller",
                             "enable.auto.commit": False, "log_level": 0})
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        last: dict[int, int] = {}
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                p, offset = msg.partition(), msg.offset()
                if p in last and offset <= last[p]:
                    self.report.non_monotonic_polls += 1
                    self.report.problem(f"poll went from offset {last[p]} back to {offset} on partition {p}")
                last[p] = offset
                self.polled += 1
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# ---------------------------------------------------------------- the nemesis


class Nemesis:
    def __init__(self, cluster: Cluster, config: Config, rng: random.Random, disk: Path | None,
                 report: Report) -> None:
        self.cluster = cluster
        self.config = config
        self.rng = rng
        self.mount = disk
        self.report = report
        self.brokers = sorted(cluster.procs)
        self.faults = [f for f in config.faults if f != "disk" or disk is not None]

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.faults:
            time.sleep(self.rng.uniform(*self.config.interval))
            fault = self.rng.choice(self.faults)
            getattr(self, fault)()
            self.report.faults[fault] = self.report.faults.get(fault, 0) + 1

    def _victim(self) -> int:
        """A partition leader or the controller, whichever the dice say."""
        if self.rng.random() < 0.3:
            controller = self.cluster.controller()
            if controller is not None:
                return controller
        leader = self.cluster.leader(self.rng.randrange(self.config.partitions))
        return leader if leader >= 0 else self.rng.choice(self.brokers)

    def _down_then_up(self, take_down: Callable[[int], object], longest: float) -> None:
        victim = self._victim()
        take_down(victim)
        time.sleep(self.rng.uniform(0.2, longest))
        self.cluster.start(victim)

    def kill(self) -> None:
        self._down_then_up(self.cluster.kill, 2.0)

    def pause(self) -> None:
        victim = self._victim()
        self.cluster.signal(victim, signal.SIGSTOP)
        time.sleep(self.config.session_timeout_ms / 1000 + self.rng.uniform(0.5, 3.0))
        self.cluster.signal(victim, signal.SIGCONT)

    def bounce(self) -> None:
        self._down_then_up(self.cluster.stop, 1.0)

    def disk(self) -> None:
        assert self.mount is not None
        ballast = self.mount / "ballast"
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(OSError), open(ballast, "wb") as fh:  # full already: fine too
            while True:
                fh.write(chunk)
                fh.flush()
        time.sleep(self.rng.uniform(1.0, 3.0))
        ballast.unlink(missing_ok=True)

    def corrupt(self) -> None:
        """A torn tail on a stopped broker's replica: garbage after its last batch, as a crash mid-write
        (or a disk that wrote zeros) leaves it; the broker's recovery must cut it and catch up."""
        victim = self.rng.choice(self.brokers)
        self.cluster.kill(victim)
        folder = Path(self.cluster.datadir.partition_dir(victim, TOPIC, self.rng.randrange(self.config.partitions)))
        logs = sorted(folder.glob("*.log"))
        if logs:
            tail = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 300)))
            if self.rng.random() < 0.5:
                tail = b"\0" * len(tail)
            with contextlib.suppress(OSError), open(logs[-1], "ab") as fh:
                fh.write(tail)
        time.sleep(self.rng.uniform(0.2, 1.0))
        self.cluster.start(victim)


# ---------------------------------------------------------------- the checker


def read_through_brokers(cluster: Cluster, partitions: int) -> dict[int, list[tuple[int, str]]]:
    """(offset, value) of every record, read by librdkafka through the brokers."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "nemesis-checker",
                         "enable.auto.commit": False, "log_level": 0})
    out: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)[1] for p in out}
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in out])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
            (out[p][-1][0] + 1 if out[p] else 0) < ends[p] for p in out
        ):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out[msg.partition()].append((msg.offset(), msg.value().decode()))
    finally:
        consumer.close()
    return out


def read_from_files(cluster: Cluster) -> dict[int, list[tuple[int, str]]]:
    """(offset, value) of every record, read by ``kcli consume`` straight from the data dir."""
    res = cluster.kcli("consume", TOPIC, "-b", "-e", "-f", "%p %o %s\\n")
    out: dict[int, list[tuple[int, str]]] = {}
    for line in res.stdout.decode().splitlines():
        p, o, value = line.split(" ", 2)
        out.setdefault(int(p), []).append((int(o), value))
    if res.returncode:
        out[-1] = [(res.returncode, res.stderr.decode().strip())]
    return out


def producer_sessions(batches: list[tuple[int, bytes]]) -> dict[int, tuple[int, int]]:
    """offset -> (producer id, producer epoch) of the batch that stored it."""
    out = {}
    for _base, raw in batches:
        header = records.parse_header(raw)
        for offset in range(header.base_offset, header.last_offset + 1):
            out[offset] = (header.producer_id, header.producer_epoch)
    return out


def check(report: Report, acked: dict[str, tuple[int, int]], by_broker: dict[int, list[tuple[int, str]]],
          from_files: dict[int, list[tuple[int, str]]], cluster: Cluster, partitions: int) -> None:
    report.acknowledged = len(acked)
    if -1 in from_files:
        report.inconsistent_offsets += 1
        report.problem(f"kcli consume exited {from_files[-1][0][0]}: {from_files[-1][0][1]}")
    seen: dict[str, tuple[int, int]] = {}  # value -> where it is first stored
    copies: dict[str, set[tuple[int, int]]] = {}  # value -> everywhere it is stored
    for p in range(partitions):
        stored = by_broker.get(p, [])
        if stored != from_files.get(p, []):
            report.inconsistent_offsets += 1
            report.problem(f"partition {p}: the brokers serve {len(stored)} records, the files hold "
                           f"{len(from_files.get(p, []))} (or other offsets)")
        # every replica holds the same batches
        replicas = Metadata(cluster.datadir).load().partition(TOPIC, p).replicas
        logs = {b: replica(cluster.datadir, b, p) for b in replicas}
        first = logs[replicas[0]]
        for broker, batches in logs.items():
            if isinstance(batches, str):
                report.inconsistent_offsets += 1
                report.problem(f"partition {p}: {batches}")
            elif batches != first:
                report.inconsistent_offsets += 1
                report.problem(f"partition {p}: replica on broker {broker} differs from broker {replicas[0]}")
        senders = producer_sessions(first if not isinstance(first, str) else [])
        last_seq: dict[str, int] = {}
        for offset, value in stored:
            copies.setdefault(value, set()).add((p, offset))
            if value in seen:
                earlier = seen[value]
                if _RDK_VALUE.match(value) and senders.get(earlier[1]) != senders.get(offset):
                    # librdkafka renumbered a possibly persisted record after bumping its epoch (because
                    # another batch failed): a new (producer, epoch) with sequence 0 is a new record to any
                    # broker, Kafka's included, so this is the client's doing, counted apart
                    report.resent_by_client += 1
                    report.problem(f"{value} at {earlier} re-sent by librdkafka as producer/epoch "
                                   f"{senders.get(offset)} (was {senders.get(earlier[1])}): stored again at "
                                   f"{(p, offset)}")
                else:
                    report.duplicated += 1
                    report.problem(f"{value} stored twice: at {earlier} and at {(p, offset)}")
                continue
            seen[value] = (p, offset)
            m = _KCLI_VALUE.match(value)
            writer, seq = (f"kcli{m.group(1)}s{m.group(2)}", int(m.group(3))) if m else (
                ("rdk", int(_RDK_VALUE.match(value).group(1))) if _RDK_VALUE.match(value) else (None, 0))
            if writer is None:
                continue
            if writer in last_seq and seq < last_seq[writer]:
                report.reordered += 1
                report.problem(f"partition {p} offset {offset}: {value} after seq {last_seq[writer]}")
            last_seq[writer] = seq
    for value, where in acked.items():
        if value not in seen:
            report.lost += 1
            report.problem(f"acknowledged {value} at {where} is gone")
        elif where[1] is None or where[1] < 0:  # librdkafka may report a delivery without its offset
            if where[0] not in {p for p, _o in copies[value]}:
                report.inconsistent_offsets += 1
                report.problem(f"{value} acknowledged on partition {where[0]} but stored at {seen[value]}")
        elif where not in copies[value]:
            report.inconsistent_offsets += 1
            report.problem(f"{value} acknowledged at {where} but stored at {seen[value]}")


# ---------------------------------------------------------------- a run


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int):
    """A tmpfs of ``megabytes`` at ``path`` (root only); None where it cannot be had."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield None
        return
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                         capture_output=True)
    if res.returncode:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def run(config: Config, log=print) -> Report:
    report = Report()
    rng = random.Random(config.seed)
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="kcli-nemesis-"))
    megabytes = config.disk_mb or int(96 + 64 * config.seconds / 60)
    with small_disk(workdir / "disk", megabytes) as disk:
        data_dir = (disk or workdir / "disk") / "data"
        cluster = Cluster(data_dir, workdir, config.session_timeout_ms)
        try:
            _run(cluster, config, rng, disk, report, log)
        finally:
            for broker in list(cluster.procs):
                cluster.signal(broker, signal.SIGCONT)
            cluster.stop_all()
            if report.violations and disk is not None:  # the tmpfs goes: keep the evidence
                shutil.copytree(data_dir, workdir / "data-kept", symlinks=True, dirs_exist_ok=True)
                log(f"nemesis: the data dir is kept in {workdir / 'data-kept'}")
    return report


def _run(cluster: Cluster, config: Config, rng: random.Random, disk: Path | None, report: Report, log) -> None:
    brokers = [0, 1, 2]
    res = cluster.kcli("cluster", "init", "--brokers", 3)
    assert res.returncode == 0, res.stderr
    res = cluster.kcli("topic", "create", TOPIC, "--partitions", config.partitions, "--replication-factor", 3,
                       "-c", "min.insync.replicas=2", "-c", "segment.bytes=65536")
    assert res.returncode == 0, res.stderr
    for broker in brokers:
        cluster.start(broker)
    kcli_writers = KcliWriters(cluster, config.partitions, random.Random(rng.random()))
    rdk = RdkWriter(cluster, config.partitions)
    poller = Poller(cluster, config.partitions, report)
    for part in (kcli_writers, rdk, poller):
        part.start()
    log(f"nemesis: seed {config.seed}, {config.seconds:g} s of {', '.join(config.faults)}"
        + ("" if disk or "disk" not in config.faults else " (no disk fault: needs root for a tmpfs)"))
    Nemesis(cluster, config, rng, disk, report).run(config.seconds)
    log("nemesis: healing")
    cluster.heal(brokers)
    time.sleep(2)
    kcli_writers.stop()
    rdk.stop()
    deadline = time.monotonic() + 90
    while not cluster.in_sync(config.partitions):
        if time.monotonic() > deadline:
            report.inconsistent_offsets += 1
            report.problem("replicas not in sync 90 s after the faults stopped")
            break
        time.sleep(0.5)
    poller.stop()
    by_broker = read_through_brokers(cluster, config.partitions)
    cluster.stop_all()
    from_files = read_from_files(cluster)
    acked = kcli_writers.acknowledged()
    acked.update(rdk.acked)
    check(report, acked, by_broker, from_files, cluster, config.partitions)
    report.indeterminate = kcli_writers.sent() + rdk.sent - len(acked)
    if rdk.fatal:
        report.problem(f"librdkafka producer stopped on a fatal error: {rdk.fatal[0]}")
    res = cluster.kcli("verify")
    if res.returncode:
        report.inconsistent_offsets += 1
        report.problem(f"kcli verify failed: {res.stdout.decode()[-500:]}{res.stderr.decode()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults.nemesis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long faults are injected")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="seed of the fault schedule")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    parser.add_argument("--workdir", type=Path, help="keep the data dir and broker logs here")
    parser.add_argument("--disk-mb", type=int, default=0,
                        help="size of the data dir's tmpfs (default: enough for the run; less fills it for good)")
    args = parser.parse_args(argv)
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    config = Config(seconds=args.minutes * 60, seed=args.seed, faults=faults, workdir=args.workdir,
                    disk_mb=args.disk_mb)
    report = run(config, log=lambda m: print(m, file=sys.stderr))
    print(report.summary())
    for problem in report.problems:
        print(f"  {problem}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
