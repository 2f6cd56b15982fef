"""Transactions on a full disk (a small tmpfs; skipped where mounting is not permitted): a transactional
producer that hits the limit aborts with one error line (exit 1, naming the full disk); none of its records
ever becomes visible to read_committed readers, who keep reading the committed records while the disk is
full; once there is room, its transaction is aborted for good and a new one commits."""

from __future__ import annotations

import pytest

from .test_fault_disk import _mount, small_disk  # noqa: F401 - the fixture

pytestmark = pytest.mark.faults


def _read(kcli, isolation: str = "read_committed") -> list[str]:
    proc = kcli("consume", "t", "-b", "-e", "-f", "%s\n", "--isolation-level", isolation, ok=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_a_transaction_that_fills_the_disk_is_aborted_and_never_seen(kcli, small_disk):  # noqa: F811
    kcli.data_dir = small_disk / "data"
    kcli.env["KCLI_DATA_DIR"] = str(kcli.data_dir)
    committed = [f"c{i}" for i in range(10)]
    kcli("produce", "t", "--transactional-id", "ok", input="".join(f"{c}\n" for c in committed))
    flood = "".join(f"f{i}-{'x' * 1000}\n" for i in range(4000))  # twice the disk
    proc = kcli("produce", "t", "--transactional-id", "flood", "--batch-size", "16384", input=flood, ok=False,
                timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("kcli: error: transaction aborted") and "No space left" in lines[0], lines
    assert any(v.startswith("f") for v in _read(kcli, "read_uncommitted"))  # the flood reached the log
    assert _read(kcli) == committed  # while the disk is still full
    assert _mount("-o", "remount,size=16m", str(small_disk)) is None
    assert _read(kcli) == committed
    kcli("produce", "t", "--transactional-id", "flood", input="after\n")
    assert _read(kcli) == [*committed, "after"]
    assert not any(v.startswith("f") for v in _read(kcli, "read_committed"))
