"""Tombstones (null values) and null keys from the shell: `produce --null-value TOKEN` and `-Z`, JSON
`null`, and every reader telling null from empty: `consume --json`, `consume -Z`, `dump-log`,
confluent-kafka and kafka-python through a broker, and `kcli mirror` copies."""

from __future__ import annotations

import json
import time

import pytest
from support.runner import KcliRunner, one_error_line

# -K: lines, and the (key, value) each becomes with `--null-value DEL`, then with `--null-value DEL -Z`
LINES = b"a:v1\nb:DEL\nc:\n:x\nnosep\nDEL\n:\n"
WITH_TOKEN = [("a", "v1"), ("b", None), ("c", ""), ("", "x"), (None, "nosep"), (None, None), ("", "")]
WITH_TOKEN_AND_Z = [("a", "v1"), ("b", None), ("c", None), (None, "x"), (None, "nosep"), (None, None),
                    (None, None)]


def pairs(runner, topic: str, *args: object) -> list[tuple]:
    out = runner("consume", topic, "-b", "-e", "--json", *args).stdout
    return [(r["key"], r["value"]) for r in map(json.loads, out.splitlines())]


def test_null_value_token_and_empty_is_null_with_a_key_separator(kcli):
    kcli("produce", "t", "-K:", "--null-value", "DEL", input=LINES)
    assert pairs(kcli, "t") == WITH_TOKEN
    kcli("produce", "z", "-K:", "--null-value", "DEL", "-Z", input=LINES)
    assert pairs(kcli, "z") == WITH_TOKEN_AND_Z


def test_tombstones_in_a_transaction_and_read_by_a_group(kcli):
    kcli("produce", "t", "-K:", "--null-value", "DEL", "--transactional-id", "tx", input=LINES)
    assert pairs(kcli, "t") == WITH_TOKEN
    out = kcli("consume", "t", "--group", "g", "--reset", "earliest", "-e", "-Z", "-f", "%k=%s\\n").stdout
    assert out.splitlines() == ["a=v1", "b=NULL", "c=", "=x", "NULL=nosep", "NULL=NULL", "="]


def test_without_a_key_separator_the_whole_line_is_the_value(kcli):
    kcli("produce", "t", "--null-value", "DEL", input=b"x\n\nDEL\nDELETE\n")
    assert pairs(kcli, "t") == [(None, "x"), (None, ""), (None, None), (None, "DELETE")]
    kcli("produce", "z", "--empty-is-null", input=b"x\n\nDEL\n")
    assert pairs(kcli, "z") == [(None, "x"), (None, None), (None, "DEL")]


def test_json_input_null_key_and_value(kcli):
    lines = [{"key": "a", "value": None}, {"key": "b", "value": ""}, {"key": None, "value": "x"},
             {"key": "", "value": "y"}]
    kcli("produce", "t", "--json", input="".join(json.dumps(r) + "\n" for r in lines))
    assert pairs(kcli, "t") == [("a", None), ("b", ""), (None, "x"), ("", "y")]


@pytest.mark.parametrize("line", ['{"key": "a"}', "{}", '{"key": "a", "headers": [["h", "v"]], "timestamp": 5}'])
def test_a_json_line_without_a_value_is_refused_not_taken_for_a_tombstone(kcli, line):
    """A missing "value" is a mistake, not a null: on a compacted topic it would delete the key.  Refused
    like any bad line (one line naming it, exit 2, nothing of the input not yet sent is written); an
    explicit "value": null stays a tombstone."""
    kcli.produce_lines("t", '{"key": "a", "value": "kept"}\n', "--json")
    lines = '{"key": "a", "value": "new"}\n' + line + "\n"
    one_error_line(kcli("produce", "t", "--json", input=lines, ok=False), 2, "line 2", 'no "value" field',
                   '"value": null')
    assert pairs(kcli, "t") == [("a", "kept")]
    kcli("produce", "t", "--json", input='{"key": "a", "value": null}\n')
    assert pairs(kcli, "t") == [("a", "kept"), ("a", None)]


def test_consume_prints_null_as_null_with_z_and_empty_without(kcli):
    kcli("produce", "t", "-K:", "--null-value", "DEL", input=LINES)
    fmt = ("-f", "%k|%K|%s|%S\\n")
    assert kcli("consume", "t", "-b", "-e", *fmt).stdout.splitlines() == [
        "a|1|v1|2", "b|1||-1", "c|1||0", "|0|x|1", "|-1|nosep|5", "|-1||-1", "|0||0"]
    assert kcli("consume", "t", "-b", "-e", "-Z", *fmt).stdout.splitlines() == [
        "a|1|v1|2", "b|1|NULL|-1", "c|1||0", "|0|x|1", "NULL|-1|nosep|5", "NULL|-1|NULL|-1", "|0||0"]
    # the default format '%s\n' takes a faster path: the same rule
    assert kcli("consume", "t", "-b", "-e").stdout.splitlines() == ["v1", "", "", "x", "nosep", "", ""]
    assert kcli("consume", "t", "-b", "-e", "--show-null").stdout.splitlines() == [
        "v1", "NULL", "", "x", "nosep", "NULL", ""]
    # JSON always shows null as null (-Z accepted, as kcat accepts it with -J)
    assert pairs(kcli, "t", "-Z") == WITH_TOKEN


def test_consume_z_prints_null_header_values_as_null(kcli):
    kcli("produce", "t", "--json", input=json.dumps({"value": "v", "headers": [["h", None], ["e", ""]]}) + "\n")
    assert kcli("consume", "t", "-b", "-e", "-f", "%h\\n").stdout == "h=,e=\n"
    assert kcli("consume", "t", "-b", "-e", "-Z", "-f", "%h\\n").stdout == "h=NULL,e=\n"


def test_dump_log_shows_a_tombstone_as_kafkas_tool_does(kcli):
    """Kafka's DumpLogSegments prints valueSize -1 and no payload for a null value; keySize -1 and no
    key for a null key; an empty value is `payload: ` with nothing after it."""
    kcli("produce", "t", "-K:", "--null-value", "DEL", input=b"b:DEL\nc:\nnosep\n")
    (segment,) = (kcli.data_dir / "broker-0" / "t-0").glob("*.log")
    lines = [line for line in kcli("dump-log", "--print-data-log", segment).stdout.splitlines()
             if line.startswith("| offset")]
    assert len(lines) == 3
    assert "keySize: 1 valueSize: -1" in lines[0] and lines[0].endswith(" key: b")
    assert "payload" not in lines[0]
    assert "keySize: 1 valueSize: 0" in lines[1] and lines[1].endswith(" key: c payload: ")
    assert "keySize: -1 valueSize: 5" in lines[2] and " key:" not in lines[2]
    assert lines[2].endswith(" payload: nosep")
    records = [r for r in map(json.loads, kcli("dump-log", "--print-data-log", "--json", segment).stdout.splitlines())
               if r["type"] == "record"]
    assert [(r["key"], r["payload"], r["valueSize"]) for r in records] == [("b", None, -1), ("c", "", 0),
                                                                           (None, "nosep", 5)]


# --- through a broker ---------------------------------------------------------------------------------------

def test_tombstones_through_a_broker_reach_real_clients_as_none(broker):
    broker.kcli("produce", "t", "-K:", "--null-value", "DEL", "-Z", input=LINES)
    expected = [(None if k is None else k.encode(), None if v is None else v.encode()) for k, v in WITH_TOKEN_AND_Z]
    assert pairs(broker.kcli, "t") == WITH_TOKEN_AND_Z
    # an empty value next to the nulls, from JSON input through the broker
    broker.kcli("produce", "t", "--json", input=json.dumps({"key": "e", "value": ""}) + "\n")
    expected.append((b"e", b""))

    confluent_kafka = pytest.importorskip("confluent_kafka")
    assert confluent_kafka
    from support.confluent import read_to_end

    got, _ = read_to_end(broker.bootstrap, "t", 1)
    assert [(m.key(), m.value()) for m in got] == expected

    kafka = pytest.importorskip("kafka")
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    tp = kafka.TopicPartition("t", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records: list = []
    deadline = time.monotonic() + 30
    while len(records) < len(expected) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    assert [(r.key, r.value) for r in records] == expected


def test_mirror_round_trip_keeps_nulls(broker, tmp_path):
    here = KcliRunner(tmp_path / "here")
    here("produce", "t", "-K:", "--null-value", "DEL", input=LINES)
    here("mirror", "t", "--to", broker.bootstrap)
    assert pairs(broker.kcli, "t") == WITH_TOKEN
    back = KcliRunner(tmp_path / "back")
    back("mirror", "t", "--from", broker.bootstrap, "--to-topic", "copy")
    assert pairs(back, "copy") == WITH_TOKEN


# --- transform ----------------------------------------------------------------------------------------------

TRANSFORM_INPUT = "".join(json.dumps({"value": v}) + "\n" for v in ["x", "", None, "drop"])


def test_transform_null_value_token_tells_nulls_from_empty_values_both_ways(kcli):
    """--null-value TOKEN: a null input value reaches CMD as the line TOKEN (an empty one as an empty
    line), and a line CMD prints equal to TOKEN is produced as a null value."""
    kcli("produce", "in", "--json", input=TRANSFORM_INPUT)
    kcli("topic", "create", "seen")
    kcli("topic", "create", "out")
    # what CMD reads (marked, so that the token does not come back as itself)
    kcli("transform", "in", "seen", "-g", "a", "--null-value", "NULL", "--", "sed", "s/^/got:/")
    assert pairs(kcli, "seen") == [(None, "got:x"), (None, "got:"), (None, "got:NULL"), (None, "got:drop")]
    # the token CMD prints, whether it read it or made it, becomes null
    kcli("transform", "in", "out", "-g", "b", "--null-value", "NULL", "--", "sed", "s/^drop$/NULL/")
    assert pairs(kcli, "out") == [(None, "x"), (None, ""), (None, None), (None, None)]


def test_transform_without_a_token_writes_a_null_as_an_empty_line(kcli):
    kcli("produce", "in", "--json", input=TRANSFORM_INPUT)
    kcli("topic", "create", "out")
    kcli("transform", "in", "out", "-g", "g", "--", "cat")
    assert pairs(kcli, "out") == [(None, "x"), (None, ""), (None, ""), (None, "drop")]
    one_error_line(kcli("transform", "in", "out", "-g", "h", "--null-value", "", "--", "cat", ok=False), 2,
                   "--null-value")
    assert len(pairs(kcli, "out")) == 4


# --- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, words",
    [
        (["--null-value", ""], ["--null-value", "-Z"]),
        (["--null-value", "", "-Z"], ["--null-value"]),
        (["--json", "-Z"], ["--json", "null"]),
        (["--json", "--null-value", "DEL"], ["--json", "null"]),
    ],
    ids=["empty token", "empty token with -Z", "json with -Z", "json with token"],
)
def test_bad_null_options_are_refused_before_anything_is_written(kcli, args, words):
    one_error_line(kcli("produce", "t", "-K:", *args, input=b"a:\n", ok=False), 2, *words)
    assert kcli.in_process("topic", "list").stdout.split() == []


@pytest.mark.parametrize("value", ["5", "true", "[]", '{"x": 1}'])
def test_a_json_value_neither_string_nor_null_writes_nothing(kcli, value):
    line = b'{"key": "a", "value": "kept"}\n{"key": "b", "value": ' + value.encode() + b"}\n"
    one_error_line(kcli("produce", "t", "--json", input=line, ok=False), 2, "line 2: value", "null")
    assert kcli.in_process("consume", "t", "-b", "-e", "--json", ok=False).stdout == ""


def test_z_produces_what_kcat_z_produces(broker):
    """kcat -P -K: -Z and kcli produce -K: -Z write the same keys and values (kcat skips empty lines,
    so the input has none)."""
    import shutil
    import subprocess

    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed")
    lines = b"a:v1\nc:\n:x\nnosep\n:\n"
    subprocess.run([kcat, "-b", broker.bootstrap, "-P", "-t", "bykcat", "-K:", "-Z"], input=lines, check=True,
                   timeout=60)
    broker.kcli("produce", "bykcli", "-K:", "-Z", input=lines)
    assert pairs(broker.kcli, "bykcat") == pairs(broker.kcli, "bykcli") == [
        ("a", "v1"), ("c", None), (None, "x"), (None, "nosep"), (None, None)]
