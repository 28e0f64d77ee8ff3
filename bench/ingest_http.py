"""Sustained ingest over real HTTP: uvicorn on loopback, a load generator in other processes.

    python -m bench.ingest_http [--quick]

The server is the real application (``api.app:create_app``, the factory ``ledger
serve`` runs) under ``python -m uvicorn`` in a process of its own, on a fresh data
directory, with the access log off and the per-client rate limit off (all the load
comes from one address). Records (registrations, statements, then endorsements) are
signed beforehand; the registrations and statements are imported first, untimed.

The load generator runs in ``CLIENT_PROCS`` other processes, each an asyncio loop
driving many keep-alive connections over raw sockets (requests are prebuilt bytes;
a response is read by its Content-Length), so that the client is not what is
measured. To show that, the same client measures:

* ``http_client_ceiling``: a bare asyncio HTTP responder (no framework), the most
  this client can drive on this machine while sharing its cores with a server;
* ``http_trivial_post``: a trivial FastAPI POST endpoint (``trivial_app`` below)
  under the same uvicorn settings, posted the same record bodies, answering a small
  JSON document: the yardstick of the issue's ratio target, measured in each round of
  the single-record ingest below (the median of the SQLite rounds is reported).

Then, on SQLite and (when ``LEDGER_BENCH_DATABASE_URL`` or
``LEDGER_TEST_DATABASE_URL`` is set) PostgreSQL, each on a fresh database:

* ``http_ingest_single_*``: one record per ``POST /api/v1/records`` (201 with a
  receipt), ``CONNECTIONS`` connections; records/s and p50/p99 acknowledgement
  latency (request written to answer read, i.e. after the commit). After a warm-up,
  ``ROUNDS`` paired rounds (one with --quick): the trivial endpoint, then the next
  records, back to back, so that each round's ratio compares the two under the same
  load of this shared machine (it drifts by tens of percent within minutes). Rates
  and ratios are the median of the rounds, p99 the worst round; every round is in
  the note;
* ``http_ingest_batch_*``: ``POST /api/v1/records/batch`` of ``BATCH`` records,
  ``BATCH_CONNECTIONS`` connections; records/s and p50/p99 latency per request.

Every answer is checked (201, and 201 for each record of a batch) and the log's size
afterwards must be exactly what was sent. ``LEDGER_BENCH_WORKERS`` sets uvicorn's
worker processes (default 1, the same for every server of the run).

Each row is {"benchmark", "value", "unit", "note"} and, for the issue's targets,
"target" and "ok".
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import create_engine, make_url, text

from api.server import prepare
from api.settings import Settings
from bench.ingest_core import ORIGIN, Workload
from bench.rows import row as _row

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CLIENT_PROCS = 2
CONNECTIONS = 96  # single-record ingest: concurrent connections, over all client processes
BATCH = 500  # records per batch request
BATCH_CONNECTIONS = 4
WORKERS = int(os.environ.get("LEDGER_BENCH_WORKERS", "1"))

#: Paired rounds (trivial endpoint, then single-record ingest) in full mode.
ROUNDS = 3

TARGET_SINGLE = 1000.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 1000.0
TARGET_BATCH = 5000.0


# --- the trivial endpoint and the bare responder ---------------------------------------


def trivial_app() -> Any:
    """A FastAPI app with one POST endpoint that reads the body and answers small JSON."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, object]:
        body = await request.body()
        return {"ok": True, "size": len(body)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


_BARE_ANSWER = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)


class _BareHTTP(asyncio.Protocol):
    """Answers every request (header block plus Content-Length body) with a fixed answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            n = 0
            if i >= 0:
                j = head.find(b"\r\n", i)
                n = int(head[i + 15 : j if j >= 0 else len(head)])
            if len(self.buf) < end + 4 + n:
                return
            self.buf = self.buf[end + 4 + n :]
            self.transport.write(_BARE_ANSWER)


def _bare_server(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_BareHTTP, HOST, port)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# --- the load generator ------------------------------------------------------------


def _request(path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _drive(
    port: int, requests: Sequence[bytes], conns: int, barrier: Any, count_batch: bool
) -> dict[str, Any]:
    streams = [await asyncio.open_connection(HOST, port) for _ in range(conns)]
    for _, w in streams:
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    items: Counter[int] = Counter()
    it = iter(requests)
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
    start = time.time()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for req in it:
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            i = lower.find(b"content-length:")
            n = int(lower[i + 15 : lower.find(b"\r\n", i)]) if i >= 0 else 0
            body = await reader.readexactly(n)
            latencies.append(time.perf_counter() - t)
            statuses[int(head[9:12])] += 1
            if count_batch and head[9:12] == b"200":
                items.update(r["status"] for r in json.loads(body)["results"])

    await asyncio.gather(*(one(r, w) for r, w in streams))
    end = time.time()
    for _, w in streams:
        w.close()
    return {
        "start": start,
        "end": end,
        "latencies": latencies,
        "statuses": dict(statuses),
        "items": dict(items),
    }


def _client(
    port: int, requests: Sequence[bytes], conns: int, barrier: Any, count_batch: bool
) -> dict[str, Any]:
    return asyncio.run(_drive(port, requests, conns, barrier, count_batch))


def _load(
    port: int, requests: Sequence[bytes], conns: int, *, count_batch: bool = False
) -> dict[str, Any]:
    """Send ``requests`` over ``conns`` connections from CLIENT_PROCS processes."""
    procs = min(CLIENT_PROCS, conns)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(procs) as pool:
        barrier = manager.Barrier(procs)
        jobs = [
            pool.apply_async(
                _client,
                (port, requests[p::procs], conns // procs + (p < conns % procs), barrier),
                {"count_batch": count_batch},
            )
            for p in range(procs)
        ]
        parts = [j.get(timeout=900) for j in jobs]
    latencies = sorted(x for p in parts for x in p["latencies"])
    statuses: Counter[int] = Counter()
    items: Counter[int] = Counter()
    for p in parts:
        statuses.update({int(k): v for k, v in p["statuses"].items()})
        items.update({int(k): v for k, v in p["items"].items()})
    return {
        "seconds": max(p["end"] for p in parts) - min(p["start"] for p in parts),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": statuses,
        "items": items,
        "requests": len(latencies),
    }


# --- servers -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if _get(port, path, 1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not get ready")


@contextmanager
def _uvicorn(app: str, env: dict[str, str], ready: str) -> Iterator[int]:
    """Run ``app`` (a factory) under uvicorn in its own process; yield its port."""
    for attempt in range(3):
        port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
        try:
            try:
                _wait_ready(proc, port, ready)
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            yield port
            return
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def _bare(ready_timeout: float = 30) -> Iterator[int]:
    port = _free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_bare_server, args=(port,))
    proc.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                socket.create_connection((HOST, port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        if proc.pid is not None:
            os.kill(proc.pid, signal.SIGINT)
        proc.join(10)
        if proc.is_alive():
            proc.kill()


@contextmanager
def _databases() -> Iterator[list[tuple[str, Any]]]:
    """(name, make a new empty database URL for a data dir) of SQLite and maybe PostgreSQL."""
    base = os.environ.get("LEDGER_BENCH_DATABASE_URL") or os.environ.get("LEDGER_TEST_DATABASE_URL")
    schemas: list[str] = []
    admin = None
    if base:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")

    def sqlite_url(data_dir: Path) -> str | None:
        return None  # the default: <data-dir>/ledger.db

    def pg_url(data_dir: Path) -> str | None:
        assert admin is not None and base is not None
        schema = f"bench_http_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    backends: list[tuple[str, Any]] = [("sqlite", sqlite_url)]
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


@contextmanager
def _ledger(tmp: Path, new_url: Any) -> Iterator[int]:
    """A fresh ledger service (new data dir and database) under uvicorn; yield its port."""
    data_dir = tmp / uuid.uuid4().hex
    url = new_url(data_dir)
    kw: dict[str, Any] = {"database_url": url} if url else {}
    settings = Settings(data_dir=data_dir, origin=ORIGIN, rate_limit_rps=0, **kw)
    prepare(settings).close()  # key and schema once, before the workers start
    env = settings.to_env()
    with _uvicorn("api.app:create_app", env, "/healthz") as port:
        yield port


# --- the measurements ---------------------------------------------------------------


def _single_requests(texts: Sequence[bytes], path: str) -> list[bytes]:
    return [_request(path, t, "text/plain; charset=utf-8") for t in texts]


def _batch_requests(texts: Sequence[bytes], n: int) -> list[bytes]:
    return [
        _request(
            "/api/v1/records/batch",
            json.dumps([t.decode() for t in texts[i : i + n]]).encode(),
            "application/json",
        )
        for i in range(0, len(texts), n)
    ]


def _import_setup(port: int, setup: Sequence[bytes]) -> None:
    """Registrations and statements through the batch endpoint (untimed)."""
    res = _load(port, _batch_requests(setup, 1000), 1, count_batch=True)
    if res["statuses"] != {200: res["requests"]} or res["items"] != {201: len(setup)}:
        raise RuntimeError(f"setup import failed: {res['statuses']} {res['items']}")


def _log_size(port: int) -> int:
    status, body = _get(port, "/api/v1/log")
    if status != 200:
        raise RuntimeError(f"GET /api/v1/log answered {status}")
    return int(json.loads(body)["size"])


def _check(res: dict[str, Any], expected_status: int, what: str) -> None:
    if res["statuses"] != {expected_status: res["requests"]}:
        raise RuntimeError(f"{what}: unexpected answers {dict(res['statuses'])}")


def _rate(res: dict[str, Any]) -> float:
    return float(res["requests"] / res["seconds"])


def _paired_rounds(
    trivial_port: int,
    port: int,
    trivial: Sequence[bytes],
    texts: Sequence[bytes],
    rounds: int,
    name: str,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``rounds`` times: the trivial endpoint, then single-record ingest of the next
    ``len(texts) // rounds`` records. Each pair is measured back to back, so that the
    ratio of a pair compares the two under the same machine load."""
    n = len(texts) // rounds
    pairs = []
    for r in range(rounds):
        res_t = _load(trivial_port, trivial, CONNECTIONS)
        _check(res_t, 200, "trivial endpoint")
        res_i = _load(
            port, _single_requests(texts[r * n : (r + 1) * n], "/api/v1/records"), CONNECTIONS
        )
        _check(res_i, 201, f"single ingest on {name}")
        pairs.append((res_t, res_i))
    return pairs


def run(quick: bool) -> list[dict[str, object]]:
    rounds = 1 if quick else ROUNDS
    n_single = 3_000 if quick else 20_000  # per round
    n_batch = 20_000 if quick else 100_000
    n_trivial = 10_000 if quick else 20_000  # per round
    n_warm = 500
    rows: list[dict[str, object]] = []
    t = time.perf_counter()
    work = Workload(max(n_warm + n_single * rounds, n_batch))
    setup = [r.encode() for r in work.setup]
    texts = [r.encode() for r in work.endorsements]
    rows.append(
        _row(
            "http_prepare",
            time.perf_counter() - t,
            "s",
            f"sign {len(setup) + len(texts):,} records beforehand",
        )
    )
    settings_note = f"uvicorn --workers {WORKERS}, no access log; client: {CLIENT_PROCS} processes"
    body_note = f"bodies of {min(map(len, texts))}-{max(map(len, texts))} bytes"
    trivial_requests = _single_requests(texts[:n_trivial], "/echo")

    with _bare() as port:
        res = _load(port, trivial_requests, CONNECTIONS)
        _check(res, 200, "bare responder")
    rows.append(
        _row(
            "http_client_ceiling",
            res["requests"] / res["seconds"],
            "requests/s",
            f"the load generator against a bare asyncio responder, {CONNECTIONS} connections",
        )
    )

    with (
        _uvicorn("bench.ingest_http:trivial_app", {}, "/healthz") as trivial_port,
        tempfile.TemporaryDirectory(prefix="ledger-bench-http-") as tmp,
        _databases() as dbs,
    ):
        _load(trivial_port, trivial_requests[:n_warm], CONNECTIONS)  # warm-up
        for name, new_url in dbs:
            target = name == "sqlite"
            with _ledger(Path(tmp), new_url) as port:
                _import_setup(port, setup)
                warm = _load(port, _single_requests(texts[:n_warm], "/api/v1/records"), CONNECTIONS)
                _check(warm, 201, f"warm-up on {name}")
                pairs = _paired_rounds(
                    trivial_port,
                    port,
                    trivial_requests,
                    texts[n_warm : n_warm + n_single * rounds],
                    rounds,
                    name,
                )
                size = _log_size(port)
                expected = len(setup) + n_warm + n_single * rounds
                if size != expected:
                    raise RuntimeError(f"the log holds {size} entries, not {expected}")
            trivial_rates = [_rate(t) for t, _ in pairs]
            rates = [_rate(i) for _, i in pairs]
            ratios = [i / t for t, i in zip(trivial_rates, rates, strict=True)]
            kept = "median" if rounds > 1 else "one round"
            listed = "; rounds: " + ", ".join(f"{x:,.0f}" for x in rates)
            if target:
                trivial = statistics.median(trivial_rates)
                rows.append(
                    _row(
                        "http_trivial_post",
                        trivial,
                        "requests/s",
                        f"trivial FastAPI POST, {body_note}, {CONNECTIONS} connections; "
                        f"{settings_note}; {kept} of "
                        + ", ".join(f"{x:,.0f}" for x in trivial_rates),
                    )
                )
                rows.append(
                    _row(
                        "http_trivial_post_p99",
                        max(t["p99_ms"] for t, _ in pairs),
                        "ms",
                        "acknowledgement latency, p99 (the worst round)",
                    )
                )
            rate = statistics.median(rates)
            rows.append(
                _row(
                    f"http_ingest_single_{name}",
                    rate,
                    "records/s",
                    f"{n_single:,} endorsements a round, one per POST /api/v1/records "
                    f"(201 + receipt), {CONNECTIONS} connections; {settings_note}; "
                    f"{kept}{listed}",
                    target=f">= {TARGET_SINGLE:,.0f} records/s" if target else None,
                    ok=rate >= TARGET_SINGLE if target else None,
                )
            )
            ratio = statistics.median(ratios)
            rows.append(
                _row(
                    f"http_ingest_single_{name}_ratio",
                    ratio,
                    "x",
                    "single-record ingest / trivial FastAPI POST, same client, measured back "
                    f"to back in each round; {kept} of " + ", ".join(f"{x:.3f}" for x in ratios),
                    target=f">= {TARGET_RATIO}" if target else None,
                    ok=ratio >= TARGET_RATIO if target else None,
                )
            )
            rows.append(
                _row(
                    f"http_ingest_single_{name}_p50",
                    statistics.median(i["p50_ms"] for _, i in pairs),
                    "ms",
                    f"ack latency, p50 ({kept} of the rounds)",
                )
            )
            p99 = max(i["p99_ms"] for _, i in pairs)
            rows.append(
                _row(
                    f"http_ingest_single_{name}_p99",
                    p99,
                    "ms",
                    "ack latency (answer after the commit), p99, the worst round",
                    target=f"<= {TARGET_P99_MS:,.0f} ms" if target else None,
                    ok=p99 <= TARGET_P99_MS if target else None,
                )
            )

            with _ledger(Path(tmp), new_url) as port:
                _import_setup(port, setup)
                res = _load(
                    port,
                    _batch_requests(texts[:n_batch], BATCH),
                    BATCH_CONNECTIONS,
                    count_batch=True,
                )
                _check(res, 200, f"batch ingest on {name}")
                if res["items"] != {201: n_batch}:
                    raise RuntimeError(f"batch ingest on {name}: {dict(res['items'])}")
                size = _log_size(port)
                if size != len(setup) + n_batch:
                    raise RuntimeError(f"the log holds {size} entries, not {len(setup) + n_batch}")
            rate = n_batch / res["seconds"]
            rows.append(
                _row(
                    f"http_ingest_batch_{name}",
                    rate,
                    "records/s",
                    f"{n_batch:,} endorsements, POST /api/v1/records/batch of {BATCH}, "
                    f"{BATCH_CONNECTIONS} connections; {settings_note}",
                    target=f">= {TARGET_BATCH:,.0f} records/s" if target else None,
                    ok=rate >= TARGET_BATCH if target else None,
                )
            )
            rows.append(
                _row(
                    f"http_ingest_batch_{name}_p50",
                    res["p50_ms"],
                    "ms",
                    f"latency of a batch request of {BATCH}, p50",
                )
            )
            rows.append(
                _row(
                    f"http_ingest_batch_{name}_p99",
                    res["p99_ms"],
                    "ms",
                    f"latency of a batch request of {BATCH}, p99",
                )
            )
        if len(dbs) == 1:
            rows.append(
                _row(
                    "http_ingest_postgresql",
                    0,
                    "skipped",
                    "set LEDGER_BENCH_DATABASE_URL=postgresql+psycopg://... to measure",
                )
            )
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv[1:]):
        print(json.dumps(row), flush=True)
