"""The state of a log replayed in memory, and the tallies it publishes.

:class:`MemoryState` is the :class:`ledger.core.rules.StateView` the verifier replays a
log into: it applies each entry's effect (``ledger.core.effects``) in log order and
keeps what the rules and the tallies need (docs/spec.md, "Semantic rules" and
"Tallies"). Memory grows with the number of signatories, statements and
(signatory, statement) pairs, not with the number of entries; pairs are kept as
small integers in a :class:`PairTable` (16 bytes a pair), so that a million
endorsements fit in well under 200 MB.
"""

from __future__ import annotations

import array
import bisect
import itertools
import operator
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ledger.core.ed25519 import key_hash
from ledger.core.effects import Effect, apply
from ledger.core.encoding import b64decode_strict, b64encode, parse_hex32
from ledger.core.entry import ZERO_HASH, Entry
from ledger.core.errors import FormatError, VerificationError
from ledger.core.records import Kind, Registration, Statement
from ledger.core.rules import (
    DEFAULT_MAX_AGE_S,
    KeyInfo,
    PairInfo,
    SignatoryInfo,
    evaluate,
)

#: The signatory kinds, in the order of ``Kind``: the numbering of the kinds and the
#: order of the tally columns of the binary state file (``ledger.verify.statecodec``),
#: so part of its format (tests/test_effects.py pins it).
KINDS: tuple[str, ...] = tuple(k.value for k in Kind)


@dataclass(slots=True)
class SignatoryRecord:
    """A registered signatory as the log describes it."""

    signatory: bytes
    name: str
    kind: str
    country: str | None
    domain: str | None
    index: int
    current_key: bytes
    active: bool = True
    keys: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class StatementRecord:
    """A statement in the log, with its live tallies."""

    statement: bytes
    title: str
    authors: tuple[bytes, ...]
    index: int
    tallies: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.tallies.values())


class PairTable:
    """A map of uint64 keys to uint64 values in about 16 bytes an entry.

    A dict of Python ints costs some 110 bytes an entry, 100 MB for the million
    (signatory, statement) pairs of a large log. Here the keys are a sorted
    ``array('Q')`` with the values beside them, searched with ``bisect``; keys new
    since the last merge wait in a small dict, merged in when it reaches
    :data:`MERGE_AT` entries (sort the new keys, then copy runs of the old arrays
    between them).
    """

    MERGE_AT = 1 << 15

    __slots__ = ("_keys", "_new", "_values")

    def __init__(self) -> None:
        self._keys = array.array("Q")
        self._values = array.array("Q")
        self._new: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._keys) + len(self._new)

    def get(self, key: int) -> int | None:
        value = self._new.get(key)
        if value is not None:
            return value
        keys = self._keys
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return self._values[i]
        return None

    def __setitem__(self, key: int, value: int) -> None:
        if key not in self._new:
            keys = self._keys
            i = bisect.bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                self._values[i] = value
                return
        self._new[key] = value
        if len(self._new) >= self.MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        if not self._new:
            return
        keys, values = self._keys, self._values
        out_keys, out_values = array.array("Q"), array.array("Q")
        i = 0
        for key, value in sorted(self._new.items()):
            j = bisect.bisect_left(keys, key, i)  # new keys are never in ``keys``
            out_keys.extend(keys[i:j])
            out_values.extend(values[i:j])
            out_keys.append(key)
            out_values.append(value)
            i = j
        out_keys.extend(keys[i:])
        out_values.extend(values[i:])
        self._keys, self._values, self._new = out_keys, out_values, {}

    def arrays(self) -> tuple[array.array[int], array.array[int]]:
        """All keys, sorted, and their values."""
        self._merge()
        return self._keys, self._values

    @classmethod
    def from_arrays(cls, keys: array.array[int], values: array.array[int]) -> PairTable:
        """A table of ``keys`` (strictly increasing) and their ``values``."""
        if len(keys) != len(values):
            raise ValueError("keys and values differ in length")
        if not all(map(operator.lt, keys, itertools.islice(keys, 1, None))):
            raise ValueError("keys are not strictly increasing")
        table = cls()
        table._keys, table._values = keys, values
        return table

    @classmethod
    def from_saved(cls, keys: array.array[int], values: array.array[int]) -> PairTable:
        """The table of two saved little-endian arrays (swapped in place on big-endian
        hosts); raise FormatError unless the keys are strictly increasing."""
        if sys.byteorder != "little":  # pragma: no cover - saved states are little-endian
            keys.byteswap()
            values.byteswap()
        try:
            return cls.from_arrays(keys, values)
        except ValueError as e:
            raise FormatError(f"pairs are damaged: {e}", field="pair_keys") from None


class MemoryState:
    """An in-memory replay of a log: a ``ledger.core.rules.StateView`` and a
    ``ledger.core.effects.ProjectionSink``, fed entry by entry with :meth:`append`."""

    def __init__(self, origin: str, *, max_age_s: int | None = DEFAULT_MAX_AGE_S) -> None:
        self.origin = origin
        self.max_age_s = max_age_s
        self.size = 0
        self.signatories: dict[bytes, SignatoryRecord] = {}
        self.statements: dict[bytes, StatementRecord] = {}
        self._keys: dict[bytes, tuple[bytes, bytes, bool]] = {}  # hash -> (sig, key, revoked)
        self._ids: dict[bytes, int] = {}  # signatory or statement id -> small int
        self._pairs = PairTable()  # (stmt<<32 | sig) -> last_signed_at*2 + active
        # Caches for the replay's hot path (evaluate asks, then apply changes, the same
        # signatory and pair): the rules' view of each signatory, dropped when it
        # changes, and the last pair key, recognised by the identity of its two ids.
        self._infos: dict[bytes, SignatoryInfo] = {}
        self._pair_memo: tuple[object, object, int] = (None, None, 0)
        self.last_time_ms = 0
        self.last_leaf_hash = ZERO_HASH  # the next entry's ``prev``

    # --- StateView -------------------------------------------------------------

    def get_signatory(self, signatory: bytes) -> SignatoryInfo | None:
        info = self._infos.get(signatory)
        if info is None:
            s = self.signatories.get(signatory)
            if s is None:
                return None
            info = SignatoryInfo(s.signatory, s.kind, s.current_key, s.active)
            self._infos[signatory] = info
        return info

    def get_key(self, key_hash: bytes) -> KeyInfo | None:
        k = self._keys.get(key_hash)
        return None if k is None else KeyInfo(k[0], k[1], k[2])

    def has_statement(self, statement: bytes) -> bool:
        return statement in self.statements

    def get_pair(self, signatory: bytes, statement: bytes) -> PairInfo | None:
        v = self._pairs.get(self._pair_key(signatory, statement))
        return None if v is None else PairInfo(bool(v & 1), v >> 1)

    # --- applying ----------------------------------------------------------------

    def _small(self, ident: bytes) -> int:
        n = self._ids.get(ident)
        if n is None:
            n = self._ids[ident] = len(self._ids)
        return n

    def _pair_key(self, signatory: bytes, statement: bytes) -> int:
        memo = self._pair_memo
        if memo[0] is signatory and memo[1] is statement:
            return memo[2]
        key = (self._small(statement) << 32) | self._small(signatory)
        self._pair_memo = (signatory, statement, key)
        return key

    # --- ledger.core.effects.ProjectionSink ------------------------------------------

    def add_signatory(self, signatory: bytes, body: Registration, index: int) -> None:
        self._infos.pop(signatory, None)
        self.signatories[signatory] = SignatoryRecord(
            signatory, body.name, body.kind.value, body.country, body.domain, index, body.key
        )

    def add_key(self, signatory: bytes, key: bytes, key_hash: bytes, index: int) -> None:
        self.signatories[signatory].keys.append(key)
        self._keys[key_hash] = (signatory, key, False)

    def set_current_key(self, signatory: bytes, key: bytes) -> None:
        self._infos.pop(signatory, None)
        self.signatories[signatory].current_key = key

    def revoke_key(self, key_hash: bytes) -> None:
        sig, pub, _ = self._keys[key_hash]
        self._keys[key_hash] = (sig, pub, True)

    def deactivate(self, signatory: bytes) -> None:
        self._infos.pop(signatory, None)
        self.signatories[signatory].active = False

    def add_statement(self, statement: bytes, body: Statement, index: int) -> None:
        self.statements[statement] = StatementRecord(
            statement, body.title, tuple(body.authors), index
        )

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
        self._pairs[self._pair_key(signatory, statement)] = signed_at * 2 + int(active)

    def add_to_tally(self, statement: bytes, kind: str, delta: int) -> None:
        tallies = self.statements[statement].tallies
        n = tallies[kind] + delta
        if n:
            tallies[kind] = n
        else:  # the saved forms list the kinds with endorsements only
            del tallies[kind]

    def check_place(self, entry: Entry) -> None:
        """Rules 13 and 14: ``entry`` must be number ``size``, link to the previous leaf
        hash and not go back in time; raise VerificationError naming the field."""
        i = self.size
        if entry.index != i:
            raise VerificationError(
                "entry is out of place (dropped, duplicated or reordered entries?)",
                code="broken_chain",
                index=i,
                field="index",
                expected=i,
                found=entry.index,
            )
        if entry.prev != self.last_leaf_hash:
            raise VerificationError(
                "prev is not the leaf hash of the previous entry",
                code="broken_chain",
                index=i,
                field="prev",
                expected=self.last_leaf_hash,
                found=entry.prev,
            )
        if entry.time_ms < self.last_time_ms:
            raise VerificationError(
                "integration time goes back",
                code="time_decreased",
                index=i,
                field="time",
                expected=f">= {self.last_time_ms}",
                found=entry.time_ms,
            )

    def append(self, entry: Entry, leaf_hash: bytes, *, placed: bool = False) -> Effect:
        """Check an entry's place (:meth:`check_place`) and rules, apply it; return its effect.

        The entry's signatures must already be verified
        (``ledger.core.records.verify_signatures``). Raises VerificationError (RuleError
        for the semantic rules) naming the entry and the field, and then applies
        nothing. ``leaf_hash`` is the entry's leaf hash: the next entry's ``prev``.
        ``placed`` says the caller has just run :meth:`check_place` on ``entry``.
        """
        if not placed:
            self.check_place(entry)
        i = self.size
        effect = evaluate(
            entry.record,
            index=i,
            time_ms=entry.time_ms,
            origin=self.origin,
            view=self,
            max_age_s=self.max_age_s,
        )
        apply(effect, self)
        self.size = i + 1
        self.last_leaf_hash = leaf_hash
        self.last_time_ms = entry.time_ms
        return effect

    # --- saving and restoring --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to continue the replay, as JSON-ready data.

        Sizes grow with signatories, statements and pairs; the pairs, by far the most
        numerous, are packed as two arrays of uint64 (little-endian) in base64: the
        keys, sorted, and their values.
        """
        pair_keys, pair_values = self._pairs.arrays()
        if sys.byteorder != "little":  # pragma: no cover - the file is little-endian
            pair_keys, pair_values = array.array("Q", pair_keys), array.array("Q", pair_values)
            pair_keys.byteswap()
            pair_values.byteswap()
        return {
            "origin": self.origin,
            "max_age_s": self.max_age_s,
            "size": self.size,
            "last_time_ms": self.last_time_ms,
            "last_leaf_hash": self.last_leaf_hash.hex(),
            "signatories": [
                [
                    s.signatory.hex(),
                    s.name,
                    s.kind,
                    s.country,
                    s.domain,
                    s.index,
                    [b64encode(k) for k in s.keys],
                    b64encode(s.current_key),
                    s.active,
                ]
                for s in self.signatories.values()
            ],
            "statements": [
                [
                    st.statement.hex(),
                    st.title,
                    [a.hex() for a in st.authors],
                    st.index,
                    dict(sorted(st.tallies.items())),
                ]
                for st in self.statements.values()
            ],
            "revoked_keys": sorted(kh.hex() for kh, k in self._keys.items() if k[2]),
            "ids": b64encode(b"".join(self._ids)),
            "pair_keys": b64encode(pair_keys.tobytes()),
            "pair_values": b64encode(pair_values.tobytes()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryState:
        """Restore what :meth:`to_dict` saved; raise FormatError if it does not fit."""
        try:
            st = cls(data["origin"], max_age_s=data["max_age_s"])
            st.size = int(data["size"])
            st.last_time_ms = int(data["last_time_ms"])
            st.last_leaf_hash = parse_hex32(data["last_leaf_hash"], field="last_leaf_hash")
            for sid, name, kind, country, domain, index, keys, current, active in data[
                "signatories"
            ]:
                ident = parse_hex32(sid, field="signatories")
                raw_keys = [b64decode_strict(k, field="signatories", length=32) for k in keys]
                st.signatories[ident] = SignatoryRecord(
                    ident,
                    name,
                    kind,
                    country,
                    domain,
                    int(index),
                    b64decode_strict(current, field="signatories", length=32),
                    bool(active),
                    raw_keys,
                )
                for k in raw_keys:
                    st._keys[key_hash(k)] = (ident, k, False)
            for kh in data["revoked_keys"]:
                h = parse_hex32(kh, field="revoked_keys")
                sig, pub, _ = st._keys[h]
                st._keys[h] = (sig, pub, True)
            for sid, title, authors, index, tallies in data["statements"]:
                ident = parse_hex32(sid, field="statements")
                st.statements[ident] = StatementRecord(
                    ident,
                    title,
                    tuple(parse_hex32(a, field="statements") for a in authors),
                    int(index),
                    Counter({str(k): int(v) for k, v in tallies.items()}),
                )
            ids = b64decode_strict(data["ids"], field="ids")
            if len(ids) % 32:
                raise FormatError("ids is not a list of 32-byte ids", field="ids")
            st._ids = {ids[i : i + 32]: i // 32 for i in range(0, len(ids), 32)}
            keys_arr = array.array("Q", b64decode_strict(data["pair_keys"], field="pair_keys"))
            values_arr = array.array(
                "Q", b64decode_strict(data["pair_values"], field="pair_values")
            )
        except FormatError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise FormatError(f"not a saved replay state: {e!r}", field="state") from None
        if len(keys_arr) != len(values_arr):
            raise FormatError("pair arrays differ in length", field="pair_values")
        st._pairs = PairTable.from_saved(keys_arr, values_arr)
        return st

    # --- reading -------------------------------------------------------------------

    def signatories_by_kind(self) -> dict[str, int]:
        c = Counter(s.kind for s in self.signatories.values())
        return {k: c.get(k, 0) for k in KINDS}

    def signatory_for_key(self, key_hash_: bytes) -> SignatoryRecord | None:
        k = self._keys.get(key_hash_)
        return None if k is None else self.signatories.get(k[0])

    def active_endorsers(self, statement: bytes) -> list[bytes]:
        """The signatories with an active endorsement of ``statement`` (any order)."""
        number = self._ids.get(statement)
        if number is None:
            return []
        keys, values = self._pairs.arrays()
        lo = bisect.bisect_left(keys, number << 32)
        hi = bisect.bisect_left(keys, (number + 1) << 32)
        by_number = {n: ident for ident, n in self._ids.items()}
        mask = (1 << 32) - 1
        return [by_number[keys[i] & mask] for i in range(lo, hi) if values[i] & 1]

    def summary(self) -> dict[str, object]:
        """The published tallies (docs/spec.md, "Tallies") as plain data."""
        return {
            "origin": self.origin,
            "size": self.size,
            "signatories": len(self.signatories),
            "signatories_by_kind": self.signatories_by_kind(),
            "statements": [
                {
                    "id": st.statement.hex(),
                    "title": st.title,
                    "index": st.index,
                    "endorsements": st.total,
                    "endorsements_by_kind": {k: st.tallies.get(k, 0) for k in KINDS},
                }
                for st in sorted(self.statements.values(), key=lambda s: s.index)
            ],
        }


__all__ = ["KINDS", "MemoryState", "PairTable", "SignatoryRecord", "StatementRecord", "evaluate"]
