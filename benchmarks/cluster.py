"""Live brokers for the benchmarks: N `kcli broker serve` processes on a scratch data dir, started as
users start them and always stopped, whatever happens to the measurement in between."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from measure import env_with

STOP_WAIT = 20.0  # a controlled shutdown hands leaderships over; past this the brokers are killed


def broker_available(kcli: list[str]) -> bool:
    """Whether this tree has `kcli broker serve` (the brokers may land after the benchmarks)."""
    probe = subprocess.run(kcli + ["broker", "serve", "--help"], capture_output=True)
    return probe.returncode == 0


@contextmanager
def live_brokers(
    kcli: list[str], data: str, count: int = 1, wait: float = 30.0, serve: Sequence[str] = ()
) -> Iterator[list[subprocess.Popen]]:
    """Run brokers 0..count-1 on ``data`` (`kcli cluster init --brokers count`, then one `kcli broker
    serve --id N` each, with ``serve`` as further options) until the block ends; yields the processes once
    every one of them serves.  Broker N logs to ``<data>-broker-N.log``, outside the data dir and apart
    from other clusters' logs."""
    env = env_with(data)
    subprocess.run(
        kcli + ["cluster", "init", "--brokers", str(count)], env=env, capture_output=True, check=True
    )
    procs: list[subprocess.Popen] = []
    with ExitStack() as logs:
        try:
            for node in range(count):
                log = logs.enter_context(open(f"{data}-broker-{node}.log", "wb"))
                procs.append(
                    subprocess.Popen(
                        kcli + ["broker", "serve", "--id", str(node), *serve],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            _wait_serving(data, procs, time.monotonic() + wait)
            yield procs
        finally:
            _stop(procs)


def _wait_serving(data: str, procs: list[subprocess.Popen], deadline: float) -> None:
    """Return once every broker holds its lock and has bound its socket: a command started earlier would
    go embedded, or through fewer brokers than measured."""
    from kcli.cluster.datadir import DataDir

    datadir = DataDir(data)
    wanted = set(range(len(procs)))
    sockets = [os.path.join(data, f"broker-{node}", "broker.sock") for node in wanted]
    while not (wanted <= set(datadir.live_brokers()) and all(map(os.path.exists, sockets))):
        for node, proc in enumerate(procs):
            if proc.poll() is not None:
                raise RuntimeError(f"broker {node} exited {proc.returncode}; see {data}-broker-{node}.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the brokers did not start; see {data}-broker-N.log")
        time.sleep(0.05)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every broker at once (they shut down in parallel), then kill those still running after
    STOP_WAIT seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
