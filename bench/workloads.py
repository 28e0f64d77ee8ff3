"""Logs shaped like the mission, for every benchmark that depends on a log's shape.

A supporters list is the opposite of a log with many signatures per key: every
signatory brings a new key, registers once and endorses a few statements. So a large
share of the entries introduce a key, and the per-key check of the Ed25519 acceptance
rule (canonical, not of small order, in the prime-order subgroup) runs once per
signatory. :func:`supporters_list` builds such a log, deterministically from a seed:

* a few statements (:data:`STATEMENTS`), each by one to three authors registered
  first (the first by two, so at least one is co-authored);
* then each new signatory registers (kind, country and domain varied) and endorses
  one to three statements (weights 25 / 40 / 35 %), a comment on one in ten;
* after every signatory, with small probabilities: a withdrawal by an earlier
  signatory (2 %), a key rotation (1 %), a revocation of a current key (0.3 %,
  which deactivates that signatory).

At the scale of the Paris Call (:data:`PARIS_CALL`, about 1,200 signatories) this
gives about 4,000 entries; :func:`supporters_list` takes any target size (100,000
and 1,000,000 in the benchmarks). :func:`many_signatures_log` is the other shape,
the mix that ``bench/verify.py`` has always used (1 % registrations).

    python -m bench.workloads SIZE DIRECTORY   # write one as a tlog-tiles directory
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ledger.core.records import Kind
from tests.logfactory import LogFactory, Member

#: Statements in a supporters list: a declaration and a few companion texts.
STATEMENTS = 4
#: Entries of a supporters list at the scale of the Paris Call (about 1,200 signatories).
PARIS_CALL = 4_000

_KINDS = (Kind.STATE, Kind.COMPANY, Kind.COMPANY, Kind.CIVIL_SOCIETY, Kind.CIVIL_SOCIETY)
_KINDS += (Kind.INDIVIDUAL, Kind.OTHER)


def supporters_list(size: int, *, seed: str = "supporters") -> LogFactory:
    """A supporters-list log of exactly ``size`` entries (``size`` >= 8)."""
    if size < 8:
        raise ValueError("a supporters list needs at least 8 entries")
    rng = random.Random(seed)
    f = LogFactory(seed=f"{seed} {size}")
    founders = [f.register(_KINDS[i % len(_KINDS)]) for i in range(3)]
    statements = []
    for n in range(STATEMENTS):
        authors = rng.sample(founders, k=2 if n == 0 else rng.choice((1, 1, 2, 3)))
        statements.append(f.statement(authors, title=f"Declaration {n}"))
    joined: list[Member] = list(founders)

    def room() -> bool:
        return f.size < size

    while room():
        member = f.register(rng.choice(_KINDS))
        joined.append(member)
        count = rng.choices((1, 2, 3), weights=(25, 40, 35))[0]
        for st in rng.sample(statements, k=count):
            if not room():
                break
            f.endorse(member, st, "We support this." if rng.random() < 0.1 else None)
        r = rng.random()
        if not room() or len(f.active) < 10:
            continue
        if r < 0.02:
            pairs = [(m, st) for m in rng.sample(f.active, k=5) for st in statements]
            live = [(m, st) for m, st in pairs if (m.number, st) in f.active_pairs]
            if live:
                f.withdraw(*rng.choice(live))
        elif r < 0.03:
            f.rotate(rng.choice(f.active))
        elif r < 0.033:
            f.revoke(rng.choice(f.active))
    return f


def many_signatures_log(size: int, *, seed: str = "bench") -> LogFactory:
    """The log with many signatures per key (about 1 % registrations)."""
    return LogFactory(seed=f"{seed} {size}").grow(size, registrations=0.01)


def keys_introduced(f: LogFactory) -> int:
    """How many distinct public keys the log's entries introduce (registrations, rotations)."""
    return sum(len(m.keys) for m in f.members)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m bench.workloads SIZE DIRECTORY", file=sys.stderr)
        return 2
    f = supporters_list(int(argv[0]))
    f.write(Path(argv[1]))
    print(f"{f.size} entries, {len(f.members)} signatories, {keys_introduced(f)} keys")
    print(f"log key: {f.log_key.vkey}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
