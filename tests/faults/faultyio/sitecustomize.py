"""Test-only disk errors for tests/faults/test_fault_disk.py, imported by every kcli process that has this
folder on PYTHONPATH (Python imports ``sitecustomize`` at start-up); kcli itself has no hook.

While the file named by ``KCLI_TEST_EIO_WHEN`` exists, every ``os.write`` to a file whose path contains
``KCLI_TEST_EIO_PATH`` fails with EIO, as a failing disk's writes do; the test turns the failure on and
off by creating and removing that file.
"""

import errno
import os

_WHEN = os.environ.get("KCLI_TEST_EIO_WHEN")
_MATCH = os.environ.get("KCLI_TEST_EIO_PATH")

if _WHEN and _MATCH:
    _write = os.write

    def write(fd: int, data) -> int:
        if os.path.exists(_WHEN):
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = ""
            if _MATCH in path:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return _write(fd, data)

    os.write = write
