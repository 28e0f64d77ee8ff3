"""Keep a verified static copy of a log in the C2SP tlog-tiles layout (``ledger mirror``).

A mirror directory holds what a log serves under its prefix (C2SP tlog-tiles,
https://c2sp.org/tlog-tiles), so that any static web server can serve it and any
tlog-tiles client, ``ledger-verify`` included, can read it::

    checkpoint                   the newest verified signed checkpoint (published last)
    tile/<L>/<N>[.p/<W>]         Merkle tree tiles
    tile/entries/<N>[.p/<W>]     entry bundles
    .ledger-mirror/state.json    the verifier's state (ledger.verify.statefile), not public
    .ledger-mirror/staging/      files fetched but not yet verified, not public
    .ledger-mirror/lock          one mirror process per directory (flock)
    .ledger-mirror/fork-evidence-<time>.json   saved when the source forked

:class:`Mirror` copies a *source* (a log server, another mirror over HTTP, or a
mirror directory: :func:`ledger.verify.source.open_source`) into the directory:

1. **Incremental.** Everything the source serves at a tree size is determined by
   that size: a tree that grows from ``m`` to ``n`` entries gains the files
   :func:`new_paths` lists (full tiles and bundles completed since ``m``, and the
   new partial ones), and no other file changes. Only those are fetched, plus the
   partial tiles of the new tree that the consistency proof reads, which the
   verifier must take from the source to be able to tell a fork.
2. **Verified first.** Every fetched byte goes through the verifier's own code,
   :func:`ledger.verify.verifier.verify_log`, resumed from the state saved by the last
   sync and trusting only the keys the user gave (:class:`ledger.verify.trust.Trust`):
   checkpoint signature, consistency with the last verified checkpoint, every
   entry, signature and rule, every tile. Fetched files wait in a staging
   directory meanwhile and are published only if all of it passes.
3. **Crash-safe.** Publishing renames each staged file into place after an
   ``fsync`` (so a renamed file is never empty after a power cut), makes the
   renames durable (``fsync`` of the directories), saves the state, and writes the
   ``checkpoint`` *last*, atomically. Tiles and bundles are immutable and new ones
   are not referenced by the old checkpoint, so a crash at any point leaves a
   directory that serves the old checkpoint consistently, perhaps with extra files,
   or the new one. :class:`LayoutWriter` says at each step what a crash leaves.
4. **Forks are refused.** If the source's checkpoint is not consistent with the
   mirror's (RFC 9162 consistency proof), nothing is published, the state is kept,
   and both signed checkpoints (with the proof) are saved as fork evidence in the
   verifier's format (:mod:`ledger.core.fork`); the caller exits with the verifier's
   fork code. A source that is merely *behind* (a smaller checkpoint whose root is
   that of our tree at that size) is not a fork: the mirror stays where it is.

Partial tiles and bundles (``.p/<W>``) of an earlier size are kept while the
tile is still partial, for clients that hold an older checkpoint, and removed
once the full tile exists (tlog-tiles lets a log drop them then; clients fall
back to the full tile). Two mirrors that sync at the same sizes hold
byte-identical files.

The service writes the same layout with the same writer (``api/publish.py``).
Standard library and ``cryptography`` only; POSIX (``fcntl``, directory fsync).
"""

from __future__ import annotations

import datetime
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ledger.core import merkle, tiles
from ledger.core.checkpoint import Checkpoint, parse_checkpoint_text
from ledger.core.errors import LedgerError
from ledger.core.fork import ForkError, evidence_bytes, fork_evidence
from ledger.core.merkle import is_power_of_two
from ledger.core.note import parse_note
from ledger.durable import write_atomic
from ledger.verify.source import DirectorySource, Source
from ledger.verify.statefile import VerifierState, load_state, save_state
from ledger.verify.trust import Trust, fetch_checkpoint
from ledger.verify.verifier import Progress, Result, verify_log

#: The mirror's private directory inside the mirror (never part of the log's layout).
STATE_DIR = ".ledger-mirror"
STATE_FILE = "state.json"
STAGING_DIR = "staging"
LOCK_FILE = "lock"
#: Mode of published files and directories: the mirror is public.
FILE_MODE = 0o644
DIR_MODE = 0o755

_WIDTH = tiles.TILE_WIDTH


class MirrorError(LedgerError):
    """The mirror cannot run: its directory is unusable, busy, or not a mirror of this log."""

    code = "mirror_error"


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


# --- which files a tree has ------------------------------------------------------------


def new_paths(old_size: int, new_size: int) -> list[str]:
    """The tlog-tiles paths a tree of ``new_size`` has and one of ``old_size`` has not.

    Entry bundles first, then hash tiles level by level. Every other path of the
    larger tree holds the same bytes in the smaller one.

    >>> new_paths(256, 300)  # tile/1/000.p/1 is the same at both sizes
    ['tile/entries/001.p/44', 'tile/0/001.p/44']
    >>> new_paths(200, 300)
    ['tile/entries/000', 'tile/entries/001.p/44', 'tile/0/000', 'tile/0/001.p/44', 'tile/1/000.p/1']
    >>> new_paths(300, 300)
    []
    """
    bundles = [
        b.path for b in tiles.bundles_for_size(new_size) if b.n * _WIDTH + b.width > old_size
    ]
    return bundles + [t.path for t in tiles.new_tiles(old_size, new_size)]


def layout_paths(size: int) -> list[str]:
    """Every path (bundles, then tiles) of a tree of ``size`` entries."""
    return new_paths(0, size)


def completed_paths(old_size: int, new_size: int) -> list[str]:
    """The full tiles and bundles completed between the two sizes (their partials may go)."""
    return [p for p in new_paths(old_size, new_size) if ".p/" not in p]


def checkpoint_size(data: bytes) -> int:
    """The tree size of a signed checkpoint, read without checking its signature."""
    return parse_checkpoint_text(parse_note(data).text).size


# --- crash-safe writing ------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LayoutWriter:
    """Publishes files into a tlog-tiles directory in the crash-safe order.

    Use: :meth:`put` (or :meth:`adopt`) every new tile and bundle, then
    :meth:`publish_checkpoint`, then :meth:`prune`. Temporary files are made in
    ``staging`` (a directory on the same file system, outside the layout), so a
    crash never leaves a half-written file under a public name.
    """

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging
        self._dirty: set[Path] = set()
        self.written: list[str] = []
        self.removed: list[str] = []

    def _target(self, path: str) -> Path:
        target = self.root / path
        parent = target.parent
        if not parent.is_dir():
            # New directories must be durable too: fsync each new one's parent.
            missing = []
            d = parent
            while not d.is_dir():
                missing.append(d)
                d = d.parent
            for d in reversed(missing):
                d.mkdir(mode=DIR_MODE, exist_ok=True)
                self._dirty.add(d.parent)
        self._dirty.add(parent)
        return target

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path``: temporary file, flush, fsync, rename.

        A crash before the rename leaves a stray temporary file in ``staging``
        (removed by the next run); after it, the complete file. Nothing refers to
        the file until a checkpoint that covers it is published.
        """
        tmp = self.staging / f"put-{threading.get_ident()}-{path.replace('/', '+')}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), FILE_MODE)
                os.fsync(f.fileno())
            os.replace(tmp, self._target(path))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.written.append(path)

    def adopt(self, path: str, staged: Path) -> None:
        """Move an already written (verified) staged file to ``path``, fsynced first."""
        fd = os.open(staged, os.O_RDONLY)
        try:
            os.fchmod(fd, FILE_MODE)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, self._target(path))
        self.written.append(path)

    def sync(self) -> None:
        """Make the renames so far durable: fsync every directory they touched."""
        for d in sorted(self._dirty, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(d)
        self._dirty.clear()

    def publish_checkpoint(self, checkpoint: bytes) -> None:
        """Replace the checkpoint, atomically, after making every tile durable.

        This is the one step that changes what the directory serves: before it,
        readers see the old checkpoint and everything it needs (the new files are
        extra); after it, the new one, whose files are all durable already.
        """
        self.sync()
        self.put("checkpoint", checkpoint)
        self.sync()

    def prune(self, old_size: int, new_size: int) -> None:
        """Remove the partial tiles and bundles superseded by full ones completed
        between the two sizes. Run after :meth:`publish_checkpoint`; a crash midway
        leaves some of them, which are still correct (only superfluous)."""
        for path in completed_paths(old_size, new_size):
            partials = self.root / (path + ".p")
            if partials.is_dir():
                for f in sorted(partials.iterdir()):
                    self.removed.append(f"{path}.p/{f.name}")
                shutil.rmtree(partials)
                self._dirty.add(partials.parent)
        self.sync()


def clean_staging(staging: Path) -> None:
    """Empty the staging directory (what a crashed run fetched or half wrote)."""
    if staging.is_dir():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700, parents=True)


# --- the source, staged ------------------------------------------------------------------


class StagingSource:
    """A :class:`~ledger.verify.source.Source` that keeps a copy of each fetched tile or bundle
    in a staging directory and records what was fetched; the checkpoint is fetched
    once and then pinned, so that the verifier and the publisher see the same one."""

    def __init__(self, source: Source, staging: Path) -> None:
        self.source = source
        self.staging = staging
        self.fetched: list[str] = []
        self.checkpoint: bytes | None = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self.source.location

    def staged(self, path: str) -> Path:
        return self.staging / path.replace("/", "+")

    def fetch(self, path: str) -> bytes:
        if path == "checkpoint" and self.checkpoint is not None:
            return self.checkpoint
        data = self.source.fetch(path)
        with self._lock:
            self.fetched.append(path)
        if path == "checkpoint":
            self.checkpoint = data
        else:
            # Not fsynced here: only verified files are, when they are published.
            with open(self.staged(path), "wb") as f:
                f.write(data)
        return data


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
        self.root = Path(directory)
        self.trust = trust
        self.jobs = jobs
        self.private = self.root / STATE_DIR
        self.state_path = self.private / STATE_FILE
        self.staging = self.private / STAGING_DIR
        self.state: VerifierState | None = None
        self._lock_fd: int | None = None

    # --- opening ---------------------------------------------------------------------

    def __enter__(self) -> Mirror:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Lock the directory, clear what a crashed run left, and load the state."""
        try:
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            self.private.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(self.private / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise MirrorError(f"{self.root}: cannot use the directory: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MirrorError(f"{self.root}: another 'ledger mirror' is writing it") from None
        self._lock_fd = fd
        try:
            clean_staging(self.staging)
            self.state = self._load_state()
            self._recover()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _load_state(self) -> VerifierState | None:
        try:
            state = load_state(self.state_path)
        except OSError as e:
            raise MirrorError(f"cannot read {self.state_path}: {e.strerror or e}") from None
        except LedgerError as e:
            raise MirrorError(
                f"{self.state_path} is not usable ({e}); move the directory away and "
                "mirror again from scratch"
            ) from None
        if state is not None and state.origin != self.trust.origin:
            raise MirrorError(
                f"{self.root} mirrors another log ({state.origin!r}, not {self.trust.origin!r})"
            )
        return state

    def _published(self) -> bytes | None:
        try:
            return (self.root / "checkpoint").read_bytes()
        except FileNotFoundError:
            return None

    def _recover(self) -> None:
        """Bring the published checkpoint and the state together after a crash.

        The state is saved after every tile of its checkpoint is durable and before
        the checkpoint is published, so a crash in between leaves the state one sync
        ahead: publish its checkpoint now. A directory with a checkpoint but no state
        (state removed, or a copy of another mirror) is verified in place first.
        """
        published = self._published()
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
        save_state(self.state_path, result.state)
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
        if self._lock_fd is None:
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
                    save_state(self.state_path, old)
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
                self.state = self._load_state()
            if isinstance(e, ForkError):
                raise MirrorForkError(e, self._save_evidence(e)) from None
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
        raise MirrorForkError(fork, self._save_evidence(fork))

    def _save_evidence(self, fork: ForkError) -> Path | None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.private / f"fork-evidence-{stamp}.json"
        try:
            write_atomic(path, evidence_bytes(fork.evidence), mode=0o600)
            path.chmod(FILE_MODE)  # evidence is meant to be shared
        except OSError:
            return None
        return path


def sync_once(source: Source, directory: Path, trust: Trust, *, jobs: int = 1) -> SyncResult:
    """Open the mirror at ``directory``, sync it from ``source`` once, close it."""
    with Mirror(directory, trust, jobs=jobs) as m:
        return m.sync(source)


def tree_files(directory: Path) -> Iterator[tuple[str, bytes]]:
    """The ``checkpoint`` and ``tile/...`` files of a directory, sorted, with their bytes
    (to compare two mirrors)."""
    root = Path(directory)
    paths = [root / "checkpoint"] if (root / "checkpoint").is_file() else []
    if (root / "tile").is_dir():
        paths += [p for p in (root / "tile").rglob("*") if p.is_file()]
    for p in sorted(paths):
        yield p.relative_to(root).as_posix(), p.read_bytes()


__all__ = [
    "STATE_DIR",
    "LayoutWriter",
    "Mirror",
    "MirrorError",
    "MirrorForkError",
    "StagingSource",
    "SyncResult",
    "checkpoint_size",
    "clean_staging",
    "completed_paths",
    "layout_paths",
    "new_paths",
    "sync_once",
    "tree_files",
]
