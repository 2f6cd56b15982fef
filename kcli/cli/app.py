"""The click application: the top-level group, lazy command loading, and the one place errors become
exit codes (:func:`run`).  ``kcli.cli.main`` imports this only when a command runs."""

from __future__ import annotations

import importlib
import os
import sys

import click

from kcli import __version__
from kcli.cli.commands import COMMANDS, VERSION_MESSAGE
from kcli.errors import KcliError


def _silence_stdout() -> None:
    """The reader went away (``| head``): stop quietly, and keep Python from complaining at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class Interrupted(KcliError):
    """Ctrl-C: stop at once; exit status 130 like a shell's SIGINT."""

    exit_code = 130


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, entry[1])

    def invoke(self, ctx: click.Context):
        """Turn a closed pipe and Ctrl-C into kcli's own endings before click's handlers see them
        (click would exit 1 on a closed pipe and print a blank line on Ctrl-C)."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(0) from None
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class Env:
    """What every command gets: global options and the data directory (or the cluster to use instead)."""

    def __init__(self, data_dir: str | None, lock_timeout: float, bootstrap_server: str | None = None) -> None:
        from kcli.cluster.datadir import default_data_dir

        self.data_dir = data_dir or default_data_dir()
        self.lock_timeout = lock_timeout
        self.bootstrap_server = bootstrap_server or None
        self._checked_modes = False  # the open-folder warning is said once per command

    def datadir(self, warn_open: bool = True):
        """The data directory.  Refused under --bootstrap-server, which promises to leave it untouched: a
        command that has no cluster path says so instead of quietly working on local files.
        ``warn_open=False`` skips the open-folder warning, for a command that tightens them itself."""
        if self.bootstrap_server:
            from kcli.errors import UsageError

            path = click.get_current_context().command_path
            raise UsageError(f"`{path}` works on the data directory and cannot use --bootstrap-server",
                             hint="drop --bootstrap-server (or unset KCLI_BOOTSTRAP_SERVER)")
        return self.local_datadir(warn_open)

    def local_datadir(self, warn_open: bool = True):
        """The data directory even under --bootstrap-server (``mirror`` works on both)."""
        from kcli.cluster.datadir import DataDir

        datadir = DataDir(self.data_dir, self.lock_timeout)
        datadir.check_usable()
        if not self._checked_modes:
            self._checked_modes = True
            if warn_open:
                _warn_if_open(datadir)
        return datadir

    def transport(self, auto_create: bool = True, acks: int = -1):  # -> kcli.client.transport.Transport
        """Where a command's records go and come from: the cluster at --bootstrap-server when given (the
        data dir is then never opened), else the data dir (through its live brokers, if any)."""
        if self.bootstrap_server:
            from kcli.client.remote import RemoteTransport

            return RemoteTransport(bootstrap=self.bootstrap_server, auto_create=auto_create, acks=acks)
        from kcli.client.connect import open_transport

        return open_transport(self.datadir(), auto_create, acks)

    def groups(self):  # -> LocalGroups | ClusterGroups
        """The consumer groups a command shows: the cluster's at --bootstrap-server, else the data dir's."""
        from kcli.client.groups import open_groups

        return open_groups(None if self.bootstrap_server else self.datadir(), self.bootstrap_server)


def _warn_if_open(datadir) -> None:
    """One line on stderr when the data dir or a broker folder lets other users in (see
    DataDir.open_folders), unless the operator shares it on purpose (KCLI_ALLOW_SHARED_DATA_DIR=1)."""
    from kcli.storage.fileio import SHARED, SHARED_DATA_DIR_ENV

    if SHARED:
        return
    found = datadir.open_folders()
    if not found:
        return
    path, mode = found[0]
    what = "data dir" if path == datadir.root else "broker folder"
    more = f" (and {len(found) - 1} more folder{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    click.echo(f"kcli: warning: {what} {path} has mode {mode:04o}{more}, so other users can see into it "
               f"(chmod 700 {path}, or `kcli cluster init --secure` for the whole data dir; "
               f"{SHARED_DATA_DIR_ENV}=1 if it is shared on purpose)", err=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="kcli", message=VERSION_MESSAGE)
@click.option("--data-dir", metavar="DIR", envvar="KCLI_DATA_DIR", show_envvar=True,
              help="Data directory holding the cluster [default: ${XDG_DATA_HOME:-~/.local/share}/kcli].")
@click.option("--lock-timeout", type=click.FloatRange(0), default=30.0, show_default=True, metavar="SECONDS",
              help="How long to wait for a lock held by another process.")
@click.option("--config", "config_file", metavar="FILE", envvar="KCLI_CONFIG", show_envvar=True,
              type=click.Path(dir_okay=False),
              help="Read option defaults from FILE [default: DIR/kcli.toml if it exists].")
@click.option("--bootstrap-server", metavar="HOST:PORT[,HOST:PORT]", envvar="KCLI_BOOTSTRAP_SERVER",
              show_envvar=True,
              help="Talk to this Kafka-protocol cluster over TCP instead of the data directory (topic, "
                   "produce, consume, lag, group describe/list); the data directory is then not touched.")
@click.option("--command-config", metavar="FILE", envvar="KCLI_COMMAND_CONFIG", show_envvar=True,
              type=click.Path(dir_okay=False),
              help="Client properties for --bootstrap-server, as Kafka's tools read them (security.protocol, "
                   "ssl.cafile, ssl.certfile, ssl.keyfile, ...); on top of kcli.toml's [client] table.")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None, lock_timeout: float, config_file: str | None,
        bootstrap_server: str | None, command_config: str | None) -> None:
    """kcli: Apache Kafka's log model on one machine's disk.

    Topics split into partitions, replicated across brokers, stored in Kafka-format segments.
    Works directly on the data directory when no broker runs.

    Exit codes: 0 success; 1 failed operation; 2 usage error; 3 not found; 4 already exists;
    5 lock timeout; 6 corrupt data; 7 record too large; 8 broker or protocol error; 9 unusable data dir;
    10 partition unavailable (no leader, too few in-sync replicas); 11 storage error (a full or failing disk);
    12 transaction state error (a request its transaction's state does not allow); 13 authentication
    failed (a broker refused the SASL user, password or mechanism); 14 not authorized (a broker's ACLs
    refused the request); 130 interrupted (a
    transaction aborted); 143 stopped by SIGTERM (after a clean finish, or with its transaction aborted).
    """
    from kcli.cli.settings import apply_config_file

    opts = apply_config_file(
        ctx, {"data_dir": data_dir, "lock_timeout": lock_timeout, "bootstrap_server": bootstrap_server,
              "command_config": command_config},
        config_file,
    )
    ctx.obj = Env(opts["data_dir"], opts["lock_timeout"], opts["bootstrap_server"])


class Terminated(Exception):
    """A command that stopped cleanly on SIGTERM (say, a group member that committed first): it exits
    silently with 128 + 15, as a process the signal killed would."""


def fail(message: str, hint: str | None = None, code: int = 1) -> None:
    """Print one line on stderr and exit: the only way kcli reports an error."""
    line = f"kcli: error: {message}"
    if hint:
        line += f" (hint: {hint})"
    click.echo(line, err=True)
    sys.exit(code)


def run(argv: list[str] | None = None) -> None:
    """Run the command line ``argv`` and exit with its status."""
    try:
        # without standalone mode, click returns ctx.exit(N)'s code instead of exiting
        code = cli.main(args=argv, prog_name="kcli", standalone_mode=False)
    except KcliError as exc:
        fail(exc.message, exc.hint, exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        fail("aborted", code=130)
    except click.ClickException as exc:
        hint = None
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f"see `{exc.ctx.command_path} --help`"
        fail(exc.format_message(), hint, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Terminated:
        sys.exit(128 + 15)  # SIGTERM (the signal module costs a produce's start-up ~1 ms)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)
    except OSError as exc:
        fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else ""), code=1)
    sys.exit(code if isinstance(code, int) else 0)

