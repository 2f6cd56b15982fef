"""Disks that refuse writes: a full file system (a small tmpfs, or RLIMIT_FSIZE where mounting is not
allowed) and a read-only data dir (a read-only bind mount: ``chmod a-w`` does not stop root).

A producer that hits the limit must stop at once with one clear error line and exit code 11 (StorageError);
every record stored before, and every offset it printed, survives; the failed append leaves nothing
behind (no partial batch, no index entry, replicas that agree), so ``kcli verify`` passes right away;
readers keep working while the disk is full; once there is room again writes go on where they stopped.
The same holds through a broker (KAFKA_STORAGE_ERROR at once, not a timeout), whose log stays whole
across the failure, the writes after it and a clean stop.
"""

from __future__ import annotations

import errno
import os
import random
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.brokers import Brokers

from kcli.cluster.datadir import DataDir, FileLock, try_flock
from kcli.cluster.metadata import Metadata

from .harness import (
    Ledger,
    Piped,
    check_after_fault,
    one_error_line,
    read_partition,
    replica_batches,
    session_lines,
    wait_for,
)

BIG = 1000  # bytes of padding per flood record
FAULTY_IO = str(Path(__file__).with_name("faultyio"))


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
    assert code == STORAGE_ERROR, f"a producer that could not store everything exited {code}: {producer.stderr}"
    error = one_error_line(producer.stderr)
    ledger.faults += 1
    ledger.acknowledge(producer.acks, flood)
    # the failed write left nothing behind: no torn tail for verify to find, in-sync replicas agree
    check_whole(kcli, topic)

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


STORAGE_ERROR = 11  # kcli's exit code for a disk that refused a write


def check_whole(kcli, topic: str) -> None:
    """``kcli verify`` passes and the in-sync replicas hold the same batches, with no recovery first."""
    verify = kcli("verify", ok=False)
    assert verify.returncode == 0, f"verify failed after a full disk:\n{verify.stdout}{verify.stderr}"
    datadir = DataDir(str(kcli.data_dir))
    meta = Metadata(datadir).load().partition(topic, 0)
    logs = {b: replica_batches(datadir.partition_dir(b, topic, 0)) for b in meta.isr}
    for broker, batches in logs.items():
        assert batches == logs[meta.leader], f"in-sync replica on broker {broker} differs from the leader"


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


def _partition_meta(kcli, topic: str = "t"):
    return Metadata(DataDir(str(kcli.data_dir))).load().partition(topic, 0)


def _fill(path: Path) -> None:
    """Take every free byte of the file system ``path`` is on."""
    with open(path, "wb", buffering=0) as f:
        block = b"\0" * 4096
        try:
            while True:
                f.write(block)
        except OSError:
            pass


@pytest.mark.faults
def test_locks_taken_on_a_full_disk_never_stay_held(small_disk):
    """Taking a lock writes its holder into the lock file, which a full disk refuses.  A data-dir lock
    is still taken (the record only names the holder in messages) and released as usual; a group
    ownership lock, whose record says which member owns a partition, is refused and left free.  Before,
    the refused record leaked the descriptor, and every broker waited on the metadata lock for ever."""
    lock_path, owner_path = small_disk / "metadata.lock", small_disk / "owner.lock"
    _fill(small_disk / "filler")
    lock = FileLock(str(lock_path), timeout=1)
    with lock:
        assert not FileLock(str(lock_path)).try_acquire()
    with FileLock(str(lock_path), timeout=1):
        pass
    fd = os.open(owner_path, os.O_RDWR | os.O_CREAT, 0o600)
    with pytest.raises(OSError) as refused:
        try_flock(fd, "member-1")
    assert refused.value.errno == errno.ENOSPC
    with FileLock(str(owner_path), timeout=1):
        pass


@pytest.mark.faults
def test_metadata_and_credential_writes_on_a_full_disk_exit_11_and_change_nothing(kcli, small_disk):
    """Cluster metadata (topics, ACLs) and SCRAM credentials written while the disk is full: one line
    naming the file, exit 11 (storage error), and nothing half-stored once there is room again."""
    kcli.data_dir = small_disk / "data"
    kcli.env["KCLI_DATA_DIR"] = str(kcli.data_dir)
    kcli.env["PW"] = "secret"
    kcli("cluster", "init")
    _fill(small_disk / "filler")
    for args, file in (
        (["topic", "create", "full"], "metadata.log"),
        (["acl", "add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "t"], "metadata.log"),
        (["user", "create", "alice", "--password-env", "PW"], "credentials.json"),
    ):
        failed = kcli(*args, ok=False)
        assert failed.returncode == STORAGE_ERROR, failed.stderr
        assert "No space left on device" in one_error_line(failed.stderr) and file in failed.stderr
    (small_disk / "filler").unlink()
    assert kcli("topic", "list", "--json").stdout.strip() == "[]"
    assert "User:alice" not in kcli("acl", "list").stdout
    assert "alice" not in kcli("user", "list").stdout
    kcli("topic", "create", "full")
    kcli("verify")


def _produce_acked(kcli, topic: str, lines: list[str], ledger: Ledger) -> tuple[int, str, float]:
    """One ``kcli produce --print-offsets`` of ``lines``: (exit code, stderr, seconds it took); the
    offsets it printed go in ``ledger``."""
    started = time.monotonic()
    producer = Piped(kcli.argv("produce", topic, "--print-offsets"), kcli.env, lines, random.Random(2), pace=0)
    code = producer.wait(timeout=180)
    ledger.acknowledge(producer.acks, lines)
    return code, producer.stderr, time.monotonic() - started


@pytest.mark.faults
@pytest.mark.slow
@pytest.mark.parametrize("rf", [1, 3])
def test_full_disk_through_brokers(kcli, small_disk, tmp_path, rf, record_property):
    """acks=all through running brokers whose folders share one small disk: a full disk answers
    KAFKA_STORAGE_ERROR at once (a follower that cannot store leaves the ISR instead of holding acks=all
    up until a timeout), leaves every log whole, and once there is room again the brokers take writes
    where they stopped: nothing acknowledged before or after is lost, across clean stops and restarts."""
    kcli.data_dir = small_disk / "data"
    kcli.env["KCLI_DATA_DIR"] = str(kcli.data_dir)
    brokers = Brokers(kcli.data_dir, tmp_path)
    ledger = Ledger()
    try:
        brokers.init(rf)
        brokers.kcli("topic", "create", "t", "-r", rf)
        running = [brokers.start(b) for b in range(rf)]
        wait_for("a full ISR", lambda: len(_partition_meta(kcli).isr) == rf)
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(0, 300), ledger)
        assert code == 0, stderr
        code, stderr, took = _produce_acked(kcli, "t", session_lines(1, 4000, BIG), ledger)
        assert code == STORAGE_ERROR, f"exited {code}: {stderr}"
        assert "KAFKA_STORAGE_ERROR" in one_error_line(stderr) or "No space left" in stderr, stderr
        ledger.faults += 1
        # the failed batch was cut off, freeing its room: take it all, so the disk stays full
        _fill(small_disk / "filler")
        # while the disk stays full every write fails at once, and nothing is stored
        code, stderr, took = _produce_acked(kcli, "t", session_lines(2, 50, BIG), ledger)
        assert code == STORAGE_ERROR and took < 15, f"exited {code} after {took:.1f}s: {stderr}"
        (small_disk / "filler").unlink()
        assert _mount("-o", "remount,size=16m", str(small_disk)) is None
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(3, 500, BIG), ledger)
        assert code == 0, f"writes after space came back failed: {stderr}"
        wait_for("followers to catch up and rejoin", lambda: len(_partition_meta(kcli).isr) == rf)
        for broker in running:
            assert broker.stop() == 0, broker.log()
        # a clean stop leaves whole logs, even after the disk was full
        check_whole(kcli, "t")
        running = [brokers.start(b) for b in range(rf)]
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(4, 100), ledger)
        assert code == 0, stderr
        stored = dict(read_partition(kcli, "t"))
        for broker in running:
            assert broker.stop() == 0, broker.log()
    except BaseException:
        brokers.print_logs()
        raise
    finally:
        brokers.stop_all()
    ledger.check_stored(stored)
    check_whole(kcli, "t")
    print(ledger.summary("full disk through a broker"))
    record_property("lost", ledger.lost)
    assert not ledger.problems, "\n".join(ledger.problems[:20])


@pytest.mark.faults
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["full", "eio"])
def test_leadership_leaves_a_failing_disk(kcli, tmp_path, record_property, fault):
    """Kafka's log-dir failure: when the leader's disk keeps refusing writes, the partition goes offline
    on that broker and its leadership moves to an in-sync follower; the old leader leaves the ISR and
    rejoins as a follower once its disk takes writes again.

    ``full``: only the leader's replica folder is on a small disk, filled (its heartbeat keeps working:
    the move is the storage failure's doing, not the controller's), so the move comes after the 5 s a
    full disk is given to clear.  ``eio``: the leader's writes to its replica folder fail with EIO
    (injected by ``faultyio/sitecustomize.py``), and the leadership moves at once."""
    brokers = Brokers(kcli.data_dir, tmp_path)
    ledger = Ledger()
    brokers.init(3)
    brokers.kcli("topic", "create", "t", "-r", "3")
    first = _partition_meta(kcli)
    folder = Path(DataDir(str(kcli.data_dir)).partition_dir(first.leader, "t", 0))
    if fault == "full":
        why = _mount("-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(folder))
        if why:
            pytest.skip(f"cannot mount a tmpfs here ({why})")
        start_failing, stop_failing = (lambda: _fill(folder / "filler")), (folder / "filler").unlink
        pad, message, move_within = BIG, "No space left", 30
    else:
        failing = tmp_path / "disk-fails"
        brokers.env.update(
            PYTHONPATH=os.pathsep.join([FAULTY_IO, brokers.env.get("PYTHONPATH", "")]),
            KCLI_TEST_EIO_WHEN=str(failing),
            KCLI_TEST_EIO_PATH=str(folder) + os.sep,
        )
        start_failing, stop_failing = failing.touch, failing.unlink
        pad, message, move_within = 0, "Input/output error", 4  # at once (here 0.1-0.2 s): under the 5 s
    try:
        for b in range(3):
            brokers.start(b)
        wait_for("a full ISR", lambda: len(_partition_meta(kcli).isr) == 3)
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(0, 300), ledger)
        assert code == 0, stderr
        start_failing()
        code, stderr, took = _produce_acked(kcli, "t", session_lines(1, 100, pad), ledger)
        assert code == STORAGE_ERROR and took < 15, f"exited {code} after {took:.1f}s: {stderr}"
        assert message in one_error_line(stderr), stderr
        ledger.faults += 1
        failed_at = time.monotonic()
        moved = wait_for(
            "the leadership to leave the failing disk",
            lambda: (m := _partition_meta(kcli)).leader not in (first.leader, -1) and m,
            timeout=move_within,
        )
        print(f"leadership moved {time.monotonic() - failed_at:.1f} s after the failed write")
        assert first.leader not in moved.isr, moved
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(2, 500, pad), ledger)
        assert code == 0, f"writes to the new leader failed: {stderr}"
        stop_failing()
        wait_for("the old leader to catch up and rejoin", lambda: len(_partition_meta(kcli).isr) == 3)
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(3, 100), ledger)
        assert code == 0, stderr
        stored = dict(read_partition(kcli, "t"))
        for broker in brokers.started:
            assert broker.stop() == 0, broker.log()
        check_whole(kcli, "t")
    except BaseException:
        brokers.print_logs()
        raise
    finally:
        brokers.stop_all()
        if fault == "full":
            _umount(folder)
    ledger.check_stored(stored)
    print(ledger.summary(f"leader's disk {fault}"))
    record_property("lost", ledger.lost)
    assert not ledger.problems, "\n".join(ledger.problems[:20])


@pytest.mark.faults
def test_embedded_write_a_follower_refuses_is_cut_from_every_replica(kcli, tmp_path):
    """An embedded write reaches the leader, then a follower whose disk is full: the batch is cut from the
    leader again, so the in-sync replicas agree, and the producer stops with the storage error."""
    kcli("cluster", "init", "--brokers", "3")
    kcli("topic", "create", "t", "-r", "3")
    meta = _partition_meta(kcli)
    follower = next(b for b in meta.isr if b != meta.leader)
    folder = Path(DataDir(str(kcli.data_dir)).partition_dir(follower, "t", 0))
    why = _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(folder))
    if why:
        pytest.skip(f"cannot mount a tmpfs here ({why})")
    ledger = Ledger()
    try:
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(0, 200), ledger)
        assert code == 0, stderr
        _fill(folder / "filler")
        code, stderr, _took = _produce_acked(kcli, "t", session_lines(1, 500, BIG), ledger)
        assert code == STORAGE_ERROR, f"exited {code}: {stderr}"
        assert str(folder) in one_error_line(stderr), stderr
        ledger.faults += 1
        check_whole(kcli, "t")
        (folder / "filler").unlink()
        check_after_fault(kcli, "t", ledger, "after")
    finally:
        _umount(folder)
    assert not ledger.problems, "\n".join(ledger.problems[:20])


def test_log_end_found_past_an_index_entry_without_its_batch(tmp_path):
    """Logs written before appends were ordered (index entry first) may end with an index entry whose
    batch never made it: the log end is still the last complete batch's."""
    from kcli.storage.log import PartitionLog
    from kcli.storage.records import encode_batch

    directory = str(tmp_path / "t-0")
    log = PartitionLog(directory)
    log.open_for_append(None)
    for i in range(20):
        log.append(encode_batch([(None, b"x" * 100, [], i)], 0))
    end, size = log.log_end_offset, log.active.size
    log.release()
    reader = PartitionLog(directory)
    reader.active.index.append(end + 5, size)  # what an old writer killed before its batch left
    os.unlink(os.path.join(directory, "kcli-writer-state"))
    assert PartitionLog(directory).log_end_offset == end
