"""What the routes depend on: one :class:`AppContext` per application, and small helpers.

Routes take ``ctx: ContextDep`` and reach storage, sequencer, settings and metrics
through it; they never build queries themselves (storage does, behind
``api.storage.base.ReadStorage``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.metrics import Metrics
from api.problems import ProblemError
from api.sequencing.queue import Sequencer
from api.settings import Settings
from api.storage.base import ReadStorage
from ledger.core.encoding import parse_uint
from ledger.core.errors import FormatError

#: Full tiles, bundles and entries never change.
IMMUTABLE = "public, max-age=31536000, immutable"
#: The checkpoint (and what is read against it) changes with every batch.
SHORT = "public, max-age=2"


@dataclass
class AppContext:
    """The service one application serves: storage, sequencer, settings, log key."""

    storage: ReadStorage
    settings: Settings
    vkey: str
    metrics: Metrics = field(default_factory=Metrics)
    sequencer: Sequencer | None = None  # set while the application runs

    @property
    def origin(self) -> str:
        return self.storage.origin


def get_context(request: Request) -> AppContext:
    ctx = request.app.state.ledger
    assert isinstance(ctx, AppContext)
    return ctx


async def _context_dependency(request: Request) -> AppContext:
    # async: FastAPI runs a sync dependency in the thread pool, a round trip per request
    # that costs more than reading one attribute.
    return get_context(request)


ContextDep = Annotated[AppContext, Depends(_context_dependency)]


def hex32_param(value: str, name: str) -> bytes:
    """A hash or id given in a path or query: exactly 64 lowercase hex digits."""
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ProblemError(
            "invalid_parameter",
            f"{name} must be 64 lowercase hexadecimal digits.",
            status=400,
            field=name,
            found=value[:100],
        )
    return bytes.fromhex(value)


def uint_param(value: str, name: str) -> int:
    """A decimal given in a path: no sign, no leading zeros (as the log spells them)."""
    try:
        return parse_uint(value, field=name)
    except FormatError:
        raise ProblemError(
            "invalid_parameter",
            f"{name} must be a decimal number without sign or leading zeros.",
            status=400,
            field=name,
            found=value[:100],
        ) from None


__all__ = [
    "IMMUTABLE",
    "SHORT",
    "AppContext",
    "ContextDep",
    "get_context",
    "hex32_param",
    "uint_param",
]
