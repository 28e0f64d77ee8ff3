"""How the verifier keeps two cores busy: bundles fetched ahead in threads, signatures
checked in worker processes, and fewer garbage collections meanwhile.

None of this decides whether a log is valid (``ledger.verify.verifier`` does, in log
order, in one process); it only brings the work to it and takes the Ed25519 checks
(docs/spec.md, "Verification procedure", step 4.3) off it:

* :class:`Bundles` reads the entry bundles (``ledger.core.tiles.read_bundle``, with
  the tlog-tiles partial-bundle fallback) a few at a time in threads (I/O), and
  yields them in order;
* :func:`start_workers` starts the worker processes before any thread exists, and
  :func:`verify_triples` is their task: (key, signature, message) triples checked
  with the acceptance rule (``ledger.core.ed25519.verify``), the first failure
  returned; :func:`worker_for` sends every signature of one key to one worker;
* :func:`fewer_collections` raises the young generation's GC threshold while
  entries are in flight.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import threading
import zlib
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import ProcessPoolExecutor

from ledger.core import ed25519, tiles
from ledger.core.errors import LedgerError
from ledger.verify.source import Source

#: Below this many entries to check, worker processes cost more than they save.
MIN_ENTRIES_FOR_PROCESSES = 2 * tiles.TILE_WIDTH
#: Bundles whose signatures go to the workers together (as one task per worker).
BUNDLES_PER_TASK = 4
#: The young generation's threshold while entries are checked (CPython's default: 700).
YOUNG_GC_THRESHOLD = 50_000


# --- reading bundles -------------------------------------------------------------


class Bundles:
    """Fetch bundles ``first``.. of a log of ``size`` entries ahead of use in a few
    threads (I/O), yielding ``(k, entries of bundle k)`` in order."""

    def __init__(self, source: Source, first: int, size: int, ahead: int) -> None:
        self._source = source
        self._next = first
        self._end = -(-size // tiles.TILE_WIDTH)
        self._size = size
        self._ahead = ahead
        self._pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="fetch")
        self._pending: deque[tuple[int, Future[list[bytes]]]] = deque()

    def __iter__(self) -> Generator[tuple[int, list[bytes]], None, None]:
        fetch = self._source.fetch
        try:
            while True:
                while self._next < self._end and len(self._pending) < 2 * self._ahead:
                    fut = self._pool.submit(tiles.read_bundle, fetch, self._next, self._size)
                    self._pending.append((self._next, fut))
                    self._next += 1
                if not self._pending:
                    return
                k, fut = self._pending.popleft()
                yield k, fut.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


# --- checking signatures (in worker processes) ------------------------------------

#: (entry offset in its bundle, signature number, public key, signature, message)
Triple = tuple[int, int, bytes, bytes, bytes]


def verify_triples(triples: Sequence[Triple]) -> tuple[int, int, LedgerError] | None:
    """Check each signature with the acceptance rule (``ledger.core.ed25519.verify``), in
    order; return the first failure as (offset, signature number, error)."""
    for offset, n, pub, sig, msg in triples:
        try:
            ed25519.verify(pub, sig, msg)
        except LedgerError as e:
            return offset, n, e
    return None


def worker_for(public_key: bytes, jobs: int) -> int:
    """Each key goes to one worker, so that its one-off acceptance check (steps 1-4
    of the rule, about a millisecond in pure Python, then cached) runs once."""
    return zlib.crc32(public_key) % jobs


def _noop() -> None:
    pass


def start_workers(jobs: int) -> ProcessPoolExecutor:
    """Worker processes, all started now, before this process starts any thread.

    ``fork`` is used while this process has a single thread (then forking is safe,
    and callers need no ``if __name__ == "__main__"`` guard); with threads already
    running, ``forkserver`` (or ``spawn``) instead.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
    # With fork, the first task starts every worker at once (CPython does not fork
    # workers on demand then): do it before the fetching threads exist.
    pool.submit(_noop).result()
    return pool


def default_jobs() -> int:
    """One worker per CPU."""
    return os.cpu_count() or 1


# --- garbage collection ------------------------------------------------------------


@contextlib.contextmanager
def fewer_collections() -> Generator[None, None, None]:
    """Collect the young generation every 50,000 allocations rather than every 700.

    Entries wait in flight for their signatures (a few bundles: thousands of
    objects), so with the default threshold they survive the young collections only
    to be promoted and walked by the older ones; at 1,000,000 entries that cost the
    main process about 15 % of its time (measured: 54 against 45 us an entry, the
    workers forked from it gaining too). The parsed entries hold no reference cycles:
    reference counting frees them, and a rare cycle is still collected, later. The
    thresholds found are restored afterwards.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], YOUNG_GC_THRESHOLD), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


__all__ = [
    "BUNDLES_PER_TASK",
    "MIN_ENTRIES_FOR_PROCESSES",
    "YOUNG_GC_THRESHOLD",
    "Bundles",
    "Triple",
    "default_jobs",
    "fewer_collections",
    "start_workers",
    "verify_triples",
    "worker_for",
]
