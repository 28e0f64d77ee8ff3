"""The API's listings and searches on a supporters list of 100,000 signatories (issue 19).

    python -m bench.api_scale [--quick]

Starts the real service (``python -m cli serve``) on a fresh SQLite data directory on
loopback, with the rate limit off, and imports through ``POST /api/v1/records/batch``
(untimed) a supporters list shaped for the question: :data:`SIGNATORIES` registrations
(5,000 with --quick) with varied names, kinds, countries and domains, one statement,
and an endorsement of it by every signatory. Then it times, one request at a time over
one keep-alive connection (request written to answer read):

* ``GET /api/v1/signatories?q=...``: searches by a part of a name (a word of the
  generated names, rare and common ones) and by a domain;
* ``GET /api/v1/statements/{id}/endorsements``: pages of 100 at offsets spread over the
  whole list (the first, the last and random ones), with and without a kind filter.

Rows: p50 and p99 latency (ms) of each, with the issue's target p99 <= 50 ms at 100,000
signatories, and the largest answer in bytes (pages must stay bounded).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.rows import row
from ledger.core.records import Kind
from tests.logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "bench.example.org/api-scale"
SIGNATORIES = 100_000
QUICK_SIGNATORIES = 5_000
QUERIES = 400
WORDS = ("Association", "Foundation", "Ministry", "Institute", "Council", "Network", "Group")
PLACES = ("Lyon", "Nairobi", "Osaka", "Quito", "Tartu", "Accra", "Perth", "Graz")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record_bytes(entry: bytes) -> bytes:
    """The record of an entry: everything after the header's empty line."""
    return entry[entry.index(b"\n\n") + 2 :]


def _workload(n: int) -> tuple[list[bytes], bytes]:
    """Registrations, one statement, then an endorsement by each signatory."""
    now_ms = int(time.time() * 1000) - 60_000
    f = LogFactory(ORIGIN, seed=f"api-scale {n}", start_ms=now_ms, step_ms=0)
    rng = random.Random(n)
    kinds = list(Kind)
    members = []
    for i in range(n):
        name = f"{rng.choice(WORDS)} of {rng.choice(PLACES)} {i}"
        members.append(f.register(kinds[i % len(kinds)], name=name))
    statement = f.statement(members[:2], title="The declaration")
    for m in members:
        f.endorse(m, statement)
    return [_record_bytes(e) for e in f.entries], statement


@contextmanager
def _server(tmp: Path) -> Iterator[int]:
    port = _port()
    env = {
        **os.environ,
        "LEDGER_RATE_LIMIT_RPS": "0",
        "LEDGER_MAX_AGE_S": "none",
    }
    cmd = [sys.executable, "-m", "cli", "serve", "--data-dir", str(tmp / "data")]
    cmd += ["--origin", ORIGIN, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"ledger serve did not start: {err[-2000:]}")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _import(port: int, records: list[bytes]) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for start in range(0, len(records), 1000):
        body = json.dumps({"records": [r.decode() for r in records[start : start + 1000]]})
        c.request("POST", "/api/v1/records/batch", body, {"Content-Type": "application/json"})
        res = c.getresponse()
        data = res.read()
        if res.status not in (200, 201, 207):
            raise RuntimeError(f"batch import failed: {res.status} {data[:500]!r}")


def _time(port: int, paths: list[str]) -> tuple[list[float], int]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times, largest = [], 0
    for path in paths:
        t = time.perf_counter()
        c.request("GET", path)
        res = c.getresponse()
        data = res.read()
        times.append((time.perf_counter() - t) * 1000)
        if res.status != 200:
            raise RuntimeError(f"GET {path}: {res.status} {data[:300]!r}")
        largest = max(largest, len(data))
    return times, largest


def _rows(
    name: str, times: list[float], largest: int, n: int, note: str
) -> list[dict[str, object]]:
    p99 = statistics.quantiles(times, n=100)[98] if len(times) >= 100 else max(times)
    target = "<= 50" if n >= SIGNATORIES else None
    return [
        row(f"{name}_p50", statistics.median(times), "ms", note),
        row(
            f"{name}_p99", p99, "ms", note, target=target, ok=None if target is None else p99 <= 50
        ),
        row(f"{name}_largest_answer", largest / 1024, "KiB", "largest answer body"),
    ]


def run(quick: bool) -> list[dict[str, object]]:
    n = QUICK_SIGNATORIES if quick else SIGNATORIES
    t = time.perf_counter()
    records, statement = _workload(n)
    build_s = time.perf_counter() - t
    rng = random.Random(1)
    out: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-scale-") as tmp, _server(Path(tmp)) as port:
        t = time.perf_counter()
        _import(port, records)
        import_s = time.perf_counter() - t
        out.append(
            row(
                f"api_scale_{n}_import",
                len(records) / import_s,
                "records/s",
                f"{len(records):,} records by batch (build {build_s:.0f} s, untimed)",
            )
        )
        words = [*WORDS, *PLACES, "of Lyon 1", f"{n - 1}", "zzz-none"]
        searches = [
            f"/api/v1/signatories?q={rng.choice(words).replace(' ', '%20')}" for _ in range(QUERIES)
        ]
        searches += [
            f"/api/v1/signatories?q=s{2 * rng.randrange(n // 2)}.example.org"
            for _ in range(QUERIES // 4)
        ]
        times, largest = _time(port, searches)
        out += _rows(
            f"api_search_{n}", times, largest, n, f"{len(searches)} searches (name part or domain)"
        )
        sid = statement.hex()
        offsets = [0, max(0, n - 100)] + [rng.randrange(n) for _ in range(QUERIES)]
        pages = [f"/api/v1/statements/{sid}/endorsements?offset={o}&limit=100" for o in offsets]
        pages += [
            f"/api/v1/statements/{sid}/endorsements?kind=company&offset={rng.randrange(n // 5)}"
            for _ in range(QUERIES // 4)
        ]
        times, largest = _time(port, pages)
        out += _rows(
            f"api_endorsements_page_{n}",
            times,
            largest,
            n,
            f"{len(pages)} pages of 100 at offsets over the whole list",
        )
    return out


if __name__ == "__main__":
    for r in run("--quick" in sys.argv[1:]):
        ok = "" if r.get("ok") is None else ("  ok" if r["ok"] else "  MISSED ") + str(r["target"])
        print(f"{r['benchmark']:40} {r['value']:>12,.3f} {r['unit']:9} {r['note']}{ok}")
