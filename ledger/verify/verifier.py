"""Verify a whole log, or the part added since the last run, offline.

This is the procedure of docs/spec.md, "Verification procedure", run against a
:class:`ledger.verify.source.Source` (a tlog-tiles directory or URL) that is trusted for
nothing: every byte is checked against a checkpoint signed by a key the *user*
supplied (:class:`~ledger.verify.trust.Trust`, from vkeys or a C2SP tlog-policy file).
This module runs the steps in order and holds steps 3-7; the others live beside it
by purpose: ``trust`` (steps 1-2), ``forks`` (8-10), ``pipeline`` (the threads and
worker processes that feed steps 3-4), ``tiletree`` (step 5's tree), ``statefile``
and ``statecodec`` (the ``--state`` file of step 7); ``receipts`` checks a receipt.

:func:`verify_log`, steps of "Checking a whole log":

1-2. fetch ``checkpoint``, verify its signature (and the policy's witness quorum)
     and its origin (:func:`~ledger.verify.trust.fetch_checkpoint`);
8-10. with a stored :class:`~ledger.verify.statefile.VerifierState`: the new size must
     not be smaller and the new tree must extend the stored one (an RFC 9162
     consistency proof computed from the source's tiles, each tile checked against
     the new root); otherwise :class:`~ledger.core.fork.ForkError` carries both signed
     checkpoints (:func:`~ledger.verify.forks.check_consistency`);
3-4. stream the entry bundles from the first one holding an unverified entry;
     split each (exact count, nothing left over); parse every entry and its record
     strictly and check every signature (in ``jobs`` processes, in chunks of one
     bundle); then, in log order in this process, check index, ``prev`` and time
     and replay the semantic rules (``ledger.core.rules.evaluate``) on a
     :class:`~ledger.core.state.MemoryState`;
5.   hash every entry into the tree, checking every hash tile the source serves
     (full tiles as they complete, then the partial ones) against the recomputed
     hashes, and compare the root with the signed one;
6-7. the tallies come from the final state; the caller saves the new state.

Memory stays bounded whatever the log's size: a few bundles are in flight at a
time, the tree is kept as one incomplete tile per level (a compact range at tile
granularity), and the replayed state grows with signatories, statements and
(signatory, statement) pairs, not with entries.

The first failure in log order is raised as a :mod:`ledger.core.errors` exception
naming the entry (``index``), the ``field`` (a record field, or the tlog-tiles
path of a tile or bundle) and what was expected and found. Where a check of the
core cannot know the entry's place (its signatures, its parse), the failure is
wrapped as a :class:`~ledger.verify.errors.LocatedError` at that place, the
original being its ``__cause__``.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ledger.core import merkle
from ledger.core.checkpoint import Checkpoint
from ledger.core.encoding import b64encode
from ledger.core.entry import Entry, parse_entry
from ledger.core.errors import LedgerError, RootMismatchError
from ledger.core.records import check_signers, verify_signatures
from ledger.core.rules import DEFAULT_MAX_AGE_S
from ledger.core.state import MemoryState
from ledger.verify.errors import LocatedError
from ledger.verify.forks import check_consistency
from ledger.verify.pipeline import (
    BUNDLES_PER_TASK,
    MIN_ENTRIES_FOR_PROCESSES,
    Bundles,
    Triple,
    fewer_collections,
    start_workers,
    verify_triples,
    worker_for,
)
from ledger.verify.source import Source
from ledger.verify.statefile import StateError, VerifierState
from ledger.verify.tiletree import WIDTH, TileTree
from ledger.verify.trust import Trust, fetch_checkpoint

#: How many warnings (entries older than max_age) a report keeps in full.
MAX_WARNINGS = 100


# --- results -------------------------------------------------------------------------


@dataclass(slots=True)
class Notice:
    """A finding that does not make the log invalid (docs/spec.md rule 3)."""

    index: int
    code: str
    message: str


@dataclass(slots=True)
class Result:
    """A verified log: the checkpoint, what was checked, and the replayed state."""

    checkpoint: Checkpoint
    signed_checkpoint: bytes
    previous_size: int  # entries verified by earlier runs
    entries_checked: int
    signatures_checked: int
    tiles_checked: int
    replay: MemoryState
    state: VerifierState
    elapsed_s: float
    warnings: list[Notice] = field(default_factory=list)
    warnings_total: int = 0

    def report(self) -> dict[str, Any]:
        """The machine-readable report (``ledger-verify --json``)."""
        return {
            "valid": True,
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root": b64encode(self.checkpoint.root),
            "checkpoint": self.signed_checkpoint.decode("utf-8"),
            "verified_from": self.previous_size,
            "entries_checked": self.entries_checked,
            "signatures_checked": self.signatures_checked,
            "tiles_checked": self.tiles_checked,
            "elapsed_s": round(self.elapsed_s, 3),
            "warnings": [
                {"index": w.index, "code": w.code, "message": w.message} for w in self.warnings
            ],
            "warnings_total": self.warnings_total,
            "tallies": self.replay.summary(),
        }


# --- the procedure ---------------------------------------------------------------------

Progress = Callable[[int, int], None]


def verify_log(
    source: Source,
    trust: Trust,
    *,
    state: VerifierState | None = None,
    jobs: int = 1,
    max_age_s: int | None = DEFAULT_MAX_AGE_S,
    progress: Progress | None = None,
    fetch_ahead: int = 4,
) -> Result:
    """Verify the log at ``source``, all of it or (with ``state``) what is new.

    Returns the :class:`Result` (its ``state`` is what to save for the next run).
    Raises a :class:`~ledger.core.errors.VerificationError` or
    :class:`~ledger.core.errors.FormatError` for an invalid log, :class:`ForkError` if
    the log is not consistent with ``state``, and
    :class:`~ledger.verify.source.SourceError` if the source cannot be read.
    ``max_age_s`` is only reported on (rule 3): entries older than that are
    listed in ``Result.warnings``.

    ``state`` is consumed: its replayed state moves on as entries are checked, so
    after a failure reload it from its file rather than reuse it.
    """
    started = time.monotonic()
    cp, signed = fetch_checkpoint(source, trust)
    # The consistency proof and the tree checks may need the same few tiles.
    fetch_tile = _RecentTiles(source.fetch)

    if state is None:
        replay = MemoryState(trust.origin, max_age_s=None)
        tree = TileTree(fetch_tile)
        start = 0
    else:
        _check_state(state, trust)
        check_consistency(fetch_tile, state, cp, signed)
        replay = state.replay
        replay.max_age_s = None  # rule 3 is reported, not enforced (see _age_warning)
        tree = TileTree(fetch_tile, state.size, state.tiles)
        start = state.size

    result = Result(
        checkpoint=cp,
        signed_checkpoint=signed,
        previous_size=start,
        entries_checked=0,
        signatures_checked=0,
        tiles_checked=0,
        replay=replay,
        # What to save once all is checked; tree.levels is updated in place.
        state=VerifierState(trust.origin, signed, cp.size, cp.root, tree.levels, replay),
        elapsed_s=0.0,
    )
    if cp.size > start:
        checker = _EntryChecker(
            tree, replay, result, jobs=jobs, max_age_s=max_age_s, progress=progress
        )
        with fewer_collections():
            checker.run(source, start, cp.size, fetch_ahead)
    root = tree.finish()
    result.tiles_checked = tree.tiles_checked
    if root != cp.root:
        raise RootMismatchError(
            "the root of the entries is not the root of the signed checkpoint",
            field="root",
            expected=cp.root,
            found=root,
        )
    result.elapsed_s = time.monotonic() - started
    return result


class _RecentTiles:
    """``fetch`` that remembers the last few hash tiles it read (never bundles)."""

    def __init__(self, fetch: Callable[[str], bytes], keep: int = 64) -> None:
        self._fetch = fetch
        self._keep = keep
        self._tiles: OrderedDict[str, bytes] = OrderedDict()

    def __call__(self, path: str) -> bytes:
        data = self._tiles.get(path)
        if data is None:
            data = self._fetch(path)
            self._tiles[path] = data
            if len(self._tiles) > self._keep:
                self._tiles.popitem(last=False)
        else:
            self._tiles.move_to_end(path)
        return data


def _check_state(state: VerifierState, trust: Trust) -> None:
    """A state file is only as good as its integrity: check what can be checked."""
    if state.origin != trust.origin:
        raise StateError(
            "the state file is for another log",
            field="origin",
            expected=trust.origin,
            found=state.origin,
        )
    try:
        cp = trust.open_checkpoint(state.checkpoint)
    except LedgerError as e:
        raise StateError(
            f"the state's checkpoint does not verify: {e}", field="checkpoint"
        ) from None
    if (cp.size, cp.root) != (state.size, state.root):
        raise StateError(
            "the state's size and root are not its checkpoint's",
            field="checkpoint",
            expected=(cp.size, cp.root.hex()),
            found=(state.size, state.root.hex()),
        )
    root = TileTree(_no_fetch, state.size, state.tiles).root()
    if root != state.root:
        raise StateError(
            "state file is damaged: its tree does not give its root",
            field="tiles",
            expected=state.root,
            found=root,
        )


def _no_fetch(path: str) -> bytes:
    raise AssertionError(path)  # pragma: no cover - computing a root fetches nothing


@dataclass(slots=True)
class _Bundle:
    """A bundle on its way through: parsed here, signatures checked by the workers."""

    first: int  # index of raw[0]
    raw: list[bytes]
    entries: list[Entry]  # parsed, up to the first that does not parse
    parse_error: LedgerError | None  # why the entry after them does not
    checks: list[Future[tuple[int, int, LedgerError] | None]]


class _EntryChecker:
    """Steps 3-5 for entries ``start`` to ``size - 1``.

    This process parses each bundle and sends its signatures, as (key, signature,
    message) triples, to ``jobs`` worker processes; while they verify, it parses
    the next bundles. It then takes the bundles in order and, entry by entry,
    checks index, ``prev`` and time, the signers, the workers' verdict, and the
    semantic rules, and hashes the entry into the tree. With one job (or a small
    log) it calls ``ledger.core.records.verify_signatures`` itself.
    """

    def __init__(
        self,
        tree: TileTree,
        replay: MemoryState,
        result: Result,
        *,
        jobs: int,
        max_age_s: int | None,
        progress: Progress | None,
    ) -> None:
        self.tree = tree
        self.replay = replay
        self.result = result
        self.jobs = jobs
        self.max_age_s = max_age_s
        self.progress = progress
        self.total = 0
        self.pool: ProcessPoolExecutor | None = None
        self.in_flight: deque[_Bundle] = deque()

    def run(self, source: Source, start: int, size: int, fetch_ahead: int) -> None:
        self.total = size - start
        if self.jobs > 1 and self.total >= MIN_ENTRIES_FOR_PROCESSES:
            self.pool = start_workers(self.jobs)
        window = 2 * self.jobs if self.pool is not None else 0
        # With workers, a few bundles make one task per worker: fewer, larger messages
        # keep the workers busy between two turns of this (single) process.
        group = BUNDLES_PER_TASK if self.pool is not None else 1
        bundles = Bundles(source, start // WIDTH, size, fetch_ahead).__iter__()
        try:
            first, raw = start, list[bytes]()
            while True:
                try:
                    k, bundle = next(bundles)
                except StopIteration:
                    break
                except Exception:
                    # An unreadable bundle: the entries before it are checked first, so
                    # that the first failure in log order is the one reported.
                    if raw:
                        self.in_flight.append(self._parse(first, raw))
                    while self.in_flight:
                        self._settle(self.in_flight.popleft())
                    raise
                if k * WIDTH < start:
                    bundle = _skip_verified(bundle, k * WIDTH, start, self.tree)
                raw.extend(bundle)
                if len(raw) < group * WIDTH and first + len(raw) < size:
                    continue
                self.in_flight.append(self._parse(first, raw))
                first, raw = first + len(raw), []
                while len(self.in_flight) > window:
                    self._settle(self.in_flight.popleft())
            while self.in_flight:
                self._settle(self.in_flight.popleft())
        finally:
            bundles.close()  # stops the fetching threads, even after a failure
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)

    def _parse(self, first: int, raw: list[bytes]) -> _Bundle:
        entries: list[Entry] = []
        parse_error: LedgerError | None = None
        for data in raw:
            try:
                entries.append(parse_entry(data))
            except LedgerError as e:
                parse_error = e
                break
        checks: list[Future[tuple[int, int, LedgerError] | None]] = []
        if self.pool is not None:
            groups: list[list[Triple]] = [[] for _ in range(self.jobs)]
            for offset, entry in enumerate(entries):
                record = entry.record
                for n, sig in enumerate(record.signatures):
                    groups[worker_for(sig.public_key, self.jobs)].append(
                        (offset, n, sig.public_key, sig.signature, record.body_bytes)
                    )
            checks = [self.pool.submit(verify_triples, g) for g in groups if g]
        return _Bundle(first, raw, entries, parse_error, checks)

    def _settle(self, bundle: _Bundle) -> None:
        result = self.result
        failed: tuple[int, int, LedgerError] | None = None
        for check in bundle.checks:
            verdict = check.result()
            if verdict is not None and (failed is None or verdict[:2] < failed[:2]):
                failed = verdict
        # The loop below runs once per entry of the log: its lookups are hoisted.
        replay, add_leaf, max_age_s = self.replay, self.tree.add, self.max_age_s
        check_place, append, leaf_hash = replay.check_place, replay.append, merkle.leaf_hash
        in_process, raw, signatures = self.pool is None, bundle.raw, 0
        failed_at = -1 if failed is None else failed[0]
        try:
            for offset, entry in enumerate(bundle.entries):
                # Step 4.2 (index, prev, time), then 4.3 (signatures), then 4.4 (rules).
                check_place(entry)
                record = entry.record
                try:
                    if in_process:
                        verify_signatures(record)
                    else:
                        check_signers(record)  # steps 1-4; Ed25519 in the workers
                except LedgerError as e:
                    raise LocatedError.of(e, index=bundle.first + offset) from e
                if offset == failed_at:
                    assert failed is not None
                    cause = failed[2]
                    raise LocatedError.of(cause, index=bundle.first + offset) from cause
                leaf = leaf_hash(raw[offset])
                effect = append(entry, leaf, placed=True)
                if max_age_s is not None:
                    _age_warning(result, entry, effect.signed_at, max_age_s)
                add_leaf(leaf)
                result.entries_checked += 1
                signatures += len(record.signatures)
        finally:
            result.signatures_checked += signatures
        if bundle.parse_error is not None:
            # At its position in the log, whatever the entry claims.
            at = bundle.first + len(bundle.entries)
            raise LocatedError.of(bundle.parse_error, index=at) from bundle.parse_error
        if self.progress is not None:
            self.progress(result.entries_checked, self.total)


def _skip_verified(raw: list[bytes], first: int, start: int, tree: TileTree) -> list[bytes]:
    """Drop the entries of a bundle that an earlier run verified, checking they did not change."""
    done = start - first
    kept = tree.levels[0] if tree.levels else []
    for offset in range(done):
        leaf = merkle.leaf_hash(raw[offset])
        if offset >= len(kept) or kept[offset] != leaf:
            raise RootMismatchError(
                "entry differs from the one verified by an earlier run",
                code="entry_changed",
                index=first + offset,
                field="entry",
                expected=kept[offset] if offset < len(kept) else None,
                found=leaf,
            )
    return raw[done:]


def _age_warning(result: Result, entry: Entry, signed_at: int, max_age_s: int) -> None:
    if signed_at >= entry.time_ms // 1000 - max_age_s:
        return
    result.warnings_total += 1
    if len(result.warnings) < MAX_WARNINGS:
        result.warnings.append(
            Notice(
                entry.index,
                "too_old",
                f"signed_at {signed_at} is more than {max_age_s} s before the integration "
                f"time {entry.time_ms // 1000} (rule 3; reported, not an error)",
            )
        )


# --- helpers for reports --------------------------------------------------------------


def error_report(e: LedgerError) -> dict[str, Any]:
    """A failure as JSON-ready data: code, message, index, field, expected, found."""
    return {
        "code": e.code,
        "message": e.message,
        "index": e.index,
        "field": e.field,
        "expected": _plain(e.expected),
        "found": _plain(e.found),
        "text": str(e),
    }


def _plain(v: object) -> object:
    if isinstance(v, bytes):
        return v.hex()
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return repr(v)


__all__ = [
    "MAX_WARNINGS",
    "Notice",
    "Progress",
    "Result",
    "error_report",
    "verify_log",
]
