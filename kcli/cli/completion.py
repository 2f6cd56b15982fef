"""``kcli completion SHELL``: print the shell completion script.

The scripts are click's own (what ``_KCLI_COMPLETE=bash_source kcli`` prints): they call kcli back on
every TAB, so commands, subcommands, options and choices always match the installed version.  The same
text is kept in ``completions/`` by ``python -m kcli.cli.docgen``.
"""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "kcli"
COMPLETE_VAR = "_KCLI_COMPLETE"


def completion_script(shell: str) -> str:
    """The completion script for ``shell``, ending with a newline."""
    from click.shell_completion import get_completion_class

    from kcli.cli.app import cli

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - SHELLS only names shells click supports
        raise click.BadParameter(f"unsupported shell {shell!r}")
    source = cls(cli, {}, PROG_NAME, COMPLETE_VAR).source()
    return source.rstrip("\n") + "\n"


@click.command()
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish) on stdout.

    The script asks kcli for completions on every TAB, so it completes commands, options and option
    values of the kcli it finds on PATH.

    \b
    Install:
      bash: eval "$(kcli completion bash)"   in ~/.bashrc (bash 4.4 or later)
      zsh:  kcli completion zsh > "${fpath[1]}/_kcli"   (or eval "$(kcli completion zsh)" in ~/.zshrc
            after compinit)
      fish: kcli completion fish > ~/.config/fish/completions/kcli.fish
    """
    click.echo(completion_script(shell), nl=False)
