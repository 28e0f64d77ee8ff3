"""Who is confirmed: each signatory's domain claim checked by this reader, and the
tallies of confirmed endorsements (docs/spec.md, "Confirmed tallies").

A registration's ``domain`` is a claim. :func:`check_domains` fetches each claimed
domain's proof (:func:`ledger.verify.domains.check_domain`: DNS TXT and HTTPS, bounded,
public addresses only) and returns one :class:`~ledger.verify.domains.DomainCheck` per
signatory that claims a domain: confirmed (at the time of the check), mismatch (the
domain names other signatories for this log: an impersonation alert), malformed,
unreachable or missing. :func:`confirmed_tallies` then counts, for each statement and
kind, the active endorsements whose signatory is confirmed.

Nothing here changes the verdict on the log, which never depends on the network: it
runs after the log was verified, on the verified replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from ledger.core.state import KINDS, MemoryState
from ledger.verify.domains import DEFAULT_TIMEOUT, DomainCheck, InsecureTestOverride, Status
from ledger.verify.domains import check_domain as _check_domain

#: Domain checks run at once (each is bounded by its own timeout).
PARALLEL = 8


def check_domains(
    replay: MemoryState,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    insecure_test_override: InsecureTestOverride | None = None,
) -> list[DomainCheck]:
    """The verdict on every domain claim of the replayed log, in registration order."""
    claims = sorted((s for s in replay.signatories.values() if s.domain), key=lambda s: s.index)
    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="domain-check") as pool:
        return list(
            pool.map(
                lambda s: _check_domain(
                    s.domain,
                    replay.origin,
                    s.signatory,
                    timeout=timeout,
                    insecure_test_override=insecure_test_override,
                ),
                claims,
            )
        )


class DomainChecker:
    """Domain verdicts kept across the syncs of a long-running mirror: each claim is
    checked when first seen and again once its verdict is ``recheck_s`` old."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        recheck_s: float = 24 * 3600,
        insecure_test_override: InsecureTestOverride | None = None,
    ) -> None:
        self.timeout = timeout
        self.recheck_s = recheck_s
        self.override = insecure_test_override
        self.checks: dict[bytes, DomainCheck] = {}
        self.changed = False  # whether the last update changed a verdict

    def update(self, replay: MemoryState) -> dict[bytes, DomainCheck]:
        """Check the claims not checked yet (or too long ago); all verdicts, by signatory."""
        now = time.time()
        due = [
            s
            for s in replay.signatories.values()
            if s.domain
            and (
                (c := self.checks.get(s.signatory)) is None
                or c.domain != s.domain
                or now - c.checked_at >= self.recheck_s
            )
        ]
        self.changed = False
        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="domain-check") as pool:
            for check in pool.map(
                lambda s: _check_domain(
                    s.domain,
                    replay.origin,
                    s.signatory,
                    timeout=self.timeout,
                    insecure_test_override=self.override,
                ),
                due,
            ):
                old = self.checks.get(check.signatory_id)
                self.changed |= old is None or old.status is not check.status
                self.checks[check.signatory_id] = check
        return dict(self.checks)


def confirmed(checks: Iterable[DomainCheck]) -> set[bytes]:
    """The signatories whose domain claim was confirmed."""
    return {c.signatory_id for c in checks if c.status is Status.CONFIRMED}


def confirmed_tallies(
    replay: MemoryState, confirmed_ids: set[bytes]
) -> dict[bytes, dict[str, int]]:
    """For each statement: ``{"confirmed": n, <kind>: n...}``, counting the active
    endorsements whose signatory is in ``confirmed_ids``."""
    out: dict[bytes, dict[str, int]] = {}
    for st in replay.statements.values():
        counts = dict.fromkeys(KINDS, 0)
        for sid in replay.active_endorsers(st.statement):
            if sid in confirmed_ids:
                counts[replay.signatories[sid].kind] += 1
        out[st.statement] = {"confirmed": sum(counts.values()), **counts}
    return out


__all__ = ["PARALLEL", "DomainChecker", "check_domains", "confirmed", "confirmed_tallies"]
