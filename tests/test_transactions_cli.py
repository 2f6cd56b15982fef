"""Transactions from the shell, embedded: ``produce --transactional-id`` (commit at EOF or every N
records; abort on a failure, Ctrl-C or SIGTERM, with the exit status saying which), fencing by a second
producer of the same id, read_committed and read_uncommitted consumers, ``kcli transform`` and the
abort of a transaction whose producer was killed.  Every step is a real kcli process."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from support.runner import one_error_line
from support.waits import stop_process, wait_for


def _lines(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _read(kcli, topic: str, isolation: str = "read_committed") -> list[str]:
    """The topic's values as a consumer with ``isolation`` sees them (none while it does not exist)."""
    proc = kcli("consume", topic, "-b", "-e", "--isolation-level", isolation, ok=False)
    assert proc.returncode in (0, 3), proc.stderr
    return proc.stdout.splitlines()


def _feed(kcli, *args: object) -> subprocess.Popen:
    """A producer fed by the test through a pipe, its stderr captured."""
    return kcli.popen("produce", *args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)


def _write(proc: subprocess.Popen, lines: list[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
    proc.stdin.flush()


def _error_line(proc: subprocess.Popen) -> str:
    assert proc.stderr is not None
    lines = proc.stderr.read().decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kcli: error: "), lines
    return lines[0]


def test_produce_commits_at_eof_exactly_once(kcli) -> None:
    lines = _lines(2000)
    kcli("produce", "t", "--transactional-id", "load", "--batch-size", "1000", input="\n".join(lines) + "\n")
    assert _read(kcli, "t") == lines
    assert _read(kcli, "t", "read_uncommitted") == lines  # the commit marker is never printed
    info = json.loads(kcli("transaction", "describe", "load", "--json").stdout)
    assert info["state"] == "CompleteCommit" and info["partitions"] == []
    assert [i["transactional_id"] for i in json.loads(kcli("transaction", "list", "--json").stdout)] == ["load"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_stream_aborts(kcli, sig: int, code: int) -> None:
    kcli("produce", "t", input="before\n")
    proc = _feed(kcli, "t", "--transactional-id", "feed")
    _write(proc, _lines(50))
    wait_for("the open transaction's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 51)
    assert _read(kcli, "t") == ["before"]  # held back by the open transaction
    assert stop_process(proc, sig=sig) == code
    assert "transaction aborted" in _error_line(proc)
    assert _read(kcli, "t") == ["before"]
    assert _read(kcli, "t", "read_uncommitted") == ["before", *_lines(50)]
    kcli("produce", "t", input="after\n")
    assert _read(kcli, "t") == ["before", "after"]


def test_a_failure_mid_stream_aborts_with_its_cause(kcli) -> None:
    good = [json.dumps({"value": f"v{i}"}) for i in range(40)]
    proc = kcli("produce", "t", "--json", "--batch-size", "100", "--transactional-id", "bad-input",
                input="\n".join([*good, "{not json", *good]) + "\n", ok=False)
    line = one_error_line(proc, 1, "transaction aborted", "line 41")
    assert "JSON" in line or "json" in line
    assert _read(kcli, "t") == []
    sent = _read(kcli, "t", "read_uncommitted")  # the full batches went out before the failure, then aborted
    assert sent and sent == [f"v{i}" for i in range(len(sent))]


def test_max_records_commits_every_n(kcli) -> None:
    proc = _feed(kcli, "t", "--transactional-id", "every", "--transaction-max-records", "10")
    _write(proc, _lines(25))
    wait_for("two committed transactions", lambda: _read(kcli, "t") == _lines(20))
    wait_for("the third transaction's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 25)
    assert _read(kcli, "t") == _lines(20)
    assert stop_process(proc) == 143
    assert _read(kcli, "t") == _lines(20)


def test_a_second_producer_fences_the_first(kcli) -> None:
    first = _feed(kcli, "t", "--transactional-id", "same")
    _write(first, _lines(5, "old"))
    wait_for("the first producer's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 5)
    kcli("produce", "t", "--transactional-id", "same", input="new0\nnew1\n")
    assert _read(kcli, "t") == ["new0", "new1"]
    _write(first, _lines(5, "late"))
    assert first.stdin is not None
    first.stdin.close()
    assert first.wait(60) == 1
    line = _error_line(first)
    assert "fenced" in line and "the abort failed" not in line  # the newer producer aborted it already
    assert _read(kcli, "t") == ["new0", "new1"]


def test_bad_transaction_input_is_refused_before_anything_is_written(kcli) -> None:
    proc = kcli("produce", "t", "--transactional-id", "x" * 32768, input="a\n", ok=False)
    one_error_line(proc, 2, "32767")
    proc = kcli("produce", "t", "--transactional-id", "slow", "--transaction-timeout-ms", "900001",
                input="a\n", ok=False)
    one_error_line(proc, 2, "transaction.max.timeout.ms")
    for args, words in ((["--transaction-max-records", "5"], "needs --transactional-id"),
                        (["--transaction-timeout-ms", "5"], "needs --transactional-id"),
                        (["--transactional-id", "a", "--acks", "1"], "--acks all")):
        one_error_line(kcli("produce", "t", *args, input="a\n", ok=False), 2, words)
    assert "t" not in kcli("topic", "list").stdout.split()


def test_an_abandoned_transaction_is_aborted_by_the_next_reader(kcli) -> None:
    kcli("produce", "t", input="before\n")
    proc = _feed(kcli, "t", "--transactional-id", "doomed")
    _write(proc, _lines(30))
    wait_for("the open transaction's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 31)
    proc.kill()
    proc.wait()
    assert _read(kcli, "t") == ["before"]  # the reader found the owner gone and aborted it
    assert json.loads(kcli("transaction", "describe", "doomed", "--json").stdout)["state"] == "CompleteAbort"
    kcli("produce", "t", input="after\n")
    assert _read(kcli, "t") == ["before", "after"]


def test_an_abandoned_transaction_is_aborted_by_the_next_writer(kcli) -> None:
    proc = _feed(kcli, "t", "--transactional-id", "doomed")
    _write(proc, _lines(30))
    wait_for("the open transaction's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 30)
    proc.kill()
    proc.wait()
    kcli("produce", "t", input="after\n")
    assert json.loads(kcli("transaction", "describe", "doomed", "--json").stdout)["state"] == "CompleteAbort"
    assert _read(kcli, "t") == ["after"]


def test_a_transaction_open_past_its_timeout_is_aborted_by_a_reader(kcli) -> None:
    proc = _feed(kcli, "t", "--transactional-id", "slow", "--transaction-timeout-ms", "1000")
    _write(proc, _lines(10))
    wait_for("the open transaction's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 10)
    assert _read(kcli, "t") == []  # its owner lives: only the timeout ends it
    wait_for("the reader to abort the timed-out transaction",
             lambda: _read(kcli, "t") == [] and json.loads(kcli("transaction", "describe", "slow", "--json").stdout)[
                 "state"] == "CompleteAbort", interval=0.3)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(60) == 1
    assert "transaction aborted" in _error_line(proc)
    assert _read(kcli, "t") == []


def test_a_group_member_reads_committed_and_commits_past_aborted_records(kcli) -> None:
    kcli("produce", "t", input="a\n")
    proc = _feed(kcli, "t", "--transactional-id", "feed")
    _write(proc, _lines(5))
    wait_for("the open transaction's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 6)
    assert stop_process(proc) == 143
    kcli("produce", "t", input="b\n")
    out = kcli("consume", "t", "--group", "g", "--reset", "earliest", "-e").stdout
    assert out.splitlines() == ["a", "b"]
    row = json.loads(kcli("group", "describe", "g", "--json").stdout)[0]["partitions"][0]
    assert row["current_offset"] == row["log_end_offset"]
    assert kcli("consume", "t", "--group", "g", "-e").stdout == ""


def test_transform_is_exactly_once(kcli) -> None:
    kcli("produce", "in", input="\n".join(_lines(300, "a")) + "\n")
    kcli("transform", "in", "out", "--group", "up", "--", "tr", "a-z", "A-Z")
    assert _read(kcli, "out") == _lines(300, "A")
    kcli("transform", "in", "out", "--group", "up", "--", "tr", "a-z", "A-Z")  # nothing new
    assert _read(kcli, "out") == _lines(300, "A")
    kcli("produce", "in", input="b0\nb1\n")
    kcli("transform", "in", "out", "-g", "up", "--", "tr", "a-z", "A-Z")
    assert _read(kcli, "out") == [*_lines(300, "A"), "B0", "B1"]
    assert json.loads(kcli("group", "describe", "up", "--json").stdout)[0]["partitions"][0]["current_offset"] == 302


def test_transform_whose_command_fails_moves_nothing(kcli) -> None:
    kcli("produce", "in", input="\n".join(_lines(100, "a")) + "\n")
    proc = kcli("transform", "in", "out", "-g", "up", "--", "sh", "-c", "tr a-z A-Z; sleep 0.5; exit 3",
                ok=False)
    one_error_line(proc, 1, "transaction aborted", "exited with status 3")
    assert _read(kcli, "out") == []
    assert _read(kcli, "out", "read_uncommitted") == _lines(100, "A")  # written, then aborted
    kcli("transform", "in", "out", "-g", "up", "--", "tr", "a-z", "A-Z")  # the same input again
    assert _read(kcli, "out") == _lines(100, "A")


def test_transform_refuses_bad_arguments(kcli) -> None:
    kcli("produce", "in", input="a\n")
    one_error_line(kcli("transform", "in", "in", "-g", "g", "--", "cat", ok=False), 2, "different")
    one_error_line(kcli("transform", "in", "out", "-g", "g", "--", "/no/such/cmd", ok=False), 2, "cannot run")
    one_error_line(kcli("transform", "in", "out", "--", "cat", ok=False), 2, "--group")


def test_transactions_through_a_broker(kcli, brokers) -> None:
    """The same flags through a live broker: over its socket (the data dir's broker) and over TCP
    (--bootstrap-server), where the broker's coordinator runs the transactions."""
    brokers.init(1)
    bootstrap = brokers.start(0).bootstrap
    kcli("produce", "in", "--transactional-id", "load", input="\n".join(_lines(200, "a")) + "\n")
    assert _read(kcli, "in") == _lines(200, "a")
    proc = _feed(kcli, "in", "--transactional-id", "feed")
    _write(proc, _lines(20, "z"))
    wait_for("the open transaction's records", lambda: len(_read(kcli, "in", "read_uncommitted")) == 220)
    assert stop_process(proc) == 143
    assert "transaction aborted" in _error_line(proc)
    assert _read(kcli, "in") == _lines(200, "a")
    remote = ("--bootstrap-server", bootstrap)
    proc = kcli(*remote, "transform", "in", "out", "-g", "up", "--", "sh", "-c", "tr a-z A-Z; sleep 0.5; exit 3",
                ok=False)
    one_error_line(proc, 1, "transaction aborted", "exited with status 3")
    assert _read(kcli, "out") == []
    kcli(*remote, "transform", "in", "out", "-g", "up", "--", "tr", "a-z", "A-Z")
    assert kcli(*remote, "consume", "out", "-b", "-e").stdout.splitlines() == _lines(200, "A")
    kcli(*remote, "transform", "in", "out", "-g", "up", "--", "tr", "a-z", "A-Z")  # nothing new
    assert _read(kcli, "out") == _lines(200, "A")


def test_topic_describe_shows_the_last_stable_offset_while_a_transaction_is_open(kcli) -> None:
    kcli("produce", "t", input="before\n")
    assert "LAST-STABLE" not in kcli("topic", "describe", "t").stdout  # shown only where it differs
    proc = _feed(kcli, "t", "--transactional-id", "open")
    _write(proc, _lines(5))
    wait_for("the open transaction's records", lambda: len(_read(kcli, "t", "read_uncommitted")) == 6)
    header, row = kcli("topic", "describe", "t").stdout.splitlines()
    assert header.split("\t")[-3:] == ["LOG-START", "LOG-END", "LAST-STABLE"]
    assert row.split("\t")[-3:] == ["0", "6", "1"]  # the transaction starts at offset 1
    (described,) = json.loads(kcli("topic", "describe", "t", "--json").stdout)
    assert described["partitions"][0]["last_stable_offset"] == 1
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(60) == 0
    (described,) = json.loads(kcli("topic", "describe", "t", "--json").stdout)
    assert described["partitions"][0]["last_stable_offset"] == described["partitions"][0]["log_end_offset"] == 7
