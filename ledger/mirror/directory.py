"""The mirror's private directory, ``.ledger-mirror/``: the lock, the state, the evidence.

Inside a mirror directory, next to the public tlog-tiles files
(:mod:`ledger.mirror.layout`) and the site's pages, the mirror keeps what is not
part of the log and never served::

    .ledger-mirror/lock              one mirror process per directory (flock)
    .ledger-mirror/state.json        the verifier's state (ledger.verify.statefile, binary v2)
    .ledger-mirror/staging/          files fetched but not yet verified
    .ledger-mirror/site-endorsements what the site needs beyond the state
                                     (ledger.mirror.site.endorsements)
    .ledger-mirror/fork-evidence-<time>.json   saved when the source forked

(``state.json`` keeps its historic name: renaming it would orphan every existing
mirror's state.) :class:`MirrorDirectory` holds the lock for as long as it is
open: a second process gets :class:`MirrorError` at once instead of waiting, and
the lock goes with the process, however it ends (``flock``, POSIX). The directory
is made with mode 0700: the state is only as trustworthy as the file.
"""

from __future__ import annotations

import datetime
import fcntl
import os
from pathlib import Path

from ledger.core.errors import LedgerError
from ledger.core.fork import ForkError, evidence_bytes
from ledger.durable import make_dirs, write_new
from ledger.mirror.layout import DIR_MODE, FILE_MODE
from ledger.verify.statefile import VerifierState, load_state, save_state

#: The mirror's private directory inside the mirror (never part of the log's layout).
STATE_DIR = ".ledger-mirror"
STATE_FILE = "state.json"
STAGING_DIR = "staging"
LOCK_FILE = "lock"
PRIVATE_MODE = 0o700


class MirrorError(LedgerError):
    """The mirror cannot run: its directory is unusable, busy, or not a mirror of this log."""

    code = "mirror_error"


class MirrorDirectory:
    """A mirror directory's private part, locked by this process while open."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.private = self.root / STATE_DIR
        self.state_path = self.private / STATE_FILE
        self.staging = self.private / STAGING_DIR
        self._lock_fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._lock_fd is not None

    def open(self) -> None:
        """Make the directories if need be and take the lock (:class:`MirrorError` if busy)."""
        try:
            make_dirs(self.root, DIR_MODE)
            make_dirs(self.private, PRIVATE_MODE)
            fd = os.open(self.private / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise MirrorError(f"{self.root}: cannot use the directory: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MirrorError(f"{self.root}: another 'ledger mirror' is writing it") from None
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def load_state(self, origin: str) -> VerifierState | None:
        """The saved state (None if there is none), which must be of the log ``origin``."""
        try:
            state = load_state(self.state_path)
        except OSError as e:
            raise MirrorError(f"cannot read {self.state_path}: {e.strerror or e}") from None
        except LedgerError as e:
            raise MirrorError(
                f"{self.state_path} is not usable ({e}); move the directory away and "
                "mirror again from scratch"
            ) from None
        if state is not None and state.origin != origin:
            raise MirrorError(f"{self.root} mirrors another log ({state.origin!r}, not {origin!r})")
        return state

    def save_state(self, state: VerifierState) -> None:
        save_state(self.state_path, state)

    def published(self) -> bytes | None:
        """The bytes of the published ``checkpoint``, or None if there is none."""
        try:
            return (self.root / "checkpoint").read_bytes()
        except FileNotFoundError:
            return None

    def save_evidence(self, fork: ForkError) -> Path | None:
        """Save the fork evidence (shareable: mode 0644); None if it cannot be written."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.private / f"fork-evidence-{stamp}.json"
        try:
            write_new(path, evidence_bytes(fork.evidence), FILE_MODE)
        except OSError:
            return None
        return path


__all__ = ["STATE_DIR", "MirrorDirectory", "MirrorError"]
