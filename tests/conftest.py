"""Shared fixtures: a ``kcli`` runner that runs the real CLI in a subprocess on a per-test data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KCLI = [sys.executable, "-m", "kcli.cli.main"]


class KcliRunner:
    """Run ``kcli ARGS...`` as a real process with ``KCLI_DATA_DIR`` set to this test's data dir.

    ``input`` may be str or bytes; output is text unless ``text=False``.  ``ok=True`` (the default)
    asserts exit status 0; pass ``ok=False`` to inspect a failure yourself.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "KCLI_DATA_DIR": str(data_dir), "NO_COLOR": "1"}
        self.env.pop("XDG_DATA_HOME", None)

    def argv(self, *args: object) -> list[str]:
        return [*KCLI, *map(str, args)]

    def __call__(
        self,
        *args: object,
        input: str | bytes | None = None,
        text: bool = True,
        ok: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        if isinstance(input, str):
            input = input.encode()
        proc = subprocess.run(
            self.argv(*args), input=input, capture_output=True, env=self.env, timeout=timeout
        )
        if text:
            proc.stdout = proc.stdout.decode("utf-8", "replace")
            proc.stderr = proc.stderr.decode("utf-8", "replace")
        if ok:
            assert proc.returncode == 0, (
                f"kcli {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}"
            )
        return proc

    def popen(self, *args: object, **kwargs) -> subprocess.Popen:
        """Start ``kcli ARGS...`` without waiting (pipes are the caller's choice)."""
        return subprocess.Popen(self.argv(*args), env=self.env, **kwargs)


@pytest.fixture
def kcli(tmp_path: Path) -> KcliRunner:
    return KcliRunner(tmp_path / "data")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by place, so no test module can forget: everything under tests/faults/ is ``faults``, and
    the modules that run real Kafka clients or another broker are ``interop`` (``-m "not faults and
    not interop and not slow"`` is the quick subset)."""
    for item in items:
        path = Path(str(item.fspath))
        if "faults" in path.parts:
            item.add_marker(pytest.mark.faults)
        if "interop" in path.name or "tansu" in path.name:
            item.add_marker(pytest.mark.interop)
