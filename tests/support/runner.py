"""Running the kcli command line in tests: as a real process, or in this process when nothing about the
behaviour under test needs one (usage errors refused before any data is read or written, and steps that
only prepare a test's data or read its state: a process costs ~0.1 s of CPU, which over a suite of ~1,000
tests is most of its time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

KCLI = [sys.executable, "-m", "kcli.cli.main"]


class KcliRunner:
    """Run ``kcli ARGS...`` with ``KCLI_DATA_DIR`` set to this test's data dir (or unset, for commands
    given a path or ``--data-dir``, when ``data_dir`` is None).

    ``input`` may be str or bytes; output is text unless ``text=False``.  ``ok=True`` (the default)
    asserts exit status 0; pass ``ok=False`` to inspect a failure yourself.
    """

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "NO_COLOR": "1"}
        self.env.pop("XDG_DATA_HOME", None)
        self.env.pop("KCLI_DATA_DIR", None)
        if data_dir is not None:
            self.env["KCLI_DATA_DIR"] = str(data_dir)

    def argv(self, *args: object) -> list[str]:
        return [*KCLI, *map(str, args)]

    def __call__(
        self,
        *args: object,
        input: str | bytes | None = None,
        text: bool = True,
        ok: bool = True,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        if isinstance(input, str):
            input = input.encode()
        proc = subprocess.run(
            self.argv(*args), input=input, capture_output=True, env=self.env, timeout=timeout, cwd=cwd
        )
        return self._finish(args, proc, text, ok)

    def in_process(
        self, *args: object, input: str | bytes | None = None, text: bool = True, ok: bool = True
    ) -> subprocess.CompletedProcess:
        """``kcli ARGS...`` through the same entry point (``kcli.cli.main.main``) but in this process,
        with click's test isolation of stdin (bytes), stdout, stderr and the environment.

        For refusals that happen before kcli touches stdin's file descriptor, and for steps that are not
        the behaviour under test (creating topics, ``cluster init``, reading state for a wait or an
        assertion): the same code writes the same files, through a live broker when one runs, as the
        process would.  A command that reads stdin here fails (stdin has no fd), so a test that wrongly
        uses this for one sees a different exit code rather than passing by accident; to write records
        use :meth:`produce_lines`.  Commands that wait for signals or run until stopped stay processes."""
        from click.testing import CliRunner

        from kcli.cli.main import main

        env: dict[str, str | None] = {k: None for k in os.environ if k not in self.env}
        env.update(self.env)
        with CliRunner().isolation(input=input, env=env) as (stdout, stderr, _):
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            proc = subprocess.CompletedProcess(["kcli", *map(str, args)], code, stdout.getvalue(),
                                               stderr.getvalue())
        return self._finish(args, proc, text, ok)

    def produce_lines(self, topic: str, lines: str | bytes, *args: object) -> subprocess.CompletedProcess:
        """``kcli produce TOPIC ARGS...`` of ``lines`` in this process (``--file``, as in_process has no
        stdin): for records a test only needs to be there.  A test of produce itself runs the process."""
        with tempfile.NamedTemporaryFile(prefix="kcli-lines-") as file:
            file.write(lines.encode() if isinstance(lines, str) else lines)
            file.flush()
            return self.in_process("produce", topic, "--file", file.name, *args)

    @staticmethod
    def _finish(args: tuple, proc: subprocess.CompletedProcess, text: bool, ok: bool):
        if text:
            proc.stdout = proc.stdout.decode("utf-8", "replace")
            proc.stderr = proc.stderr.decode("utf-8", "replace")
        if ok:
            assert proc.returncode == 0, (
                f"kcli {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr!r}"
            )
        return proc

    def popen(self, *args: object, **kwargs) -> subprocess.Popen:
        """Start ``kcli ARGS...`` without waiting (pipes are the caller's choice)."""
        return subprocess.Popen(self.argv(*args), env=self.env, **kwargs)


def one_error_line(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Assert ``proc`` exited ``code`` with exactly one ``kcli: error:`` line on stderr (no traceback)
    holding each of ``words``; return that line."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kcli: error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]
