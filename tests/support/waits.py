"""Waiting for things to happen, and ports, in one place: a test polls for the event it needs with a
generous deadline rather than sleeping or asserting how long something took."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, condition: Callable[[], T], timeout: float = 60.0, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy (returned); fail with ``what`` after ``timeout``.

    The timeout is a bound on a hang, not a performance goal: a loaded CI machine must never trip it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int:
    """Ask ``proc`` to stop (SIGTERM), kill it if it has not within ``timeout``; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def free_port() -> int:
    """A loopback port nobody listens on right now (for a server that must be told its port, or a
    connection that must be refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
