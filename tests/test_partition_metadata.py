"""Kafka's ``partition.metadata`` in every replica folder: written when the folder is made (or on first
open of an older one), in Kafka's exact format, and a folder naming another topic id is reported, never
served."""

from __future__ import annotations

import base64
import json
import time

import pytest
from support.brokers import call, connect

from kcli.errors import CorruptRecordError
from kcli.protocol import ApiKey, ErrorCode
from kcli.storage import partition_metadata
from kcli.storage.records import encode_batch


def _topic_id(kcli, name: str) -> str:
    return json.loads(kcli("topic", "describe", name, "--json").stdout)[0]["topic_id"]


@pytest.fixture
def topic(kcli):
    kcli("cluster", "init", "--brokers", "2")
    kcli("topic", "create", "x", "-p", "2", "-r", "2")
    return _topic_id(kcli, "x")


def test_written_in_every_replica_folder_in_kafkas_format(kcli, topic):
    expected = b"version: 0\ntopic_id: " + base64.urlsafe_b64encode(bytes.fromhex(topic)).rstrip(b"=")
    for broker in (0, 1):
        for p in (0, 1):
            assert (kcli.data_dir / f"broker-{broker}" / f"x-{p}" / "partition.metadata").read_bytes() == expected
    assert len(expected.split(b": ")[-1]) == 22  # Kafka's Uuid.toString: 22 characters, no padding


def test_an_older_folder_gets_it_on_first_open(kcli, topic):
    files = [kcli.data_dir / f"broker-{b}" / "x-0" / "partition.metadata" for b in (0, 1)]
    before = files[0].read_bytes()
    for f in files:
        f.unlink()
    kcli("produce", "x", "-p", "0", input="a\n")
    assert [f.read_bytes() for f in files] == [before, before]


def test_a_folder_of_another_topic_is_damage_not_served(kcli, topic):
    path = kcli.data_dir / "broker-0" / "x-0" / "partition.metadata"
    path.write_bytes(b"version: 0\ntopic_id: " + base64.urlsafe_b64encode(bytes(range(1, 17))).rstrip(b"="))
    out = kcli("produce", "x", "-p", "0", input="a\n", ok=False)
    assert out.returncode == 6
    assert "partition.metadata" in out.stderr and "not" in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.count("\n") <= 2
    assert kcli("consume", "x", "-p", "0", "-b", "-e").stdout == ""  # nothing was written


def test_dump_log_and_verify_cope_with_it(kcli, topic):
    kcli("produce", "x", "-p", "1", input="a\nb\n")
    folder = kcli.data_dir / "broker-0" / "x-1"
    assert "partition.metadata" in {p.name for p in folder.iterdir()}
    kcli("verify")
    assert "lastOffset: 1" in kcli("dump-log", str(folder)).stdout


@pytest.mark.parametrize(
    "text",
    [b"", b"version: x\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA", b"version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA", b"version: 0\n"],
)
def test_malformed_files_are_damage(tmp_path, text):
    (tmp_path / "partition.metadata").write_bytes(text)
    with pytest.raises(CorruptRecordError, match="partition.metadata"):
        partition_metadata.read(str(tmp_path))


def test_read_accepts_what_kafka_writes(tmp_path):
    raw = bytes(range(16))
    (tmp_path / "partition.metadata").write_bytes(partition_metadata.encode(raw.hex()) + b"\n")
    assert partition_metadata.read(str(tmp_path)) == raw
    assert partition_metadata.read(str(tmp_path / "missing")) is None


def test_a_broker_does_not_serve_a_folder_of_another_topic(brokers):
    """The broker keeps the partition unopened and says why, once in its log and to each client."""
    brokers.init()
    brokers.runner.in_process("topic", "create", "x")
    path = brokers.data_dir / "broker-0" / "x-0" / "partition.metadata"
    path.write_bytes(b"version: 0\ntopic_id: " + base64.urlsafe_b64encode(bytes(range(1, 17))).rstrip(b"="))
    broker = brokers.start(0)
    batch = encode_batch([(None, b"v", [], 1000)], 0)
    body = {"acks": 1, "timeout_ms": 1000, "topic_data": [{"name": "x", "partition_data": [{"index": 0, "records": batch}]}]}
    with connect(broker.socket_path) as sock:
        for _ in range(3):
            part = call(sock, ApiKey.PRODUCE, 11, body).responses[0].partition_responses[0]
            assert part.error_code == ErrorCode.LEADER_NOT_AVAILABLE
            assert "partition.metadata" in part.error_message
            time.sleep(0.3)
    assert broker.log().count("cannot open partition x-0 yet") == 1


def test_verify_reports_a_folder_of_another_topic_or_a_malformed_file(kcli, topic):
    """A missing file is fine (kcli writes it on next open); another topic id or a file that does not
    parse is damage, the folder named, exit 1."""
    other = b"version: 0\ntopic_id: " + base64.urlsafe_b64encode(bytes(range(1, 17))).rstrip(b"=")
    (kcli.data_dir / "broker-0" / "x-0" / "partition.metadata").write_bytes(other)
    (kcli.data_dir / "broker-1" / "x-1" / "partition.metadata").write_bytes(b"version: x\n")
    (kcli.data_dir / "broker-0" / "x-1" / "partition.metadata").unlink()
    out = kcli("verify", ok=False)
    assert out.returncode == 1, out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "partition.metadata" in line]
    assert len(lines) == 2, out.stdout + out.stderr
    assert any("broker-0/x-0" in line and "another topic" in line for line in lines)
    assert any("broker-1/x-1" in line and "malformed" in line for line in lines)
    doc = json.loads(kcli("verify", "--json", ok=False).stdout)
    assert {(p["broker"], p["partition"]) for p in doc["problems"]} == {(0, 0), (1, 1)}


def test_verify_accepts_missing_and_matching_files(kcli, topic):
    (kcli.data_dir / "broker-0" / "x-1" / "partition.metadata").unlink()
    assert "no problems" in kcli("verify").stdout


def test_dump_log_shows_the_topic_id(kcli, topic):
    folder = kcli.data_dir / "broker-0" / "x-1"
    text = base64.urlsafe_b64encode(bytes.fromhex(topic)).rstrip(b"=").decode()
    out = kcli("dump-log", str(folder)).stdout
    assert f"Dumping {folder / 'partition.metadata'}" in out and f"topic_id: {text}" in out
    events = [json.loads(line) for line in kcli("dump-log", "--json", str(folder)).stdout.splitlines()]
    assert {"type": "partition_metadata", "file": str(folder / "partition.metadata"), "version": 0,
            "topicId": text} in events
    assert f"topic_id: {text}" in kcli("dump-log", str(folder / "partition.metadata")).stdout
