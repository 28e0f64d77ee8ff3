"""The auditing witness: cosign only a log that is consistent *and* lawful.

docs/spec.md, "Witnesses". Before cosigning a checkpoint of size N that extends the
latest cosigned one (size L, already checked by :mod:`ledger.core.witness`), an
auditing witness runs ``ledger-verify``'s own procedure
(:func:`ledger.verify.verifier.verify_log`, "Checking a whole log") on the entries
L..N, fetched from the log or any mirror (the ``log <vkey> <url>`` URL of the policy,
or ``--source``), with the *submitted* checkpoint in place of the source's: every
bundle and tile is checked against that checkpoint, every record's signatures and
every semantic rule are replayed on the verifier's incremental state. That state is
kept per log in ``<state dir>/<hex SHA-256 of origin>.state``
(:mod:`ledger.verify.statefile`), saved only after the witness has durably recorded
the cosigned tree, so it is never ahead of what was cosigned. It is kept in memory
between audits and written at most every :data:`SAVE_EVERY_S` seconds: nothing
depends on it being on disk, since after a crash (or a lost file) the next audit
simply replays more, from the saved state or from the start.

A log whose entries break a rule, or whose data do not match its checkpoint, is
refused with :class:`LawlessLogError` (422, a ``RuleError``), naming the entry
(``index``) and the rule (``code``), and the refusal keeps its evidence, a JSON
document of format :data:`REFUSAL_FORMAT`::

    {"format": "endorsement-ledger/witness-refusal/v1",
     "origin": "...", "checkpoint": "<the signed checkpoint>",
     "index": 12, "code": "key_revoked", "detail": "...",
     "entry": "<base64 of the entry's bytes>",
     "receipt": "<tlog-proof of that entry in the checkpoint>"}

Anyone can check that the entry is in the log (``ledger-verify receipt``) and replay
the log up to it to see the rule broken. A source that cannot be read (down, timeout,
404) is not the log's fault: :class:`ledger.witness.service.AuditUnavailableError`
(503), nothing kept, nothing cosigned.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.core import merkle, tiles
from ledger.core.checkpoint import Checkpoint, parse_checkpoint_text
from ledger.core.errors import FormatError, LedgerError, RuleError, VerificationError
from ledger.core.fork import ForkError
from ledger.core.note import Verifier, parse_note
from ledger.core.receipt import Receipt
from ledger.core.witness import TreeHead
from ledger.verify.source import NotFoundError, Source, SourceError, open_source
from ledger.verify.statefile import StateError, VerifierState, load_state, save_state
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log
from ledger.witness.service import AuditUnavailableError, origin_id

__all__ = ["REFUSAL_FORMAT", "SAVE_EVERY_S", "LawlessLogError", "LogAuditor"]

REFUSAL_FORMAT = "endorsement-ledger/witness-refusal/v1"
SAVE_EVERY_S = 5.0
"""Longest time between two saves of a log's audited state (a crash costs a replay)."""

logger = logging.getLogger("ledger.witness.audit")


class LawlessLogError(RuleError):
    """The log's entries break a rule or do not match its checkpoint; ``evidence`` is kept."""

    def __init__(self, message: str, evidence: bytes, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.evidence = evidence


class _Pinned:
    """A source that serves the submitted checkpoint instead of its own.

    A log or mirror that has grown past the submitted checkpoint may no longer have
    the partial tiles and bundles of its size (a static mirror keeps only the current
    ones). Then the wider partial of the source's own, larger, size is fetched and cut
    to the width asked for: the source's checkpoint is read only to learn that width
    (it is not trusted), and what is cut is checked against the submitted checkpoint
    like every other byte.
    """

    def __init__(self, source: Source, checkpoint: bytes) -> None:
        self._source = source
        self._checkpoint = checkpoint
        self._served_size: int | None = None

    @property
    def location(self) -> str:
        return self._source.location

    def fetch(self, path: str) -> bytes:
        if path == "checkpoint":
            return self._checkpoint
        try:
            return self._source.fetch(path)
        except NotFoundError:
            wider = self._wider(path)
            if wider is None:
                raise
        tile, data = wider
        if tile.is_entries:
            return tiles.encode_bundle(tiles.decode_bundle(data)[: tile.width])
        return data[: 32 * tile.width]

    def _wider(self, path: str) -> tuple[tiles.Tile, bytes] | None:
        try:
            tile = tiles.parse_tile_path(path)
        except FormatError:
            return None
        if not tile.is_partial:
            return None
        if self._served_size is None:
            try:
                note = parse_note(self._source.fetch("checkpoint"))
                self._served_size = parse_checkpoint_text(note.text).size
            except (LedgerError, OSError):
                return None
        level = 0 if tile.is_entries else tile.level
        width = min((self._served_size >> (8 * level)) - tile.n * tiles.TILE_WIDTH, 256)
        if width <= tile.width:
            return None
        wider = tiles.Tile(tile.level, tile.n, width, tile.is_entries)
        try:
            return tile, self._source.fetch(wider.path)
        except NotFoundError:
            return None


class LogAuditor:
    """Replays each witnessed log's new entries before the witness cosigns."""

    def __init__(
        self,
        logs: Mapping[str, Sequence[Verifier]],
        sources: Mapping[str, str],
        state_dir: Path,
        *,
        jobs: int = 1,
        open_source: Callable[[str], Source] = open_source,
    ) -> None:
        self._logs = {o: tuple(v) for o, v in logs.items()}
        self._sources = dict(sources)
        self._dir = Path(state_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._jobs = jobs
        self._open = open_source
        self._locks = {o: threading.Lock() for o in self._logs}
        # Per origin: the last saved state, in memory (None: read the file), and the
        # audited state waiting for the witness to commit its cosignature.
        self._saved: dict[str, VerifierState | None] = {}
        self._pending: dict[tuple[str, int, bytes], VerifierState] = {}
        self._last_save: dict[str, float] = {}

    def state_path(self, origin: str) -> Path:
        return self._dir / f"{origin_id(origin)}.state"

    def audited(self, origin: str) -> VerifierState | None:
        """The saved audited state of ``origin`` (None: never audited)."""
        return load_state(self.state_path(origin))

    def check(self, cp: Checkpoint, signed: bytes, latest: TreeHead) -> None:
        """Replay the entries up to ``cp``; raise to refuse it."""
        location = self._sources.get(cp.origin)
        if location is None:
            raise AuditUnavailableError(f"no source to fetch {cp.origin}'s entries from")
        with self._locks[cp.origin]:
            state = self._take_state(cp)
            trust = Trust(cp.origin, self._logs[cp.origin])
            try:
                source = _Pinned(self._open(location), signed)
                result = verify_log(source, trust, state=state, jobs=self._jobs)
            except SourceError as e:
                raise AuditUnavailableError(f"cannot read the log's data: {e}") from None
            except ForkError:
                raise
            except (VerificationError, FormatError) as e:
                raise self._lawless(cp, signed, source, e) from None
            self._pending[(cp.origin, cp.size, cp.root)] = result.state

    def committed(self, cp: Checkpoint) -> None:
        """The witness durably cosigned ``cp``: save the state audited up to it."""
        with self._locks[cp.origin]:
            state = self._pending.pop((cp.origin, cp.size, cp.root), None)
            for key in [k for k in self._pending if k[0] == cp.origin and k[1] <= cp.size]:
                del self._pending[key]  # audits of trees that will never be cosigned now
            if state is None:
                return
            self._saved[cp.origin] = state
            now = time.monotonic()
            if now - self._last_save.get(cp.origin, -SAVE_EVERY_S) >= SAVE_EVERY_S:
                self._last_save[cp.origin] = now
                save_state(self.state_path(cp.origin), state)

    def _take_state(self, cp: Checkpoint) -> VerifierState | None:
        """The saved state to continue from (verify_log consumes it: never reused)."""
        state = self._saved.pop(cp.origin, None)
        if state is None:
            try:
                state = load_state(self.state_path(cp.origin))
            except (OSError, StateError) as e:
                logger.warning("audit state of %s unusable, replaying all: %s", cp.origin, e)
                state = None
        if state is not None and state.size > cp.size:
            return None  # the witness's store is behind its audit (a restore): start over
        return state

    def _lawless(
        self, cp: Checkpoint, signed: bytes, source: Source, error: LedgerError
    ) -> LawlessLogError:
        doc: dict[str, Any] = {
            "format": REFUSAL_FORMAT,
            "origin": cp.origin,
            "checkpoint": signed.decode("utf-8"),
            "index": error.index,
            "code": error.code,
            "detail": str(error),
        }
        if error.index is not None and 0 <= error.index < cp.size:
            try:
                k, i = divmod(error.index, tiles.TILE_WIDTH)
                entry = tiles.read_bundle(source.fetch, k, cp.size)[i]
                doc["entry"] = base64.b64encode(entry).decode()
                reader = tiles.TileHashReader(cp.size, cp.root, source.fetch)
                proof = merkle.inclusion_proof(error.index, cp.size, reader)
                doc["receipt"] = Receipt(error.index, tuple(proof), signed).encode().decode()
            except (LedgerError, ValueError, LookupError, OSError) as e:
                doc["evidence_error"] = f"could not fetch the entry and its proof: {e}"
        evidence = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        return LawlessLogError(
            f"the log's entries are not lawful: {error}",
            evidence,
            code=error.code,
            index=error.index,
            field=error.field,
            expected=error.expected,
            found=error.found,
        )
