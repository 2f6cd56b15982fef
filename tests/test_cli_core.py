"""The core CLI as a user runs it: real `kcli` processes on a fresh data dir per test."""

from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import sys

import pytest
from support.runner import one_error_line

from kcli.client.partitioner import partition_for_key
from kcli.storage import compression, records


def batches_of(kcli, topic: str, partition: int = 0, broker: int = 0) -> list[records.BatchHeader]:
    out = []
    for path in sorted(
        glob.glob(os.path.join(kcli.data_dir, f"broker-{broker}", f"{topic}-{partition}", "*.log"))
    ):
        with open(path, "rb") as fh:
            out += [h for _p, h in records.iter_batches(fh.read())]
    return out


def stored_records(kcli, topic: str, partition: int = 0) -> list[tuple]:
    """(key, value, headers, timestamp) of every record in the partition's segment files."""
    out = []
    for path in sorted(glob.glob(os.path.join(kcli.data_dir, "broker-0", f"{topic}-{partition}", "*.log"))):
        with open(path, "rb") as fh:
            data = fh.read()
        for pos, header in records.iter_batches(data):
            out += [
                (r.key, r.value, r.headers, r.timestamp) for r in records.decode_records(data, pos, header)
            ]
    return out


def consume_json(kcli, topic: str, *args: str) -> list[dict]:
    return [
        json.loads(line) for line in kcli("consume", topic, "-b", "-e", "--json", *args).stdout.splitlines()
    ]


def readline_within(stream, seconds: float) -> bytes:
    """One line from a pipe, failing (instead of hanging the suite) if none arrives in time."""
    import select

    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, f"no output within {seconds}s"
    return stream.readline()


# ---------------------------------------------------------------- first use


def test_first_use_seq_10_produce_then_consume(kcli):
    assert not kcli.data_dir.exists()
    kcli("produce", "demo", input="".join(f"{i}\n" for i in range(1, 11)))
    res = kcli("consume", "demo", "--from-beginning", "-e")
    assert res.stdout == "".join(f"{i}\n" for i in range(1, 11))
    assert res.stderr == ""
    assert (kcli.data_dir / "cluster").is_dir()
    assert (kcli.data_dir / "broker-0" / "meta.properties").is_file()
    assert (kcli.data_dir / "broker-0" / "demo-0" / "00000000000000000000.log").is_file()
    # the shell pipeline itself, as in the docs
    shell = (
        f"seq 10 | {sys.executable} -m kcli.cli.main produce demo2 && "
        f"{sys.executable} -m kcli.cli.main consume demo2 --from-beginning -e"
    )
    res = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, env=kcli.env, timeout=60)
    assert res.returncode == 0 and res.stdout.split() == [str(i) for i in range(1, 11)]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_is_click_s_line_without_importing_click(kcli, flag):
    import kcli as package

    res = kcli(flag)
    assert res.stdout == f"kcli, version {package.__version__}\n"
    # the fast path prints what click's version option would: same words with another option around it
    assert kcli("--data-dir", kcli.data_dir, flag).stdout == res.stdout
    probe = (
        "import sys; from kcli.cli.main import main\n"
        f"try:\n    main([{flag!r}])\nexcept SystemExit:\n    pass\n"
        "print('click' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines()[-1] == "False"


def test_empty_lines_and_missing_final_newline(kcli):
    kcli("produce", "t", input="a\n\nb\r\nc")
    assert consume_json(kcli, "t", "-e")[1]["value"] == ""
    assert [r["value"] for r in consume_json(kcli, "t")] == ["a", "", "b", "c"]


# ---------------------------------------------------------------- topics


def test_topic_create_list_describe_alter_delete(kcli):
    res = kcli("topic", "create", "orders", "-p", "3", "-c", "retention.ms=60000")
    assert "orders" in res.stderr
    kcli("topic", "create", "audit")
    assert kcli("topic", "list").stdout.split() == ["audit", "orders"]
    listed = json.loads(kcli("topic", "list", "--json").stdout)
    assert {t["name"]: t["partitions"] for t in listed} == {"audit": 1, "orders": 3}

    kcli("produce", "orders", "-p", "1", input="x\ny\n")
    desc = json.loads(kcli("topic", "describe", "orders", "--json").stdout)[0]
    assert desc["configs"] == {"retention.ms": 60000}
    assert [(p["partition"], p["log_start_offset"], p["log_end_offset"]) for p in desc["partitions"]] == [
        (0, 0, 0),
        (1, 0, 2),
        (2, 0, 0),
    ]
    text = kcli("topic", "describe", "orders").stdout.splitlines()
    assert text[0].split("\t")[:3] == ["TOPIC", "PARTITION", "LEADER"]
    assert len(text) == 4 and text[2].split("\t")[-1] == "2"

    res = kcli("topic", "alter", "orders", "-p", "5")
    assert "5" in res.stderr
    assert len(json.loads(kcli("topic", "describe", "orders", "--json").stdout)[0]["partitions"]) == 5
    assert os.path.isdir(kcli.data_dir / "broker-0" / "orders-4")
    kcli("produce", "orders", "-p", "4", input="z\n")
    assert consume_json(kcli, "orders", "-p", "4")[0]["value"] == "z"

    line = one_error_line(kcli("topic", "alter", "orders", "-p", "2", ok=False), 2)
    assert "5 partitions" in line and "only grow" in line
    one_error_line(kcli("topic", "alter", "orders", ok=False), 2)

    kcli("topic", "alter", "orders", "--config", "retention.ms=5000", "--config", "segment.bytes=100000")
    configs = json.loads(kcli("topic", "describe", "orders", "--json").stdout)[0]["configs"]
    assert configs == {"retention.ms": 5000, "segment.bytes": 100000}
    kcli("topic", "alter", "orders", "--delete-config", "retention.ms")
    assert json.loads(kcli("topic", "describe", "orders", "--json").stdout)[0]["configs"] == {
        "segment.bytes": 100000
    }
    one_error_line(kcli("topic", "alter", "orders", "--config", "segment.bytes=lots", ok=False), 2)
    one_error_line(kcli("topic", "alter", "orders", "--config", "no.such.config=1", ok=False), 2)
    one_error_line(kcli("topic", "alter", "nope", "-p", "3", ok=False), 3)

    one_error_line(kcli("topic", "create", "orders", ok=False), 4)
    kcli("topic", "create", "orders", "--if-not-exists")

    kcli("topic", "delete", "orders")
    assert kcli("topic", "list").stdout.split() == ["audit"]
    assert not glob.glob(str(kcli.data_dir / "broker-0" / "orders-*"))
    one_error_line(kcli("consume", "orders", "-b", "-e", ok=False), 3)
    one_error_line(kcli("topic", "delete", "orders", ok=False), 3)
    one_error_line(kcli("topic", "describe", "orders", ok=False), 3)


def test_recreated_topic_starts_again_at_offset_zero(kcli):
    kcli("produce", "t", input="".join(f"old{i}\n" for i in range(10)))
    kcli("topic", "delete", "t")
    kcli("produce", "t", input="new0\nnew1\n")
    assert kcli("consume", "t", "-b", "-e", "-f", "%o:%s\\n").stdout == "0:new0\n1:new1\n"


@pytest.mark.parametrize("name", [".", "..", "a" * 250, "a/b", "tópico"])
def test_illegal_topic_names_are_refused(kcli, name):
    line = one_error_line(kcli("topic", "create", name, ok=False), 2)
    assert "topic name" in line
    one_error_line(kcli("produce", name, input="x\n", ok=False), 2)
    assert not glob.glob(str(kcli.data_dir / "broker-*" / "*-0"))


def test_longest_legal_topic_name_works(kcli):
    name = "n" * 249
    kcli("topic", "create", name, "-p", "2")
    kcli("produce", name, "-p", "1", input="hello\n")
    assert kcli("consume", name, "-b", "-e").stdout == "hello\n"
    kcli("topic", "delete", name)


def test_topic_names_colliding_on_dot_and_underscore(kcli):
    res = kcli("topic", "create", "a.b")
    assert "warning" in res.stderr and "collide" in res.stderr
    line = one_error_line(kcli("topic", "create", "a_b", ok=False), 2)
    assert "a.b" in line and "collides" in line
    one_error_line(kcli("produce", "a_b", input="x\n", ok=False), 2)
    kcli("topic", "create", "a-b")  # '-' does not collide
    kcli("topic", "create", "--", "-._-")
    assert kcli("topic", "list").stdout.split() == ["-._-", "a-b", "a.b"]


# ---------------------------------------------------------------- replication across brokers


def test_rf3_topic_spreads_replicas_and_keeps_isr_logs_identical(kcli):
    res = kcli("cluster", "init", "--brokers", "3")
    assert "0, 1, 2" in res.stderr
    kcli(
        "topic",
        "create",
        "r",
        "-p",
        "6",
        "-r",
        "3",
        "-c",
        "segment.bytes=4000",
        "-c",
        "index.interval.bytes=500",
    )
    desc = json.loads(kcli("topic", "describe", "r", "--json").stdout)[0]["partitions"]
    for p in desc:
        assert sorted(p["replicas"]) == [0, 1, 2]
        assert p["leader"] == p["replicas"][0]
        assert sorted(p["isr"]) == [0, 1, 2]
    assert sorted(p["leader"] for p in desc) == [0, 0, 1, 1, 2, 2]  # leaders rotate over the brokers
    assert len({tuple(p["replicas"]) for p in desc}) > 1  # followers shift too

    lines = "".join(f"k{i % 50}:value-{i}\n" for i in range(3000))
    kcli("produce", "r", "-K", ":", "--batch-size", "2000", input=lines)
    kcli("produce", "r", "-K", ":", "-z", "zstd", input=lines)
    for p in range(6):
        files = {}
        for b in range(3):
            d = kcli.data_dir / f"broker-{b}" / f"r-{p}"
            files[b] = {
                os.path.basename(f): open(f, "rb").read()
                for f in glob.glob(str(d / "*"))
                if not f.endswith(("kcli-writer-state", ".snapshot", ".lock"))
            }
        assert files[0] == files[1] == files[2], f"replicas of r-{p} differ"
        assert any(name.endswith(".log") for name in files[0])
    assert len(kcli.in_process("consume", "r", "-b", "-e").stdout.splitlines()) == 6000
    one_error_line(kcli("topic", "create", "r4", "-r", "4", ok=False), 2)


# ---------------------------------------------------------------- produce options


def test_key_separator_partition_and_headers(kcli):
    kcli.in_process("topic", "create", "k", "-p", "7")
    keys = [f"user{i}" for i in range(40)]
    kcli(
        "produce",
        "k",
        "-K",
        "::",
        "-H",
        "src=test",
        "-H",
        "empty=",
        input="".join(f"{k}::v:{i}\n" for i, k in enumerate(keys)) + "no separator here\n",
    )
    out = kcli("consume", "k", "-b", "-e", "-f", "%p|%k|%K|%s|%h\\n").stdout
    got = [line.split("|") for line in out.splitlines()]
    keyed = [g for g in got if g[2] != "-1"]
    assert sorted(g[1] for g in keyed) == sorted(keys)
    for part, key, _ksize, value, headers in keyed:
        assert int(part) == partition_for_key(key.encode(), 7)  # Kafka's default partitioner
        assert value.startswith("v:")  # split at the first separator only
        assert headers == "src=test,empty="
    unkeyed = [g for g in got if g[2] == "-1"]
    assert [(g[1], g[3]) for g in unkeyed] == [("", "no separator here")]

    kcli("produce", "k", "--partition", "6", input="pinned1\npinned2\n")
    assert kcli("consume", "k", "-p", "6", "-o", "-2", "-e").stdout == "pinned1\npinned2\n"
    line = one_error_line(kcli("produce", "k", "--partition", "7", input="x\n", ok=False), 2)
    assert "partition 7" in line
    one_error_line(kcli.in_process("produce", "k", "-H", "novalue", input="x\n", ok=False), 2)
    one_error_line(kcli.in_process("produce", "k", "-K", "", input="x\n", ok=False), 2)


def test_batch_size_controls_batching(kcli):
    lines = "".join(f"{i:05d}\n" for i in range(300))
    kcli("produce", "one", "--batch-size", "1", input=lines)
    assert [h.records_count for h in batches_of(kcli, "one")] == [1] * 300
    kcli("produce", "big", "--batch-size", "1000000", input=lines)
    assert [h.records_count for h in batches_of(kcli, "big")] == [300]
    kcli("produce", "mid", "--batch-size", "1000", input=lines)
    counts = [h.records_count for h in batches_of(kcli, "mid")]
    assert sum(counts) == 300 and 1 < len(counts) < 300
    for name in ("one", "big", "mid"):
        assert kcli.in_process("consume", name, "-b", "-e").stdout == lines
    for flags in (["--batch-size", "0"], ["--batch-size", "lots"], ["--linger-ms", "-1"], ["--compression", "brotli"]):
        one_error_line(kcli.in_process("produce", "x", *flags, input="", ok=False), 2)


def test_batches_over_max_message_bytes_are_split_and_only_a_too_large_record_fails(kcli):
    kcli.in_process("topic", "create", "m", "-c", "max.message.bytes=20000")
    lines = "".join(f"{i:06d} {'y' * 40}\n" for i in range(5000))
    kcli(
        "produce", "m", "--batch-size", "1000000", input=lines
    )  # batches far over the limit: split, not refused
    headers = batches_of(kcli, "m")
    assert len(headers) > 10 and all(h.size <= 20000 for h in headers)
    assert kcli.in_process("consume", "m", "-b", "-e").stdout == lines
    res = kcli("produce", "m", input="before\n" + "z" * 30000 + "\nafter\n", ok=False)
    assert "max.message.bytes" in one_error_line(res, 7)
    assert "z" * 30000 not in kcli.in_process("consume", "m", "-b", "-e").stdout


@pytest.mark.parametrize("linger", ["0", "5"])
def test_linger_delivers_a_line_while_the_pipe_stays_open(kcli, linger):
    """`tail -f x | kcli produce t`: a line is stored while the producer keeps waiting for more input."""
    kcli.in_process("topic", "create", "tail")
    proc = kcli.popen(
        "produce",
        "tail",
        "--linger-ms",
        linger,
        "--print-offsets",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.stdin.write(b"first\n")
        proc.stdin.flush()
        # the delivery report arrives while stdin is still open
        assert readline_within(proc.stdout, 60) == b"tail 0 0\n"
        assert kcli.in_process("consume", "tail", "-b", "-e").stdout == "first\n"
        proc.stdin.write(b"second\n")
        proc.stdin.flush()
        assert readline_within(proc.stdout, 60) == b"tail 0 1\n"
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert kcli.in_process("consume", "tail", "-b", "-e").stdout == "first\nsecond\n"


def test_print_offsets(kcli):
    kcli.in_process("topic", "create", "po", "-p", "3")
    keys = [f"k{i}" for i in range(30)]
    res = kcli("produce", "po", "--print-offsets", "-K", ":", input="".join(f"{k}:v{k}\n" for k in keys))
    rows = [line.split() for line in res.stdout.splitlines()]
    assert len(rows) == 30 and {t for t, _p, _o in rows} == {"po"}
    # reports come in send order per partition; each names where that record really is
    expected = {p: [k for k in keys if partition_for_key(k.encode(), 3) == p] for p in range(3)}
    for p in range(3):
        assert [int(o) for _t, q, o in rows if int(q) == p] == list(range(len(expected[p])))
        stored = kcli.in_process("consume", "po", "-p", p, "-b", "-e", "-f", "%o %k\n").stdout.splitlines()
        assert stored == [f"{o} {k}" for o, k in enumerate(expected[p])]
    res = kcli("produce", "po", "-p", "2", "--print-offsets", input="a\nb\n")
    n2 = len(expected[2])
    assert res.stdout == f"po 2 {n2}\npo 2 {n2 + 1}\n"


def test_json_round_trip_is_lossless(kcli):
    kcli.in_process("topic", "create", "src", "-p", "2")
    kcli.in_process("topic", "create", "dst", "-p", "2")
    binary = bytes(range(256))
    src = [
        {"key": None, "value": None, "headers": []},
        {"key": "", "value": "", "headers": [["h", None], ["e", ""]]},
        {"key": "k", "value": 'line\nbreak\ttab "quote" \\ ünï ✓', "headers": [["a", "1"], ["a", "2"]]},
        {
            "key": {"base64": base64.b64encode(binary).decode()},
            "value": {"base64": base64.b64encode(b"\xff\xfe").decode()},
            "headers": [["bin", {"base64": base64.b64encode(b"\x80").decode()}]],
            "partition": 1,
        },
        {"value": "trailing cr\r", "timestamp": 1_234_567_890_123, "partition": 1},
    ]
    kcli("produce", "src", "--json", input="".join(json.dumps(r) + "\n" for r in src))
    first = consume_json(kcli, "src")
    assert len(first) == len(src)
    by_value = {json.dumps(r["value"]): r for r in first}
    assert by_value["null"]["key"] is None and by_value["null"]["headers"] == []
    assert by_value['""']["key"] == "" and by_value['""']["headers"] == [["h", None], ["e", ""]]
    b = by_value[json.dumps({"base64": base64.b64encode(b"\xff\xfe").decode()})]
    assert base64.b64decode(b["key"]["base64"]) == binary and b["partition"] == 1
    assert by_value[json.dumps("trailing cr\r")]["timestamp"] == 1_234_567_890_123

    out = kcli("consume", "src", "-b", "-e", "--json").stdout
    kcli("produce", "dst", "--json", input=out)
    second = consume_json(kcli, "dst")

    def strip(recs):
        return sorted(json.dumps({k: v for k, v in r.items() if k != "topic"}, sort_keys=True) for r in recs)

    assert strip(second) == strip(first)
    # the stored records agree too: key/value nullness and bytes, headers and timestamps
    for p in (0, 1):
        assert stored_records(kcli, "src", p) == stored_records(kcli, "dst", p)
    assert (None, None, [], by_value["null"]["timestamp"]) in stored_records(
        kcli, "dst", by_value["null"]["partition"]
    )
    assert (binary, b"\xff\xfe", [("bin", b"\x80")], b["timestamp"]) in stored_records(kcli, "dst", 1)
    one_error_line(kcli("produce", "dst", "--json", input='{"value": 1}\n', ok=False), 2)
    one_error_line(kcli("produce", "dst", "--json", input="not json\n", ok=False), 2)
    one_error_line(kcli("produce", "dst", "--json", input='{"value": {"base64": "!!"}}\n', ok=False), 2)


# ---------------------------------------------------------------- consume options


def test_consume_offsets_partitions_max_messages_and_format(kcli):
    kcli.in_process("topic", "create", "c", "-p", "2")
    kcli.produce_lines("c", "".join(f"p0-{i}\n" for i in range(10)), "-p", "0")
    kcli.produce_lines("c", "".join(f"key{i}=p1-{i}\n" for i in range(5)), "-p", "1", "-K", "=")

    def values(*args):
        return kcli("consume", "c", *args).stdout.split()

    assert values("-p", "0", "-o", "3", "-e") == [f"p0-{i}" for i in range(3, 10)]
    assert values("-p", "0", "-o", "earliest", "-e") == [f"p0-{i}" for i in range(10)]
    assert values("-p", "0", "-o", "latest", "-e") == []
    assert values("-p", "0", "-o", "-2", "-e") == ["p0-8", "p0-9"]
    assert values("-p", "0", "-o", "-100", "-e") == [f"p0-{i}" for i in range(10)]
    assert values("-p", "0", "-o", "10", "-e") == []
    assert values("-p", "0", "-o", "50", "-e") == []
    assert sorted(values("-o", "-1", "-e")) == ["p0-9", "p1-4"]
    assert values("-p", "1", "-b", "-e") == [f"p1-{i}" for i in range(5)]
    assert sorted(values("-p", "0", "-p", "1", "-b", "-e")) == sorted(
        [f"p0-{i}" for i in range(10)] + [f"p1-{i}" for i in range(5)]
    )
    assert values("-p", "0", "-b", "-c", "3") == ["p0-0", "p0-1", "p0-2"]  # exits without -e
    assert values("-p", "0", "-b", "-e", "--max-messages", "4") == ["p0-0", "p0-1", "p0-2", "p0-3"]

    ts = json.loads(kcli("consume", "c", "-p", "1", "-b", "-e", "-c", "1", "--json").stdout)["timestamp"]
    fmt = "%t|%p|%o|%T|%k|%K|%s|%S|%h|100%%\\t.\\n"
    out = kcli("consume", "c", "-p", "1", "-b", "-e", "-c", "1", "-f", fmt).stdout
    assert out == f"c|1|0|{ts}|key0|4|p1-0|4||100%\t.\n"
    out = kcli("consume", "c", "-p", "0", "-b", "-e", "-c", "1", "-f", "[%k][%K][%S]").stdout
    assert out == "[][-1][4]"


def test_consume_by_timestamp(kcli):
    recs = [{"value": f"v{i}", "timestamp": 1_000_000 + 1000 * i} for i in range(10)]
    kcli.produce_lines("ts", "".join(json.dumps(r) + "\n" for r in recs), "--json", "--batch-size", "1")
    assert kcli("consume", "ts", "-o", "s@1004500", "-e").stdout.split() == ["v5", "v6", "v7", "v8", "v9"]
    assert kcli("consume", "ts", "-o", "s@1005000", "-e").stdout.split()[0] == "v5"
    assert kcli("consume", "ts", "-o", "s@0", "-e").stdout.split()[0] == "v0"
    assert kcli("consume", "ts", "-o", "s@99999999999", "-e").stdout == ""
    one_error_line(kcli("consume", "ts", "-o", "s@yesterday", "-e", ok=False), 2)


def test_consume_errors_and_exit_codes(kcli):
    kcli.produce_lines("e", "x\n")
    one_error_line(kcli("consume", "missing", "-e", ok=False), 3)
    usage = [
        ["consume", "e", "-o", "banana", "-e"],
        ["consume", "e", "-o", "1.5", "-e"],
        ["consume", "e", "-p", "-1", "-e"],
        ["consume", "e", "-c", "0", "-e"],
        ["consume", "e", "-b", "-o", "3", "-e"],
        ["consume", "e", "--json", "-f", "%s", "-e"],
        ["consume", "e", "--no-such-flag"],
        ["no-such-command"],
    ]
    for args in usage:  # refused before the data dir is opened: no process needed
        one_error_line(kcli.in_process(*args, ok=False), 2)
    line = one_error_line(kcli("consume", "e", "-p", "3", "-e", ok=False), 2)
    assert "partition 3" in line
    assert "3 not found" in kcli("--help").stdout  # the exit codes are documented


# ---------------------------------------------------------------- volume and concurrency


@pytest.mark.parametrize("codec", sorted(compression.CODECS))
def test_100k_lines_round_trip(kcli, codec, tmp_path):
    """One produce and one consume of 100k lines per `--compression` codec; the batches on disk carry it."""
    data = "".join(f"{i} {'x' * (i % 17)}\n" for i in range(100_000)).encode()
    src = tmp_path / "in.txt"
    src.write_bytes(data)
    kcli("produce", "big", "-z", codec, "-f", src)
    res = kcli("consume", "big", "-b", "-e", text=False)
    assert res.stdout == data
    headers = batches_of(kcli, "big")
    assert sum(h.records_count for h in headers) == 100_000
    assert {h.codec for h in headers} == {compression.CODECS[codec]}


WRITER = r"""
import sys, time
name, n = sys.argv[1], int(sys.argv[2])
out = sys.stdout
for i in range(n):
    out.write(f"{name} {i:06d}\n")
    if i % 200 == 199:
        out.flush()
        time.sleep(0.002)
out.flush()
"""


def test_concurrent_producers_into_one_partition(kcli):
    kcli.in_process("topic", "create", "shared")
    n, writers = 3000, ["A", "B", "C", "D"]
    procs = []
    for name in writers:
        gen = subprocess.Popen([sys.executable, "-c", WRITER, name, str(n)], stdout=subprocess.PIPE)
        prod = kcli.popen(
            "produce",
            "shared",
            "--linger-ms",
            "1",
            "--batch-size",
            "3000",
            stdin=gen.stdout,
            stderr=subprocess.PIPE,
        )
        gen.stdout.close()
        procs.append((gen, prod))
    for gen, prod in procs:
        assert gen.wait(timeout=120) == 0
        _out, err = prod.communicate(timeout=120)
        assert prod.returncode == 0, err
        assert b"Traceback" not in err and b"warning" not in err
    rows = [
        line.split(" ")
        for line in kcli.in_process("consume", "shared", "-b", "-e", "-f", "%o %s\\n").stdout.splitlines()
    ]
    offsets = [int(o) for o, _w, _s in rows]
    assert offsets == list(range(n * len(writers)))  # every record has its own offset, none lost
    for name in writers:
        seqs = [int(s) for _o, w, s in rows if w == name]
        assert seqs == list(range(n))  # each producer's records in order, none lost or doubled
    # batches interleave whole: every stored batch comes from a single producer
    by_offset = {int(o): w for o, w, _s in rows}
    headers = batches_of(kcli, "shared")
    assert sum(h.records_count for h in headers) == n * len(writers)
    for h in headers:
        assert len({by_offset[o] for o in range(h.base_offset, h.last_offset + 1)}) == 1
