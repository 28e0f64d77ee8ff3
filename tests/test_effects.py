"""The typed effects and their one interpreter (``ledger.core.effects``), and the
signatory kinds, whose order is part of the binary state-file layout.

:func:`ledger.core.effects.apply` is checked call by call against a recording sink;
the two real sinks (``MemoryState``, ``TxState``) are checked to offer the sink's
methods with its signatures (mypy checks the same where they call ``apply``), and
their agreement with the rules' model is the Hypothesis machine of
``tests/test_rules.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import re
import struct
import typing
from pathlib import Path

import pytest
from logfactory import LogFactory

from api.storage.txstate import TxState
from ledger.core.effects import (
    Effect,
    Endorsed,
    ProjectionSink,
    Registered,
    Revoked,
    Rotated,
    StatementAdded,
    Withdrawn,
    apply,
)
from ledger.core.entry import parse_entry
from ledger.core.merkle import leaf_hash
from ledger.core.records import BODY_TYPES, Kind, Registration, Statement
from ledger.core.rules import PairInfo
from ledger.core.state import KINDS, MemoryState
from ledger.mirror.site.pages import KIND_LABELS
from ledger.verify import statecodec

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "ledger.example.org/effects-test"
SIG = hashlib.sha256(b"key A").digest()
STMT = hashlib.sha256(b"statement").digest()
KEY_A, KEY_B = b"A" * 32, b"B" * 32
REGISTRATION = Registration(ORIGIN, 100, KEY_A, "Signatory A", Kind.COMPANY, "FR", "a.example")
STATEMENT = Statement(ORIGIN, 101, "Title", (SIG,), "Text.\n")


# --- the kinds ------------------------------------------------------------------------


#: The signatory kinds in the order of the binary state file (``ledger.verify.statecodec``):
#: the n-th kind is stored as the byte n and is the n-th tally column. Reordering
#: ``Kind`` would change what every saved state means.
PINNED_KINDS = ("state", "company", "civil-society", "individual", "other")


def test_kinds_order_is_pinned() -> None:
    assert KINDS == PINNED_KINDS
    assert tuple(k.value for k in Kind) == KINDS


def test_every_list_of_kinds_is_kinds() -> None:
    """The other places that name the kinds, which cannot import KINDS: the site's
    labels (in the order of its tally columns) and the JavaScript verifier's list."""
    assert tuple(KIND_LABELS) == KINDS
    js = (ROOT / "ledger" / "mirror" / "js" / "records.js").read_text(encoding="utf-8")
    m = re.search(r"^export const KINDS = \[(.*)\];$", js, re.MULTILINE)
    assert m is not None
    assert tuple(k.strip().strip("'") for k in m.group(1).split(",")) == KINDS


#: The prelude of the binary state file: flag, max_age, size, last_time_ms,
#: last_leaf_hash, then the counts of signatories, statements, keys, authors, revoked
#: keys, ids, text bytes and pairs.
PRELUDE = struct.Struct("<BQQQ32sIIIIIIQQ")


def test_kinds_order_in_the_state_file() -> None:
    """Signatories of every kind (registered out of kind order) and a statement with a
    different count for each kind: the kind bytes and tally columns follow KINDS."""
    f = LogFactory(ORIGIN, seed="kinds")
    order = [Kind.OTHER, Kind.STATE, Kind.INDIVIDUAL, Kind.CIVIL_SOCIETY, Kind.COMPANY]
    members = [f.register(kind) for kind in order for _ in range(order.index(kind) + 1)]
    st = f.statement(members[:1])
    for m in members:
        f.endorse(m, st)
    state = MemoryState(ORIGIN, max_age_s=None)
    for data in f.entries:
        state.append(parse_entry(data), leaf_hash(data))
    data = statecodec.encode(state)

    counts = PRELUDE.unpack_from(data)[5:]
    n_sigs, n_stmts, _, _, n_revoked, n_ids, n_text, n_pairs = counts
    assert (n_sigs, n_stmts, n_revoked) == (len(members), 1, 0)
    # Kind bytes: after the prelude, the string lengths (origin, three per signatory,
    # one title), the text and the signatory ids.
    at = PRELUDE.size + 4 * (1 + 3 * n_sigs + n_stmts) + n_text + 32 * n_sigs
    kind_bytes = data[at : at + n_sigs]
    assert list(kind_bytes) == [PINNED_KINDS.index(m.kind.value) for m in members]
    assert [PINNED_KINDS[b] for b in kind_bytes] == [s.kind for s in state.signatories.values()]
    # Tallies: the last column before the revoked keys, the ids and the pair arrays.
    end = len(data) - 32 * n_revoked - 32 * n_ids - 16 * n_pairs
    tallies = struct.unpack_from("<5q", data, end - 8 * 5)
    assert tallies == tuple(order.index(Kind(k)) + 1 for k in PINNED_KINDS)
    assert statecodec.decode(data).statements[st].tallies == state.statements[st].tallies


# --- the effects ------------------------------------------------------------------------


def test_one_effect_type_per_record_type() -> None:
    types = typing.get_args(Effect)
    assert len(types) == len(BODY_TYPES) == 6
    for t in types:
        assert dataclasses.is_dataclass(t)
        assert {"index", "signed_at"} <= {f.name for f in dataclasses.fields(t)}


def test_effects_are_frozen() -> None:
    effect = Endorsed(5, 100, SIG, "state", STMT, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        effect.signatory_kind = "company"  # type: ignore[misc]


# --- apply, call by call -------------------------------------------------------------------

SINK_METHODS = sorted(
    name
    for name, member in vars(ProjectionSink).items()
    if callable(member) and not name.startswith("_")
)


class RecordingSink:
    """A ProjectionSink that records each call as (method, args, kwargs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []

    def __getattr__(self, name: str) -> typing.Callable[..., None]:
        if name not in SINK_METHODS:
            raise AttributeError(name)

        def record(*args: object, **kwargs: object) -> None:
            self.calls.append((name, args, kwargs))

        return record


def calls(effect: Effect) -> list[tuple[str, tuple[object, ...], dict[str, object]]]:
    sink = RecordingSink()
    apply(effect, typing.cast(ProjectionSink, sink))
    return sink.calls


def pair(active: bool, signed_at: int, index: int, comment: str | None) -> dict[str, object]:
    return {"active": active, "signed_at": signed_at, "index": index, "comment": comment}


def test_sink_methods() -> None:
    assert SINK_METHODS == [
        "add_key",
        "add_signatory",
        "add_statement",
        "add_to_tally",
        "deactivate",
        "revoke_key",
        "set_current_key",
        "set_pair",
    ]


def test_apply_registered() -> None:
    effect = Registered(0, 100, SIG, "company", KEY_A, REGISTRATION)
    assert calls(effect) == [
        ("add_signatory", (SIG, REGISTRATION, 0), {}),
        ("add_key", (SIG, KEY_A, SIG, 0), {}),  # a signatory's id is its first key's hash
    ]


def test_apply_statement_added() -> None:
    assert calls(StatementAdded(1, 101, STMT, STATEMENT)) == [
        ("add_statement", (STMT, STATEMENT, 1), {})
    ]


def test_endorsement_counts_one_for_its_kind_and_withdrawal_takes_it_away() -> None:
    assert calls(Endorsed(7, 105, SIG, "civil-society", STMT, "Yes.")) == [
        ("set_pair", (SIG, STMT), pair(True, 105, 7, "Yes.")),
        ("add_to_tally", (STMT, "civil-society", 1), {}),
    ]
    assert calls(Withdrawn(9, 107, SIG, "civil-society", STMT)) == [
        ("set_pair", (SIG, STMT), pair(False, 107, 9, None)),
        ("add_to_tally", (STMT, "civil-society", -1), {}),
    ]


def test_apply_rotated() -> None:
    assert calls(Rotated(3, 103, SIG, KEY_A, KEY_B)) == [
        ("add_key", (SIG, KEY_B, hashlib.sha256(KEY_B).digest(), 3), {}),
        ("set_current_key", (SIG, KEY_B), {}),
    ]


@pytest.mark.parametrize("deactivates", [True, False])
def test_apply_revoked(deactivates: bool) -> None:
    revoke = ("revoke_key", (hashlib.sha256(KEY_A).digest(),), {})
    expected = [revoke, ("deactivate", (SIG,), {})] if deactivates else [revoke]
    assert calls(Revoked(4, 104, SIG, KEY_A, deactivates)) == expected


def test_apply_rejects_what_is_not_an_effect() -> None:
    with pytest.raises(AssertionError):
        apply(typing.cast(Effect, object()), typing.cast(ProjectionSink, RecordingSink()))


# --- the two sinks -------------------------------------------------------------------------


@pytest.mark.parametrize("sink", [MemoryState, TxState], ids=["MemoryState", "TxState"])
@pytest.mark.parametrize("method", SINK_METHODS)
def test_the_projections_are_sinks(sink: type, method: str) -> None:
    """Each sink method, with the Protocol's parameters (names, kinds, annotations)."""
    want = inspect.signature(getattr(ProjectionSink, method))
    assert inspect.signature(getattr(sink, method)) == want


def test_memory_state_applies_through_the_one_apply() -> None:
    """A withdrawal that empties a kind's tally drops it from the saved tallies, and the
    rules' view sees the new current key and the deactivation at once."""
    state = MemoryState(ORIGIN, max_age_s=None)
    for effect in (
        Registered(0, 100, SIG, "company", KEY_A, REGISTRATION),
        StatementAdded(1, 101, STMT, STATEMENT),
        Endorsed(2, 102, SIG, "company", STMT, None),
    ):
        apply(effect, state)
    assert state.statements[STMT].tallies == {"company": 1}
    assert state.get_pair(SIG, STMT) == PairInfo(True, 102)
    apply(Withdrawn(3, 103, SIG, "company", STMT), state)
    assert dict(state.statements[STMT].tallies) == {}
    assert state.get_pair(SIG, STMT) == PairInfo(False, 103)
    info = state.get_signatory(SIG)  # cached by the rules' view ...
    assert info is not None and info.current_key == KEY_A
    apply(Rotated(4, 104, SIG, KEY_A, KEY_B), state)
    info = state.get_signatory(SIG)  # ... and dropped when the signatory changes
    assert info is not None and (info.current_key, info.active) == (KEY_B, True)
    apply(Revoked(5, 105, SIG, KEY_B, True), state)
    info = state.get_signatory(SIG)
    assert info is not None and not info.active
    kb = state.get_key(hashlib.sha256(KEY_B).digest())
    assert kb is not None and kb.revoked
    assert state.signatories[SIG].keys == [KEY_A, KEY_B]
