"""Who may read what kcli leaves on disk, and what it shows of secrets.

- Every folder kcli creates in a data dir is 0700 and every file 0600, whatever the umask (which can only
  remove bits): messages, offsets and credentials are the owner's alone.
- A data dir or broker folder that lets its group or others in (one that existed before kcli, a chmod)
  is named once per command on stderr, with the fix; ``KCLI_ALLOW_SHARED_DATA_DIR=1`` says it is meant.
- ``kcli cluster init --secure`` tightens an existing tree; ``kcli verify --permissions`` reports every
  path that is too open or not the user's (exit 1), ``--fix`` tightens them.
- Another local user can neither list the data dir, read a segment, nor connect to a broker's socket.
- Secrets are written 0600 and no env var's value shows in any command's ``--help``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path

import click
import pytest

import kcli as kcli_package

WARNING = "kcli: warning: "
MARKER = "s3cr3t-M4RK3R-do-not-show"


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(WARNING)]


def modes(root: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


def loosen(root: Path) -> None:
    """What an older kcli or a hand-made data dir leaves: folders 0755, files 0644."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink() or path.is_socket():
            continue
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


@pytest.fixture
def umask_zero():
    """Subprocesses started meanwhile get umask 0, so every mode seen is the one kcli asked for."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- the warning ------------------------------------------------------------------------------------------


def test_an_open_data_dir_is_named_once_per_command(kcli):
    kcli.data_dir.mkdir()
    os.chmod(kcli.data_dir, 0o755)
    for args in (("produce", "t"), ("consume", "t", "-e", "--group", "g"), ("cluster", "status")):
        found = warnings(kcli(*args, input="x\n").stderr)
        assert len(found) == 1, (args, found)
        line = found[0]
        assert f"data dir {kcli.data_dir} has mode 0755" in line
        assert f"chmod 700 {kcli.data_dir}" in line and "kcli cluster init --secure" in line
        assert "KCLI_ALLOW_SHARED_DATA_DIR=1" in line
    assert stat.S_IMODE(kcli.data_dir.stat().st_mode) == 0o755  # warned about, never changed


def test_a_private_data_dir_draws_no_warning(kcli):
    kcli("produce", "t", input="x\n")
    assert stat.S_IMODE(kcli.data_dir.stat().st_mode) == 0o700
    assert kcli("produce", "t", input="y\n").stderr == ""


def test_a_group_readable_broker_folder_is_named(kcli):
    kcli("cluster", "init", "-n", "2")
    os.chmod(kcli.data_dir / "broker-1", 0o750)
    found = warnings(kcli("produce", "t", input="x\n").stderr)
    assert len(found) == 1 and f"broker folder {kcli.data_dir / 'broker-1'} has mode 0750" in found[0], found


def test_a_data_dir_shared_on_purpose_is_not_warned_about(kcli):
    kcli.data_dir.mkdir()
    os.chmod(kcli.data_dir, 0o750)
    kcli.env["KCLI_ALLOW_SHARED_DATA_DIR"] = "1"
    assert kcli("produce", "t", input="x\n").stderr == ""


def test_the_warning_costs_nothing_without_a_data_dir(kcli):
    """``--help`` never opens the data dir, so an open one is not reported there."""
    kcli.data_dir.mkdir()
    os.chmod(kcli.data_dir, 0o755)
    assert kcli("--help").stderr == ""
    assert kcli("produce", "--help").stderr == ""


# --- modes of what kcli creates -----------------------------------------------------------------------------


def test_everything_a_session_creates_is_owner_only(brokers, umask_zero):
    """Embedded and broker writes, a group, a transaction: then every folder is 0700 and file 0600."""
    root = brokers.data_dir
    brokers.kcli("cluster", "init", "-n", "2")
    brokers.kcli("topic", "create", "t", "-p", "2", "-r", "2", "-c", "index.interval.bytes=1")
    brokers.kcli("produce", "t", input="".join(f"m{i}\n" for i in range(200)))
    brokers.kcli("consume", "t", "--group", "g1", "-e")
    for broker_id in (0, 1):
        brokers.start(broker_id)
    brokers.kcli("produce", "t", input="b1\nb2\n")
    brokers.kcli("produce", "t", "--transactional-id", "tx", input="t1\n")
    brokers.kcli("consume", "t", "--group", "g2", "-e")
    socket = root / "broker-0" / "broker.sock"
    assert stat.S_IMODE(socket.lstat().st_mode) == 0o600
    brokers.stop_all()
    brokers.kcli("produce", "t", input="after\n")  # embedded again, after the brokers
    found = modes(root)
    kinds = {p.suffix for p in found}
    assert {".log", ".index", ".timeindex", ".lock", ".json"} <= kinds, kinds
    assert any("groups" in p.parts for p in found) and any(p.name == "meta.properties" for p in found)
    too_open = {str(p.relative_to(root)): oct(m) for p, m in found.items()
                if m != (0o700 if p.is_dir() else 0o600)}
    assert not too_open


def test_a_shared_data_dir_follows_the_umask(kcli):
    """Shared on purpose (KCLI_ALLOW_SHARED_DATA_DIR=1), new files follow the umask: the group reads them."""
    kcli.env["KCLI_ALLOW_SHARED_DATA_DIR"] = "1"
    proc = subprocess.run(kcli.argv("produce", "t"), input=b"x\n", capture_output=True, env=kcli.env,
                          preexec_fn=lambda: os.umask(0o027), timeout=60)
    assert proc.returncode == 0, proc.stderr
    segment = next(kcli.data_dir.glob("broker-0/t-0/*.log"))
    assert stat.S_IMODE(segment.stat().st_mode) == 0o640
    assert stat.S_IMODE(segment.parent.stat().st_mode) == 0o750


def test_secrets_are_owner_only_even_over_a_stale_temp_file(tmp_path, umask_zero):
    from kcli.storage.checkpoint import atomic_write, write_secret

    stale = tmp_path / "credentials.tmp"
    stale.write_bytes(b"old")
    os.chmod(stale, 0o644)
    write_secret(str(tmp_path / "credentials"), b"salted")
    assert stat.S_IMODE((tmp_path / "credentials").stat().st_mode) == 0o600
    assert (tmp_path / "credentials").read_bytes() == b"salted"
    atomic_write(str(tmp_path / "checkpoint"), b"0\n")
    assert stat.S_IMODE((tmp_path / "checkpoint").stat().st_mode) == 0o600


# --- cluster init --secure and verify --permissions -------------------------------------------------------


def test_init_secure_tightens_an_existing_tree(kcli):
    kcli("topic", "create", "t", "-p", "2")
    kcli("produce", "t", input="a\nb\n")
    kcli("consume", "t", "--group", "g", "-e")
    loosen(kcli.data_dir)
    proc = kcli("cluster", "init", "--secure")
    assert warnings(proc.stderr) == [], proc.stderr  # it fixes what the warning would name
    assert "owner-only" in proc.stderr
    left = {str(p): oct(m) for p, m in modes(kcli.data_dir).items() if m & 0o077}
    assert not left
    assert kcli("produce", "t", input="c\n").stderr == ""
    assert kcli("verify", "--permissions").returncode == 0


def test_verify_permissions_reports_a_world_readable_segment_until_fixed(kcli):
    kcli("produce", "t", input="a\n")
    segment = next(kcli.data_dir.glob("broker-0/t-0/*.log"))
    os.chmod(segment, 0o644)
    proc = kcli("verify", "--permissions", ok=False)
    assert proc.returncode == 1
    rel = str(segment.relative_to(kcli.data_dir))
    assert proc.stdout.splitlines()[:-1] == [f"{rel}: mode 0644 lets its group and other users in"]
    assert proc.stderr.strip() == "kcli: error: verify --permissions found 1 problem"
    doc = json.loads(kcli("verify", "--permissions", "--json", ok=False).stdout)
    assert not doc["ok"] and [p["path"] for p in doc["problems"]] == [str(segment)]

    fixed = kcli("verify", "--permissions", "--fix")
    assert "(tightened to 0600)" in fixed.stdout
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    assert kcli("verify", "--permissions").stdout.startswith("permissions: no problems")


def test_verify_permissions_does_not_follow_a_planted_link(kcli, tmp_path):
    """--fix must never change a file outside the data dir through a link inside it."""
    kcli("produce", "t", input="a\n")
    outside = tmp_path / "outside"
    outside.write_text("x")
    os.chmod(outside, 0o644)
    (kcli.data_dir / "broker-0" / "t-0" / "planted").symlink_to(outside)
    proc = kcli("verify", "--permissions", "--fix", ok=False)
    assert proc.returncode == 1 and "planted: is a symbolic link" in proc.stdout
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


def test_verify_fix_needs_permissions(kcli):
    proc = kcli.in_process("verify", "--fix", ok=False)
    assert proc.returncode == 2 and "--fix works with --permissions only" in proc.stderr


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


@needs_root
def test_init_secure_refuses_a_data_dir_of_another_user(kcli):
    kcli("produce", "t", input="a\n")
    os.chown(kcli.data_dir, 65534, 65534)
    kcli.env["KCLI_ALLOW_OTHER_OWNER"] = "1"
    proc = kcli("cluster", "init", "--secure", ok=False)
    assert proc.returncode == 9 and "is owned by nobody" in proc.stderr, proc.stderr


# --- another local user -----------------------------------------------------------------------------------

PROBE = r"""
import json, os, socket, sys
root, segment, sock_path = sys.argv[1:4]
out = {"uid": os.getuid()}
def attempt(name, fn):
    try:
        fn()
        out[name] = "allowed"
    except PermissionError:
        out[name] = "denied"
    except OSError as exc:
        out[name] = f"error {exc.errno}"
attempt("list", lambda: os.listdir(root))
attempt("read", lambda: open(segment, "rb").read(1))
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock_path)
    finally:
        s.close()
attempt("connect", connect)
print(json.dumps(out))
"""


def as_nobody(*args: str) -> dict:
    def drop() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    proc = subprocess.run(["/usr/bin/python3", "-I", "-c", PROBE, *args], capture_output=True, text=True,
                          preexec_fn=drop, timeout=30, cwd="/")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["uid"] == 65534
    return result


@needs_root
def test_another_user_can_neither_read_nor_write(brokers, tmp_path):
    """A data dir that existed with mode 0755, secured with ``cluster init --secure``, under a folder
    everyone may pass through: ``nobody`` cannot list it, read a segment, or reach the broker."""
    base = Path(tempfile.mkdtemp(prefix="kcli-perms-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        root = base / "data"
        root.mkdir()
        os.chmod(root, 0o755)
        brokers.data_dir = root
        brokers.runner.data_dir = root
        brokers.env["KCLI_DATA_DIR"] = str(root)
        brokers.kcli("cluster", "init", "--secure")
        brokers.kcli("produce", "t", input="private\n")
        broker = brokers.start(0)
        segment = next(root.glob("broker-0/t-0/*.log"))
        assert as_nobody(str(root), str(segment), broker.socket_path) == {
            "uid": 65534, "list": "denied", "read": "denied", "connect": "denied"}
        # the files and the socket hold even when the folders are opened by mistake
        for folder in (root, root / "broker-0", segment.parent):
            os.chmod(folder, 0o755)
        assert as_nobody(str(root), str(segment), broker.socket_path) == {
            "uid": 65534, "list": "allowed", "read": "denied", "connect": "denied"}
    finally:
        brokers.stop_all()
        subprocess.run(["rm", "-rf", str(base)], check=False)


# --- secrets in --help -----------------------------------------------------------------------------------------

# env vars that name places or switch modes, not values that could be secret
NOT_SECRET = {"KCLI_DATA_DIR", "KCLI_CONFIG", "KCLI_COMPLETE", "KCLI_ALLOW_OTHER_OWNER",
              "KCLI_ALLOW_SHARED_DATA_DIR", "KCLI_BOOTSTRAP_SERVER"}


def command_paths() -> list[tuple[list[str], click.Command]]:
    from kcli.cli.app import cli

    found: list[tuple[list[str], click.Command]] = []

    def walk(path: list[str], command: click.Command) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk([*path, name], sub)

    walk([], cli)
    return found


def env_vars() -> set[str]:
    """Every env var kcli reads: named in its source, or an option's envvar."""
    names = set()
    for source in Path(kcli_package.__file__).parent.rglob("*.py"):
        text = source.read_text()
        names |= set(re.findall(r"\bKCLI_[A-Z0-9_]+\b", text))
        names |= set(re.findall(r"(?:environ\.get|getenv|environ\[)\(?\s*[\"']([A-Z][A-Z0-9_]*)[\"']", text))
    for _, command in command_paths():
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            names |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return names - NOT_SECRET


def leaked_in_help(run, path: list[str]) -> str | None:
    proc = run(*path, "--help", ok=False)
    assert proc.returncode == 0, (path, proc.stderr)
    return proc.stdout if MARKER in proc.stdout + proc.stderr else None


def test_no_env_value_shows_in_any_help(kcli):
    names = env_vars()
    for name in names:
        kcli.env[name] = MARKER
    paths = command_paths()
    assert len(paths) > 40
    leaks = {" ".join(path): out for path, _ in paths if (out := leaked_in_help(kcli.in_process, path))}
    assert not leaks


def test_the_help_scan_finds_a_leaking_default(kcli, monkeypatch):
    """The scan above can fail: an option whose default is an env var's value, shown in --help."""
    monkeypatch.setenv("KCLI_TEST_SECRET", MARKER)

    @click.command()
    @click.option("--password", default=os.environ.get("KCLI_TEST_SECRET"), show_default=True)
    def leaky(password: str) -> None:
        """Leaks."""

    def run(*args: str, ok: bool = True):
        from click.testing import CliRunner

        result = CliRunner().invoke(leaky, list(args))
        return subprocess.CompletedProcess(args, result.exit_code, result.output, "")

    assert leaked_in_help(run, []) is not None


def test_a_password_broker_config_is_described_without_its_value(monkeypatch):
    """As Kafka answers DescribeConfigs for PASSWORD configs (ssl.key.password, ...): sensitive, no value,
    in the entry and in its synonyms."""
    from kcli.cluster import configs
    from kcli.cluster.metadata import ClusterState

    monkeypatch.setitem(configs.BROKER_CONFIGS, "test.secret.password",
                        configs.BrokerConfig(None, str, "A secret.", configs.PASSWORD, dynamic=True))
    state = ClusterState()
    state.broker_configs = {"0": {"test.secret.password": MARKER}, "": {"test.secret.password": MARKER}}
    monkeypatch.setattr(configs, "_static", {"test.secret.password": MARKER})
    [entry] = configs.describe_broker(state, 0, ["test.secret.password"])
    assert entry.sensitive and entry.value is None and entry.source == configs.DYNAMIC_BROKER_CONFIG
    assert len(entry.synonyms) == 3
    assert MARKER not in json.dumps(entry.to_json())


def test_no_config_file_value_shows_in_any_help(kcli):
    """A secret given as an option default in kcli.toml (a password option, say) stays out of --help:
    every free-text option of every command is set to the marker there."""
    from kcli.cli.settings import preferred_key, settable_options

    lines = []
    for path, command in command_paths():
        if not path or isinstance(command, click.Group):
            continue
        ctx = click.Context(command)
        keys = sorted({preferred_key(p) for p in settable_options(command, ctx).values()
                       if not p.is_flag and not p.multiple and isinstance(p.type, click.types.StringParamType)})
        if keys:
            lines += [f"[{'.'.join(path)}]", *(f"{key} = {json.dumps(MARKER)}" for key in keys)]
    assert lines
    kcli.data_dir.mkdir(mode=0o700)
    (kcli.data_dir / "kcli.toml").write_text("\n".join(lines) + "\n")
    leaks = {" ".join(path): out for path, _ in command_paths() if (out := leaked_in_help(kcli.in_process, path))}
    assert not leaks
