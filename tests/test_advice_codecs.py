"""Built-in operating advice: the partition-count warning of `topic create`/`alter`, the codec
recommendation rule, and `kcli perf codecs`, whose sizes are checked against batches built here."""

from __future__ import annotations

import base64
import json
import math
import subprocess
from types import SimpleNamespace

import pytest
from support.waits import wait_for

from kcli.cluster.advice import codec_recommendation, partition_warnings, recommend_codec
from kcli.storage.records import encode_batch

# name -> (codec id, level) of every variant `perf codecs` measures
VARIANTS = {
    "none": (0, None),
    "gzip": (1, None),
    "snappy": (2, None),
    "lz4": (3, None),
    "zstd-1": (4, 1),
    "zstd-3": (4, 3),
    "zstd-9": (4, 9),
    "zstd-19": (4, 19),
}
COLUMNS = ["CODEC", "RATIO", "COMPRESS-MB/S", "DECOMPRESS-MB/S", "BYTES-PER-1M-MSGS"]


def warnings_of(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("kcli: warning:")]


# ---------------------------------------------------------------- partition count


def test_partition_warning_rule():
    assert partition_warnings("t", 30, {}) == []  # nobody consumes it: nothing to compare with
    assert partition_warnings("t", 6, {"g": 0}) == []  # within Kafka's 3 to 6 to start with
    assert partition_warnings("t", 8, {"g": 2}) == []  # 4 per consumer
    (warning,) = partition_warnings("t", 9, {"g": 2, "small": 1})
    assert warning.startswith(
        "topic t has 9 partitions, more than 4 per consumer of its largest consumer "
        "group (g: 2 live consumers)"
    )
    assert "start with 3 to 6 partitions and add them as consumer lag grows" in warning
    assert partition_warnings("t", 9, {"g": 3}) == []
    (idle,) = partition_warnings("t", 7, {"g": 0})  # a group that consumed it had a consumer
    assert "(g: no live consumer, counted as one)" in idle


def test_alter_warns_about_partitions_a_group_cannot_use(kcli):
    kcli.in_process("topic", "create", "ev", "-p", 2)
    kcli.produce_lines("ev", "a\nb\nc\n")
    kcli("consume", "ev", "--group", "g", "--reset", "earliest", "-e")
    assert warnings_of(kcli("topic", "alter", "ev", "-p", 6)) == []
    r = kcli("topic", "alter", "ev", "-p", 9)
    (warning,) = warnings_of(r)
    assert warning.startswith("kcli: warning: topic ev has 9 partitions, more than 4 per consumer")
    assert "(g: no live consumer, counted as one)" in warning
    assert "Topic ev now has 9 partition(s)." in r.stderr and r.stdout == ""
    # a new topic nobody consumes yet gets no partition advice
    assert not [w for w in warnings_of(kcli("topic", "create", "wide", "-p", 20)) if "partitions" in w]


def test_live_members_raise_the_threshold(kcli):
    kcli.in_process("topic", "create", "ev", "-p", 2)
    members = [
        kcli.popen("consume", "ev", "--group", "g", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        def joined() -> bool:
            r = kcli.in_process("group", "describe", "g", "--json", ok=False)
            return r.returncode == 0 and len(json.loads(r.stdout)[0]["members"]) == 2

        wait_for("the members to join", joined)
        assert warnings_of(kcli("topic", "alter", "ev", "-p", 8)) == []
        (warning,) = warnings_of(kcli("topic", "alter", "ev", "-p", 9))
        assert "(g: 2 live consumers)" in warning
    finally:
        for member in members:
            member.terminate()
            member.wait(timeout=20)


# ---------------------------------------------------------------- the codec recommendation


def figures(**codecs: tuple[float, float]):
    return [
        SimpleNamespace(name=name, ratio=ratio, compress_mb_s=speed)
        for name, (ratio, speed) in codecs.items()
    ]


def test_balanced_takes_the_fastest_codec_near_the_best_ratio():
    results = figures(none=(1.0, 900.0), lz4=(3.0, 500.0), zstd_3=(3.9, 200.0), zstd_19=(4.0, 5.0))
    assert recommend_codec(results).name == "zstd_3"
    results = figures(lz4=(3.81, 500.0), zstd_3=(3.9, 200.0), zstd_19=(4.0, 5.0))
    assert recommend_codec(results).name == "lz4"
    # exactly 5% below the best still counts
    assert recommend_codec(figures(a=(95.0, 10.0), b=(100.0, 1.0))).name == "a"
    assert recommend_codec(figures(a=(94.9, 10.0), b=(100.0, 1.0))).name == "b"


def test_incompressible_data_gets_no_compression():
    assert recommend_codec(figures(none=(1.0, 900.0), gzip=(1.01, 30.0), zstd=(1.02, 80.0))).name == "none"


def test_disk_takes_the_best_ratio_ties_to_the_faster():
    results = figures(lz4=(3.0, 500.0), zstd_9=(4.0, 20.0), zstd_19=(4.0, 5.0))
    assert recommend_codec(results, "disk").name == "zstd_9"


def test_recommendation_line():
    results = figures(lz4=(3.81, 500.0), zstd_19=(4.0, 5.0))
    assert codec_recommendation(results) == (
        "recommended: lz4 (ratio 3.810; the fastest to compress (500.0 MB/s) of the codecs within 5% of the "
        "best ratio (zstd_19, 4.000))"
    )
    assert codec_recommendation(results, "disk") == "recommended: zstd_19 (ratio 4.000; the best ratio)"


# ---------------------------------------------------------------- kcli perf codecs


def measured(groups: list[list[tuple]]) -> dict[str, tuple[int, int]]:
    """(uncompressed, compressed) bytes of the batches of ``groups`` for every variant, built here."""
    plain = sum(len(encode_batch(g)) for g in groups)
    return {
        name: (plain, sum(len(encode_batch(g, 0, codec, level=level)) for g in groups))
        for name, (codec, level) in VARIANTS.items()
    }


def check_table(stdout: str, sizes: dict[str, tuple[int, int]], messages: int) -> str:
    """The table's ratios and bytes per million are those of ``sizes``; returns the line after it."""
    lines = stdout.splitlines()
    assert lines[0].split("\t") == COLUMNS
    rows = [line.split("\t") for line in lines[1 : 1 + len(VARIANTS)]]
    assert [r[0] for r in rows] == list(VARIANTS)
    for name, ratio, compress, decompress, per_million in rows:
        plain, packed = sizes[name]
        assert ratio == f"{plain / packed:.3f}"
        assert int(per_million) == round(packed * 1_000_000 / messages)
        assert float(compress) > 0 and float(decompress) > 0
    assert len(lines) == len(VARIANTS) + 2
    return lines[-1]


@pytest.fixture
def sample_file(tmp_path):
    """2000 log-like lines of 50 bytes each."""
    actions = ["login", "logout", "click", "view", "buy"]
    lines = [f'{{"id":{i:06d},"user":"u{i % 37:03d}","act":"{actions[i % 5]:<14}"}}' for i in range(2000)]
    assert {len(line) for line in lines} == {50}
    path = tmp_path / "sample.txt"
    path.write_text("".join(line + "\n" for line in lines))
    return path, [line.encode() for line in lines]


def test_file_sample_sizes_match_real_batches(kcli, sample_file):
    path, lines = sample_file
    r = kcli("perf", "codecs", "--file", path, "--batch-size", 1000, "--min-time", 0.01)
    # the producer's rule: a record counts 12 bytes plus its value, and the one reaching 1000 closes a batch
    per_batch = math.ceil(1000 / (50 + 12))
    records = [(None, line, [], 1_700_000_000_000) for line in lines]
    groups = [records[i : i + per_batch] for i in range(0, len(records), per_batch)]
    sizes = measured(groups)
    last = check_table(r.stdout, sizes, len(lines))
    assert last.startswith("recommended: ") and last.split()[1] in VARIANTS
    assert (
        r.stderr == f"Sample: 2000 messages in {len(groups)} batches (--batch-size 1000), "
        f"{sizes['none'][0]} bytes uncompressed.\n"
    )


def test_json_and_recommendation(kcli, sample_file):
    path, lines = sample_file
    groups = [[(None, line, [], 0) for line in lines[:500]]]  # --sample 500 with one big batch
    sizes = measured(groups)
    for optimize in ("balanced", "disk"):
        out = json.loads(
            kcli(
                "perf",
                "codecs",
                "-f",
                path,
                "--sample",
                500,
                "--batch-size",
                10**6,
                "--min-time",
                0.01,
                "--optimize",
                optimize,
                "--json",
            ).stdout
        )
        assert out["sample"] == {
            "messages": 500,
            "batches": 1,
            "batch_size": 10**6,
            "uncompressed_bytes": sizes["none"][0],
        }
        assert [c["codec"] for c in out["codecs"]] == list(VARIANTS)
        for c in out["codecs"]:
            assert (c["uncompressed_bytes"], c["compressed_bytes"]) == sizes[c["codec"]]
            assert c["ratio"] == sizes[c["codec"]][0] / sizes[c["codec"]][1]
            assert c["compress_mb_s"] > 0 and c["decompress_mb_s"] > 0
        results = [
            SimpleNamespace(name=c["codec"], ratio=c["ratio"], compress_mb_s=c["compress_mb_s"])
            for c in out["codecs"]
        ]
        assert out["recommended"] == recommend_codec(results, optimize).name
    best = max(p / c for p, c in sizes.values())
    assert sizes[out["recommended"]][0] / sizes[out["recommended"]][1] == best  # disk: the best ratio


def _bytes(obj) -> bytes | None:
    if obj is None or isinstance(obj, str):
        return None if obj is None else obj.encode()
    return base64.b64decode(obj["base64"])


def test_topic_sample_is_the_newest_records_with_keys_and_headers(kcli):
    kcli.in_process("topic", "create", "orders", "-p", 2)
    for round_ in range(3):  # several produce runs: timestamps differ between and within batches
        text = "".join(
            f'cust{i % 7}:{{"order":{round_ * 400 + i},"sku":"sku-{i % 13}"}}\n' for i in range(400)
        )
        kcli.produce_lines("orders", text, "-K", ":", "-H", "source=web")
    dump = kcli("consume", "orders", "--from-beginning", "-e", "--json").stdout
    stored = [json.loads(line) for line in dump.splitlines()]
    assert len(stored) == 1200
    newest = sorted(stored, key=lambda m: (m["timestamp"], m["partition"], m["offset"]))[-700:]
    groups = []
    for partition in (0, 1):
        records = [
            (_bytes(m["key"]), _bytes(m["value"]), [(k, _bytes(v)) for k, v in m["headers"]], m["timestamp"])
            for m in sorted(newest, key=lambda m: m["offset"])
            if m["partition"] == partition
        ]
        group, size = [], 0
        for record in records:  # the producer's batching rule, counting keys too
            group.append(record)
            size += 12 + len(record[0]) + len(record[1])
            if size >= 4096:
                groups.append(group)
                group, size = [], 0
        if group:
            groups.append(group)
    assert len(groups) > 4
    r = kcli("perf", "codecs", "--topic", "orders", "--sample", 700, "--batch-size", 4096, "--min-time", 0.01)
    check_table(r.stdout, measured(groups), 700)
    assert f"Sample: 700 messages in {len(groups)} batches" in r.stderr


def test_needs_exactly_one_source(kcli, sample_file):
    path, _lines = sample_file
    for args in ((), ("--file", path, "--topic", "t")):
        r = kcli("perf", "codecs", *args, ok=False)
        assert r.returncode == 2 and "give --file or --topic, one of the two" in r.stderr
    empty = path.parent / "empty.txt"
    empty.write_text("")
    r = kcli("perf", "codecs", "--file", empty, ok=False)
    assert r.returncode == 1 and "nothing to measure" in r.stderr
