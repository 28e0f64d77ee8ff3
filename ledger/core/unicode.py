"""The Unicode of docs/spec.md ("Field values"): one pinned version, 14.0.0.

Which characters a line text or a long text may hold depends on General_Category and on
whether a code point is assigned, and both change between Unicode versions: U+13439,
unassigned in 14.0, was added in 15.0 as a format character; U+105D2 was added in 16.0,
and NFC composes it with U+0307 since then. So that every verifier gives one verdict,
the spec pins Unicode 14.0.0: the categories are read from ``unicode_data`` (generated
from it, whatever the Python version that runs this), a code point unassigned in 14.0.0
is never valid, and NFC is checked with the running Python's tables, which agree with
14.0.0's on every string of characters assigned in 14.0.0 (Unicode's normalization
stability policy).

:data:`LINE_FORBIDDEN` matches what a line text may not contain (Cc, Cf, Zl, Zp, Cs and
unassigned code points), :data:`LONG_FORBIDDEN` what a long text may not (the same but
LF and TAB), :data:`SPACE` a Zs character.
"""

from __future__ import annotations

import re

from ledger.core.unicode_data import RANGES, UNICODE_VERSION

__all__ = ["LINE_FORBIDDEN", "LONG_FORBIDDEN", "SPACE", "UNICODE_VERSION", "category_class"]


def _class(*classes: str, without: str = "") -> re.Pattern[str]:
    parts = []
    for first, last, cls in RANGES:
        if cls not in classes:
            continue
        for lo, hi in _minus(first, last, without):
            parts.append(re.escape(chr(lo)) + ("" if lo == hi else "-" + re.escape(chr(hi))))
    return re.compile("[" + "".join(parts) + "]")


def _minus(first: int, last: int, without: str) -> list[tuple[int, int]]:
    out = [(first, last)]
    for ch in without:
        cp = ord(ch)
        nxt = []
        for lo, hi in out:
            if lo <= cp <= hi:
                if lo < cp:
                    nxt.append((lo, cp - 1))
                if cp < hi:
                    nxt.append((cp + 1, hi))
            else:
                nxt.append((lo, hi))
        out = nxt
    return out


LINE_FORBIDDEN = _class("control", "unassigned")
LONG_FORBIDDEN = _class("control", "unassigned", without="\n\t")
SPACE = _class("space")


def category_class(ch: str) -> str | None:
    """``control``, ``space``, ``unassigned`` or None (any other assigned character)."""
    cp = ord(ch)
    lo, hi = 0, len(RANGES)
    while lo < hi:
        mid = (lo + hi) // 2
        first, last, cls = RANGES[mid]
        if cp < first:
            hi = mid
        elif cp > last:
            lo = mid + 1
        else:
            return cls
    return None
