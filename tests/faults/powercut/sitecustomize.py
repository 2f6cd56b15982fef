"""Test-only I/O recorder for tests/faults/test_power_cut.py, imported by every kcli subprocess that has
this folder on PYTHONPATH (Python imports ``sitecustomize`` at start-up); kcli itself has no hook.

With ``KCLI_TEST_SYNC_JOURNAL`` set, every ``os.fsync``, ``os.ftruncate`` and ``os.replace``/``os.rename``
is done, then noted in that journal as one tab-separated line: ``fsync <size> <path>``, ``truncate <size>
<path>``, ``replace <src> <dst>``.  A line is written only after the call returned, so an fsync that a
kill -9 cut short counts as not done; the test replays the journal to learn what a power cut would keep:
each file up to its size at its last fsync, and no file that was never synced.
"""

import os

_JOURNAL = os.environ.get("KCLI_TEST_SYNC_JOURNAL")

if _JOURNAL:
    _fd = os.open(_JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _write, _fsync, _ftruncate, _replace, _rename = os.write, os.fsync, os.ftruncate, os.replace, os.rename

    def _note(*fields: object) -> None:
        _write(_fd, ("\t".join(map(str, fields)) + "\n").encode())  # one write: O_APPEND keeps lines whole

    def _path(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    def fsync(fd) -> None:
        _fsync(fd)
        fd = fd if isinstance(fd, int) else fd.fileno()
        _note("fsync", os.fstat(fd).st_size, _path(fd))

    def ftruncate(fd: int, length: int) -> None:
        _ftruncate(fd, length)
        _note("truncate", length, _path(fd))

    def _renamer(real):
        def rename(src, dst, **kwargs) -> None:
            real(src, dst, **kwargs)
            _note("replace", os.path.abspath(src), os.path.abspath(dst))

        return rename

    os.fsync = fsync
    os.ftruncate = ftruncate
    os.replace = _renamer(_replace)
    os.rename = _renamer(_rename)
