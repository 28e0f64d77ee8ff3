"""The verifier's one error of its own: a core failure, placed in the log.

The core's checks raise :mod:`ledger.core.errors` exceptions that know only what
they were given: a record's signature check does not know where in the log the
record stands, a checkpoint's parser does not know the note came from the
source's ``checkpoint``. The verifier knows, and says so *by wrapping*, never by
changing the error it caught: ``raise LocatedError.of(e, index=i) from e``. The
wrapper keeps the cause's code, message, field, expected and found values, so its
text and its JSON report (``ledger-verify --json``) read as the cause's would at
that place; the cause itself, with its class, is ``__cause__``.
"""

from __future__ import annotations

from ledger.core.errors import LedgerError


class LocatedError(LedgerError):
    """A check of the core failed at ``index`` (or ``field``); ``__cause__`` is the failure."""

    @classmethod
    def of(
        cls, cause: LedgerError, *, index: int | None = None, field: str | None = None
    ) -> LocatedError:
        """``cause`` at entry ``index`` and/or at ``field`` (else the cause's own)."""
        return cls(
            cause.message,
            code=cause.code,
            index=cause.index if index is None else index,
            field=cause.field if field is None else field,
            expected=cause.expected,
            found=cause.found,
        )


__all__ = ["LocatedError"]
