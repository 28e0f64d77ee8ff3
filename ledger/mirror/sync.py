"""Keep a verified static copy of a log in the C2SP tlog-tiles layout (``ledger mirror``).

A mirror directory holds what a log serves under its prefix (C2SP tlog-tiles,
https://c2sp.org/tlog-tiles; :mod:`ledger.mirror.layout`), so that any static web
server can serve it and any tlog-tiles client, ``ledger-verify`` included, can
read it; its private part is ``.ledger-mirror/`` (:mod:`ledger.mirror.directory`).

:class:`Mirror` copies a *source* (a log server, another mirror over HTTP, or a
mirror directory: :func:`ledger.verify.source.open_source`) into the directory:

1. **Incremental.** A tree that grows from ``m`` to ``n`` entries gains the files
   :func:`ledger.mirror.layout.new_paths` lists, and no other file changes. Only
   those are fetched, plus the partial tiles of the new tree that the consistency
   proof reads, which the verifier must take from the source to be able to tell a
   fork.
2. **Verified first.** Every fetched byte goes through the verifier's own code,
   :func:`ledger.verify.verifier.verify_log`, resumed from the state saved by the last
   sync and trusting only the keys the user gave (:class:`ledger.verify.trust.Trust`):
   checkpoint signature, consistency with the last verified checkpoint, every
   entry, signature and rule, every tile. Fetched files wait in a staging
   directory meanwhile (:class:`ledger.mirror.staging.StagingSource`) and are
   published only if all of it passes. The verified state is what the static
   site is built from (:mod:`ledger.mirror.site`): :attr:`Mirror.state`.
3. **Crash-safe.** Each staged file is durable before it is renamed into place;
   then the renames are made durable (``fsync`` of the directories), the state is
   saved, and the ``checkpoint`` is written *last*, atomically
   (:class:`ledger.mirror.layout.LayoutWriter` says at each step what a crash
   leaves). A crash at any point leaves a directory that serves the old checkpoint
   consistently, perhaps with extra files, or the new one; the next open finishes
   the job (:meth:`Mirror._recover`).
4. **Forks are refused.** If the source's checkpoint is not consistent with the
   mirror's (RFC 9162 consistency proof), nothing is published, the state is kept,
   and both signed checkpoints (with the proof) are saved as fork evidence in the
   verifier's format (:mod:`ledger.core.fork`); the caller exits with the verifier's
   fork code. A source that is merely *behind* (a smaller checkpoint whose root is
   that of our tree at that size) is not a fork: the mirror stays where it is.

Partial tiles and bundles (``.p/<W>``) of an earlier size are kept while the
tile is still partial, for clients that hold an older checkpoint, and removed
once the full tile exists. Two mirrors that sync at the same sizes hold
byte-identical files. Standard library and ``cryptography`` only; POSIX.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ledger.core import merkle, tiles
from ledger.core.checkpoint import Checkpoint
from ledger.core.errors import LedgerError
from ledger.core.fork import ForkError, fork_evidence
from ledger.core.merkle import is_power_of_two
from ledger.mirror.directory import MirrorDirectory, MirrorError
from ledger.mirror.layout import LayoutWriter, clean_staging, new_paths
from ledger.mirror.staging import StagingSource
from ledger.verify.source import DirectorySource, Source
from ledger.verify.statefile import VerifierState
from ledger.verify.trust import Trust, fetch_checkpoint
from ledger.verify.verifier import Progress, Result, verify_log


class MirrorForkError(ForkError):
    """The source forked from the mirror; the evidence was saved to ``evidence_path``."""

    def __init__(self, fork: ForkError, evidence_path: Path | None) -> None:
        super().__init__(
            fork.message,
            fork.evidence,
            field=fork.field,
            expected=fork.expected,
            found=fork.found,
        )
        self.evidence_path = evidence_path


# --- the mirror -----------------------------------------------------------------------------


@dataclass(slots=True)
class SyncResult:
    """What one :meth:`Mirror.sync` did."""

    previous_size: int
    size: int
    checkpoint: bytes
    fetched: list[str] = field(default_factory=list)  # paths read from the source
    written: list[str] = field(default_factory=list)  # files published (checkpoint last)
    removed: list[str] = field(default_factory=list)  # superseded partial files
    entries_checked: int = 0
    signatures_checked: int = 0
    elapsed_s: float = 0.0
    behind: bool = False  # the source's checkpoint is older than ours (and consistent)

    @property
    def changed(self) -> bool:
        """Whether the published checkpoint changed."""
        return "checkpoint" in self.written


class Mirror:
    """A mirror directory, locked for this process while it is open.

    ::

        with Mirror(Path("mirror"), Trust.from_vkeys([vkey])) as m:
            result = m.sync(open_source("https://ledger.example.org/paris-call"))
    """

    def __init__(self, directory: Path, trust: Trust, *, jobs: int = 1) -> None:
        self.dir = MirrorDirectory(directory)
        self.root = self.dir.root
        self.trust = trust
        self.jobs = jobs
        self.staging = self.dir.staging
        self.state: VerifierState | None = None

    # --- opening ---------------------------------------------------------------------

    def __enter__(self) -> Mirror:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Lock the directory, clear what a crashed run left, and load the state."""
        self.dir.open()
        try:
            clean_staging(self.staging)
            self.state = self.dir.load_state(self.trust.origin)
            self._recover()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.dir.close()

    def _recover(self) -> None:
        """Bring the published checkpoint and the state together after a crash.

        The state is saved after every tile of its checkpoint is durable and before
        the checkpoint is published, so a crash in between leaves the state one sync
        ahead: publish its checkpoint now. A directory with a checkpoint but no state
        (state removed, or a copy of another mirror) is verified in place first.
        """
        published = self.dir.published()
        if published is None:
            if self.state is not None:
                self._publish_state(0)
            return
        if self.state is not None and published == self.state.checkpoint:
            return
        try:
            cp = self.trust.open_checkpoint(published)
        except LedgerError as e:
            if self.state is None:
                raise MirrorError(
                    f"{self.root}/checkpoint does not verify with the log key ({e}): "
                    "not a mirror of this log"
                ) from None
            # Our own file, never written unverified: damaged. The state is the truth.
            self._publish_state(0)
            return
        state = self.state
        if (
            state is None
            or cp.size > state.size
            or (cp.size == state.size and cp.root != state.root)
        ):
            # Files we did not publish (or a state restored from an older backup):
            # check them as any source before taking them as ours.
            result = self._verify(DirectorySource(self.root))
            self._save(result)
            return
        self._publish_state(cp.size)

    def _publish_state(self, old_size: int) -> None:
        assert self.state is not None
        writer = LayoutWriter(self.root, self.staging)
        writer.publish_checkpoint(self.state.checkpoint)
        writer.prune(old_size, self.state.size)

    def _save(self, result: Result) -> None:
        self.dir.save_state(result.state)
        self.state = result.state

    # --- syncing ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self.state.size if self.state is not None else 0

    def sync(self, source: Source, *, progress: Progress | None = None) -> SyncResult:
        """Fetch what is new at ``source``, verify it, and publish it (see the module doc).

        Raises :class:`MirrorForkError` (evidence saved) on a fork, a
        :class:`~ledger.core.errors.VerificationError` or
        :class:`~ledger.core.errors.FormatError` if the source serves an invalid log,
        :class:`~ledger.verify.source.SourceError` if it cannot be read. On any error
        nothing is published and the state is the one before.
        """
        if not self.dir.is_open:
            raise MirrorError("the mirror is not open")
        started = time.monotonic()
        clean_staging(self.staging)
        staged = StagingSource(source, self.staging)
        old = self.state
        old_size = self.size
        try:
            cp, signed = fetch_checkpoint(staged, self.trust)
            out = SyncResult(old_size, old_size, signed)
            if old is not None and (cp.size, cp.root) == (old.size, old.root):
                # Same tree: nothing to fetch. A new signature of it (cosignatures, a
                # re-signed note) is published as the checkpoint.
                if signed != old.checkpoint:
                    old.checkpoint = signed
                    self.dir.save_state(old)
                    self._write(LayoutWriter(self.root, self.staging), signed, old_size, out)
                out.checkpoint = old.checkpoint
            elif old is not None and cp.size < old.size:
                self._check_behind(cp, signed)
                out.behind = True
                out.size, out.checkpoint = old.size, old.checkpoint
            else:
                result = self._verify(staged, progress=progress)
                out.size = result.checkpoint.size
                out.entries_checked = result.entries_checked
                out.signatures_checked = result.signatures_checked
                writer = LayoutWriter(self.root, self.staging)
                self._publish_files(writer, staged, old_size, out.size)
                # The state before the checkpoint: a crash between the two leaves the
                # state ahead, and _recover publishes its checkpoint (its files are all
                # durable by now).
                self._save(result)
                self._write(writer, signed, old_size, out)
        finally:
            out_fetched = list(staged.fetched)
            clean_staging(self.staging)
        out.fetched = out_fetched
        out.elapsed_s = time.monotonic() - started
        return out

    def _write(self, writer: LayoutWriter, signed: bytes, old_size: int, out: SyncResult) -> None:
        """Publish the checkpoint (last), then drop superseded partial files."""
        writer.publish_checkpoint(signed)
        writer.prune(old_size, self.size)
        out.written = list(writer.written)
        out.removed = list(writer.removed)

    def _verify(self, source: Source, *, progress: Progress | None = None) -> Result:
        """verify_log from the saved state; on a fork, save the evidence and raise."""
        try:
            return verify_log(
                source,
                self.trust,
                state=self.state,
                jobs=self.jobs,
                max_age_s=None,
                progress=progress,
            )
        except BaseException as e:
            # verify_log consumes the state it resumes from: reload it from its file.
            if self.state is not None:
                self.state = self.dir.load_state(self.trust.origin)
            if isinstance(e, ForkError):
                raise MirrorForkError(e, self.dir.save_evidence(e)) from None
            raise

    def _publish_files(
        self, writer: LayoutWriter, staged: StagingSource, old_size: int, new_size: int
    ) -> None:
        """Move the verified new tiles and bundles into place (not yet referenced)."""
        for path in new_paths(old_size, new_size):
            file = staged.staged(path)
            if file.exists():
                writer.adopt(path, file)
                continue
            # The source had no partial file and the verifier used the first W
            # hashes or entries of the full one (tlog-tiles allows that): publish
            # that verified prefix under the partial name.
            tile = tiles.parse_tile_path(path)
            full = staged.staged(tiles.Tile(tile.level, tile.n, is_entries=tile.is_entries).path)
            try:
                data = full.read_bytes()
            except FileNotFoundError:
                raise MirrorError(f"the verifier did not fetch {path}") from None
            if tile.is_entries:
                data = tiles.encode_bundle(tiles.decode_bundle(data)[: tile.width])
            else:
                data = data[: tile.width * merkle.HASH_SIZE]
            writer.put(path, data)

    def _check_behind(self, cp: Checkpoint, signed: bytes) -> None:
        """A smaller checkpoint is fine if our verified tree has its root at its size."""
        assert self.state is not None
        state = self.state
        reader = tiles.TileHashReader(state.size, state.root, DirectorySource(self.root).fetch)
        root = merkle.EMPTY_ROOT if cp.size == 0 else merkle.tree_hash(cp.size, reader)
        if root == cp.root:
            return
        # A real fork: the evidence proves it from our tree's own hashes.
        proof: list[bytes] = []
        if cp.size > 0:
            proof = merkle.consistency_proof(cp.size, state.size, reader)
            if is_power_of_two(cp.size):
                proof = [root, *proof]
        fork = ForkError(
            "the source's checkpoint is smaller than the mirror's and not consistent with it",
            fork_evidence(signed, state.checkpoint, proof),
            field="root",
            expected=root,
            found=cp.root,
        )
        raise MirrorForkError(fork, self.dir.save_evidence(fork))


def sync_once(source: Source, directory: Path, trust: Trust, *, jobs: int = 1) -> SyncResult:
    """Open the mirror at ``directory``, sync it from ``source`` once, close it."""
    with Mirror(directory, trust, jobs=jobs) as m:
        return m.sync(source)


__all__ = ["Mirror", "MirrorForkError", "SyncResult", "sync_once"]
