"""Disks that refuse writes: a full file system (a small tmpfs, or RLIMIT_FSIZE where mounting is not
allowed) and a read-only data dir (a read-only bind mount: ``chmod a-w`` does not stop root).

A producer that hits the limit must stop with one clear error line and a non-zero exit; every record
stored before, and every offset it printed, survives; readers keep working while the disk is full; once
there is room again the next produce recovers and ``kcli verify`` passes.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from .harness import Ledger, Piped, check_after_fault, one_error_line, read_partition, session_lines

BIG = 1000  # bytes of padding per flood record


def _mount(*args: str) -> str | None:
    """Run mount(8); the reason it failed, or None."""
    try:
        res = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if res.returncode == 0 else (res.stderr.strip() or f"mount exited {res.returncode}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, unmounted afterwards; skipped where mounting is not permitted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    why = _mount("-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt))
    if why:
        pytest.skip(f"cannot mount a tmpfs here ({why}); the RLIMIT_FSIZE variant covers a full disk")
    yield mnt
    _umount(mnt)


def _fill_and_check(kcli, ledger: Ledger, topic: str, preexec_fn=None, on_full=None) -> str:
    """Produce until the disk refuses, check the failure and what readers see, make room, recover, check."""
    first = session_lines(0, 300)
    res = kcli("produce", topic, "--print-offsets", input="".join(line + "\n" for line in first))
    ledger.acknowledge([tuple(line.split()) for line in res.stdout.splitlines()], first)
    ledger.acked = {int(o): v for o, v in ledger.acked.items()}

    flood = session_lines(1, 4000, BIG)
    producer = Piped(
        kcli.argv("produce", topic, "--print-offsets"),
        kcli.env,
        flood,
        __import__("random").Random(1),
        pace=0,
        preexec_fn=preexec_fn,
    )
    code = producer.wait(timeout=120)
    assert code not in (0, -signal.SIGXFSZ), f"a producer that could not store everything exited {code}"
    error = one_error_line(producer.stderr)
    ledger.faults += 1
    ledger.acknowledge(producer.acks, flood)

    # readers need no room: everything acknowledged is visible before anything is repaired
    stored = dict(read_partition(kcli, topic))
    for offset, value in ledger.acked.items():
        ledger.checked += 1
        if stored.get(offset) != value:
            ledger.lost += 1
            ledger.problems.append(
                f"while full: acknowledged {value[:20]!r} at {offset} reads as "
                f"{(stored.get(offset) or '')[:20]!r}"
            )
    if on_full is not None:
        on_full()
    check_after_fault(kcli, topic, ledger, "after")
    assert not ledger.problems, "\n".join(ledger.problems[:20])
    return error


def test_full_tmpfs_with_replicas(kcli, small_disk, record_property):
    kcli.data_dir = small_disk / "data"
    kcli.env["KCLI_DATA_DIR"] = str(kcli.data_dir)
    kcli("cluster", "init", "--brokers", "3")
    kcli("topic", "create", "t", "-r", "3")
    ledger = Ledger()
    error = _fill_and_check(
        kcli, ledger, "t", on_full=lambda: _mount("-o", "remount,size=16m", str(small_disk))
    )
    assert "No space left on device" in error and str(kcli.data_dir) in error, error
    print(ledger.summary("full disk (tmpfs, RF 3)"))
    record_property("lost", ledger.lost)
    assert ledger.lost == 0


def test_full_disk_by_file_size_limit(kcli, record_property):
    """RLIMIT_FSIZE makes write() fail with EFBIG past a size, as a full disk fails with ENOSPC; works without
    privileges.  SIGXFSZ is ignored so the write fails instead of killing the process."""
    kcli("topic", "create", "t")
    limit = 512 * 1024

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    ledger = Ledger()
    error = _fill_and_check(kcli, ledger, "t", preexec_fn=limit_file_size)
    assert "File too large" in error and str(kcli.data_dir) in error, error
    print(ledger.summary("full disk (RLIMIT_FSIZE)"))
    record_property("lost", ledger.lost)
    assert ledger.lost == 0


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mode)
        for p in path.rglob("*")
        if not p.is_symlink()
    }


def test_read_only_data_dir(kcli, tmp_path):
    kcli("produce", "t", input="".join(f"v{i}\n" for i in range(100)))
    data = str(kcli.data_dir)
    why = _mount("--bind", data, data)
    if why:
        pytest.skip(f"cannot bind-mount here ({why}); chmod alone does not stop root")
    try:
        why = _mount("-o", "remount,ro,bind", data)
        if why:
            pytest.skip(f"cannot remount read-only here ({why})")
        before = _tree(tmp_path)
        for args in (
            ["produce", "t"],
            ["consume", "t", "--group", "g", "-b", "-e"],
            ["topic", "create", "u"],
        ):
            failed = kcli(*args, input="x\n", ok=False)
            assert failed.returncode == 9, failed.stderr  # unusable data dir
            assert "read-only file system" in one_error_line(failed.stderr)
        # reading needs no write access: a read-only copy (a snapshot, a backup) can be consumed and verified
        assert kcli("consume", "t", "-b", "-e").stdout == "".join(f"v{i}\n" for i in range(100))
        kcli("verify")
        assert _tree(tmp_path) == before
    finally:
        _umount(kcli.data_dir)
    kcli("produce", "t", input="after\n")
    kcli("verify")
    assert kcli("consume", "t", "-b", "-e").stdout.splitlines()[-2:] == ["v99", "after"]
    assert os.path.ismount(data) is False
