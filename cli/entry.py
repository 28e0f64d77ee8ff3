"""The ``ledger`` console script: says which extra to install when the CLI's packages are missing.

The base install (``pip install endorsement-ledger``) is the standalone verifier,
``ledger-verify``, with nothing but ``cryptography``. ``ledger`` needs the ``cli``
extra (click, rich, httpx, bcrypt), and ``ledger serve`` the ``server`` extra. This
module imports none of them at its top, so that ``ledger`` in a base install ends
in one line naming the extra and exit code 2 (a usage error, as for every other
missing piece), not in a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The top-level modules of the ``cli`` extra's packages (pyproject.toml).
CLI_EXTRA_MODULES = frozenset({"click", "rich", "httpx", "httpcore", "bcrypt"})
EXIT_USAGE = 2

MISSING_EXTRA = (
    "ledger: the 'ledger' command needs the cli extra ({module} is not installed): "
    "pip install 'endorsement-ledger[cli]' (or '[server]' to run 'ledger serve'); "
    "the base install has ledger-verify only"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ledger``; return its exit code (2 when the cli extra is missing)."""
    try:
        from cli.main import main as run  # noqa: PLC0415
    except ModuleNotFoundError as e:
        top = (e.name or "").partition(".")[0]
        if top not in CLI_EXTRA_MODULES:
            raise
        print(MISSING_EXTRA.format(module=top), file=sys.stderr)
        return EXIT_USAGE
    return run(argv)


__all__ = ["CLI_EXTRA_MODULES", "MISSING_EXTRA", "main"]
