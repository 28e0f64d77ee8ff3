"""Where ``ledger`` writes: results on standard output, everything else on standard error.

Results (an index, a table, ``--json`` documents) go to standard output so that they
can be piped; notes, warnings and progress bars go to standard error. The consoles
are made per call, so that they follow ``sys.stdout`` and ``sys.stderr`` as they are
at that moment (tests swap them).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

# The words that agree with their counts, as ledger-verify writes them too.
from ledger.verify.cli import counted, plural

#: Width of tables written to a pipe or file, where nothing should wrap a 64-digit id.
PIPE_WIDTH = 240


def out() -> Console:
    """The console of results (standard output): no markup, no wrapping into a pipe."""
    tty = sys.stdout.isatty()
    return Console(
        file=sys.stdout,
        highlight=False,
        markup=False,
        emoji=False,
        width=None if tty else PIPE_WIDTH,
    )


def err() -> Console:
    """The console of notes, warnings and progress (standard error)."""
    tty = sys.stderr.isatty()
    return Console(file=sys.stderr, highlight=False, width=None if tty else PIPE_WIDTH)


def note(message: str) -> None:
    """A note for the person at the terminal (standard error)."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(f"ledger: warning: {message}", err=True)


def loud_warning(lines: list[str]) -> None:
    """A warning that must not be missed: framed, on standard error."""
    bar = "!" * 78
    click.echo(bar, err=True)
    for line in lines:
        click.echo(f"!! {line}", err=True)
    click.echo(bar, err=True)


def table(*headers: str, title: str | None = None) -> Table:
    """A borderless table (results are read, and copied, as text)."""
    return Table(*headers, title=title, box=None, pad_edge=False)


def emit_json(doc: Any) -> None:
    """One JSON document on standard output."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False))


def progress(*, transient: bool = False) -> Progress:
    """A progress bar on standard error (drawn only on a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err(),
        transient=transient,
    )


__all__ = [
    "counted",
    "emit_json",
    "err",
    "loud_warning",
    "note",
    "out",
    "plural",
    "progress",
    "table",
    "warn",
]
