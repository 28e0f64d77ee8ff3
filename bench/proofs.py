"""Inclusion and consistency proof generation at 10k, 100k and 1M entries.

    python -m bench.proofs [--quick]

At each size (10,000 only with --quick) the same random proofs are generated:

* in process, by ``ledger.core.merkle`` over a ``MemoryHashStore`` (the stored hashes
  in a list), over ``SqlStorage`` (SQLite, as the API reads them), and through a
  ``TileHashReader`` whose tiles are made by ``read_tile_data`` from the stored
  hashes, exactly the bytes the API serves at ``/tile/...`` (a new reader per
  proof: it authenticates the partial tiles against the root, then each tile);
* over HTTP: uvicorn on loopback in a child process serving the SQLite log
  (``build_app``, as ``ledger serve`` does), one keep-alive client in this
  process calling ``/api/v1/proofs/inclusion`` and ``/api/v1/proofs/consistency``
  (JSON with both roots), and building inclusion proofs from ``/tile/...``
  fetched over HTTP with a new ``TileHashReader`` each;
* by pymerkle 7's ``InmemoryTree`` on the same leaves as the memory store (its
  root is checked equal to ours, so both compute the same RFC 9162 tree).

The SQLite log holds real signed records, appended through ``append_batch``
(``bench.append``); it grows from one size to the next and is served at each.
Each row is {"benchmark", "value", "unit", "note"} plus "series" and "size" for
the plot; times are means per proof.
"""

from __future__ import annotations

import base64
import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from pymerkle import InmemoryTree  # type: ignore[import-untyped]

from api.storage.sql import SqlStorage
from bench.append import RecordStream, grow_sqlite_log, log_signer, row
from ledger.core.merkle import (
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.core.tiles import TileHashReader, parse_tile_path, read_tile_data

ORIGIN = "bench.example.org/proofs"
ROOT = Path(__file__).resolve().parent.parent

# The server: the application over the SQLite log, on a socket bound to port 0.
# TCP_NODELAY on the listening socket (accepted sockets inherit it): without it,
# uvicorn's separate writes of headers and body meet the client's delayed ACK and
# each keep-alive request waits about 40 ms.
_SERVER = """
import socket, sys
import uvicorn
from api.app import build_app
from api.settings import Settings
from api.storage.sql import SqlStorage
url, origin, vkey, data_dir = sys.argv[1:5]
storage = SqlStorage(url, origin=origin, migrate=False)
settings = Settings(origin=origin, data_dir=data_dir, rate_limit_rps=0, log_level="warning")
app = build_app(storage, settings, vkey)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, log_level="warning", access_log=False)
uvicorn.Server(config).run(sockets=[sock])
"""


def _mean_us(fn: Callable[[int], object], args: list[int]) -> float:
    t = time.perf_counter()
    for a in args:
        fn(a)
    return (time.perf_counter() - t) / len(args) * 1e6


class _Server:
    """uvicorn serving the SQLite log in a child process."""

    def __init__(self, url: str, vkey: str, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, url, ORIGIN, vkey, str(data_dir)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"the server did not start (said {line!r})")
        self.base = f"http://127.0.0.1:{int(line)}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _in_memory(size: int, count: int, rng: random.Random) -> list[dict[str, object]]:
    data = [i.to_bytes(8, "big") for i in range(size)]
    store = MemoryHashStore()
    for d in data:
        store.append(leaf_hash(d))
    root = store.root()
    indexes = [rng.randrange(size) for _ in range(count)]
    olds = [rng.randrange(1, size) for _ in range(count)]
    gc.collect()
    rows = [
        row(f"proof_inclusion_memory_{size}",
            _mean_us(lambda i: inclusion_proof(i, size, store), indexes), "us",
            f"ledger.core.merkle, MemoryHashStore, mean of {count}",
            series="inclusion: memory", size=size),
        row(f"proof_consistency_memory_{size}",
            _mean_us(lambda m: consistency_proof(m, size, store), olds), "us",
            f"ledger.core.merkle, MemoryHashStore, mean of {count}",
            series="consistency: memory", size=size),
    ]  # fmt: skip

    # Tiles made from the stored hashes, as /tile/<L>/<N> serves them; fetched on demand.
    def fetch(path: str) -> bytes:
        return read_tile_data(parse_tile_path(path), store)

    cold = indexes[: max(10, count // 5)]
    rows.append(
        row(f"proof_inclusion_tiles_{size}",
            _mean_us(lambda i: inclusion_proof(i, size, TileHashReader(size, root, fetch)), cold),
            "us", f"new TileHashReader per proof (authenticates its tiles), mean of {len(cold)}",
            series="inclusion: tiles", size=size)
    )  # fmt: skip

    # pymerkle 7 on the same entries: same RFC 9162 hashing, so the same root.
    t = time.perf_counter()
    tree: InmemoryTree = InmemoryTree(algorithm="sha256")
    for d in data:
        tree.append_entry(d)
    build = time.perf_counter() - t
    if tree.get_root() != root:
        raise RuntimeError("pymerkle's root differs from ledger.core.merkle's")
    gc.collect()
    rows += [
        row(f"proof_inclusion_pymerkle_{size}",
            _mean_us(lambda i: tree.prove_inclusion(i + 1, size), indexes), "us",
            f"pymerkle InmemoryTree.prove_inclusion, mean of {count}",
            series="inclusion: pymerkle", size=size),
        row(f"proof_consistency_pymerkle_{size}",
            _mean_us(lambda m: tree.prove_consistency(m, size), olds), "us",
            f"pymerkle InmemoryTree.prove_consistency, mean of {count}",
            series="consistency: pymerkle", size=size),
        row(f"pymerkle_build_{size}", size / build, "leaves/s",
            "InmemoryTree.append_entry (ledger: see merkle store_append)"),
    ]  # fmt: skip
    return rows


def _over_sqlite(
    storage: SqlStorage, size: int, count: int, rng: random.Random, server: _Server
) -> list[dict[str, object]]:
    indexes = [rng.randrange(size) for _ in range(count)]
    olds = [rng.randrange(1, size) for _ in range(count)]
    root = tree_hash(size, storage)
    rows = [
        row(f"proof_inclusion_sqlite_{size}",
            _mean_us(lambda i: inclusion_proof(i, size, storage), indexes), "us",
            f"ledger.core.merkle over SqlStorage (SQLite) in process, mean of {count}",
            series="inclusion: SQLite", size=size),
        row(f"proof_consistency_sqlite_{size}",
            _mean_us(lambda m: consistency_proof(m, size, storage), olds), "us",
            f"ledger.core.merkle over SqlStorage (SQLite) in process, mean of {count}",
            series="consistency: SQLite", size=size),
    ]  # fmt: skip

    with httpx.Client(base_url=server.base, timeout=30) as client:
        # Correctness first: what the API answers verifies against the stored root.
        r = client.get("/api/v1/proofs/inclusion", params={"index": indexes[0], "tree_size": size})
        r.raise_for_status()
        body = r.json()
        proof = [base64.b64decode(h) for h in body["proof"]]
        verify_inclusion(bytes.fromhex(body["leaf_hash"]), indexes[0], size, proof, root)
        r = client.get("/api/v1/proofs/consistency", params={"old_size": olds[0], "new_size": size})
        r.raise_for_status()
        body = r.json()
        proof = [base64.b64decode(h) for h in body["proof"]]
        verify_consistency(olds[0], size, bytes.fromhex(body["old_root"]), root, proof)

        def timed(path: str, params: list[dict[str, int]]) -> list[float]:
            out = []
            for p in params:
                t = time.perf_counter()
                client.get(path, params=p).raise_for_status()
                out.append(time.perf_counter() - t)
            return out

        for kind, path, params in (
            ("inclusion", "/api/v1/proofs/inclusion",
             [{"index": i, "tree_size": size} for i in indexes]),
            ("consistency", "/api/v1/proofs/consistency",
             [{"old_size": m, "new_size": size} for m in olds]),
        ):  # fmt: skip
            times = timed(path, params)
            p99 = statistics.quantiles(times, n=100)[98] * 1e3
            rows.append(
                row(f"proof_{kind}_http_{size}", statistics.fmean(times) * 1e6, "us",
                    f"GET {path}, one keep-alive client, mean of {count}; "
                    f"p50 {statistics.median(times) * 1e3:.2f} ms, p99 {p99:.2f} ms",
                    series=f"{kind}: HTTP API", size=size)
            )  # fmt: skip

        def fetch(path: str) -> bytes:
            r = client.get("/" + path)
            r.raise_for_status()
            return r.content

        cold = indexes[: max(10, count // 5)]

        def from_tiles(i: int) -> list[bytes]:
            return inclusion_proof(i, size, TileHashReader(size, root, fetch))

        rows.append(
            row(f"proof_inclusion_http_tiles_{size}", _mean_us(from_tiles, cold),
                "us", f"client-side proof from /tile/... over HTTP, new reader each, mean of "
                f"{len(cold)}", series="inclusion: HTTP tiles", size=size)
        )  # fmt: skip
    return rows


def run(quick: bool) -> list[dict[str, object]]:
    sizes = [10_000] if quick else [10_000, 100_000, 1_000_000]
    http_max = int(os.environ.get("LEDGER_BENCH_PROOFS_HTTP_MAX", "1000000"))
    count = 200 if quick else 500
    rng = random.Random(6962)
    rows: list[dict[str, object]] = []
    for size in sizes:
        rows += _in_memory(size, count, rng)
        gc.collect()

    signer = log_signer(ORIGIN)
    stream = RecordStream(ORIGIN, seed="proofs")
    with tempfile.TemporaryDirectory(prefix="bench-proofs-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'proofs.db'}"
        storage = SqlStorage(url, origin=ORIGIN)
        try:
            storage.init_log()
            for size in sizes:
                if size > http_max:
                    rows.append(
                        row(f"proof_http_{size}", 0, "skipped",
                            f"LEDGER_BENCH_PROOFS_HTTP_MAX={http_max} limits the SQLite/HTTP sizes")
                    )  # fmt: skip
                    continue
                t = time.perf_counter()
                grow_sqlite_log(storage, signer, stream, size)
                rows.append(
                    row(f"proofs_build_sqlite_log_{size}", time.perf_counter() - t, "s",
                        "sign and append_batch the records that grow the log to this size")
                )  # fmt: skip
                server = _Server(url, signer.vkey, Path(tmp))
                try:
                    rows += _over_sqlite(storage, size, count, rng, server)
                finally:
                    server.close()
        finally:
            storage.close()
    return rows


if __name__ == "__main__":
    for r in run("--quick" in sys.argv[1:]):
        print(f"{r['benchmark']:36} {r['value']:>14,.3f} {r['unit']:9} {r['note']}")
