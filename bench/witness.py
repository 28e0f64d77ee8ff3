"""The witness (``ledger witness serve``, issue 15): add-checkpoint latency and throughput.

    python -m bench.witness [--quick]

Starts a real witness process on loopback (``tests/test_witness_kit.py``) witnessing
one log per client, and sends each client's checkpoints in order over one keep-alive
connection, each one :data:`STEP` entries larger than the last, with its RFC 9162
consistency proof from the previous one. Every answer must be 200 with a cosignature.
Rows: p50 and p99 latency (request written to answer read) and the throughput, with 1
and with 4 clients. The witness fsyncs each new tree head before it answers, which
is most of a request's time on this machine's disk.
"""

from __future__ import annotations

import http.client
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.rows import print_rows, row
from tests.test_witness_kit import Log, WitnessProcess

REQUESTS = 300
QUICK_REQUESTS = 40
STEP = 7


def _bodies(origin: str, n: int) -> tuple[Log, list[bytes]]:
    log = Log(origin)
    bodies, old = [], 0
    for _ in range(n):
        log.grow(STEP)
        bodies.append(log.request(old))
        old = len(log.leaves)
    return log, bodies


def _client(port: int, bodies: list[bytes], latencies: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for body in bodies:
            t = time.perf_counter()
            conn.request("POST", "/add-checkpoint", body=body)
            answer = conn.getresponse()
            data = answer.read()
            latencies.append(time.perf_counter() - t)
            if answer.status != 200 or not data.startswith("\u2014 ".encode()):
                raise RuntimeError(f"witness answered {answer.status}: {data[:200]!r}")
    finally:
        conn.close()


def _round(clients: int, n: int) -> list[dict[str, object]]:
    logs = [_bodies(f"log{i}.example.org/bench", n) for i in range(clients)]
    with tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp:
        witness = WitnessProcess(Path(tmp), [log for log, _ in logs]).start()
        try:
            latencies: list[list[float]] = [[] for _ in range(clients)]
            threads = [
                threading.Thread(target=_client, args=(witness.port, bodies, latencies[i]))
                for i, (_, bodies) in enumerate(logs)
            ]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = time.perf_counter() - t
        finally:
            witness.kill()
    every = sorted(x for lat in latencies for x in lat)
    if len(every) != clients * n:
        raise RuntimeError("a client failed; see its error above")
    p99 = statistics.quantiles(every, n=100)[98] if len(every) >= 100 else every[-1]
    note = f"{clients} client(s), one log each, {len(every)} requests of {STEP} new entries"
    return [
        row(f"witness_add_checkpoint_{clients}c_p50", statistics.median(every) * 1000, "ms", note),
        row(f"witness_add_checkpoint_{clients}c_p99", p99 * 1000, "ms", note),
        row(f"witness_add_checkpoint_{clients}c_rate", len(every) / elapsed, "req/s", note),
    ]


def run(quick: bool) -> list[dict[str, object]]:
    n = QUICK_REQUESTS if quick else REQUESTS
    return [*_round(1, n), *_round(4, n)]


if __name__ == "__main__":
    print_rows(run("--quick" in sys.argv[1:]), 40)
