"""The typed effects of valid entries, and the one function that applies them.

``ledger.core.rules.evaluate`` decides whether a record is valid at its point of the
log and returns what it changes: one :data:`Effect`, a frozen dataclass per record
type (docs/spec.md, "Semantic rules"). :func:`apply` interprets an effect against a
:class:`ProjectionSink`, the narrow write side of a projection of the log, so that
what an entry does to the state, and the tally rule in particular (docs/spec.md,
"Tallies": an endorsement adds one to its statement's tally for the endorser's
kind, a withdrawal takes it away), is written once, here. The verifier's in-memory
replay (``ledger.core.state.MemoryState``) and the service's SQL projection
(``api.storage.txstate.TxState``) are the two sinks.

:func:`apply` matches every effect type and ends in ``assert_never``: a new kind of
effect is a type error here until it is handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias, assert_never

from ledger.core.ed25519 import key_hash
from ledger.core.records import Registration, Statement


@dataclass(frozen=True, slots=True)
class Registered:
    """``register`` (docs/spec.md rule 5): a new, active signatory whose current key is
    ``key``."""

    index: int
    signed_at: int
    signatory: bytes  # the new signatory's id: the key hash of ``key``
    signatory_kind: str  # a ``ledger.core.records.Kind`` value
    key: bytes
    body: Registration  # for what a projection describes: name, country, domain


@dataclass(frozen=True, slots=True)
class StatementAdded:
    """``statement`` (rule 6): a new statement, every tally at zero."""

    index: int
    signed_at: int
    statement: bytes  # its id: the record id of the statement record
    body: Statement  # for what a projection describes: title, authors, text


@dataclass(frozen=True, slots=True)
class Endorsed:
    """``endorse`` (rule 7): the endorsement of (signatory, statement) is active."""

    index: int
    signed_at: int
    signatory: bytes
    signatory_kind: str  # the endorser's kind: the tally it counts in
    statement: bytes
    comment: str | None


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """``withdraw`` (rule 8): the endorsement of (signatory, statement) is no longer
    active."""

    index: int
    signed_at: int
    signatory: bytes
    signatory_kind: str  # the tally its endorsement counted in
    statement: bytes


@dataclass(frozen=True, slots=True)
class Rotated:
    """``rotate`` (rule 10): ``new_key`` replaces ``old_key`` as the signatory's current
    key."""

    index: int
    signed_at: int
    signatory: bytes
    old_key: bytes
    new_key: bytes


@dataclass(frozen=True, slots=True)
class Revoked:
    """``revoke`` (rule 11): ``key`` (one of the signatory's keys) is revoked.

    ``deactivates`` says it was the signatory's current key: the signatory may then
    sign nothing more, and its active endorsements stay counted.
    """

    index: int
    signed_at: int
    signatory: bytes
    key: bytes
    deactivates: bool


#: The change one valid entry makes to the state.
Effect: TypeAlias = Registered | StatementAdded | Endorsed | Withdrawn | Rotated | Revoked


class ProjectionSink(Protocol):
    """The write side of a projection of the log, as :func:`apply` drives it.

    Each method records one fact; the sink need not check anything (the rules did).
    """

    def add_signatory(self, signatory: bytes, body: Registration, index: int) -> None:
        """A new signatory, registered at entry ``index``: kind, name and so on from
        ``body``, active, its current key ``body.key``."""

    def add_key(self, signatory: bytes, key: bytes, key_hash: bytes, index: int) -> None:
        """``key`` (of hash ``key_hash``) now belongs to ``signatory``, not revoked;
        ``index`` is the entry that brought it (registration or rotation)."""

    def set_current_key(self, signatory: bytes, key: bytes) -> None:
        """``signatory`` signs with ``key`` from now on."""

    def revoke_key(self, key_hash: bytes) -> None:
        """The key of hash ``key_hash`` is revoked."""

    def deactivate(self, signatory: bytes) -> None:
        """``signatory``'s current key was revoked: it may sign nothing more."""

    def add_statement(self, statement: bytes, body: Statement, index: int) -> None:
        """A new statement of id ``statement`` at entry ``index``, every tally zero."""

    def set_pair(
        self,
        signatory: bytes,
        statement: bytes,
        *,
        active: bool,
        signed_at: int,
        index: int,
        comment: str | None,
    ) -> None:
        """The endorsement state of (``signatory``, ``statement``) after entry ``index``."""

    def add_to_tally(self, statement: bytes, kind: str, delta: int) -> None:
        """Add ``delta`` to ``statement``'s count of endorsements by signatories of ``kind``."""


def apply(effect: Effect, sink: ProjectionSink) -> None:
    """Apply the effect of a valid entry (``ledger.core.rules.evaluate``) to ``sink``."""
    match effect:
        # Endorsements first: by far the most common entries.
        case Endorsed():
            sink.set_pair(
                effect.signatory,
                effect.statement,
                active=True,
                signed_at=effect.signed_at,
                index=effect.index,
                comment=effect.comment,
            )
            sink.add_to_tally(effect.statement, effect.signatory_kind, 1)
        case Withdrawn():
            sink.set_pair(
                effect.signatory,
                effect.statement,
                active=False,
                signed_at=effect.signed_at,
                index=effect.index,
                comment=None,
            )
            sink.add_to_tally(effect.statement, effect.signatory_kind, -1)
        case StatementAdded():
            sink.add_statement(effect.statement, effect.body, effect.index)
        case Registered():
            sink.add_signatory(effect.signatory, effect.body, effect.index)
            sink.add_key(effect.signatory, effect.key, effect.signatory, effect.index)
        case Rotated():
            sink.add_key(effect.signatory, effect.new_key, key_hash(effect.new_key), effect.index)
            sink.set_current_key(effect.signatory, effect.new_key)
        case Revoked():
            sink.revoke_key(key_hash(effect.key))
            if effect.deactivates:
                sink.deactivate(effect.signatory)
        case _:  # pragma: no cover - mypy proves it unreachable
            assert_never(effect)


__all__ = [
    "Effect",
    "Endorsed",
    "ProjectionSink",
    "Registered",
    "Revoked",
    "Rotated",
    "StatementAdded",
    "Withdrawn",
    "apply",
]
