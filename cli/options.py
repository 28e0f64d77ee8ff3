"""Options shared by several ``ledger`` commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.client import DEFAULT_SERVER, DEFAULT_TIMEOUT_S
from cli.flows import OUTPUT_FILE
from cli.session import ServerOptions
from ledger.verify.cli import LOG_KEY_ENV

F = TypeVar("F", bound=Callable[..., Any])

SERVER_ENV = "LEDGER_SERVER"


class OrderedGroup(click.Group):
    """A command group that lists its commands in the order they were added."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def server_options(f: F) -> F:
    """``--server``, ``--log-key`` and ``--timeout``, passed on as ``conn: ServerOptions``."""

    @functools.wraps(f)
    def wrapper(*args: Any, server: str, log_key: str | None, timeout: float, **kw: Any) -> Any:
        return f(*args, conn=ServerOptions(server, log_key, timeout), **kw)

    wrapper.__dict__.pop("__click_params__", None)
    params = list(getattr(f, "__click_params__", []))
    wrapper.__click_params__ = params  # type: ignore[attr-defined]
    decorated: Any = wrapper
    decorated = click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_TIMEOUT_S,
        show_default=True,
        metavar="SECONDS",
        help="Network timeout.",
    )(decorated)
    decorated = click.option(
        "--log-key",
        metavar="VKEY|FILE",
        envvar=LOG_KEY_ENV,
        show_envvar=True,
        default=None,
        help="The log's verifier key (or a file holding it, such as the server's "
        "log.vkey). Default: the key pinned on first contact with the server.",
    )(decorated)
    decorated = click.option(
        "--server",
        envvar=SERVER_ENV,
        show_envvar=True,
        default=DEFAULT_SERVER,
        show_default=True,
        metavar="URL",
        help="The ledger server.",
    )(decorated)
    return decorated  # type: ignore[no-any-return]


def json_option(f: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on standard output."
    )(f)


def passphrase_option(f: F) -> F:
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Read the key's passphrase from this file (else LEDGER_KEY_PASSPHRASE, "
        "else a prompt).",
    )(f)


def receipt_option(f: F) -> F:
    return click.option(
        "--receipt",
        "receipt_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Save the receipt here (default: entry-<index>.tlog-proof in the working "
        "directory); the entry goes beside it (.txt).",
    )(f)


def signed_at_option(f: F) -> F:
    # For tests and reproducible examples: the time a record says it was signed.
    return click.option("--signed-at", type=click.IntRange(min=0), default=None, hidden=True)(f)


def draft_options(f: F) -> F:
    """``--draft FILE`` (write the unsigned record instead) and ``--origin``."""
    f = click.option(
        "--origin",
        default=None,
        metavar="ORIGIN",
        help="With --draft: the log's origin, to draft without contacting the server.",
    )(f)
    return click.option(
        "--draft",
        "draft_path",
        type=OUTPUT_FILE,
        default=None,
        help="Write the unsigned record to this file (- for standard output) instead of "
        "signing and submitting it; sign it with 'ledger sign', send it with 'ledger submit'.",
    )(f)


__all__ = [
    "SERVER_ENV",
    "OrderedGroup",
    "draft_options",
    "json_option",
    "passphrase_option",
    "receipt_option",
    "server_options",
    "signed_at_option",
]
