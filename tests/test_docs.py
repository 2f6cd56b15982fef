"""Man pages and completion scripts: generated from the CLI, kept in the tree, and never stale.

``test_generated_files_are_up_to_date`` fails whenever someone changes a command or an option without
regenerating; the fix is ``.venv/bin/python -m kcli.cli.docgen`` (see README, "Man pages and completions").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kcli
from kcli.cli import docgen
from kcli.cli.app import cli
from kcli.cli.commands import COMMANDS

ROOT = Path(kcli.__file__).resolve().parent.parent
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"]


def run_docgen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kcli.cli.docgen", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    files, _broken = docgen.generate()
    return files


def test_generated_files_are_up_to_date() -> None:
    proc = run_docgen("--check")
    assert proc.returncode == 0, (
        "man pages or completion scripts are out of date; run `.venv/bin/python -m kcli.cli.docgen` "
        f"and commit the result:\n{proc.stderr}"
    )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    """Same files whatever the environment, terminal width or data dir."""
    a, b = tmp_path / "a", tmp_path / "b"
    env_a = {**os.environ, "COLUMNS": "40", "KCLI_DATA_DIR": str(tmp_path / "x"), "NO_COLOR": "1"}
    env_b = {k: v for k, v in os.environ.items() if k not in ("KCLI_DATA_DIR", "NO_COLOR", "COLUMNS")}
    env_b["HOME"] = str(tmp_path)
    # a config file in the (default) data dir must not leak into the docs
    (tmp_path / ".local" / "share" / "kcli").mkdir(parents=True)
    (tmp_path / ".local" / "share" / "kcli" / "kcli.toml").write_text('[produce]\ncompression = "lz4"\n')
    assert run_docgen("--root", str(a), env=env_a).returncode == 0
    assert run_docgen("--root", str(b), env=env_b).returncode == 0
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_check_reports_drift_and_regeneration_fixes_it(tmp_path: Path) -> None:
    assert run_docgen("--root", str(tmp_path)).returncode == 0
    assert run_docgen("--check", "--root", str(tmp_path)).returncode == 0
    (tmp_path / "man" / "kcli-produce.1").write_text("stale\n")
    (tmp_path / "man" / "kcli-gone.1").write_text("a command that no longer exists\n")
    (tmp_path / "completions" / "_kcli").unlink()
    proc = run_docgen("--check", "--root", str(tmp_path))
    assert proc.returncode == 1
    for name in ("man/kcli-produce.1", "man/kcli-gone.1", "completions/_kcli"):
        assert name in proc.stderr
    assert "python -m kcli.cli.docgen" in proc.stderr
    assert (tmp_path / "man" / "kcli-produce.1").read_text() == "stale\n"  # --check changes nothing
    assert run_docgen("--root", str(tmp_path)).returncode == 0
    assert not (tmp_path / "man" / "kcli-gone.1").exists()
    assert run_docgen("--check", "--root", str(tmp_path)).returncode == 0


def test_every_command_has_a_page_with_every_section(generated: dict[str, str]) -> None:
    pages = {path: text for path, text in generated.items() if path.startswith("man/")}
    assert "man/kcli.1" in pages
    ctx = docgen.click.Context(cli, info_name="kcli")
    for name in COMMANDS:
        try:
            command = cli.get_command(ctx, name)
        except ImportError:
            continue  # reported by docgen as a warning; the command's own tests fail for it
        page = pages[f"man/kcli-{name}.1"]
        if isinstance(command, docgen.click.Group):
            for sub in command.list_commands(ctx):
                assert f'.SS "kcli {name} {sub}"' in page.replace("\\-", "-"), (name, sub)
    for path, text in pages.items():
        headings = re.findall(r"^\.SH (.*)$", text, re.M)
        for section in SECTIONS:
            assert section in headings, (path, section)
        assert text.startswith(docgen.HEADER)
        assert f'"kcli {kcli.__version__}"' in text


def test_main_page_documents_config_environment_and_exit_codes(generated: dict[str, str]) -> None:
    page = generated["man/kcli.1"].replace("\\-", "-")
    for word in (
        "KCLI_DATA_DIR",
        "KCLI_CONFIG",
        "NO_COLOR",
        "XDG_DATA_HOME",
        "kcli.toml",
        "CONFIGURATION FILE",
        "linger_ms",
        "[topic.create]",
        "LockTimeoutError",
        "DataDirError",
    ):
        assert word in page, word


def test_exit_codes_in_help_cover_every_error_class() -> None:
    for code, meaning, classes in docgen.exit_codes(cli):
        assert meaning, (
            f"exit code {code} ({', '.join(classes)}) is missing from the `Exit codes:` list of kcli --help"
        )
    codes = [c for c, _m, _d in docgen.exit_codes(cli)]
    assert {0, 1, 2, 3, 5, 9, 130} <= set(codes)


def test_roff_is_clean(generated: dict[str, str], tmp_path: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    for path, text in generated.items():
        if not path.startswith("man/"):
            continue
        proc = subprocess.run(
            ["groff", "-man", "-Tutf8", "-ww", "-z"], input=text, capture_output=True, text=True
        )
        assert proc.returncode == 0 and not proc.stderr, (path, proc.stderr)


def test_escaping() -> None:
    assert docgen.esc("use --from-beginning or -o -10") == "use \\-\\-from\\-beginning or \\-o \\-10"
    assert docgen.esc("tab-separated kcli-produce") == "tab-separated kcli-produce"
    assert docgen.esc(".starts with a dot\n'and a quote") == "\\&.starts with a dot\n\\(aqand a quote"
    assert docgen.esc("a\\nb `x`") == "a\\enb \\(gax\\(ga"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_the_committed_script(shell: str, tmp_path: Path) -> None:
    env = {**os.environ, "KCLI_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "kcli.cli.main", "completion", shell],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (ROOT / docgen.COMPLETION_FILES[shell]).read_text()
    assert f"_KCLI_COMPLETE={shell}_complete" in proc.stdout  # dynamic: asks kcli on every TAB


@pytest.fixture
def kcli_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has a `kcli` that runs this checkout with this interpreter."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "kcli"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kcli.cli.main "$@"\n')
    wrapper.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "KCLI_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
    }


def bash_complete(env: dict[str, str], line: str) -> list[str]:
    """What TAB offers after ``line`` in bash with completions/kcli.bash loaded."""
    words = line.split(" ")
    script = (
        f'source "{ROOT / "completions" / "kcli.bash"}"\n'
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_kcli_completion kcli\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_options_and_values(kcli_on_path: dict[str, str]) -> None:
    assert bash_complete(kcli_on_path, "kcli pro") == ["produce"]
    assert "create" in bash_complete(kcli_on_path, "kcli topic ")
    assert "--linger-ms" in bash_complete(kcli_on_path, "kcli produce --li")
    assert "lz4" in bash_complete(kcli_on_path, "kcli produce -z ")
    assert "--from-beginning" in bash_complete(kcli_on_path, "kcli consume --")
    assert bash_complete(kcli_on_path, "kcli completion z") == ["zsh"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completion_completes_commands_and_options(kcli_on_path: dict[str, str]) -> None:
    script = (
        f'source "{ROOT / docgen.COMPLETION_FILES["fish"]}"; complete -C "kcli pro"; '
        'complete -C "kcli produce --lin"'
    )
    proc = subprocess.run(
        ["fish", "--no-config", "-c", script], capture_output=True, text=True, env=kcli_on_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    offered = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert offered == ["produce", "--linger-ms"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_registers_its_completion(kcli_on_path: dict[str, str]) -> None:
    script = (
        f'autoload -U compinit; compinit -u -d "$HOME/.zcompdump-kcli-test"; '
        f'source "{ROOT / docgen.COMPLETION_FILES["zsh"]}"; print -r -- ${{_comps[kcli]}}'
    )
    env = {**kcli_on_path, "HOME": kcli_on_path["KCLI_DATA_DIR"] + "-home"}
    os.makedirs(env["HOME"], exist_ok=True)
    proc = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "_kcli_completion"


def test_completion_protocol_for_zsh_and_fish(kcli_on_path: dict[str, str]) -> None:
    """What the zsh and fish scripts read back from kcli."""
    base = [sys.executable, "-m", "kcli.cli.main"]
    zsh = subprocess.run(
        base,
        capture_output=True,
        text=True,
        timeout=60,
        env={**kcli_on_path, "_KCLI_COMPLETE": "zsh_complete", "COMP_WORDS": "kcli pro", "COMP_CWORD": "1"},
    )
    assert zsh.stdout.splitlines()[:2] == ["plain", "produce"]
    fish = subprocess.run(
        base,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **kcli_on_path,
            "_KCLI_COMPLETE": "fish_complete",
            "COMP_WORDS": "kcli produce --li",
            "COMP_CWORD": "--li",
        },
    )
    assert fish.stdout.startswith("plain,--linger-ms")
