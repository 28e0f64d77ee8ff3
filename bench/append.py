"""Append cost per entry as the log grows: it must stay flat.

    python -m bench.append [--quick]

Two appends are measured at log sizes of 10,000, 100,000 and 1,000,000 entries
(10,000 and 50,000 with --quick), each as the cost of the *next* K appends after
growing the log to that size:

* the Merkle append alone: ``ledger.core.merkle.stored_hashes_for_append`` over an
  in-memory list of stored hashes (the reads of an append are O(log n));
* the storage append: ``SqlStorage.append_batch`` on SQLite (a file, WAL,
  synchronous=FULL), batches of 256 signed endorsements, one commit and one
  signed checkpoint per batch; records are signed beforehand, not timed.

The ratio of the cost at the largest size to the cost at 10,000 is the flatness
figure (target <= 1.5). Each row is {"benchmark", "value", "unit", "note"} plus
"target", "ok" and, for the plot, "series" and "size".

:func:`grow_sqlite_log` and :class:`RecordStream` are shared with ``bench.proofs``.
"""

from __future__ import annotations

import gc
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.checkpoints import CheckpointPublisher
from api.storage.base import Appended
from api.storage.sql import SqlStorage
from bench.rows import row
from keys.signer import NoteSigner
from ledger.core.merkle import leaf_hash, stored_hashes_for_append
from ledger.core.records import (
    Endorsement,
    Kind,
    RecordSignature,
    Registration,
    SignedRecord,
    Statement,
    encode_body,
)

ORIGIN = "bench.example.org/append"
STATEMENTS = 100  # each signatory endorses every statement once
BATCH = 256


def log_signer(origin: str) -> NoteSigner:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"{origin} log".encode()).digest())
    return NoteSigner(key, origin)


class RecordStream:
    """An endless stream of valid signed records, made on demand (bounded memory).

    Signatory 0 registers and writes ``STATEMENTS`` statements; then each
    signatory in turn registers and endorses every statement once. Every record
    is signed by a key derived from the seed, so two runs give the same records
    (up to ``signed_at``).
    """

    def __init__(self, origin: str, *, seed: str = "bench") -> None:
        self.origin = origin
        self.seed = seed
        self.signed_at = int(time.time()) - 60
        self._iter = self._records()

    def _key(self, n: int) -> tuple[Ed25519PrivateKey, bytes]:
        key = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"{self.seed} signatory {n}".encode()).digest()
        )
        return key, key.public_key().public_bytes_raw()

    def _records(self) -> Iterator[SignedRecord]:
        at = self.signed_at
        key, pub = self._key(0)
        yield _sign(Registration(self.origin, at, pub, "Signatory 0", Kind.OTHER), key)
        author = hashlib.sha256(pub).digest()
        statements = []
        for j in range(STATEMENTS):
            st = _sign(Statement(self.origin, at, f"T{j}", (author,), f"Text {j}.\n"), key)
            statements.append(st.record_id)
            yield st
        n = 0
        while True:
            if n:
                key, pub = self._key(n)
                yield _sign(Registration(self.origin, at, pub, f"Signatory {n}", Kind.OTHER), key)
            me = hashlib.sha256(pub).digest()
            for st_id in statements:
                yield _sign(Endorsement(self.origin, at, me, st_id), key)
            n += 1

    def take(self, count: int) -> list[SignedRecord]:
        return [next(self._iter) for _ in range(count)]


def _sign(body: Registration | Statement | Endorsement, key: Ed25519PrivateKey) -> SignedRecord:
    data = encode_body(body)
    return SignedRecord(
        body, data, (RecordSignature(key.public_key().public_bytes_raw(), key.sign(data)),)
    )


def append_records(
    storage: SqlStorage, signer: NoteSigner, records: Sequence[SignedRecord], batch: int = BATCH
) -> float:
    """Append ``records`` in batches, publishing each batch's checkpoint (as the
    sequencer does); return the seconds it took."""
    publisher = CheckpointPublisher(storage, signer, None)
    t = time.perf_counter()
    for i in range(0, len(records), batch):
        outcome = storage.append_batch(records[i : i + batch], max_age_s=None)
        results = publisher.publish_batch(outcome)
        if not all(isinstance(r, Appended) and not r.existing for r in results):
            raise RuntimeError(f"unexpected append results: {results[:3]}")
    return time.perf_counter() - t


def grow_sqlite_log(
    storage: SqlStorage, signer: NoteSigner, stream: RecordStream, size: int, chunk: int = 8_192
) -> None:
    """Append records from ``stream`` until the log holds ``size`` entries."""
    while (have := storage.head().size) < size:
        append_records(storage, signer, stream.take(min(chunk, size - have)), 1_024)


class _ListStore:
    """Stored hashes in a list: the HashReader a Merkle append reads its siblings from."""

    __slots__ = ("hashes",)

    def __init__(self) -> None:
        self.hashes: list[bytes] = []

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        h = self.hashes
        return [h[i] for i in indexes]


def _merkle_cost(sizes: list[int], probe: int, repeats: int) -> dict[int, float]:
    """Microseconds per stored-hash append, for the next ``probe`` leaves at each size."""
    store = _ListStore()
    hashes = store.hashes
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(probe)]
    costs: dict[int, float] = {}
    n = 0
    for size in sizes:
        while n < size:
            hashes.extend(stored_hashes_for_append(n, leaves[n % probe], store))
            n += 1
        gc.collect()
        best = float("inf")
        for _ in range(repeats):
            mark = len(hashes)
            t = time.perf_counter()
            for k in range(probe):
                hashes.extend(stored_hashes_for_append(n + k, leaves[k], store))
            best = min(best, time.perf_counter() - t)
            del hashes[mark:]  # undo: measure the same K appends again
        costs[size] = best / probe * 1e6
    return costs


def _storage_cost(sizes: list[int], probe: int, repeats: int, tmp: Path) -> dict[int, float]:
    """Microseconds per entry of append_batch on SQLite for ``probe`` entries at each size.

    Each batch (one commit, one fsync) is timed on its own; the cost at a size is
    the median batch of ``repeats`` probes, so that a burst of disk or CPU load
    from another process does not pass for growth. Every probe appends new
    entries (a log never forgets): the log grows by ``probe * repeats`` there.
    """
    signer = log_signer(ORIGIN)
    stream = RecordStream(ORIGIN)
    storage = SqlStorage(f"sqlite:///{tmp / 'append.db'}", origin=ORIGIN)
    costs: dict[int, float] = {}
    try:
        storage.init_log()
        for size in sizes:
            grow_sqlite_log(storage, signer, stream, size)
            gc.collect()
            times = []
            for _ in range(repeats):
                records = stream.take(probe)
                for i in range(0, probe, BATCH):
                    times.append(append_records(storage, signer, records[i : i + BATCH]))
            costs[size] = statistics.median(times) / BATCH * 1e6
    finally:
        storage.close()
    return costs


def run(quick: bool) -> list[dict[str, object]]:
    sizes = [10_000, 50_000] if quick else [10_000, 100_000, 1_000_000]
    rows: list[dict[str, object]] = []
    first, last = sizes[0], sizes[-1]

    merkle = _merkle_cost(sizes, 2_000 if quick else 20_000, 3 if quick else 5)
    for size, cost in merkle.items():
        rows.append(
            row(f"append_merkle_at_{size}", cost, "us/entry",
                f"stored_hashes_for_append, in-memory list, next K at {size:,} (best of runs)",
                series="append: Merkle (memory)", size=size)
        )  # fmt: skip
    ratio = merkle[last] / merkle[first]
    rows.append(
        row(f"append_merkle_ratio_{last}_{first}", ratio, "x",
            f"cost per append at {last:,} / at {first:,} (flat: about 1)",
            target="<= 1.5", ok=ratio <= 1.5)
    )  # fmt: skip

    probe = 1_280 if quick else 2_560
    with tempfile.TemporaryDirectory(prefix="bench-append-") as tmp:
        storage = _storage_cost(sizes, probe, 3 if quick else 5, Path(tmp))
    for size, cost in storage.items():
        rows.append(
            row(f"append_sqlite_at_{size}", cost, "us/entry",
                f"SqlStorage.append_batch, median of {BATCH}-entry batches (one commit each) "
                f"onto {size:,}", series="append: SQLite storage", size=size)
        )  # fmt: skip
    ratio = storage[last] / storage[first]
    rows.append(
        row(f"append_sqlite_ratio_{last}_{first}", ratio, "x",
            f"cost per entry at {last:,} / at {first:,} (flat: about 1)",
            target="<= 1.5", ok=ratio <= 1.5)
    )  # fmt: skip
    return rows


if __name__ == "__main__":
    for r in run("--quick" in sys.argv[1:]):
        print(f"{r['benchmark']:34} {r['value']:>14,.3f} {r['unit']:9} {r['note']}")
