"""Exit codes of ``ledger`` and the one-line errors behind them.

Every failure of a command ends in one :class:`CliError`, printed as a single line
``ledger: error: <what went wrong>`` on standard error, and exits with the code of
its class. Scripts branch on the code; people read the line.

====  ==================================================================================
code  meaning
====  ==================================================================================
0     success
1     the log refused the record or request (an RFC 9457 problem: the line shows the
      server's sentence and its ``code``, such as ``already_endorsed`` or ``clock_skew``)
2     usage: a bad option or argument, an unreadable or invalid input file, an
      incomplete draft
3     the server cannot be reached, or answered with an error of its own (5xx) or
      something that is not the ledger API
4     key: key file missing, unreadable or in the way, wrong or missing passphrase
5     verification: a receipt or checkpoint does not verify against the pinned log
      key, or the server's log key changed since it was pinned
6     not found: the statement, signatory or entry named does not exist
130   interrupted (Ctrl-C), or a confirmation was declined
143   stopped by SIGTERM: the command stops as on Ctrl-C, then ends by the signal
      (:func:`ledger.verify.cli.run_stoppable`; a shell reports 128 + 15)
====  ==================================================================================
"""

from __future__ import annotations

from typing import IO, Any

import click

from keys.errors import (
    KeyFileError,
    KeysError,
    MissingDependencyError,
    PassphraseError,
    WrongPassphraseError,
)
from ledger.core.errors import FormatError, LedgerError, VerificationError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_KEY = 4
EXIT_VERIFY = 5
EXIT_NOT_FOUND = 6
EXIT_ABORTED = 130

#: The table of ``ledger --help`` (and of the README).
EXIT_CODES_HELP = """\
Exit codes:

\b
  0  success
  1  the log refused the record or request (shows the server's sentence and code)
  2  usage error, unreadable or invalid input file, incomplete draft
  3  server unreachable, or a server error (5xx, not the ledger API)
  4  key file or passphrase problem (missing, in the way, wrong passphrase)
  5  verification failed: a receipt does not verify against the pinned log key,
     or the server's log key changed
  6  not found: no such statement, signatory or entry
130  interrupted (Ctrl-C), or a confirmation declined
143  stopped by SIGTERM (kill PID): cleaned up as on Ctrl-C, then ended by the signal"""

#: One sentence more for the problem codes a signatory meets most (docs/spec.md rules).
HINTS: dict[str, str] = {
    "already_endorsed": "this signatory already endorses the statement",
    "not_endorsed": "this signatory has no active endorsement of the statement to withdraw",
    "already_registered": "this key is already registered (a key registers once, ever)",
    "key_reused": "the new key was already used by a signatory; generate a fresh one",
    "already_revoked": "this key is already revoked",
    "key_revoked": "this key was revoked and can sign nothing more",
    "key_rotated": "this key was rotated away: sign with the signatory's current key",
    "wrong_key": "this key is not the signatory's current key",
    "unknown_signatory": "the key is not registered: run 'ledger register' first",
    "unknown_statement": "check the statement id with 'ledger statements'",
    "clock_skew": "the record is signed in the future for the log: check this computer's clock",
    "too_old": "the record was signed too long ago for the log: sign it again",
    "replay": "an endorsement or withdrawal of this pair was signed at the same second or "
    "later; wait a second and try again",
    "wrong_log": "the record was made for another log: check --server and --origin",
    "rate_limited": "too many requests: try again in a moment",
}


class CliError(click.ClickException):
    """A failure with its exit code, printed as one line."""

    exit_code = EXIT_USAGE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"ledger: error: {self.format_message()}", file=file, err=file is None)


class AbortedError(CliError):
    exit_code = EXIT_ABORTED


class InputError(CliError):
    exit_code = EXIT_USAGE


class UnreachableError(CliError):
    exit_code = EXIT_UNREACHABLE


class KeyProblemError(CliError):
    exit_code = EXIT_KEY


class VerifyError(CliError):
    exit_code = EXIT_VERIFY


class NotFoundError(CliError):
    exit_code = EXIT_NOT_FOUND


class RefusedError(CliError):
    """The server answered a problem document (RFC 9457) about the request."""

    exit_code = EXIT_REFUSED

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        hint = HINTS.get(code)
        text = f"refused: {detail.strip() or 'no detail given'} (code {code}, HTTP {status})"
        if hint:
            text += f"; {hint}"
        super().__init__(text)


class RefusedNotFoundError(RefusedError):
    """A problem that names something that does not exist (a statement, a signatory)."""

    exit_code = EXIT_NOT_FOUND


#: Problem codes that name something that does not exist (exit 6 rather than 1).
NOT_FOUND_CODES = frozenset({"not_found", "unknown_statement", "unknown_signatory"})


def refused(status: int, code: str, detail: str) -> RefusedError:
    """The error for a problem document the server answered."""
    cls = RefusedNotFoundError if code in NOT_FOUND_CODES else RefusedError
    return cls(status, code, detail)


def from_exception(e: BaseException) -> CliError | None:
    """The CliError for an error of the core or of ``keys``, or None if it is not one."""
    if isinstance(e, CliError):
        return e
    if isinstance(e, WrongPassphraseError):
        return KeyProblemError(str(e))
    if isinstance(e, PassphraseError | KeyFileError | MissingDependencyError | KeysError):
        return KeyProblemError(str(e))
    if isinstance(e, VerificationError):
        return VerifyError(f"verification failed: {e} [{e.code}]")
    if isinstance(e, FormatError):
        return InputError(f"{e} [{e.code}]")
    if isinstance(e, LedgerError):
        return InputError(f"{e} [{e.code}]")
    return None


__all__ = [
    "EXIT_ABORTED",
    "EXIT_CODES_HELP",
    "EXIT_KEY",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "EXIT_VERIFY",
    "HINTS",
    "AbortedError",
    "CliError",
    "InputError",
    "KeyProblemError",
    "NotFoundError",
    "RefusedError",
    "RefusedNotFoundError",
    "UnreachableError",
    "VerifyError",
    "from_exception",
    "refused",
]
