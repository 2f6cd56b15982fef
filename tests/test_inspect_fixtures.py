"""The committed fixtures are what fixtures/make_fixtures.py generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_make_fixtures_rebuilds_the_committed_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_fixtures.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("multi", "torn", "flipped"):  # no codec library involved: byte for byte
        assert _files(tmp_path / name) == _files(FIXTURES / name), name
    for name in ("compressed", "kafka"):  # compressed bytes may differ between codec library versions
        assert _files(tmp_path / name).keys() == _files(FIXTURES / name).keys(), name


def test_fixtures_stay_small() -> None:
    assert sum(len(b) for b in _files(FIXTURES).values()) < 100_000
