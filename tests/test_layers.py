"""The house reads downward: the import contract in pyproject.toml holds on the tree, fails on a breach,
and no module imports another module's private names."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([LINT_IMPORTS, "--config", "pyproject.toml", "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_its_layers() -> None:
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "arrow"),
    [
        # a lower layer reaching up, even lazily inside a function
        ("kcli/storage/breach.py", "def f():\n    from kcli.client import producer\n",
         "kcli.storage.breach -> kcli.client.producer"),
        # side by side: the broker must not lean on the client
        ("kcli/broker/breach.py", "from kcli.client.consumer import Consumer\n",
         "kcli.broker.breach -> kcli.client.consumer"),
    ],
)
def test_a_breach_breaks_the_contract(tmp_path: Path, module: str, line: str, arrow: str) -> None:
    shutil.copytree(ROOT / "kcli", tmp_path / "kcli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint(tmp_path).returncode == 0  # the copy alone keeps it
    (tmp_path / module).write_text(line)
    run = _lint(tmp_path)
    assert run.returncode != 0
    assert "BROKEN" in run.stdout and arrow in run.stdout, run.stdout


def _private_imports() -> list[str]:
    found = []
    for path in sorted((ROOT / "kcli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kcli"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert _private_imports() == []
