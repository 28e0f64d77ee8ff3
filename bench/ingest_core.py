"""Benchmarks of sequencing in process: SqlStorage.append_batch on SQLite and PostgreSQL.

    python -m bench.ingest_core [--quick]

Measures, with records signed beforehand (signature checks are the route's job and
are not timed here):

* ``append_batch`` throughput (records/s) with batches of 1 and of 256 endorsement
  records, on SQLite (a file in a temporary directory, WAL, synchronous=FULL) and on
  PostgreSQL when ``LEDGER_BENCH_DATABASE_URL`` or ``LEDGER_TEST_DATABASE_URL`` is set
  (in a schema of its own, dropped afterwards);
* the cost of an append per entry when the log holds 10,000 and 100,000 entries
  (2,000 and 20,000 with --quick), and their ratio: an append reads O(log n) stored
  hashes, so the ratio should stay near 1.

Each row is {"benchmark", "value", "unit", "note"}.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import create_engine, make_url, text

from api.checkpoints import CheckpointPublisher
from api.storage.base import Appended
from api.storage.sql import SqlStorage
from keys.signer import NoteSigner
from ledger.core.records import (
    Endorsement,
    Kind,
    RecordSignature,
    Registration,
    SignedRecord,
    Statement,
    encode_body,
)

ORIGIN = "bench.example.org/ingest"
STATEMENTS = 100  # endorsements are spread over this many statements


def _row(benchmark: str, value: float, unit: str, note: str) -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value, 3), "unit": unit, "note": note}


def _key(label: str) -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _signed(body: Registration | Statement | Endorsement, key: Ed25519PrivateKey) -> SignedRecord:
    data = encode_body(body)
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SignedRecord(body, data, (RecordSignature(pub, key.sign(data)),))


class Workload:
    """Registrations, statements, then as many endorsements as asked (distinct pairs)."""

    def __init__(self, endorsements: int, *, seed: str = "bench") -> None:
        self.signed_at = int(time.time()) - 60
        signatories = max(1, -(-endorsements // STATEMENTS))
        keys = [_key(f"{seed} signatory {i}") for i in range(signatories)]
        self.setup: list[SignedRecord] = [
            _signed(Registration(ORIGIN, self.signed_at, pub, f"S{i}", Kind.OTHER), key)
            for i, (key, pub) in enumerate(keys)
        ]
        author_key, author_pub = keys[0]
        author = hashlib.sha256(author_pub).digest()
        statements = [
            _signed(
                Statement(ORIGIN, self.signed_at, f"T{j}", (author,), f"Text {j}.\n"), author_key
            )
            for j in range(STATEMENTS)
        ]
        self.setup += statements
        self.endorsements: list[SignedRecord] = []
        for n in range(endorsements):
            key, pub = keys[n // STATEMENTS]
            st = statements[n % STATEMENTS].record_id
            body = Endorsement(ORIGIN, self.signed_at, hashlib.sha256(pub).digest(), st)
            self.endorsements.append(_signed(body, key))


def _append_all(
    storage: SqlStorage, signer: NoteSigner, records: list[SignedRecord], batch: int
) -> float:
    """Append ``records`` in batches of ``batch``, publishing each batch's checkpoint
    (as the sequencer does); return the seconds it took."""
    publisher = CheckpointPublisher(storage, signer, None)
    t = time.perf_counter()
    for i in range(0, len(records), batch):
        outcome = storage.append_batch(records[i : i + batch], max_age_s=None)
        results = publisher.publish_batch(outcome)
        if not all(isinstance(r, Appended) and not r.existing for r in results):
            raise RuntimeError(f"unexpected results: {results[:3]}")
    return time.perf_counter() - t


@contextmanager
def _backends() -> Iterator[list[tuple[str, Callable[[], str]]]]:
    """(name, new database URL) of SQLite and, if configured, PostgreSQL.

    Each call of a URL maker gives an empty database: a new SQLite file, or a new
    PostgreSQL schema; all are removed at the end.
    """
    schemas: list[str] = []
    base = os.environ.get("LEDGER_BENCH_DATABASE_URL") or os.environ.get("LEDGER_TEST_DATABASE_URL")
    admin = create_engine(base, isolation_level="AUTOCOMMIT") if base else None
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:

        def sqlite_url() -> str:
            return f"sqlite:///{Path(tmp) / f'{uuid.uuid4().hex}.db'}"

        def pg_url() -> str:
            assert admin is not None and base is not None
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            schemas.append(schema)
            url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
            return url.render_as_string(hide_password=False)

        backends: list[tuple[str, Callable[[], str]]] = [("sqlite", sqlite_url)]
        if admin is not None:
            backends.append(("postgresql", pg_url))
        try:
            yield backends
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    for schema in schemas:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()


def _new_log(url: str, signer: NoteSigner, setup: list[SignedRecord]) -> SqlStorage:
    storage = SqlStorage(url, origin=ORIGIN)
    storage.init_log()
    _append_all(storage, signer, setup, 256)
    return storage


def run(quick: bool) -> list[dict[str, object]]:
    small, large = (2_000, 20_000) if quick else (10_000, 100_000)
    per_batch_1 = 100 if quick else 300
    per_batch_256 = 2_560 if quick else 10_240
    sample = 1_280 if quick else 2_560  # entries appended to measure the cost at a size
    signer = NoteSigner(
        Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench log").digest()), ORIGIN
    )
    rows: list[dict[str, object]] = []
    t = time.perf_counter()
    work = Workload(large + sample)
    rows.append(
        _row(
            "ingest_core_prepare",
            time.perf_counter() - t,
            "s",
            f"sign {len(work.setup) + len(work.endorsements):,} records beforehand",
        )
    )
    with _backends() as backends:
        for name, new_url in backends:
            for batch, count in ((1, per_batch_1), (256, per_batch_256)):
                storage = _new_log(new_url(), signer, work.setup)
                try:
                    records = work.endorsements[:count]
                    elapsed = _append_all(storage, signer, records, batch)
                finally:
                    storage.close()
                rows.append(
                    _row(
                        f"append_batch_{name}_batch{batch}",
                        count / elapsed,
                        "records/s",
                        f"{count:,} endorsements in batches of {batch}, one commit each",
                    )
                )

            storage = _new_log(new_url(), signer, work.setup)
            try:
                costs: dict[int, float] = {}
                done = 0
                for size in (small, large):
                    fill = size - storage.head().size
                    _append_all(storage, signer, work.endorsements[done : done + fill], 256)
                    done += fill
                    probe = work.endorsements[done : done + sample]
                    elapsed = _append_all(storage, signer, probe, 256)
                    done += sample
                    costs[size] = elapsed / sample * 1e6
                    rows.append(
                        _row(
                            f"append_cost_{name}_at_{size}",
                            costs[size],
                            "us/entry",
                            f"{sample:,} entries in batches of 256 onto a log of {size:,}",
                        )
                    )
            finally:
                storage.close()
            rows.append(
                _row(
                    f"append_cost_{name}_ratio",
                    costs[large] / costs[small],
                    "x",
                    f"cost per entry at {large:,} / at {small:,} entries (flat: about 1)",
                )
            )
        if len(backends) == 1:
            rows.append(
                _row(
                    "append_batch_postgresql",
                    0,
                    "skipped",
                    "set LEDGER_BENCH_DATABASE_URL=postgresql+psycopg://... to measure",
                )
            )
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv[1:]):
        print(f"{row['benchmark']:34} {row['value']:>14,.3f} {row['unit']:9} {row['note']}")
