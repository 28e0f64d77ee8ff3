"""The checkpoint publisher: after a batch commits, sign its checkpoint and publish it.

The log writer (``api.storage.base.LogWriter.append_batch``) commits a batch and
returns the new tree (size, root) without signing anything. This stage then, outside
any database lock (sunlight's ``signTreeHead`` then ``Lock.Replace``; tessera's
``CheckpointPublisherContext``):

1. signs the checkpoint of that tree with the log key (C2SP tlog-checkpoint);
2. (issue 15: gathers witness cosignatures here, under a policy and a timeout);
3. records it in ``<data-dir>/published-checkpoint`` (``api.published``: fsynced,
   never going back), the record start-up checks the database against;
4. publishes it by compare-and-swap in the database
   (:meth:`~api.storage.base.LogWriter.replace_checkpoint`: never going back, so
   that of two processes sharing the database the larger checkpoint wins);
5. returns the published checkpoint: this one, or a larger one another process
   published meanwhile. ``/checkpoint`` serves it (``LogReader.head``) and the
   batch's receipts are built against it.

Contract (the words MUST and MUST NOT as in RFC 2119):

- A record is **durable** when the log writer's transaction committed. Nothing
  about it MUST be told to anyone before that.
- A checkpoint MUST NOT be published (in the database, in an answer or a receipt)
  before it was recorded in ``published-checkpoint``; and it MUST NOT be signed for
  a tree that is not committed. The published checkpoint MUST never go back.
- A record is **answered** only after a checkpoint whose tree includes it was
  published (:meth:`CheckpointPublisher.publish` returned); the answer's receipt is
  built against that checkpoint.
- This stage MUST NOT run inside a database write transaction: signing (and, later,
  a witness round trip) never holds the head lock.

What a crash leaves:

- before the commit: nothing of the batch; its submitters retry, safely;
- after the commit, before step 3: entries in the database beyond the published
  checkpoint, answered to nobody. A retry answers the existing entries; start-up
  (``api.server.prepare``) publishes the committed tree before serving;
- after step 3, before step 4: ``published-checkpoint`` ahead of the database's
  published checkpoint, never ahead of its committed tree; start-up publishes it;
- after step 4, before the answers: the checkpoint is served, the submitters were
  not answered; a retry answers the existing entries against it or a newer one.
"""

from __future__ import annotations

import threading

from api.published import PublishedCheckpoint
from api.storage.base import (
    Appended,
    BatchOutcome,
    LogHead,
    LogWriter,
    Rejected,
    StorageError,
)
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.note import NoteSigner


class CheckpointPublisher:
    """Signs and publishes the checkpoints of ``log`` (see the module docstring).

    ``signer`` is the log key as a note signer, named after the log's origin;
    ``record`` the ``published-checkpoint`` file (None only in tests and benchmarks,
    which have no data directory). Thread-safe: one publication at a time.
    """

    def __init__(
        self, log: LogWriter, signer: NoteSigner, record: PublishedCheckpoint | None
    ) -> None:
        if signer.name != log.origin:
            raise StorageError(
                f"the log key is named {signer.name!r}; it must be named after the origin "
                f"{log.origin!r}"
            )
        self.log = log
        self.signer = signer
        self.record = record
        self._lock = threading.Lock()
        self._last: LogHead | None = None  # the newest this process saw published

    def publish(self, size: int, root: bytes) -> LogHead:
        """Publish the checkpoint of the committed tree (``size``, ``root``); return
        the published checkpoint, whose size is ``size`` or larger."""
        with self._lock:
            last = self._last
            if last is not None and last.size >= size:
                return last  # a checkpoint of this tree or a larger one is out already
            checkpoint = sign_checkpoint(Checkpoint(self.log.origin, size, root), self.signer)
            # Witness cosignatures (issue 15) are gathered here, before anything records it.
            if self.record is not None:
                self.record.record(size, checkpoint)
            head = self.log.replace_checkpoint(size, root, checkpoint)
            self._last = head
            return head

    def publish_head(self) -> LogHead:
        """Claim the database for the origin if new, and publish its committed tree
        (start-up: it may have committed batches nobody published, before a crash)."""
        tree = self.log.init_log()
        return self.publish(tree.size, tree.root)

    def publish_batch(self, outcome: BatchOutcome) -> list[Appended | Rejected]:
        """Publish a committed batch's tree; its results, answerable against it."""
        head = self.publish(outcome.size, outcome.root)
        held = head.size == outcome.size  # the batch's proofs are in this very tree
        out: list[Appended | Rejected] = []
        for r in outcome.results:
            if isinstance(r, Rejected):
                out.append(r)
            elif held:
                out.append(Appended(r.index, r.leaf_hash, r.existing, head, r.entry, r.proof))
            else:
                out.append(Appended(r.index, r.leaf_hash, r.existing, head, r.entry))
        return out


__all__ = ["CheckpointPublisher"]
