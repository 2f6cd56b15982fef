"""A broker that cannot start says so at once and leaves nothing behind (issue 16, case 3).

Before the fix a broker whose TCP listener could not bind hung for ever: its clean-up waited for a
listener loop that had never run, it ignored SIGTERM, and it kept the broker lock, so every ``kcli
produce`` on the data dir waited for it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest


def _assert_released(brokers) -> None:
    """Nothing of the broker is left: no live broker, no socket, and the data dir serves embedded
    commands (which would wait for a live broker otherwise)."""
    assert brokers.kcli("broker", "list", "--json").stdout.strip() == "[]"
    assert not (brokers.data_dir / "broker-0" / "broker.sock").exists()
    brokers.kcli("produce", "after", input="one\ntwo\n", timeout=20)
    out = brokers.kcli("consume", "after", "--from-beginning", "-e", timeout=20).stdout
    assert out.splitlines() == ["one", "two"]
    brokers.kcli("verify")


@pytest.mark.parametrize("case", ["taken port", "address not local"])
def test_broker_that_cannot_listen_exits_8_at_once(brokers, case):
    brokers.init(1)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        if case == "taken port":
            address = f"127.0.0.1:{holder.getsockname()[1]}"
        else:
            address = "192.0.2.1:9092"  # TEST-NET-1: never a local address; bind() fails, nothing is sent
        broker = brokers.spawn(0, listener=address)
        started = time.monotonic()
        try:
            code = broker.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"broker still running 15 s after start on {address}:\n{broker.log()}")
        assert time.monotonic() - started < 15
    finally:
        holder.close()
    assert code == 8, broker.log()
    errors = [line for line in broker.log().splitlines() if line.startswith("kcli: error:")]
    assert len(errors) == 1 and f"cannot listen on PLAINTEXT://{address}" in errors[0], broker.log()
    assert "Traceback" not in broker.log()
    _assert_released(brokers)


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.5, 0.8])
def test_sigterm_during_start_up_stops_the_broker(brokers, delay):
    """SIGTERM at any moment of start-up (here while it loads 300 partitions) ends the broker within
    seconds and cleanly, whether it came before or after the broker began serving."""
    brokers.init(1)
    brokers.kcli("topic", "create", "many", "--partitions", 300)
    brokers.kcli("produce", "many", input="".join(f"{i}\n" for i in range(3000)))
    broker = brokers.spawn(0)
    time.sleep(delay)
    broker.proc.send_signal(signal.SIGTERM)
    try:
        code = broker.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"broker ignored SIGTERM {delay} s into its start:\n{broker.log()}")
    # 0: a clean stop; -SIGTERM: the signal came before Python installed its handler
    assert code in (0, -signal.SIGTERM), broker.log()
    assert "Traceback" not in broker.log()
    _assert_released(brokers)
    out = brokers.kcli("consume", "many", "--from-beginning", "-e", timeout=60).stdout.split()
    assert sorted(map(int, out)) == list(range(3000))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_as_the_broker_begins_serving_stops_it_cleanly(brokers, sig):
    """The moment start-up ends (broker.json written) is the narrowest: a signal there must still end in
    a stop that removes broker.json and lets go of the broker lock."""
    brokers.init(1)
    for _ in range(5):
        broker = brokers.spawn(0)
        info = broker.folder / "broker.json"
        deadline = time.monotonic() + 30
        while not info.exists() and broker.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        broker.proc.send_signal(sig)
        assert broker.proc.wait(timeout=20) == 0, broker.log()
        assert not info.exists(), broker.log()
        assert "Traceback" not in broker.log()
    _assert_released(brokers)
