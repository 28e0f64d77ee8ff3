"""The files of a C2SP tlog-tiles directory, and the crash-safe order to publish them.

A log served under the tlog-tiles layout (https://c2sp.org/tlog-tiles) is::

    checkpoint                   the signed checkpoint (published last)
    tile/<L>/<N>[.p/<W>]         Merkle tree tiles
    tile/entries/<N>[.p/<W>]     entry bundles

Everything a tree holds at a size is determined by that size: a tree that grows
from ``m`` to ``n`` entries gains the files :func:`new_paths` lists (full tiles
and bundles completed since ``m``, and the new partial ones), and no other file
changes. Partial files of a tile that is now full may go (:func:`completed_paths`;
tlog-tiles lets a log drop them, and clients fall back to the full tile).

:class:`LayoutWriter` publishes such a directory in the order that keeps it
consistent through any crash: the new tiles and bundles first, each durable
before it has its name (:mod:`ledger.durable`), then the directories, then the
``checkpoint``, atomically. Tiles and bundles are immutable and new ones are not
referenced by the old checkpoint, so a crash at any point leaves a directory that
serves the old checkpoint consistently, perhaps with extra files, or the new one.

Two writers of one log (the mirror, :mod:`ledger.mirror.sync`, and the service's
``--publish-dir``, ``api/publish.py``) use this module, so that their directories
are byte-identical at the same sizes. Standard library only; POSIX.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from ledger.core import tiles
from ledger.core.checkpoint import parse_checkpoint_text
from ledger.core.note import parse_note
from ledger.durable import make_dirs, sync_dirs, write_atomic

#: Mode of published files and directories: the layout is public.
FILE_MODE = 0o644
DIR_MODE = 0o755
#: Mode of a staging directory (fetched or half-written files, not public).
STAGING_MODE = 0o700

_WIDTH = tiles.TILE_WIDTH


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


def tree_files(directory: Path) -> Iterator[tuple[str, bytes]]:
    """The ``checkpoint`` and ``tile/...`` files of a directory, sorted, with their bytes
    (to compare two directories)."""
    root = Path(directory)
    paths = [root / "checkpoint"] if (root / "checkpoint").is_file() else []
    if (root / "tile").is_dir():
        paths += [p for p in (root / "tile").rglob("*") if p.is_file()]
    for p in sorted(paths):
        yield p.relative_to(root).as_posix(), p.read_bytes()


# --- crash-safe writing ------------------------------------------------------------------


def clean_staging(staging: Path) -> None:
    """Empty the staging directory (what a crashed run fetched or half wrote)."""
    if staging.is_dir():
        shutil.rmtree(staging)
    make_dirs(staging, STAGING_MODE)


def stage(staging: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``staging/name``, durably (fsynced), for :meth:`LayoutWriter.adopt`.

    An earlier file of that name is replaced. The staging directory itself is not
    fsynced: after a crash it is emptied anyway.
    """
    path = staging / name
    write_atomic(path, data, FILE_MODE, sync_parent=False)
    return path


class LayoutWriter:
    """Publishes files into a tlog-tiles directory in the crash-safe order.

    Use: :meth:`put` (or :meth:`adopt`) every new tile and bundle, then
    :meth:`publish_checkpoint`, then :meth:`prune`. Files are written in
    ``staging`` (a directory on the same file system, outside the layout) and
    renamed into place, so a crash never leaves a temporary file under the layout.
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
            make_dirs(parent, DIR_MODE)  # each new level is fsynced in its parent
        self._dirty.add(parent)
        return target

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path``: a durable file in ``staging``, renamed into place.

        A crash before the rename leaves a stray file in ``staging`` (removed by the
        next run); after it, the complete file. Nothing refers to the file until a
        checkpoint that covers it is published.
        """
        staged = stage(self.staging, f"put-{threading.get_ident()}-{path.replace('/', '+')}", data)
        try:
            self.adopt(path, staged)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise

    def adopt(self, path: str, staged: Path) -> None:
        """Rename a file of ``staging`` made by :func:`stage` (so already durable) to ``path``.

        The rename itself becomes durable with :meth:`sync` (every publishing step
        below calls it).
        """
        os.replace(staged, self._target(path))
        self.written.append(path)

    def sync(self) -> None:
        """Make the renames so far durable: fsync every directory they touched."""
        deepest_first: list[Path] = sorted(self._dirty, key=lambda p: len(p.parts), reverse=True)
        sync_dirs(deepest_first)
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


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "LayoutWriter",
    "checkpoint_size",
    "clean_staging",
    "completed_paths",
    "layout_paths",
    "new_paths",
    "stage",
    "tree_files",
]
