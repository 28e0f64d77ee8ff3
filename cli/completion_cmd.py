"""``ledger completion bash|zsh|fish``: the shell completion script (click's).

The script calls ``ledger`` back with ``_LEDGER_COMPLETE`` set to ``<shell>_complete``
and the words typed so far, and ``ledger`` answers with the commands, options and
choices that fit (click's shell completion; bash 4.4 or later, zsh, fish).
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "ledger"
COMPLETE_VAR = "_LEDGER_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    Example:
      eval "$(ledger completion bash)"          # in ~/.bashrc
      eval "$(ledger completion zsh)"           # in ~/.zshrc
      ledger completion fish > ~/.config/fish/completions/ledger.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # every one of SHELLS is built into click
    root = ctx.find_root().command
    click.echo(cls(root, {}, PROG_NAME, COMPLETE_VAR).source())


__all__ = ["COMPLETE_VAR", "SHELLS", "completion"]
