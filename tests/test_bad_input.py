"""Bad input is refused with one clear line, a non-zero exit, and nothing written where it should not be.

Every refusal here is checked three ways: the exit code, a single ``kcli: error:`` line on stderr, and
a snapshot of the directory around the data dir (nothing created, changed or deleted outside it; for
most refusals nothing inside it either).  A topic name is a path component of replica folders and lock
files, so names with ``/`` or ``..`` are the classic way out of a data dir.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.runner import one_error_line

from kcli.cluster.metadata import LOG_NAME
from kcli.errors import InvalidTopicError


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every path under ``root`` (except under ``skip``) with type, size, mode and content hash.  A lock
    file's content (so its size) is the pid of its last holder, which taking the lock to look and refuse
    rewrites."""
    out = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        st = path.lstat()
        plain = path.is_file() and not path.is_symlink() and path.suffix != ".lock"
        content = path.read_bytes() if plain else None
        out[str(path.relative_to(root))] = (
            st.st_mode,
            st.st_size if path.suffix != ".lock" else None,  # a pid of another width is no change
            hash(content),
            os.readlink(path) if path.is_symlink() else None,
        )
    return out


def topics(kcli) -> list[str]:
    return kcli.in_process("topic", "list").stdout.split()


# --- topic names ------------------------------------------------------------------------------------------

BAD_NAMES = ["a/b", "../escape", "..", ".", "/abs", "x/../../y", "a b", "tøpic", "n" * 250, "", "a\\b", "*"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:20])
def test_bad_topic_names_are_refused_and_nothing_is_written(kcli, tmp_path, name):
    before = snapshot(tmp_path)
    for args in (["topic", "create", name], ["produce", name]):
        res = kcli.in_process(*args, input="x\n", ok=False)
        one_error_line(res, 2, "topic name")
    # validation comes before anything touches the disk: not even the data dir was created
    assert snapshot(tmp_path) == before


def test_nul_in_a_topic_name_is_refused():
    """argv cannot carry NUL, but the wire protocol and JSON metadata can: the validator must refuse it."""
    from kcli.cluster.metadata import validate_topic_name

    for name in ("a\x00b", "\x00", "ok\x00/../../etc"):
        with pytest.raises(InvalidTopicError):
            validate_topic_name(name)


def test_249_characters_is_the_longest_name(kcli):
    kcli("topic", "create", "n" * 249)
    one_error_line(kcli("topic", "create", "n" * 250, ok=False), 2, "250")
    assert topics(kcli) == ["n" * 249]


def test_bad_names_for_other_commands_do_not_escape(kcli, tmp_path):
    kcli.produce_lines("t", "x\n")
    before = snapshot(tmp_path, skip=kcli.data_dir)
    for args in (
        ["consume", "../t", "-e"],
        ["topic", "delete", "../../x"],
        ["topic", "describe", "a/b"],
        ["topic", "alter", "..", "-p", "2"],
        ["lag", "--group", "g", "--topic", "../t"],
    ):
        res = kcli(*args, ok=False)
        assert res.returncode in (2, 3), (args, res.stderr)
        one_error_line(res, res.returncode)
    assert snapshot(tmp_path, skip=kcli.data_dir) == before
    assert topics(kcli) == ["t"]


@pytest.mark.parametrize("group", [".", "..", "../..", "a/b", "%2e%2e"])
def test_group_ids_that_look_like_paths_stay_inside_the_groups_folder(kcli, tmp_path, group):
    """Kafka allows any group id.  ``..`` used to name the cluster folder itself, so a member wrote its
    files there and ``group delete ..`` went for the whole cluster folder."""
    kcli.produce_lines("t", "a\nb\n")
    outside = snapshot(tmp_path, skip=kcli.data_dir / "cluster" / "groups")
    assert kcli("consume", "t", "--group", group, "--reset", "earliest", "-e").stdout == "a\nb\n"
    listed = kcli.in_process("group", "list", "--json").stdout
    assert group in json.loads(listed or "[]") or kcli.in_process("group", "list").stdout
    kcli("group", "delete", group)
    assert snapshot(tmp_path, skip=kcli.data_dir / "cluster" / "groups") == outside
    assert topics(kcli) == ["t"]
    assert kcli.in_process("consume", "t", "-b", "-e").stdout == "a\nb\n"


# --- partition counts and replication factors -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "0"],
        ["-p", "-1"],
        ["-p", "-99999999999"],
        ["-p", "100001"],
        ["-p", "99999999999999999999"],
        ["-p", "1e3"],
        ["-p", "two"],
        ["-r", "0"],
        ["-r", "-1"],
        ["-r", "2"],
        ["-r", "1000000"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_partition_counts_and_replication_factors(kcli, tmp_path, args):
    """Refused before anything is written; a replication factor is checked against the brokers, so a first
    command may have initialised the data dir by then (as any first command does), but made no topic."""
    before = snapshot(tmp_path)
    res = kcli.in_process("topic", "create", "t", *args, ok=False)
    one_error_line(res, 2)
    assert snapshot(tmp_path, skip=kcli.data_dir if args[0] == "-r" else None) == before
    assert not list(kcli.data_dir.glob("broker-*/t-*"))


@pytest.mark.parametrize("count", ["0", "-1", "1", "1000000000", "99999999999999999999", "x"])
def test_bad_partition_counts_for_alter(kcli, tmp_path, count):
    kcli.in_process("topic", "create", "t", "-p", "2")
    before = snapshot(tmp_path)
    res = kcli("topic", "alter", "t", "-p", count, ok=False)
    one_error_line(res, 2)
    assert snapshot(tmp_path) == before


def test_partition_numbers_out_of_range(kcli, tmp_path):
    kcli.in_process("topic", "create", "t", "-p", "2")
    before = snapshot(tmp_path)
    one_error_line(kcli("produce", "t", "-p", "2", input="x\n", ok=False), 2, "partition")
    one_error_line(kcli("produce", "t", "-p", "-1", input="x\n", ok=False), 2)
    one_error_line(kcli("consume", "t", "-p", "7", "-e", ok=False), 2, "partition")
    assert snapshot(tmp_path) == before


# --- message size ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("replicas", [1, 3])
def test_message_over_max_message_bytes_is_refused_and_nothing_is_written(kcli, tmp_path, replicas):
    if replicas > 1:
        kcli.in_process("cluster", "init", "--brokers", replicas)
    kcli.in_process("topic", "create", "t", "-r", replicas, "-c", "max.message.bytes=200")
    kcli.produce_lines("t", "small\n")
    before = snapshot(tmp_path)
    res = kcli("produce", "t", "--print-offsets", input="x" * 500 + "\n", ok=False)
    one_error_line(res, 7, "max.message.bytes")
    assert res.stdout == ""
    # the refused session may only leave its bookkeeping (writer and producer state, lock pid, the producer
    # id it took) behind, never data
    after = snapshot(tmp_path)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    bookkeeping = (".lock", "kcli-writer-state", ".snapshot", "cluster/producer-ids")
    assert all(k.endswith(bookkeeping) for k in changed), changed
    assert kcli.in_process("consume", "t", "-b", "-e").stdout == "small\n"
    kcli.in_process("verify")


def test_message_over_the_default_limit(kcli):
    kcli.in_process("topic", "create", "t")
    one_error_line(kcli("produce", "t", input="y" * (1 << 20) + "\n", ok=False), 7, "1048588")
    assert kcli.in_process("consume", "t", "-b", "-e").stdout == ""


# --- symlinks inside the data dir -------------------------------------------------------------------------


def _segment(kcli, topic: str = "t") -> Path:
    return kcli.data_dir / "broker-0" / f"{topic}-0" / "00000000000000000000.log"


@pytest.mark.parametrize("target", ["segment", "index", "lock", "checkpoint-tmp", "state-tmp"])
def test_symlinked_files_are_refused_not_followed(kcli, tmp_path, target):
    """A link planted where kcli keeps a file must not make kcli write (or truncate) the file it points to."""
    kcli.in_process("topic", "create", "t", "-c", "index.interval.bytes=10")
    kcli.produce_lines("t", "".join(f"line {i}\n" for i in range(50)))
    kcli.produce_lines("t", "more\n")
    victim = tmp_path / "precious.txt"
    victim.write_bytes(b"not kcli's data\n" * 10)
    partition = kcli.data_dir / "broker-0" / "t-0"
    path = {
        "segment": _segment(kcli),
        "index": partition / "00000000000000000000.index",
        "lock": kcli.data_dir / "cluster" / "locks" / "t-0.lock",
        "checkpoint-tmp": kcli.data_dir / "broker-0" / "recovery-point-offset-checkpoint.tmp",
        "state-tmp": partition / "kcli-writer-state.tmp",
    }[target]
    if path.exists():
        path.unlink()
    path.symlink_to(victim)
    res = kcli("produce", "t", input="after\n", ok=False)
    line = one_error_line(res, 9, "symbolic link", path.name)
    assert str(path) in line
    if target in ("segment", "index"):  # readers refuse the link as well
        one_error_line(kcli("consume", "t", "-b", "-e", ok=False), 9, "symbolic link")
    assert victim.read_bytes() == b"not kcli's data\n" * 10
    assert path.is_symlink()


def test_a_symlinked_data_dir_is_fine(kcli, tmp_path):
    """Links above the files kcli manages are an operator's choice (a data dir moved to another disk)."""
    real = tmp_path / "disk" / "kcli"
    real.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    kcli.env["KCLI_DATA_DIR"] = str(link)
    kcli("produce", "t", input="x\n")
    assert kcli("consume", "t", "-b", "-e").stdout == "x\n"
    assert (real / "broker-0" / "t-0").is_dir()


# --- ownership ----------------------------------------------------------------------------------------------

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_data_dir_owned_by_another_user_is_refused(kcli, tmp_path):
    kcli.produce_lines("t", "x\n")
    os.chown(kcli.data_dir, NOBODY, NOBODY)
    before = snapshot(tmp_path)
    for args in (
        ["produce", "t"],
        ["consume", "t", "-b", "-e"],
        ["topic", "create", "u"],
        ["cluster", "status"],
    ):
        one_error_line(
            kcli(*args, input="y\n", ok=False), 9, "owned by", str(kcli.data_dir), "KCLI_ALLOW_OTHER_OWNER"
        )
    assert snapshot(tmp_path) == before
    # sharing on purpose
    kcli.env["KCLI_ALLOW_OTHER_OWNER"] = "1"
    kcli("produce", "t", input="y\n")
    assert kcli("consume", "t", "-b", "-e").stdout == "x\ny\n"


def test_data_dir_that_is_a_file_is_refused(kcli, tmp_path):
    kcli.data_dir.write_text("not a directory\n")
    before = snapshot(tmp_path)
    one_error_line(kcli("produce", "t", input="x\n", ok=False), 9, "not a directory")
    assert snapshot(tmp_path) == before


# --- option values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["topic", "create", "t", "-c", "segment.bytes=abc"],
        ["topic", "create", "t", "-c", "segment.bytes=1"],
        ["topic", "create", "t", "-c", "no.such.config=1"],
        ["topic", "create", "t", "-c", "novalue"],
        ["topic", "create", "t", "-c", "max.message.bytes=-5"],
        ["produce", "t", "-K", ""],
        ["produce", "t", "-H", "noequals"],
        ["produce", "t", "--batch-size", "0"],
        ["consume", "t", "-o", "yesterday"],
        ["consume", "t", "-o", "s@noon"],
    ],
    ids=lambda a: " ".join(a[1:]),
)
def test_bad_option_values(kcli, tmp_path, args):
    if args[0] == "consume":
        kcli.in_process("topic", "create", "t")
    before = snapshot(tmp_path)
    one_error_line(kcli.in_process(*args, input="x\n", ok=False), 2)
    assert snapshot(tmp_path) == before


def test_metadata_is_untouched_by_refusals(kcli):
    kcli.in_process("topic", "create", "t", "-p", "2")
    log = kcli.data_dir / "cluster" / LOG_NAME
    before = log.read_bytes()
    kcli("topic", "create", "t", ok=False)
    kcli("topic", "alter", "t", "-p", "1", ok=False)
    kcli("topic", "create", "T/x", ok=False)
    assert log.read_bytes() == before


@pytest.mark.parametrize(
    "line",
    [
        b'{"value": "a", "timestamp": 100000000000000000000}',
        b'{"value": "a", "timestamp": -5}',
        b'{"value": "a", "timestamp": -1}',
        b'{"value": "a", "partition": 4294967296}',
        b'"\xff"',
        b'{"value": "a", "timestamp": ' + b"1" * 5000 + b"}",
        b'{"value": "\\ud800"}',
        b'{"value": "a", "headers": [["\\udfff", "x"]]}',
        b"[" * 100_000,
    ],
    ids=["timestamp 1e20", "timestamp -5", "timestamp -1", "partition 2**32", "not utf-8",
         "5000 digits", "lone surrogate value", "lone surrogate header key", "deep nesting"],
)
def test_bad_json_records_are_refused_and_stored_records_stay(kcli, line):
    """Out-of-range numbers, bytes that are not UTF-8, escapes that are not Unicode (a lone surrogate),
    numbers longer than Python parses and nesting deeper than it recurses get one line and exit 2, not a
    traceback, and leave what was stored before as it was."""
    kcli.produce_lines("t", b'{"value": "kept", "timestamp": 5}\n', "--json")
    one_error_line(kcli("produce", "t", "--json", input=line + b"\n", ok=False), 2)
    assert kcli.in_process("consume", "t", "-b", "-e", "-f", "%T %s\\n").stdout == "5 kept\n"
    kcli.in_process("verify")
