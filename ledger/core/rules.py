"""The semantic rules of the log (docs/spec.md, "Semantic rules").

A record that parses and whose signatures verify (``ledger.core.records.verify_signatures``)
may still be invalid at its point of the log: its signer may be unknown, rotated
away or revoked, it may endorse a statement the log does not hold, and so on.
:func:`evaluate` decides that against a read-only :class:`StateView` of the log
before the entry and returns the effect the entry has on that state: one of the typed
effects of :mod:`ledger.core.effects`, which ``ledger.core.effects.apply`` applies.

The same function serves the service (whose view is its database, read inside the
sequencing transaction) and the verifier (whose view is :class:`ledger.core.state.MemoryState`),
so that both apply exactly one set of rules.

Replays need no global set of record ids: a replayed registration, statement,
rotation or revocation is rejected by the rules themselves (the key is taken, the
statement exists, the key is no longer current, the key is already revoked), and
endorsements and withdrawals of one (signatory, statement) pair must carry strictly
increasing ``signed_at`` times, so an old endorsement or withdrawal cannot be
replayed after a later one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ledger.core.ed25519 import key_hash
from ledger.core.effects import (
    Effect,
    Endorsed,
    Registered,
    Revoked,
    Rotated,
    StatementAdded,
    Withdrawn,
)
from ledger.core.errors import RuleError
from ledger.core.records import (
    Endorsement,
    Registration,
    Revocation,
    Rotation,
    SignedRecord,
    Statement,
    Withdrawal,
)

#: How far ``signed_at`` may lie after the entry's integration time (clock skew).
MAX_FUTURE_SKEW_S = 300
#: Default limit on how far ``signed_at`` may lie before the integration time.
DEFAULT_MAX_AGE_S = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class SignatoryInfo:
    """What the rules need to know of a registered signatory."""

    signatory: bytes  # signatory id: SHA-256 of the registration key
    kind: str
    current_key: bytes  # raw 32-byte Ed25519 key now in force
    active: bool  # False once its current key was revoked


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key the log has seen, by key hash."""

    signatory: bytes
    public_key: bytes
    revoked: bool


@dataclass(frozen=True, slots=True)
class PairInfo:
    """The endorsement state of one (signatory, statement) pair."""

    active: bool
    last_signed_at: int


class StateView(Protocol):
    """Read-only access to the state of the log before the entry under evaluation."""

    def get_signatory(self, signatory: bytes) -> SignatoryInfo | None: ...

    def get_key(self, key_hash: bytes) -> KeyInfo | None: ...

    def has_statement(self, statement: bytes) -> bool: ...

    def get_pair(self, signatory: bytes, statement: bytes) -> PairInfo | None: ...


def _fail(message: str, index: int, field: str | None = None, **kw: object) -> RuleError:
    return RuleError(message, index=index, field=field, **kw)  # type: ignore[arg-type]


def _check_time(signed_at: int, time_ms: int, index: int, max_age_s: int | None) -> None:
    integration_s = time_ms // 1000
    if signed_at > integration_s + MAX_FUTURE_SKEW_S:
        raise _fail(
            f"signed_at lies more than {MAX_FUTURE_SKEW_S} s after the integration time",
            index,
            "signed_at",
            code="clock_skew",
            expected=f"<= {integration_s + MAX_FUTURE_SKEW_S}",
            found=signed_at,
        )
    if max_age_s is not None and signed_at < integration_s - max_age_s:
        raise _fail(
            f"signed_at is more than {max_age_s} s older than the integration time",
            index,
            "signed_at",
            code="too_old",
            expected=f">= {integration_s - max_age_s}",
            found=signed_at,
        )


def _acting(
    view: StateView, signatory: bytes, signer_key: bytes, index: int, field: str = "signatory"
) -> SignatoryInfo:
    """The signatory acting through ``signer_key``, which must be its current key.

    ``field`` is where the record names the signatory (``author`` in a statement).
    """
    info = view.get_signatory(signatory)
    if info is None:
        raise _fail(
            "signatory is not registered",
            index,
            field,
            code="unknown_signatory",
            found=signatory.hex(),
        )
    if not info.active:
        raise _fail(
            "signatory's key was revoked; it may sign nothing more",
            index,
            field,
            code="key_revoked",
            found=signatory.hex(),
        )
    if signer_key != info.current_key:
        known = view.get_key(key_hash(signer_key))
        if known is not None and known.signatory == signatory:
            raise _fail(
                "signed with a key that was rotated away",
                index,
                "sig",
                code="key_rotated",
                expected=info.current_key,
                found=signer_key,
            )
        raise _fail(
            "signed with a key that is not the signatory's current key",
            index,
            "sig",
            code="wrong_key",
            expected=info.current_key,
            found=signer_key,
        )
    return info


def evaluate(
    record: SignedRecord,
    *,
    index: int,
    time_ms: int,
    origin: str,
    view: StateView,
    max_age_s: int | None = DEFAULT_MAX_AGE_S,
) -> Effect:
    """Apply the semantic rules to ``record`` sequenced at ``index``; raise RuleError.

    The record's signatures must already have been verified
    (``ledger.core.records.verify_signatures``); this checks who signed, not whether.
    """
    body = record.body
    if body.log != origin:
        raise _fail(
            "record is bound to another log",
            index,
            "log",
            code="wrong_log",
            expected=origin,
            found=body.log,
        )
    _check_time(body.signed_at, time_ms, index, max_age_s)
    sigs = record.signatures

    if isinstance(body, Registration):
        kh = key_hash(body.key)
        if view.get_key(kh) is not None:
            raise _fail(
                "key is already registered or was used by a signatory",
                index,
                "key",
                code="already_registered",
                found=kh.hex(),
            )
        return Registered(index, body.signed_at, kh, body.kind.value, body.key, body)

    if isinstance(body, Statement):
        if view.has_statement(record.record_id):
            raise _fail(
                "statement is already in the log",
                index,
                code="duplicate",
                found=record.record_id.hex(),
            )
        for author, sig in zip(body.authors, sigs, strict=True):
            _acting(view, author, sig.public_key, index, "author")
        return StatementAdded(index, body.signed_at, record.record_id, body)

    if isinstance(body, Endorsement | Withdrawal):
        info = _acting(view, body.signatory, sigs[0].public_key, index)
        if not view.has_statement(body.statement):
            raise _fail(
                "no such statement in the log",
                index,
                "statement",
                code="unknown_statement",
                found=body.statement.hex(),
            )
        pair = view.get_pair(body.signatory, body.statement)
        if pair is not None and body.signed_at <= pair.last_signed_at:
            raise _fail(
                "signed_at must increase for each signatory and statement (replay?)",
                index,
                "signed_at",
                code="replay",
                expected=f"> {pair.last_signed_at}",
                found=body.signed_at,
            )
        if isinstance(body, Endorsement):
            if pair is not None and pair.active:
                raise _fail(
                    "signatory already endorses this statement",
                    index,
                    "statement",
                    code="already_endorsed",
                )
            return Endorsed(
                index, body.signed_at, body.signatory, info.kind, body.statement, body.comment
            )
        if pair is None or not pair.active:
            raise _fail(
                "signatory has no active endorsement of this statement",
                index,
                "statement",
                code="not_endorsed",
            )
        return Withdrawn(index, body.signed_at, body.signatory, info.kind, body.statement)

    if isinstance(body, Rotation):
        info = _acting(view, body.signatory, sigs[0].public_key, index)
        if view.get_key(key_hash(body.new_key)) is not None:
            raise _fail(
                "new key was already used by a signatory",
                index,
                "new_key",
                code="key_reused",
                found=key_hash(body.new_key).hex(),
            )
        return Rotated(index, body.signed_at, body.signatory, info.current_key, body.new_key)

    if isinstance(body, Revocation):
        revoked = view.get_key(key_hash(body.key))
        if revoked is None or revoked.signatory != body.signatory:
            raise _fail(
                "key does not belong to this signatory",
                index,
                "key",
                code="unknown_key",
                found=key_hash(body.key).hex(),
            )
        if revoked.revoked:
            raise _fail("key is already revoked", index, "key", code="already_revoked")
        signer = sigs[0].public_key
        owner = view.get_signatory(body.signatory)
        assert owner is not None  # a known key always has its signatory
        if signer != body.key:
            # Signed by the successor: the signatory's current key must sign.
            _acting(view, body.signatory, signer, index)
        # Otherwise the key revokes itself, which even a rotated-away key may do: its
        # holder (perhaps a thief) can only make the key worth less.
        return Revoked(
            index, body.signed_at, body.signatory, body.key, body.key == owner.current_key
        )

    raise _fail(f"unknown record type {type(body).__name__}", index)  # pragma: no cover
