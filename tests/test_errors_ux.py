"""The user's side of kcli: mistakes, the config file, and output conventions, through real processes.

Every mistake must give its documented exit code and exactly one line on stderr, starting with
``kcli: error:``, and never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.runner import KCLI, KcliRunner

from kcli.cli.commands import COMMANDS


class Run(KcliRunner):
    """``kcli ARGS`` in a subprocess with ``KCLI_DATA_DIR`` set to a per-test directory, no other KCLI_
    or XDG_ variables and a HOME of its own (so no config file but the test's is found); a failure is
    returned, not asserted.  ``in_process`` (from KcliRunner) runs a refusal without a process."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path / "data")
        self.tmp = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KCLI_", "XDG_", "_KCLI"))}
        self.env.update(KCLI_DATA_DIR=str(self.data_dir), NO_COLOR="1", HOME=str(tmp_path / "home"))

    def __call__(
        self, *args: object, input: str = "", env: dict[str, str | None] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        run_env = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                run_env.pop(key, None)
            else:
                run_env[key] = value
        return subprocess.run(
            [*KCLI, *map(str, args)],
            input=input,
            capture_output=True,
            text=True,
            env=run_env,
            timeout=timeout,
            cwd=self.tmp,
        )

    def ok(self, *args: object, **kwargs) -> subprocess.CompletedProcess:
        proc = self(*args, **kwargs)
        assert proc.returncode == 0, f"kcli {args} exited {proc.returncode}: {proc.stderr}"
        return proc

    def config(self, text: str, name: str = "data/kcli.toml") -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@pytest.fixture
def kcli(tmp_path: Path) -> Run:
    return Run(tmp_path)


def assert_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """Exit ``code``, one stderr line starting with `kcli: error:` that holds every fragment."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    assert line.startswith("kcli: error: "), line
    assert proc.returncode == code, f"exit {proc.returncode} (wanted {code}): {line}"
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


# ------------------------------------------------------------------ mistakes
def test_unknown_topic(kcli: Run) -> None:
    assert_error(kcli("consume", "nope", "-e"), 3, "'nope'", "does not exist")
    assert_error(kcli("topic", "describe", "nope"), 3, "'nope'")
    assert_error(kcli("topic", "delete", "nope"), 3, "'nope'")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["produce", "t", "--linger-ms", "abc"], "--linger-ms"),
        (["produce", "t", "-z", "brotli"], "brotli"),
        (["produce", "t", "--lingr-ms", "5"], "--lingr-ms"),
        (["--lock-timeout", "-1", "topic", "list"], "--lock-timeout"),
        (["topic", "create", "x", "-p", "0"], "partition count"),
        (["topic", "create", "x", "-c", "retention.ms=soon"], "retention.ms"),
        (["topic", "create", "x", "-c", "no.such.config=1"], "no.such.config"),
        (["produce", "bad/name"], "bad/name"),
        (["consume", "t", "--from-beginning", "--offset", "5"], "--offset"),
        (["cluster", "init", "--brokers", "0"], "--brokers"),
        (["completion", "tcsh"], "tcsh"),
    ],
)
def test_bad_flag_value(kcli: Run, args: list[str], fragment: str) -> None:
    assert_error(kcli.in_process(*args, input="x\n", ok=False), 2, fragment)


def test_usage_errors_point_to_help(kcli: Run) -> None:
    assert_error(kcli.in_process("produce", "t", "--linger-ms", "abc", ok=False), 2,
                 "hint: see `kcli produce --help`")
    assert_error(kcli.in_process("produce", ok=False), 2, "Missing argument 'TOPIC'")


def test_unknown_command(kcli: Run) -> None:
    assert_error(kcli.in_process("frobnicate", ok=False), 2, "frobnicate", "kcli --help")
    assert_error(kcli.in_process("topic", "frobnicate", ok=False), 2, "frobnicate", "kcli topic --help")


def test_already_exists_and_missing_partition(kcli: Run) -> None:
    kcli.ok("topic", "create", "a")
    assert_error(kcli("topic", "create", "a"), 4, "'a'", "already exists")
    kcli.ok("topic", "create", "a", "--if-not-exists")
    assert_error(kcli("consume", "a", "-p", "5", "-e"), 2, "no partition 5")
    assert_error(kcli("produce", "a", "-p", "5", input="x\n"), 2, "no partition 5")


def test_missing_input_file(kcli: Run) -> None:
    assert_error(kcli("produce", "t", "-f", kcli.tmp / "missing.txt"), 1, "No such file", "missing.txt")




@pytest.mark.parametrize(
    "args",
    [
        ["produce", "t"],
        ["consume", "t", "-e"],
        ["topic", "create", "t"],
        ["group", "list"],
        ["lag"],
        ["broker", "list"],
        ["log-dirs"],
        ["verify"],
        ["topic", "list"],
        ["topic", "describe"],
        ["cluster", "status"],
        ["cluster", "init"],
        ["leader-election", "--preferred", "--all"],
    ],
)
def test_data_dir_that_is_a_file(kcli: Run, args: list[str]) -> None:
    kcli.data_dir.write_text("not a directory\n")
    assert_error(kcli(*args, input="x\n"), 9, str(kcli.data_dir), "not a directory")


def test_data_dir_that_is_a_file_never_tracebacks(kcli: Run) -> None:
    """Whatever the exit code, every command that uses the data dir fails with one line."""
    kcli.data_dir.write_text("not a directory\n")
    for args in (
        ["produce", "t"],
        ["consume", "t", "-e"],
        ["group", "list"],
        ["lag"],
        ["broker", "list"],
        ["log-dirs"],
        ["verify"],
        ["topic", "create", "t"],
    ):
        proc = kcli(*args, input="x\n")
        assert proc.returncode != 0, args
        assert_error(proc, proc.returncode)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_data_dir_not_writable(kcli: Run) -> None:
    locked = kcli.tmp / "locked"
    locked.mkdir(mode=0o500)
    proc = kcli("topic", "list", env={"KCLI_DATA_DIR": str(locked / "data")})
    assert_error(proc, 9, "not writable")


def test_lock_timeout_names_the_holder(kcli: Run) -> None:
    from kcli.cluster.datadir import DataDir

    kcli.in_process("topic", "create", "t")
    lock = DataDir(str(kcli.data_dir)).partition_lock("t", 0).acquire()
    try:
        # gives up after the lock timeout, not never (a hang fails on the run's own timeout)
        proc = kcli("--lock-timeout", "0.2", "produce", "t", input="x\n", timeout=20)
        assert_error(proc, 5, "partition t-0", f"pid {os.getpid()}", "0.2s")
    finally:
        lock.release()
    kcli.ok("--lock-timeout", "0.2", "produce", "t", input="x\n")


def test_interrupt_exits_130(kcli: Run) -> None:
    """Ctrl-C: exit 130 and one message.  (click first writes an empty line to close the terminal's ``^C``
    echo; that line is allowed.)"""
    kcli.produce_lines("t", "x\n")
    proc = subprocess.Popen(
        [*KCLI, "consume", "t", "-b"], env=kcli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # it is now in the follow loop, waiting for more
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert first == "x\n"
    err = "".join(line for line in err.splitlines(keepends=True) if line.strip())
    assert_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), 130)


def test_closed_pipe_is_quiet(kcli: Run) -> None:
    """`kcli consume t -b -e | head -1` stops quietly with status 0."""
    kcli.produce_lines("t", "".join(f"{i}\n" for i in range(200_000)))
    proc = subprocess.Popen(
        [*KCLI, "consume", "t", "-b", "-e"], env=kcli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"0\n"
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert err == b""


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(kcli: Run, name: str) -> None:
    """`kcli NAME --help` works for every command in the table (a missing module is a traceback)."""
    proc = kcli(name, "--help")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: kcli {name}")


# ------------------------------------------------------------------ config file
@pytest.mark.parametrize(
    "text,fragments",
    [
        ("lock_timeout = = 1\n", ["not valid TOML", "line 1"]),
        ("[nope]\nx = 1\n", ["unknown table [nope]"]),
        ("[topic.nope]\nx = 1\n", ["unknown table [topic.nope]"]),
        ("[produce]\nlingr_ms = 3\n", ["unknown key 'lingr_ms'", "[produce]", "linger_ms"]),
        ('[produce]\ncompression = "brotli"\n', ["'compression'", "brotli"]),
        ("[produce]\nlinger_ms = -1\n", ["'linger_ms'", "-1"]),
        ('[produce]\nacks = "2"\n', ["'acks'", "2"]),
        ('lock_timeout = "soon"\n', ["'lock_timeout'", "top level"]),
        ('[consume]\ntopic = "t"\n', ["unknown key 'topic'"]),
        ('[consume]\nformat = "%s"\nfmt = "%k"\n', ["'format' and 'fmt'"]),
        ('data_dir = "elsewhere"\n', ["data_dir cannot be set"]),
    ],
)
def test_bad_config_file(kcli: Run, text: str, fragments: list[str]) -> None:
    path = kcli.config(text)
    line = assert_error(kcli.in_process("topic", "list", ok=False), 2, str(path), *fragments)
    assert "Traceback" not in line


def test_missing_or_unreadable_explicit_config(kcli: Run) -> None:
    assert_error(kcli("--config", kcli.tmp / "none.toml", "topic", "list"), 2, "none.toml", "does not exist")
    assert_error(kcli("topic", "list", env={"KCLI_CONFIG": str(kcli.tmp / "none.toml")}), 2, "none.toml")
    assert_error(kcli("--config", kcli.tmp, "topic", "list"), 2, "is a directory")
    (kcli.tmp / "latin1.toml").write_bytes(b"# caf\xe9\n")
    assert_error(kcli("--config", kcli.tmp / "latin1.toml", "topic", "list"), 2, "latin1.toml")


def test_config_sets_defaults_and_flags_win(kcli: Run) -> None:
    kcli.config(
        '[consume]\nfrom_beginning = true\nexit_on_eof = true\nformat = "%o:%s\\n"\n'
        '[produce]\ncompression = "lz4"\nlinger_ms = 10\nacks = "1"\n'
    )
    kcli.ok("produce", "t", input="a\nb\n")
    assert kcli.ok("consume", "t").stdout == "0:a\n1:b\n"
    assert kcli.ok("consume", "t", "-f", "%s\\n").stdout == "a\nb\n"  # flag > file
    helptext = kcli.ok("produce", "--help").stdout
    assert "[default: lz4]" in helptext and "[default: 10;" in helptext
    assert "[default: 1]" in helptext  # acks from the file


def test_config_for_subcommands_and_switches(kcli: Run) -> None:
    kcli.config("[topic.create]\npartitions = 3\n[topic.describe]\nunder_replicated_partitions = true\n")
    kcli.in_process("topic", "create", "x")
    kcli.in_process("topic", "create", "y", "-p", "2")
    topics = {t["name"]: t["partitions"] for t in json.loads(kcli.ok("topic", "list", "--json").stdout)}
    assert topics == {"x": 3, "y": 2}
    # every replica is in sync, so the under-replicated filter from the file leaves no rows
    rows = kcli.ok("topic", "describe").stdout.splitlines()
    assert rows[0].startswith("TOPIC\t") and rows[1:] == []


def test_config_lock_timeout_and_precedence(kcli: Run) -> None:
    from kcli.cluster.datadir import DataDir

    kcli.in_process("topic", "create", "t")
    kcli.config("lock_timeout = 0.2\n")
    lock = DataDir(str(kcli.data_dir)).partition_lock("t", 0).acquire()
    try:
        assert_error(kcli("produce", "t", input="x\n"), 5, "after 0.2s")
        assert_error(kcli("--lock-timeout", "0.3", "produce", "t", input="x\n"), 5, "after 0.3s")
    finally:
        lock.release()


def test_explicit_config_chooses_the_data_dir(kcli: Run) -> None:
    cfg = kcli.config('data_dir = "from-file"\n', name="etc/kcli.toml")

    def data_dir_of(*args: str, env: dict[str, str | None]) -> str:
        return json.loads(kcli.ok(*args, "cluster", "status", "--json", env=env).stdout)["data_dir"]

    no_env = {"KCLI_DATA_DIR": None}
    assert data_dir_of("--config", str(cfg), env=no_env) == str(kcli.tmp / "etc" / "from-file")
    assert data_dir_of(env={**no_env, "KCLI_CONFIG": str(cfg)}) == str(kcli.tmp / "etc" / "from-file")
    # env > file, flag > env
    assert data_dir_of("--config", str(cfg), env={}) == str(kcli.data_dir)
    assert data_dir_of("--config", str(cfg), "--data-dir", str(kcli.tmp / "flag"), env={}) == str(
        kcli.tmp / "flag"
    )


def test_explicit_config_replaces_the_data_dirs_file(kcli: Run) -> None:
    kcli.config("[nope]\n")  # broken, but not read when another file is named
    other = kcli.config("[consume]\nexit_on_eof = true\n", name="other.toml")
    kcli.ok("--config", other, "produce", "t", input="x\n")
    assert kcli.ok("--config", other, "consume", "t", "-b").stdout == "x\n"
    kcli.ok("--config", "/dev/null", "topic", "list")
    kcli.ok("topic", "list", env={"KCLI_CONFIG": str(other)})
    assert_error(kcli("topic", "list"), 2, "unknown table [nope]")


# ------------------------------------------------------------------ output conventions
def test_tables_are_tab_separated_when_piped(kcli: Run) -> None:
    kcli.in_process("topic", "create", "t", "-p", "2")
    status = kcli.ok("cluster", "status").stdout.splitlines()
    assert "BROKER\tSTATE" in status
    describe = kcli.ok("topic", "describe", "t").stdout.splitlines()
    assert describe[0].split("\t")[:3] == ["TOPIC", "PARTITION", "LEADER"]
    assert len(describe) == 3 and all(
        len(row.split("\t")) == len(describe[0].split("\t")) for row in describe
    )
    assert kcli.ok("topic", "list").stdout == "t\n"
    assert "\x1b[" not in "".join(status + describe)


def test_tsv_cells_stay_on_one_line() -> None:
    from kcli.cli.output import tsv_cell

    assert tsv_cell("plain") == "plain"
    assert tsv_cell("a\tb\nc\\d\r") == "a\\tb\\nc\\\\d\\r"


def test_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from kcli.cli import output

    monkeypatch.setattr(output, "is_terminal", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert output.use_color()
    monkeypatch.setenv("NO_COLOR", "")  # empty means unset (no-color.org)
    assert output.use_color()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not output.use_color()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pty")
def test_terminal_tables_without_color(kcli: Run) -> None:
    import pty

    kcli.in_process("topic", "create", "t")
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [*KCLI, "topic", "describe"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            env={**kcli.env, "TERM": "xterm-256color", "COLUMNS": "120"},
            timeout=60,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(primary)
    out = b"".join(chunks).decode()
    assert proc.returncode == 0, proc.stderr
    assert "TOPIC" in out and "\t" not in out  # a drawn table, not TSV
    assert not re.search(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7]|4[0-9]|10[0-7])(?:;[0-9]+)*m", out), repr(out)
