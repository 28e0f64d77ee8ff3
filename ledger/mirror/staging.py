"""The mirror's view of its source: every fetched file kept in staging until verified.

:class:`StagingSource` wraps the :class:`~ledger.verify.source.Source` a sync
reads. The verifier reads the source through it; each tile or bundle it returns is
also written, durably (:func:`ledger.mirror.layout.stage`), to the staging
directory, so that once all of it is verified the mirror publishes those very
bytes by renaming them (:meth:`ledger.mirror.layout.LayoutWriter.adopt`) rather
than fetching or copying them again. Nothing in staging is public; a failed or
crashed sync leaves it to be emptied by the next (:func:`ledger.mirror.layout.clean_staging`).

The checkpoint is fetched once and then pinned: the verifier and the publisher see
the same signed checkpoint even if the source moves on meanwhile.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ledger.mirror.layout import stage
from ledger.verify.source import Source


class StagingSource:
    """A :class:`~ledger.verify.source.Source` that stages what it fetches (module doc)."""

    def __init__(self, source: Source, staging: Path) -> None:
        self.source = source
        self.staging = staging
        self.fetched: list[str] = []  # paths read from the source, in order
        self.checkpoint: bytes | None = None
        self._lock = threading.Lock()  # the verifier fetches in several threads

    @property
    def location(self) -> str:
        return self.source.location

    def staged(self, path: str) -> Path:
        """Where the staged copy of ``path`` is (if it was fetched)."""
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
            stage(self.staging, self.staged(path).name, data)
        return data


__all__ = ["StagingSource"]
