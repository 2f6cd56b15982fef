"""kcat (librdkafka's command-line client) against a real ``kcli broker serve`` process."""

from __future__ import annotations

import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (apt-get install kcat)")


def kcat(*args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run([KCAT, *args], input=input, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_and_consume(broker, codec):
    lines = b"".join(b"k%d:value %d\n" % (i % 13, i) for i in range(2000))
    kcat("-b", broker.bootstrap, "-P", "-t", "kc", "-K:", "-z", codec, input=lines)
    out = kcat("-b", broker.bootstrap, "-C", "-t", "kc", "-o", "beginning", "-e", "-q", "-f", "%k:%s\\n")
    assert sorted(out.splitlines()) == sorted(lines.splitlines())
    # kcli reads what kcat wrote (through the broker), and kcat reads what kcli wrote
    assert len(broker.kcli("consume", "kc", "-b", "-e").stdout.splitlines()) == 2000
    broker.kcli("produce", "kc", input="from kcli\n")
    tail = kcat("-b", broker.bootstrap, "-C", "-t", "kc", "-o", "-1", "-e", "-q")
    assert tail == b"from kcli\n"


def test_kcat_metadata_listing(broker):
    broker.runner.in_process("topic", "create", "listed", "-p", "2")
    out = kcat("-b", broker.bootstrap, "-L", "-t", "listed").decode()
    assert "1 brokers:" in out and f"broker 0 at 127.0.0.1:{broker.port}" in out
    assert 'topic "listed" with 2 partitions' in out
