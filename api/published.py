"""``<data-dir>/published-checkpoint``: the newest checkpoint this server published.

The sequencer records each new checkpoint here (atomically replaced and fsynced by
:func:`ledger.durable.write_atomic`, under a file lock, never going back) *after* the
commit and *before* any submitter sees the checkpoint. (Writing it before the commit
would make a failed commit look like a lost one.) At start-up the server refuses a
database whose tree is smaller than this checkpoint or has another root at its size.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from ledger.core.checkpoint import parse_checkpoint_text
from ledger.core.errors import LedgerError
from ledger.core.note import parse_note
from ledger.durable import write_atomic

logger = logging.getLogger("api.published")


class PublishedCheckpoint:
    """``<data-dir>/published-checkpoint``: the newest checkpoint this server published.

    :meth:`record` never replaces a checkpoint by a smaller one, also across the
    processes of one data directory (they take ``published-checkpoint.lock``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._size = -1  # the largest size this process knows to be in the file

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _file_size(self) -> int:
        data = self.read()
        if data is None:
            return -1
        try:
            return parse_checkpoint_text(parse_note(data).text).size
        except LedgerError:
            logger.warning("%s is unreadable; replacing it", self.path)
            return -1

    def record(self, size: int, checkpoint: bytes) -> None:
        """Make ``checkpoint`` (of tree size ``size``) the recorded one, unless a larger is."""
        if size <= self._size:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = self._file_size()
            if current < size:
                write_atomic(self.path, checkpoint)
                current = size
            self._size = max(self._size, current)
        finally:
            os.close(fd)  # releases the lock
