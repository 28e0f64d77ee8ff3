"""Benchmarks of ledger.core.merkle and ledger.core.tiles.

    python -m bench.merkle [--quick]

Builds a tree of 1,000,000 leaves (20,000 with --quick) in a MemoryHashStore,
then times proof generation and verification over random proofs, and proofs
read through a TileHashReader from in-memory tiles. Each row is
{"benchmark", "value", "unit", "note"}.
"""

from __future__ import annotations

import gc
import random
import sys
import time

from ledger.core.merkle import (
    CompactRange,
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.core.tiles import TileHashReader, read_tile_data, tiles_for_size


def _row(benchmark: str, value: float, unit: str, note: str) -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value, 3), "unit": unit, "note": note}


def run(quick: bool) -> list[dict[str, object]]:
    size = 20_000 if quick else 1_000_000
    proofs = 100 if quick else 300
    rng = random.Random(9162)
    rows: list[dict[str, object]] = []

    t = time.perf_counter()
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(size)]
    elapsed = time.perf_counter() - t
    rows.append(_row("leaf_hash", size / elapsed, "leaves/s", "SHA-256(0x00 || 8-byte entry)"))

    store = MemoryHashStore()
    append = store.append
    t = time.perf_counter()
    for h in leaves:
        append(h)
    elapsed = time.perf_counter() - t
    rows.append(
        _row("store_append", size / elapsed, "leaves/s", f"MemoryHashStore, {size:,} leaves")
    )

    cr = CompactRange()
    t = time.perf_counter()
    for h in leaves:
        cr.append(h)
    root = cr.root()
    elapsed = time.perf_counter() - t
    rows.append(_row("compact_range_append", size / elapsed, "leaves/s", f"{size:,} leaves"))
    assert root == store.root() == tree_hash(size, store)

    indexes = [rng.randrange(size) for _ in range(proofs)]
    # Building the tree leaves a full garbage collection pending (~30 ms at 1M
    # leaves) that would otherwise land in the first timed proofs.
    gc.collect()
    t = time.perf_counter()
    incl = [inclusion_proof(i, size, store) for i in indexes]
    elapsed = time.perf_counter() - t
    rows.append(
        _row("inclusion_proof", elapsed / proofs * 1e6, "us", f"mean of {proofs}, size {size:,}")
    )
    t = time.perf_counter()
    for i, p in zip(indexes, incl, strict=True):
        verify_inclusion(leaves[i], i, size, p, root)
    elapsed = time.perf_counter() - t
    rows.append(_row("inclusion_verify", elapsed / proofs * 1e6, "us", f"mean of {proofs}"))

    olds = [rng.randrange(1, size) for _ in range(proofs)]
    t = time.perf_counter()
    cons = [consistency_proof(m, size, store) for m in olds]
    elapsed = time.perf_counter() - t
    rows.append(
        _row("consistency_proof", elapsed / proofs * 1e6, "us", f"mean of {proofs}, to {size:,}")
    )
    old_roots = [tree_hash(m, store) for m in olds]
    t = time.perf_counter()
    for m, r, p in zip(olds, old_roots, cons, strict=True):
        verify_consistency(m, size, r, root, p)
    elapsed = time.perf_counter() - t
    rows.append(_row("consistency_verify", elapsed / proofs * 1e6, "us", f"mean of {proofs}"))

    t = time.perf_counter()
    files = {tile.path: read_tile_data(tile, store) for tile in tiles_for_size(size)}
    elapsed = time.perf_counter() - t
    rows.append(_row("tiles_build", elapsed, "s", f"all {len(files):,} tiles of {size:,} leaves"))

    cold = 20 if quick else 50
    t = time.perf_counter()
    for i in indexes[:cold]:
        inclusion_proof(i, size, TileHashReader(size, root, files.__getitem__))
    elapsed = time.perf_counter() - t
    rows.append(
        _row(
            "inclusion_proof_tiles_cold",
            elapsed / cold * 1e3,
            "ms",
            f"mean of {cold}, new TileHashReader each (fetch and check its tiles)",
        )
    )
    reader = TileHashReader(size, root, files.__getitem__)
    for i in indexes:
        inclusion_proof(i, size, reader)
    t = time.perf_counter()
    for i in indexes:
        inclusion_proof(i, size, reader)
    elapsed = time.perf_counter() - t
    rows.append(_row("inclusion_proof_tiles_warm", elapsed / proofs * 1e6, "us", "tiles cached"))
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv[1:]):
        print(f"{row['benchmark']:28} {row['value']:>14,.3f} {row['unit']:9} {row['note']}")
