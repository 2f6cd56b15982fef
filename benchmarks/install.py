"""A regular (non-editable) install of this source tree in the scratch directory, to measure.

The development venv installs kcli in editable mode, and setuptools' editable finder costs every start
of every command some 20 ms (it imports pathlib, re, urllib and more from a .pth file); an installed
kcli, as ``pip install .`` leaves it, does not have it.  Benchmarking the development install would
measure setuptools.  So: a bare venv (no pip) whose site-packages holds a copy of the ``kcli`` package,
a console script like the one pip writes, and a .pth line that puts the development venv's
site-packages on the path for the dependencies (a path line only: .pth files there are not run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

SCRIPT = """#!{python}
import sys
from kcli.cli.main import main
sys.exit(main())
"""


def regular_install(source: str, work: str) -> list[str] | None:
    """The argv of ``kcli`` in a regular install of ``source`` under ``work``; None if one cannot be made
    here (the caller then measures the development entry point and says so)."""
    root = os.path.join(work, "regular-install")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True, capture_output=True)
        python = os.path.join(root, "bin", "python")
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        shutil.copytree(os.path.join(source, "kcli"), os.path.join(site, "kcli"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        with open(os.path.join(site, "dependencies.pth"), "w") as fh:
            fh.write(sysconfig.get_paths()["purelib"] + "\n")
        script = os.path.join(root, "bin", "kcli")
        with open(script, "w") as fh:
            fh.write(SCRIPT.format(python=python))
        os.chmod(script, 0o755)
        subprocess.run([script, "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return [script]
