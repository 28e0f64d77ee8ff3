"""``ledger serve --publish-dir DIR``: the service writes its own static tlog-tiles layout.

A :class:`Publisher` follows the newest checkpoint in storage (a background thread
that polls ``LogReader.head``, so it needs no hook in the sequencer) and, whenever it
changed, writes into DIR what a tlog-tiles client fetches (C2SP tlog-tiles,
https://c2sp.org/tlog-tiles)::

    checkpoint                  the newest signed checkpoint
    tile/<L>/<N>[.p/<W>]        Merkle tree tiles
    tile/entries/<N>[.p/<W>]    entry bundles

Each file holds exactly the bytes ``GET /checkpoint`` and ``GET /tile/...`` answer:
they are made by the same functions (``ledger.core.tiles.read_tile_data`` over the stored
hashes, ``ledger.core.tiles.encode_bundle`` over the stored entries, the head's
checkpoint verbatim). Any static web server, CDN or object store can then serve the
log, and ``ledger mirror`` or ``ledger-verify`` read it as they read the service.

Writing is :class:`ledger.mirror.sync.LayoutWriter`'s crash-safe order, the mirror's:
new tiles and bundles first (each a temporary file, fsynced, renamed; then the
directories fsynced), the checkpoint last, then the partial files that full ones
replaced. A crash at any point leaves DIR serving a consistent checkpoint (the old
one, maybe with extra files, or the new one); the next round resumes from the
checkpoint found in DIR, writing only the files added since its size.

Several worker processes may publish to one DIR: a round holds an exclusive lock
(``DIR/.ledger-publish/lock``) and never replaces the checkpoint by a smaller one.
DIR must be this log's: a checkpoint there of another origin, or whose root is not
the stored tree's at its size, stops publishing with an error in the log.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

from api.storage.base import LogReader
from ledger.core import merkle, tiles
from ledger.core.checkpoint import Checkpoint, parse_checkpoint_text
from ledger.core.errors import LedgerError
from ledger.core.note import parse_note
from ledger.mirror.layout import DIR_MODE, LayoutWriter, clean_staging, new_paths

logger = logging.getLogger("api.publish")

#: The publisher's private directory in DIR (temporary files, lock); not part of the layout.
PRIVATE_DIR = ".ledger-publish"
#: How often the publisher looks for a new checkpoint, in seconds.
DEFAULT_INTERVAL_S = 0.5


class PublishError(Exception):
    """DIR cannot receive this log's layout (another log's, or a tree that differs)."""


def tile_bytes(storage: LogReader, tile: tiles.Tile) -> bytes:
    """The bytes of a tile or bundle, as ``GET /tile/...`` builds them (api.routes.tiles)."""
    if tile.is_entries:
        start = tile.n * tiles.TILE_WIDTH
        return tiles.encode_bundle(storage.read_entries(start, start + tile.width))
    return tiles.read_tile_data(tile, storage)


class Publisher:
    """Writes the layout of ``storage``'s log to ``directory``, following its head."""

    def __init__(
        self, storage: LogReader, directory: Path, *, interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        self.storage = storage
        self.root = Path(directory)
        self.private = self.root / PRIVATE_DIR
        self.interval_s = interval_s
        self.published_size = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: str | None = None  # the last error, logged once

    # --- one round -----------------------------------------------------------------

    def publish(self) -> bool:
        """Publish the newest checkpoint if DIR does not have it; return whether it wrote.

        Raises PublishError if DIR holds another log or another tree, OSError if it
        cannot be written.
        """
        self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.private.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.private / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one process at a time; released on close
            return self._publish_locked()
        finally:
            os.close(fd)

    def _publish_locked(self) -> bool:
        head = self.storage.head()
        if not head.checkpoint:
            return False  # the log has not signed its first checkpoint yet
        published = self._published()
        if published is not None and published[1] == head.checkpoint:
            self.published_size = head.size
            return False
        old_size = 0
        if published is not None:
            cp = published[0]
            self._check_ours(cp, head.size)
            if cp.size > head.size:
                return False  # another process of ours is ahead (a newer head)
            old_size = cp.size
        staging = self.private / "staging"
        clean_staging(staging)  # temporary files of a crashed round
        writer = LayoutWriter(self.root, staging)
        # 1. The new tiles and bundles, each durable before it gets its name. The
        #    published checkpoint does not refer to them: a crash here leaves extra
        #    files only.
        for path in new_paths(old_size, head.size):
            writer.put(path, tile_bytes(self.storage, tiles.parse_tile_path(path)))
        # 2. The checkpoint, last, after fsyncing the directories: from here on
        #    readers get the new tree, all of whose files are durable.
        writer.publish_checkpoint(head.checkpoint)
        # 3. Partial files replaced by full ones (a crash leaves some: harmless).
        writer.prune(old_size, head.size)
        self.published_size = head.size
        return True

    def _published(self) -> tuple[Checkpoint, bytes] | None:
        """The checkpoint in DIR, parsed (it is ours: the signature is not checked)."""
        try:
            data = (self.root / "checkpoint").read_bytes()
        except FileNotFoundError:
            return None
        try:
            return parse_checkpoint_text(parse_note(data).text), data
        except LedgerError:
            # Unreadable: not a checkpoint we wrote completely. Publish from scratch.
            logger.warning("%s/checkpoint is unreadable; publishing the whole log", self.root)
            return None

    def _check_ours(self, cp: Checkpoint, head_size: int) -> None:
        origin = getattr(self.storage, "origin", None)
        if origin is not None and cp.origin != origin:
            raise PublishError(
                f"{self.root} holds the log {cp.origin!r}, not {origin!r}: use an empty directory"
            )
        if cp.size <= head_size and merkle.tree_hash(cp.size, self.storage) != cp.root:
            raise PublishError(
                f"{self.root}/checkpoint (size {cp.size}) is not this log's tree at that size: "
                "refusing to publish over it"
            )

    # --- the background thread -------------------------------------------------------

    def start(self) -> Publisher:
        """Publish now (in the background) and whenever the head changes, until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after its current round, then publish what is committed."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._round()

    def _run(self) -> None:
        while True:
            self._round()
            if self._stop.wait(self.interval_s):
                return

    def _round(self) -> None:
        try:
            self.publish()
        except Exception as e:  # keep serving; log why publishing stopped
            message = f"cannot publish the log to {self.root}: {e}"
            if message != self._failed:
                logger.error("%s", message)
                self._failed = message
        else:
            self._failed = None


def start_publisher(storage: LogReader, directory: Path | None) -> Publisher | None:
    """A started Publisher for ``directory``, or None when publishing is off."""
    if directory is None:
        return None
    return Publisher(storage, directory).start()


__all__ = ["DEFAULT_INTERVAL_S", "PublishError", "Publisher", "start_publisher", "tile_bytes"]
