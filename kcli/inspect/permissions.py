"""Modes and owners across a data dir: what ``kcli verify --permissions`` reports and ``kcli cluster init
--secure`` tightens, with the one walk both use (:func:`check_permissions`).

A path is too open when any group or other bit is set: kcli creates folders 0700 and files 0600 (see
kcli.storage.fileio), but a data dir made by an older kcli, by hand or under another umask may hold 0755
folders and 0644 segments that every local user can read.  Tightening only removes bits (``mode &
0o700``), never adds any.  A path owned by another user (``sudo kcli ...`` leaves root-owned files) is
reported but never changed: changing owners is the operator's call.

Links: the data dir itself and its top-level folders (a broker folder moved to another disk) may be links
to directories, and are followed, as kcli does; a link anywhere else is reported and neither followed nor
changed, so that a planted link cannot make ``--fix`` change the mode of a file outside the data dir.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from kcli.cluster.datadir import user_name
from kcli.errors import DataDirError

OWNER_ONLY = 0o700  # the bits a tightened path keeps


@dataclass
class Finding:
    """One path that is too open, owned by someone else, or a link kcli does not follow."""

    path: str
    mode: int
    problem: str
    fixed: bool = False

    def line(self, root: str) -> str:
        rel = os.path.relpath(self.path, root)
        where = self.path if rel.startswith("..") else rel
        done = f" (tightened to {self.mode & OWNER_ONLY:04o})" if self.fixed else ""
        return f"{where}: {self.problem}{done}"

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "mode": f"{self.mode:04o}", "problem": self.problem, "fixed": self.fixed}


@dataclass
class PermissionReport:
    root: str
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        """What is still wrong: findings not fixed by this run."""
        return [f for f in self.findings if not f.fixed]

    @property
    def fixed(self) -> list[Finding]:
        return [f for f in self.findings if f.fixed]

    def summary(self) -> str:
        n, fixed = len(self.problems), len(self.fixed)
        done = f", {fixed} tightened" if fixed else ""
        if not n:
            return f"permissions: no problems ({self.checked} paths{done})"
        return f"permissions: {n} problem{'s' if n != 1 else ''} ({self.checked} paths{done})"

    def to_json(self) -> dict[str, object]:
        return {
            "ok": not self.problems,
            "problems": [f.to_json() for f in self.problems],
            "fixed": [f.to_json() for f in self.fixed],
            "summary": {"paths": self.checked},
        }


def check_permissions(root: str, fix: bool = False) -> PermissionReport:
    """Check every folder, file and socket under ``root`` (and ``root`` itself): report those with group
    or other bits, and with ``fix`` remove those bits (what fails to change, say a file of another user,
    stays a problem); report paths not owned by the user running kcli."""
    report = PermissionReport(os.path.abspath(root))
    me = os.geteuid()
    for path, st in _walk(report.root, report):
        report.checked += 1
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != me:
            report.findings.append(Finding(path, mode, f"owned by {user_name(st.st_uid)}, not by {user_name(me)}"))
        if mode & 0o077:
            finding = Finding(path, mode, f"mode {mode:04o} lets {_who(mode)} in")
            if fix:
                try:
                    os.chmod(path, mode & OWNER_ONLY)
                    finding.fixed = True
                except OSError:
                    pass
            report.findings.append(finding)
    return report


def require_owner(root: str) -> None:
    """Refuse to secure a data dir that is not the invoking user's: tightening it would lock its owner
    out of it, or tighten files for the wrong user."""
    try:
        owner = os.stat(root).st_uid
    except FileNotFoundError:
        return
    if owner != os.geteuid():
        raise DataDirError(f"data dir {root} is owned by {user_name(owner)}, not by {user_name(os.geteuid())}",
                           hint=f"run `kcli cluster init --secure` as {user_name(owner)}")


def _walk(root: str, report: PermissionReport) -> Iterator[tuple[str, os.stat_result]]:
    """``root`` and everything below it with its stat (through links only at the top two levels; see
    the module docstring); links deeper down are reported instead."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise DataDirError(f"{root} does not exist") from None
    yield root, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [(root, True)]
    while stack:
        folder, top = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            report.findings.append(Finding(folder, 0, f"cannot be listed: {exc.strerror}"))
            continue
        for entry in entries:
            try:
                if entry.is_symlink() and not (top and entry.is_dir()):
                    report.findings.append(Finding(entry.path, 0, f"is a symbolic link (to {os.readlink(entry.path)}); "
                                                                  "kcli does not follow links below the top level"))
                    continue
                st = entry.stat()
            except OSError:
                continue  # gone since the listing (retention, a segment roll)
            yield entry.path, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((entry.path, False))


def _who(mode: int) -> str:
    if mode & 0o070 and mode & 0o007:
        return "its group and other users"
    return "its group" if mode & 0o070 else "other users"
