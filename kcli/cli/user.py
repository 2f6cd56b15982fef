"""``kcli user``: the SCRAM users SASL listeners accept (kafka-configs --entity-type users
--alter --add-config 'SCRAM-SHA-512=[...]'), embedded on the data dir or through the brokers."""

from __future__ import annotations

import click

from kcli.cli.output import emit_json, table

MECHANISM_CHOICES = click.Choice(["SCRAM-SHA-256", "SCRAM-SHA-512"], case_sensitive=False)


def _users(env):
    from kcli.client.users import open_users

    return open_users(None if env.bootstrap_server else env.datadir(), env.bootstrap_server)


def _read_password(password_file: str | None, password_env: str | None) -> str:
    """From the file, the variable, a no-echo prompt on a terminal, or stdin's first line -- never argv."""
    import os
    import sys

    from kcli.errors import UsageError

    if password_file and password_env:
        raise UsageError("give --password-file or --password-env, not both")
    if password_file:
        from kcli.net.sasl_client import read_password_file

        password = read_password_file(password_file, "password file")
    elif password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise UsageError(f"environment variable {password_env} is not set")
        password = value
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().removesuffix("\n")
    if not password:
        raise UsageError("the password is empty")
    return password


@click.group()
def user() -> None:
    """Create, list and delete the SCRAM users of SASL listeners.

    Credentials are salted and hashed (RFC 5802) before they are stored or sent: the data dir keeps
    cluster/credentials.json (mode 0600) with salts and keys, never a password. PLAIN logins are
    checked against the same credentials. With brokers running (or --bootstrap-server) the change
    goes through them (AlterUserScramCredentials), and applies from the user's next login.
    """


@user.command("create")
@click.argument("name")
@click.option("--mechanism", type=MECHANISM_CHOICES, default="SCRAM-SHA-512", show_default=True,
              help="The SCRAM mechanism of the credential (repeat the command for both).")
@click.option("--iterations", type=click.IntRange(4096, 16384), default=4096, show_default=True,
              help="PBKDF2 iterations of the salted password.")
@click.option("--password-file", metavar="FILE", help="Read the password from FILE (one trailing newline dropped).")
@click.option("--password-env", metavar="VAR", help="Read the password from environment variable VAR.")
@click.pass_obj
def create(env, name: str, mechanism: str, iterations: int, password_file: str | None,
           password_env: str | None) -> None:
    """Create user NAME's credential, or replace its password.

    The password comes from --password-file, --password-env, a prompt without echo, or the first
    line of stdin -- never from the command line, where other users could read it.

    \b
    Examples:
      kcli user create alice                       # prompts twice
      kcli user create bob --mechanism SCRAM-SHA-256 --password-file ~/.bob-password
    """
    password = _read_password(password_file, password_env)
    _users(env).upsert(name, mechanism.upper(), password, iterations)
    click.echo(f"Set {mechanism.upper()} credential of user {name!r}.", err=True)


@user.command("delete")
@click.argument("name")
@click.option("--mechanism", "mechanisms", type=MECHANISM_CHOICES, multiple=True,
              help="Delete only this mechanism's credential (repeatable; default: all of the user's).")
@click.pass_obj
def delete(env, name: str, mechanisms: tuple[str, ...]) -> None:
    """Delete user NAME's credentials; connections already authenticated stay so until they end or
    re-authenticate (connections.max.reauth.ms)."""
    gone = _users(env).delete(name, [m.upper() for m in mechanisms] or None)
    click.echo(f"Deleted {', '.join(gone)} credential{'s' if len(gone) > 1 else ''} of user {name!r}.", err=True)


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(env, as_json: bool) -> None:
    """List users and the mechanisms and iterations of their credentials (never secrets)."""
    users = _users(env).describe()
    if as_json:
        emit_json([{"user": u, "credentials": [{"mechanism": m, "iterations": i} for m, i in creds]}
                   for u, creds in users.items()])
        return
    table(["USER", "MECHANISM", "ITERATIONS"], [(u, m, i) for u, creds in users.items() for m, i in creds])
