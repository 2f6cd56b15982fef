"""Security properties of what kcli leaves on disk and on the network.

Decisions checked here (see the README's threat model):

- a data dir kcli creates is mode 0700 (the umask can only remove more): messages are often private,
  and the broker socket inside is 0600 anyway; a data dir someone created beforehand keeps its mode;
- files are 0600 and folders 0700 whatever the umask (tests/test_permissions.py has the rest), and
  nothing is group- or world-writable under the usual umask;
- the broker's Unix socket is 0600 and its TCP listener binds 127.0.0.1 unless told otherwise;
- nothing in kcli deserialises with pickle/marshal or evaluates text (eval/exec/compile), and no
  subprocess goes through a shell: bytes from the wire, the data dir or a config file stay data.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

import kcli

SOURCE = Path(kcli.__file__).parent


def run_with_umask(kcli_runner, umask: int, *args: str, input: bytes = b"x\n") -> None:
    proc = subprocess.run(
        kcli_runner.argv(*args),
        input=input,
        capture_output=True,
        env=kcli_runner.env,
        preexec_fn=lambda: os.umask(umask),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


def populate(kcli_runner, umask: int) -> None:
    """Every kind of file kcli writes: metadata, segments, indexes, checkpoints, locks, group offsets."""
    run_with_umask(kcli_runner, umask, "cluster", "init", "--brokers", "2")
    run_with_umask(kcli_runner, umask, "topic", "create", "t", "-r", "2", "-c", "index.interval.bytes=1")
    run_with_umask(kcli_runner, umask, "produce", "t", input=b"".join(b"m%d\n" % i for i in range(300)))
    run_with_umask(kcli_runner, umask, "produce", "t", input=b"more\n")
    run_with_umask(kcli_runner, umask, "consume", "t", "--group", "g", "--reset", "earliest", "-e")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000, 0o002])
def test_data_dir_is_private_and_files_follow_the_umask(kcli, umask):
    populate(kcli, umask)
    found = modes(kcli.data_dir)
    assert found["."] == 0o700, oct(found["."])
    kinds = {Path(name).suffix for name in found}
    assert {".log", ".index", ".lock", ".json"} <= kinds
    for name, mode in found.items():
        path = kcli.data_dir / name
        if name.endswith(".lock"):
            assert mode == 0o600, (name, oct(mode))
        if path.is_dir():
            continue
        assert mode & umask == 0, f"{name} is {oct(mode)}: more than umask {oct(umask)} allows"
        assert not mode & 0o111, f"{name} is executable"
        if umask & 0o022 == 0o022:
            assert not mode & 0o022, f"{name} is writable by group or others: {oct(mode)}"


def test_group_owner_locks_are_owner_only(kcli):
    populate(kcli, 0o022)
    owners = list(kcli.data_dir.glob("cluster/groups/*/owners/*.lock"))
    assert owners
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in owners), [
        oct(p.stat().st_mode) for p in owners
    ]


def test_an_existing_data_dir_keeps_its_mode(kcli):
    """Sharing a data dir with a group is a deliberate chmod, which kcli must not undo."""
    kcli.data_dir.mkdir(mode=0o750)
    os.chmod(kcli.data_dir, 0o750)
    kcli("produce", "t", input="x\n")
    assert stat.S_IMODE(kcli.data_dir.stat().st_mode) == 0o750


def test_parent_folders_are_created_with_the_usual_modes(kcli, tmp_path):
    """Only the data dir itself is private: ~/.local/share made on the way follows the umask."""
    kcli.data_dir = tmp_path / "home" / ".local" / "share" / "kcli"
    kcli.env["KCLI_DATA_DIR"] = str(kcli.data_dir)
    run_with_umask(kcli, 0o022, "produce", "t")
    assert stat.S_IMODE((tmp_path / "home" / ".local").stat().st_mode) == 0o755
    assert stat.S_IMODE(kcli.data_dir.stat().st_mode) == 0o700


# --- the broker: socket mode and listener address ---------------------------------------------------------


def test_default_listener_host_is_loopback():
    from kcli.cluster.broker_info import DEFAULT_HOST, parse_listener

    assert DEFAULT_HOST == "127.0.0.1"
    assert parse_listener("9092") == ("127.0.0.1", 9092)
    assert parse_listener(":9092") == ("127.0.0.1", 9092)
    assert parse_listener("0.0.0.0:9092") == ("0.0.0.0", 9092)  # wider only when asked for by name


def test_broker_socket_is_owner_only_and_tcp_binds_loopback(kcli):
    kcli.in_process("topic", "create", "t")
    broker = kcli.popen(
        "broker", "serve", "--id", "0", "--listener", "0", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    sock = kcli.data_dir / "broker-0" / "broker.sock"
    try:
        deadline = time.monotonic() + 30
        info = None
        while time.monotonic() < deadline and broker.poll() is None:
            listed = json.loads(kcli("broker", "list", "--json").stdout or "[]")
            info = next((b for b in listed if b.get("listener")), None)
            if info and sock.exists():
                break
            time.sleep(0.1)
        assert broker.poll() is None, broker.stderr.read().decode() if broker.stderr else ""
        assert info is not None, "the broker never reported its listener"
        assert stat.S_ISSOCK(sock.lstat().st_mode)
        assert stat.S_IMODE(sock.lstat().st_mode) == 0o600
        assert info["listener"].startswith("127.0.0.1:")
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        if broker.stderr:
            broker.stderr.close()


# --- no code from data ----------------------------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input"}
UNSAFE_ATTRIBUTES = {
    ("os", "system"),
    ("os", "popen"),
    ("os", "execl"),
    ("os", "execlp"),
    ("os", "execv"),
    ("os", "execvp"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
}


def _sources() -> list[Path]:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 20, "the source tree was not found"
    return files


def unsafe_uses(source: str, where: str) -> list[str]:
    """Imports of deserialisers that run code, calls that evaluate text, and subprocesses through a shell."""
    problems = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Import):
            problems += [
                f"{where}:{node.lineno} imports {a.name}"
                for a in node.names
                if a.name.split(".")[0] in UNSAFE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            problems.append(f"{where}:{node.lineno} imports from {node.module}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS:
                problems.append(f"{where}:{node.lineno} calls {func.id}()")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in UNSAFE_ATTRIBUTES
            ):
                problems.append(f"{where}:{node.lineno} calls {func.value.id}.{func.attr}()")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where}:{node.lineno} runs a subprocess through a shell")
    return problems


def test_no_pickle_eval_exec_or_shell_in_kcli():
    problems = []
    for path in _sources():
        problems += unsafe_uses(path.read_text(encoding="utf-8"), str(path.relative_to(SOURCE.parent)))
    assert not problems, "\n".join(problems)


def test_the_scan_would_notice():
    """The scan finds what it looks for, so a clean result means something; re.compile is not compile."""
    sample = (
        "import pickle\nfrom marshal import loads\neval('1')\nexec('x')\nimport os\nos.system('x')\n"
        "subprocess.run('x', shell=True)\nimport re\nre.compile('x')\nsubprocess.run(['x'], shell=False)\n"
    )
    assert [p.split(" ", 1)[1] for p in unsafe_uses(sample, "s")] == [
        "imports pickle",
        "imports from marshal",
        "calls eval()",
        "calls exec()",
        "calls os.system()",
        "runs a subprocess through a shell",
    ]


def test_config_file_is_data_not_code(kcli, tmp_path):
    """kcli.toml is parsed as TOML: anything that looks like code is just a bad value."""
    evil = tmp_path / "marker"
    config = tmp_path / "kcli.toml"
    config.write_text(f"lock-timeout = \"__import__('os').system('touch {evil}')\"\n")
    res = kcli("--config", config, "topic", "list", ok=False)
    assert res.returncode == 2, res.stderr
    assert not evil.exists()
