"""``kcli``'s entry point and its command table.

Each command lives in its own module and is imported only when it runs, so ``kcli --help`` and a small
``kcli produce`` start fast; the click application itself is :mod:`kcli.cli.app`.  ``kcli --version``
is answered before importing click, which alone costs about as much as starting Python.
"""

from __future__ import annotations

import sys

from kcli import __version__
from kcli.cli.commands import VERSION_MESSAGE


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(VERSION_MESSAGE % {"prog": "kcli", "version": __version__})
        sys.exit(0)
    from kcli.cli.app import run

    run(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
