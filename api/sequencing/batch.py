"""The appender contract: a :class:`Batch` in, one outcome per record out.

An appender verifies each record's Ed25519 signatures, appends the valid ones in
order in one log-writer transaction (``api.storage.base.LogWriter.append_batch``),
then has the checkpoint publisher (``api.checkpoints``) sign and publish the new
checkpoint, and only then completes the future :meth:`Appender.submit` returned,
with one outcome per record, in order:

* :class:`~api.storage.base.Appended`: in the log, with the published checkpoint
  (and, for a new entry, its bytes and inclusion proof);
* :class:`~api.storage.base.Rejected`: a bad signature or a semantic rule.

A batch that could not be sequenced (database error, a child process that died)
completes its future with the exception; whether it committed may then be unknown,
and resubmitting is safe (an identical record answers its existing entry).

Two appenders: :class:`InThreadAppender` (the caller's thread; an already completed
future) and ``api.sequencing.child.ChildAppender`` (a child process; a pending
future, so that the sequencer may send the next batch before this one is answered).
Outcomes carry no HTTP answer: ``api.answers`` builds answers from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from api.checkpoints import CheckpointPublisher
from api.storage.base import Appended, LogWriter, Rejected, rejected
from ledger.core.errors import LedgerError
from ledger.core.records import SignedRecord, verify_signatures
from ledger.core.rules import DEFAULT_MAX_AGE_S

#: One record's outcome.
Outcome = Appended | Rejected


@dataclass(frozen=True, slots=True)
class Batch:
    """Records to sequence together, in order, under one age limit (rule 3)."""

    records: Sequence[SignedRecord]
    max_age_s: int | None = DEFAULT_MAX_AGE_S


class Appender(Protocol):
    """Sequences batches in the order submitted (see the module docstring)."""

    def submit(self, batch: Batch) -> Future[list[Outcome]]: ...

    def close(self) -> None: ...


def append_checked(
    writer: LogWriter,
    publisher: CheckpointPublisher,
    items: Sequence[SignedRecord | Rejected],
    max_age_s: int | None,
) -> list[Outcome]:
    """Verify the signatures of ``items``' records (a Rejected is kept as it is),
    append the valid ones in one transaction, publish the new checkpoint; one
    outcome per item, in order. Both appenders sequence through this function."""
    out: list[Outcome | None] = [None] * len(items)
    valid: list[tuple[int, SignedRecord]] = []
    for i, item in enumerate(items):
        if isinstance(item, Rejected):
            out[i] = item
            continue
        try:  # a record that fails is refused alone, never its whole batch
            verify_signatures(item)
        except LedgerError as e:
            out[i] = rejected(e)
        else:
            valid.append((i, item))
    if valid:
        outcome = writer.append_batch([r for _, r in valid], max_age_s=max_age_s)
        for (i, _), result in zip(valid, publisher.publish_batch(outcome), strict=True):
            out[i] = result
    return [r for r in out if r is not None]


class InThreadAppender:
    """Sequences each batch in the submitting thread: the future is completed already."""

    def __init__(self, writer: LogWriter, publisher: CheckpointPublisher) -> None:
        self.writer = writer
        self.publisher = publisher

    def submit(self, batch: Batch) -> Future[list[Outcome]]:
        future: Future[list[Outcome]] = Future()
        try:
            outcomes = append_checked(
                self.writer, self.publisher, list(batch.records), batch.max_age_s
            )
        except Exception as e:
            future.set_exception(e)
        else:
            future.set_result(outcomes)
        return future

    def close(self) -> None:
        pass


__all__ = ["Appender", "Batch", "InThreadAppender", "Outcome", "append_checked"]
