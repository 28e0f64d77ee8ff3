"""``ledger``: the command group (service, signatory commands, demo) and its entry point.

Commands live in modules by area: :mod:`cli.keys_cmd` (``key ...``),
:mod:`cli.records_cmd` (``register``, ``endorse``, ``withdraw``, ``sign``,
``submit``), :mod:`cli.statements_cmd` (``statement ...``, ``statements``,
``signatory ...``), :mod:`cli.log_cmd` (``log``, ``receipt``), :mod:`cli.bulk`
(``import-signatories``), :mod:`cli.serve_cmd` (``serve``), :mod:`cli.demo`
(``demo``) and :mod:`cli.completion_cmd` (``completion``). Others add theirs with
:func:`add_command` (``ledger mirror`` comes from the mirror's module).

Errors end as one line on standard error and an exit code (:mod:`cli.errors`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from cli.bulk import import_signatories
from cli.completion_cmd import completion
from cli.demo import demo
from cli.domain_cmd import domain_group
from cli.errors import EXIT_CODES_HELP, AbortedError, from_exception
from cli.keys_cmd import key_group
from cli.log_cmd import log_cmd, receipt_cmd
from cli.mirror_cmd import mirror_cmd
from cli.options import OrderedGroup
from cli.records_cmd import endorse, register, sign_cmd, submit, withdraw
from cli.serve_cmd import serve
from cli.statements_cmd import signatory_group, statement_group, statements
from cli.witness_cmd import witness_group
from ledger import __version__
from ledger.verify.cli import Terminated, run_stoppable

EPILOG = (
    EXIT_CODES_HELP
    + """

\b
A first endorsement:
  ledger key generate me.key
  ledger register --key me.key --name "Example Foundation" --kind civil-society
  ledger statements
  ledger endorse STATEMENT_ID --key me.key
  ledger-verify receipt entry-N.tlog-proof --entry entry-N.txt --log-key VKEY

Every command has --help with an example. The server is --server or
LEDGER_SERVER (default http://127.0.0.1:8000)."""
)


class LedgerGroup(OrderedGroup):
    """Commands in the order they were added; errors of the core as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Terminated as e:
            raise AbortedError(f"stopped by {e}") from None
        except (click.Abort, KeyboardInterrupt):
            raise AbortedError("aborted") from None
        except (click.exceptions.Exit, click.ClickException):
            raise
        except Exception as e:
            translated = from_exception(e)
            if translated is None:
                raise
            raise translated from e


@click.group(
    cls=LedgerGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="ledger", message="%(prog)s %(version)s")
def cli() -> None:
    """Endorsement Ledger: sign, submit and check endorsements in a public, verifiable log.

    Every write prints the entry's index and saves its receipt (a C2SP tlog-proof),
    checked against the log key pinned on first contact with the server.
    """


def add_command(command: click.Command, name: str | None = None) -> None:
    """Add a command to ``ledger`` (for modules outside cli/, such as the mirror)."""
    cli.add_command(command, name)


for _command in (
    serve,
    key_group,
    register,
    statement_group,
    statements,
    endorse,
    withdraw,
    sign_cmd,
    submit,
    receipt_cmd,
    signatory_group,
    domain_group,
    log_cmd,
    mirror_cmd,
    import_signatories,
    demo,
    witness_group,
    completion,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ledger`` console script; returns the exit code.

    SIGTERM stops a command as Ctrl-C does, and the process then ends by that signal
    (:func:`ledger.verify.cli.run_stoppable`, shared with ``ledger-verify``).
    """
    return run_stoppable(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="ledger")
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        click.echo(str(code), err=True)
        return 1
    return 0


__all__ = ["add_command", "cli", "main"]


if __name__ == "__main__":
    sys.exit(main())
