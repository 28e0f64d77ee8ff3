"""Crash harness: the real ``ledger serve``, many concurrent clients, SIGKILL, restart, check.

    python -m tests.crashharness --backend sqlite|postgres --appends 10000 --clients 32 \\
        --kills 20 --seed S [--database-url URL] [--workdir DIR]

It starts ``ledger serve`` as a subprocess (its own process group) on a data
directory, SQLite or PostgreSQL (a fresh schema of ``--database-url``, else of
``LEDGER_TEST_DATABASE_URL``, dropped afterwards), and has ``--clients`` concurrent
clients submit ``--appends`` distinct signed records (registrations, statements,
endorsements; a tenth of the requests are ``/records/batch`` calls). At
``--kills`` moments drawn at random over the run (each at a random point of the
acknowledgement count, a fifth of them while the server is starting again) it
kills the whole server with SIGKILL and starts it again on the same data
directory and database. A client whose request failed (connection refused or cut,
timeout, 5xx) resubmits the identical record until it is answered: an identical
resubmission must answer 200 with the entry already logged (deduplication).

Every acknowledgement (record id -> index, leaf hash, receipt) and every
checkpoint a client saw (in answers, and from a poller of ``GET /checkpoint``)
is recorded. At the end, against the final log fetched through its entry
bundles (``tile/entries/...``):

* **lost**: acknowledged records not at their acknowledged index (or with
  another leaf hash) in the final log;
* **gaps**: indexes of the final tree without a well-formed entry carrying that
  index and chaining to the previous one (``prev``);
* **duplicates**: records logged more than once (same record id);
* **forks**: checkpoints seen (each must verify with the log key) whose root
  differs from the final log's root at that size, recomputed from the fetched
  entries, plus consistency proofs from the API that fail to verify;
* receipts of the acknowledgements verify (``ledger.core.receipt.verify_receipt``);
* a sample of acknowledged records resubmitted answers 200 with the same index;
* ``ledger-verify log <url> --log-key <vkey>`` exits 0;
* the server logged its durability settings at start;
* SQLite only: a copy of the database taken after an early kill, restored behind
  the published checkpoint, makes ``ledger serve`` refuse to start (exit 2, "old
  backup"), and the newest database, put back, serves again.

It prints a JSON summary and exits 0 when every figure is as it must be.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.core import merkle
from ledger.core.checkpoint import Checkpoint, open_checkpoint
from ledger.core.entry import parse_entry
from ledger.core.errors import LedgerError
from ledger.core.note import Verifier, parse_vkey
from ledger.core.receipt import parse_receipt, verify_receipt
from ledger.core.records import (
    Endorsement,
    Kind,
    RecordSignature,
    Registration,
    SignedRecord,
    Statement,
    encode_body,
)
from ledger.core.tiles import bundles_for_size, decode_bundle

ORIGIN = "crash.ledger.test/harness"
ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "LEDGER_TEST_DATABASE_URL"
STARTUP_TIMEOUT_S = 120.0
#: Share of kills that hit the server while it starts again, not while it serves.
STARTUP_KILL_SHARE = 0.2
#: Share of client requests that go to /records/batch (2 to 8 records).
BATCH_SHARE = 0.1
#: Acknowledged records resubmitted at the end to check deduplication.
RESUBMIT_SAMPLE = 200
#: Checkpoints seen whose consistency with the final one is also checked by API proof.
PROOF_SAMPLE = 50


class HarnessError(Exception):
    """The harness could not run (not a finding about the log)."""


# --- the workload ---------------------------------------------------------------------


def _key(seed: str, label: str) -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"crash {seed} {label}".encode()).digest()
    )
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _signed(
    body: Registration | Statement | Endorsement, key: Ed25519PrivateKey, pub: bytes
) -> SignedRecord:
    data = encode_body(body)
    return SignedRecord(body, data, (RecordSignature(pub, key.sign(data)),))


def workload(appends: int, seed: int) -> list[list[SignedRecord]]:
    """Phases of distinct signed records, ``appends`` in all, each phase needing the last.

    1. registrations of the signatories who will endorse (the first also authors);
    2. statements by the first signatory;
    3. shuffled: endorsements (each signatory x statement pair once) and
       registrations of fresh keys, about half and half.
    """
    if appends < 4:
        raise HarnessError("at least 4 appends")
    signed_at = int(time.time()) - 60
    statements_n = min(50, max(1, appends // 40))
    endorsements_n = appends // 2
    while True:  # a small log has too few statements for half of it to endorse them
        signatories_n = max(1, -(-endorsements_n // statements_n))
        fresh_n = appends - signatories_n - statements_n - endorsements_n
        if fresh_n >= 0:
            break
        endorsements_n -= 1
    s = str(seed)
    keys = [_key(s, f"signatory {i}") for i in range(signatories_n)]
    registrations = [
        _signed(Registration(ORIGIN, signed_at, pub, f"Crash signatory {i}", Kind.OTHER), k, pub)
        for i, (k, pub) in enumerate(keys)
    ]
    author_key, author_pub = keys[0]
    author = hashlib.sha256(author_pub).digest()
    statements = [
        _signed(
            Statement(ORIGIN, signed_at, f"Crash statement {j}", (author,), f"Text {j}.\n"),
            author_key,
            author_pub,
        )
        for j in range(statements_n)
    ]
    main: list[SignedRecord] = []
    for n in range(endorsements_n):
        k, pub = keys[n // statements_n]
        st = statements[n % statements_n].record_id
        main.append(
            _signed(Endorsement(ORIGIN, signed_at, hashlib.sha256(pub).digest(), st), k, pub)
        )
    for n in range(fresh_n):
        k, pub = _key(s, f"fresh {n}")
        main.append(_signed(Registration(ORIGIN, signed_at, pub, f"Fresh {n}", Kind.OTHER), k, pub))
    random.Random(seed).shuffle(main)
    return [registrations, statements, main]


# --- the server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """``ledger serve`` in a process group of its own, started and SIGKILLed at will."""

    def __init__(self, data_dir: Path, port: int, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.command = [
            sys.executable, "-m", "cli", "serve",
            "--data-dir", str(data_dir),
            "--origin", ORIGIN,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--rate-limit-rps", "0",
            "--log-level", "info",
        ]  # fmt: skip
        if database_url is not None:
            self.command += ["--database-url", database_url]
        # The child gets none of our LEDGER_* variables: the options say everything.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("the server is already running")
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the server's process group (its uvicorn workers too)."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    async def wait_healthy(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise HarnessError(
                    f"the server exited with status {code} while starting:\n"
                    f"{log_tail(self.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                r = await client.get(f"{self.url}/healthz", timeout=2.0)
                if r.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise HarnessError(f"the server did not start in time; see {self.log_path}")
            await asyncio.sleep(0.05)


# --- what the clients saw ---------------------------------------------------------------


@dataclass
class Ack:
    index: int
    leaf_hash: bytes
    existing: bool
    attempts: int
    receipt: bytes | None


@dataclass
class Seen:
    """Everything the clients were told, and what went wrong on the way."""

    acks: dict[bytes, Ack] = field(default_factory=dict)
    checkpoints: set[bytes] = field(default_factory=set)
    attempts: dict[bytes, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    transport_errors: int = 0
    server_errors: int = 0  # 5xx other than 503
    overloaded: int = 0  # 503
    bad_answers: int = 0  # malformed 2xx

    def ack(
        self, rid: bytes, index: int, leaf: bytes, existing: bool, receipt: bytes | None
    ) -> None:
        if rid in self.acks:
            return
        self.acks[rid] = Ack(index, leaf, existing, self.attempts.get(rid, 1), receipt)


class Run:
    """One run: the server, the queue of records, the clients, the killer."""

    def __init__(
        self,
        server: ServerProcess,
        phases: list[list[SignedRecord]],
        clients: int,
        kills: int,
        rng: random.Random,
        deadline_s: float,
    ) -> None:
        self.server = server
        self.phases = phases
        self.clients = clients
        self.rng = rng
        self.seen = Seen()
        self.total = sum(len(p) for p in phases)
        lo, hi = max(1, self.total * 3 // 100), max(2, self.total * 97 // 100)
        if hi - lo < kills:
            raise HarnessError(f"{self.total} appends are too few for {kills} kills")
        self.kill_points = sorted(rng.sample(range(lo, hi), kills))
        self.kills_done = 0
        self.startup_kills = 0
        self.snapshot_taken_at: int | None = None  # size of the early SQLite copy
        self.up = asyncio.Event()
        self.done = False
        self.failure: HarnessError | None = None
        self.deadline = time.monotonic() + deadline_s

    # --- clients ------------------------------------------------------------------------

    async def _post(
        self, client: httpx.AsyncClient, records: list[SignedRecord]
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """One request; (status, item) per record, or None to retry the whole request."""
        url = self.server.url
        try:
            if len(records) == 1:
                r = await client.post(
                    f"{url}/api/v1/records",
                    content=records[0].encode(),
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
            else:
                r = await client.post(
                    f"{url}/api/v1/records/batch",
                    params={"receipts": "true"},
                    json=[rec.encode().decode("utf-8") for rec in records],
                )
        except httpx.HTTPError:
            self.seen.transport_errors += 1
            return None
        if r.status_code == 503:
            self.seen.overloaded += 1
            return None
        if r.status_code >= 500:
            self.seen.server_errors += 1
            return None
        try:
            doc = r.json()
        except ValueError:
            self.seen.bad_answers += 1
            return None
        if len(records) == 1:
            return [(r.status_code, doc)]
        if r.status_code != 200 or len(doc.get("results", [])) != len(records):
            self.seen.bad_answers += 1
            return None
        if doc.get("checkpoint"):
            self.seen.checkpoints.add(doc["checkpoint"].encode())
        return [(int(item["status"]), item) for item in doc["results"]]

    def _take(self, item: dict[str, Any], rec: SignedRecord, status: int) -> bool:
        """Record an answer for ``rec``; False if it must be sent again."""
        rid = rec.record_id
        if status in (200, 201):
            try:
                index = int(item["index"])
                leaf = bytes.fromhex(item["leaf_hash"])
                receipt = item["receipt"].encode() if item.get("receipt") else None
            except (KeyError, TypeError, ValueError):
                self.seen.bad_answers += 1
                return False
            if item.get("checkpoint"):
                self.seen.checkpoints.add(item["checkpoint"].encode())
            self.seen.ack(rid, index, leaf, status == 200, receipt)
            return True
        if status in (503, 429) or status >= 500:
            if status >= 500 and status != 503:
                self.seen.server_errors += 1
            return False
        code = str(item.get("code", status))
        self.seen.rejected[code] = self.seen.rejected.get(code, 0) + 1
        return True  # a refusal is final: counted, not retried

    async def _client(self, queue: list[SignedRecord], ident: int) -> None:
        rng = random.Random(self.rng.random() + ident)
        async with httpx.AsyncClient(timeout=30.0) as client:
            while queue and time.monotonic() < self.deadline and self.failure is None:
                n = rng.randint(2, 8) if rng.random() < BATCH_SHARE else 1
                records = [queue.pop() for _ in range(min(n, len(queue)))]
                delay = 0.02
                while records and time.monotonic() < self.deadline:
                    await self.up.wait()
                    if self.failure is not None:
                        return
                    for rec in records:
                        self.seen.attempts[rec.record_id] = (
                            self.seen.attempts.get(rec.record_id, 0) + 1
                        )
                    answers = await self._post(client, records)
                    if answers is None:
                        await asyncio.sleep(delay * (0.5 + rng.random()))
                        delay = min(delay * 2, 1.0)
                        continue
                    records = [
                        rec
                        for rec, (status, item) in zip(records, answers, strict=True)
                        if not self._take(item, rec, status)
                    ]

    async def _poll_checkpoints(self) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            while not self.done:
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"{self.server.url}/checkpoint")
                    if r.status_code == 200:
                        self.seen.checkpoints.add(r.content)
                await asyncio.sleep(0.1)

    # --- the killer ---------------------------------------------------------------------

    async def _restart(self, client: httpx.AsyncClient, *, startup_kill: bool) -> None:
        self.server.start()
        if startup_kill:
            await asyncio.sleep(self.rng.uniform(0.0, 1.5))
            self.server.kill()
            self.kills_done += 1
            self.startup_kills += 1
            self.server.start()
        await self.server.wait_healthy(client)
        self.up.set()

    async def _killer(self, data_dir: Path, snapshot: Path | None) -> None:
        try:
            await self._kill_and_restart(data_dir, snapshot)
        except HarnessError as e:
            self.failure = e  # e.g. the server refused to start again after a kill
            self.up.set()  # release the clients: they stop on the failure

    async def _kill_and_restart(self, data_dir: Path, snapshot: Path | None) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            points = list(self.kill_points)
            while points and not self.done:
                if len(self.seen.acks) < points[0]:
                    await asyncio.sleep(0.005)
                    continue
                points.pop(0)
                await asyncio.sleep(self.rng.uniform(0.0, 0.05))
                self.up.clear()
                self.server.kill()
                self.kills_done += 1
                if snapshot is not None and self.snapshot_taken_at is None:
                    # A crash-consistent copy of the SQLite files, to restore at the end.
                    for suffix in ("", "-wal"):
                        src = data_dir / f"ledger.db{suffix}"
                        if src.exists():
                            shutil.copy(src, snapshot.with_name(snapshot.name + suffix))
                    self.snapshot_taken_at = len(self.seen.acks)
                startup_kill = bool(points) and self.rng.random() < STARTUP_KILL_SHARE
                if startup_kill:
                    points.pop(0)
                await self._restart(client, startup_kill=startup_kill)

    async def run(self, data_dir: Path, snapshot: Path | None) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            self.server.start()
            await self.server.wait_healthy(client)
        self.up.set()
        killer = asyncio.create_task(self._killer(data_dir, snapshot))
        poller = asyncio.create_task(self._poll_checkpoints())
        try:
            for phase in self.phases:
                queue = list(reversed(phase))
                await asyncio.gather(*(self._client(queue, i) for i in range(self.clients)))
                if time.monotonic() >= self.deadline:
                    break
            # Let the killer finish its schedule if the clients were quicker.
            while not killer.done() and self.kills_done < len(self.kill_points):
                if time.monotonic() >= self.deadline:
                    break
                await asyncio.sleep(0.05)
        finally:
            self.done = True
            killer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await killer
            await poller
        if self.failure is not None:
            raise self.failure
        if not self.up.is_set():
            async with httpx.AsyncClient(timeout=10.0) as client:
                if self.server.proc is None or self.server.proc.poll() is not None:
                    self.server.start()
                await self.server.wait_healthy(client)


# --- the checks -------------------------------------------------------------------------


@dataclass
class FinalLog:
    checkpoint: Checkpoint
    leaf_hashes: list[bytes]
    record_ids: list[bytes | None]
    gaps: int
    errors: list[str]


def fetch_log(client: httpx.Client, url: str, verifiers: Sequence[Verifier]) -> FinalLog:
    """The final log through its checkpoint and entry bundles, checked entry by entry."""
    signed = client.get(f"{url}/checkpoint").raise_for_status().content
    cp, _ = open_checkpoint(signed, verifiers, ORIGIN)
    leaves: list[bytes] = []
    ids: list[bytes | None] = []
    gaps = 0
    errors: list[str] = []
    prev = bytes(32)
    for tile in bundles_for_size(cp.size):
        first = tile.n * 256
        try:
            r = client.get(f"{url}/{tile.path}")
            r.raise_for_status()
            entries = decode_bundle(r.content, tile.width)
        except (httpx.HTTPError, LedgerError) as e:
            errors.append(f"{tile.path}: {e}")
            gaps += tile.width
            leaves += [b""] * tile.width
            ids += [None] * tile.width
            prev = b""
            continue
        for i, data in enumerate(entries):
            index = first + i
            leaf = merkle.leaf_hash(data)
            try:
                entry = parse_entry(data)
                ok = entry.index == index and entry.prev == prev
                rid: bytes | None = entry.record.record_id
            except LedgerError as e:
                ok, rid = False, None
                errors.append(f"entry {index}: {e}")
            if not ok:
                gaps += 1
                if len(errors) < 20:
                    errors.append(f"entry {index}: wrong index or broken chain")
            leaves.append(leaf)
            ids.append(rid)
            prev = leaf
    return FinalLog(cp, leaves, ids, gaps, errors)


def roots_at(leaves: list[bytes], sizes: set[int]) -> dict[int, bytes]:
    """The root of the tree of the first n leaves, for each n in ``sizes``."""
    out: dict[int, bytes] = {}
    cr = merkle.CompactRange()
    if 0 in sizes:
        out[0] = cr.root()
    for leaf in leaves:
        cr.append(leaf if len(leaf) == 32 else bytes(32))
        if cr.size in sizes:
            out[cr.size] = cr.root()
    return out


def check(run: Run, phases: list[list[SignedRecord]], vkey: str) -> dict[str, Any]:
    """Compare what the clients were told with the final log; the figures of the summary."""
    url = run.server.url
    verifiers = [parse_vkey(vkey)]
    seen = run.seen
    out: dict[str, Any] = {}
    with httpx.Client(timeout=60.0) as client:
        final = fetch_log(client, url, verifiers)
        size = final.checkpoint.size
        out["final_size"] = size
        out["gaps"] = final.gaps
        out["fetch_errors"] = final.errors[:10]

        # Duplicates, and entries no client submitted.
        positions: dict[bytes, list[int]] = {}
        for i, rid in enumerate(final.record_ids):
            if rid is not None:
                positions.setdefault(rid, []).append(i)
        out["duplicates"] = sum(len(p) - 1 for p in positions.values())
        submitted = {rec.record_id for phase in phases for rec in phase}
        out["unexpected_entries"] = sum(1 for rid in positions if rid not in submitted)
        out["unacknowledged"] = len(submitted - seen.acks.keys())

        # Lost: an acknowledged record not where it was acknowledged.
        lost = sum(
            1
            for rid, ack in seen.acks.items()
            if not (
                ack.index < size
                and final.leaf_hashes[ack.index] == ack.leaf_hash
                and final.record_ids[ack.index] == rid
            )
        )
        out["acknowledged"] = len(seen.acks)
        out["lost"] = lost
        out["dedup_on_retry"] = sum(1 for a in seen.acks.values() if a.existing and a.attempts > 1)
        out["existing_on_first_try"] = sum(
            1 for a in seen.acks.values() if a.existing and a.attempts == 1
        )

        # Receipts: each verifies, for the acknowledged index; its checkpoint is one seen.
        receipts = receipt_failures = 0
        for ack in seen.acks.values():
            if ack.receipt is None:
                continue
            receipts += 1
            try:
                rc = parse_receipt(ack.receipt)
                seen.checkpoints.add(rc.checkpoint)
                verify_receipt(rc, ack.leaf_hash, verifiers, ORIGIN)
                if rc.index != ack.index:
                    receipt_failures += 1
            except LedgerError:
                receipt_failures += 1
        out["receipts_verified"] = receipts - receipt_failures
        out["receipt_failures"] = receipt_failures

        # Forks: checkpoints seen that do not verify, or whose root is not the final
        # log's at their size (recomputed from the entries, then by the API's proofs).
        cps: dict[bytes, Checkpoint] = {}
        forked: set[bytes] = set()
        bad_signatures = 0
        for signed in seen.checkpoints:
            try:
                cps[signed], _ = open_checkpoint(signed, verifiers, ORIGIN)
            except LedgerError:
                bad_signatures += 1
                forked.add(signed)
        roots = roots_at(final.leaf_hashes, {c.size for c in cps.values()})
        for signed, c in cps.items():
            if c.size > size or roots.get(c.size) != c.root:
                forked.add(signed)
        if roots.get(size) != final.checkpoint.root:
            forked.add(b"final")  # the final checkpoint does not match its own entries
        by_size: dict[int, set[bytes]] = {}
        for c in cps.values():
            by_size.setdefault(c.size, set()).add(c.root)
        out["checkpoints_seen"] = len(cps)
        out["checkpoints_bad_signature"] = bad_signatures
        out["same_size_different_root"] = sum(1 for r in by_size.values() if len(r) > 1)

        # Consistency proofs from the API for a sample of them.
        rng = random.Random(0)
        sample = sorted((s, c) for s, c in cps.items() if 0 < c.size <= size)
        sample = rng.sample(sample, min(PROOF_SAMPLE, len(sample)))
        proof_failures = 0
        for signed, c in sample:
            try:
                r = client.get(
                    f"{url}/api/v1/proofs/consistency",
                    params={"old_size": c.size, "new_size": size},
                )
                r.raise_for_status()
                proof = [base64.b64decode(h) for h in r.json()["proof"]]
                merkle.verify_consistency(c.size, size, c.root, final.checkpoint.root, proof)
            except (httpx.HTTPError, LedgerError, KeyError, ValueError):
                proof_failures += 1
                forked.add(signed)
        out["consistency_proofs_checked"] = len(sample)
        out["consistency_proof_failures"] = proof_failures
        out["forks"] = len(forked)

        # Deduplication: acknowledged records sent again answer 200 at the same index.
        records = {rec.record_id: rec for phase in phases for rec in phase}
        again = rng.sample(sorted(seen.acks), min(RESUBMIT_SAMPLE, len(seen.acks)))
        mismatches = 0
        for rid in again:
            ack = seen.acks[rid]
            r = client.post(
                f"{url}/api/v1/records",
                content=records[rid].encode(),
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
            doc = r.json() if r.status_code in (200, 201) else {}
            if not (
                r.status_code == 200
                and doc.get("existing") is True
                and doc.get("index") == ack.index
                and doc.get("leaf_hash") == ack.leaf_hash.hex()
            ):
                mismatches += 1
        out["resubmitted"] = len(again)
        out["resubmit_mismatches"] = mismatches
    return out


def run_verifier(url: str, vkey: str, pythonpath: Path | None = None) -> tuple[int, str]:
    """``ledger-verify log URL --log-key VKEY``: its exit status and the end of its output.

    With ``pythonpath``, the ``ledger`` package found there runs instead (to compare
    a patched verifier with the one in the tree).
    """
    script = Path(sys.executable).parent / "ledger-verify"
    env = dict(os.environ)
    if pythonpath is None and script.exists():
        command = [str(script)]
    else:
        command = [sys.executable, "-m", "ledger.verify.cli"]
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run(
        [*command, "log", url, "--log-key", vkey, "--jobs", "2", "--no-progress", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=pythonpath or ROOT,  # python -m puts the cwd first on sys.path
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()[-2000:]


def durability_line(log_path: Path, backend: str) -> str | None:
    """The line the server logged at start with its durability settings, if it is right."""
    want = (
        ("journal_mode=wal", "synchronous=2")
        if backend == "sqlite"
        else ("fsync=on", "synchronous_commit=on")
    )
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if "api.server: database " in line and all(w in line for w in want):
            return line.split("api.server: ", 1)[1]
    return None


def restore_check(server: ServerProcess, snapshot: Path, work: Path) -> dict[str, Any]:
    """Restore the early SQLite copy: the server must refuse; the newest copy serves again."""
    data = server.data_dir
    server.stop()
    newest = work / "newest"
    newest.mkdir()
    for suffix in ("", "-wal", "-shm"):
        src = data / f"ledger.db{suffix}"
        if src.exists():
            shutil.move(src, newest / src.name)
    for suffix in ("", "-wal"):
        src = snapshot.with_name(snapshot.name + suffix)
        if src.exists():
            shutil.copy(src, data / f"ledger.db{suffix}")
    proc = subprocess.Popen(
        server.command,
        env=server.env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # it serves the old copy: the finding
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
    message = next((line for line in stderr.splitlines() if "refusing to start" in line), "")
    refused = proc.returncode == 2 and "old backup" in message
    for suffix in ("", "-wal", "-shm"):
        (data / f"ledger.db{suffix}").unlink(missing_ok=True)
    for f in newest.iterdir():
        shutil.move(f, data / f.name)
    return {"restore_refused": refused, "restore_exit": proc.returncode, "restore_message": message}


# --- PostgreSQL schema --------------------------------------------------------------------


@contextlib.contextmanager
def pg_schema(base_url: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh schema; yields a URL whose connections use it; dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text  # noqa: PLC0415

    schema = f"crash_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# --- the run ------------------------------------------------------------------------------


@dataclass
class Options:
    backend: str = "sqlite"
    appends: int = 10_000
    clients: int = 32
    kills: int = 20
    seed: int = 1
    database_url: str | None = None
    workdir: Path | None = None
    keep: bool = False  # keep the PostgreSQL schema (the data directory: --workdir)
    also_verify_with: Path | None = None
    tamper: bool = False  # falsify one acknowledgement and sign a forked checkpoint
    deadline_s: float = 3600.0


def run(opts: Options) -> dict[str, Any]:
    """One harness run; the JSON summary (``ok`` tells whether every figure is right)."""
    t0 = time.monotonic()
    rng = random.Random(opts.seed)
    phases = workload(opts.appends, opts.seed)
    with contextlib.ExitStack() as stack:
        if opts.workdir is not None:
            opts.workdir.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"crash-{opts.backend}-", dir=opts.workdir))
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-")))
        db_url: str | None = None
        if opts.backend == "postgres":
            base = opts.database_url or os.environ.get(PG_ENV)
            if not base:
                raise HarnessError(f"--backend postgres needs --database-url or {PG_ENV}")
            db_url = stack.enter_context(pg_schema(base, keep=opts.keep))
        elif opts.backend != "sqlite":
            raise HarnessError(f"unknown backend {opts.backend!r}")
        data_dir = work / "data"
        server = ServerProcess(data_dir, free_port(), db_url)
        stack.callback(server.stop)
        snapshot = work / "snapshot.db" if opts.backend == "sqlite" else None
        harness = Run(server, phases, opts.clients, opts.kills, rng, opts.deadline_s)
        asyncio.run(harness.run(data_dir, snapshot))
        load_s = time.monotonic() - t0
        if opts.tamper:
            tamper(harness, data_dir)
        vkey = (data_dir / "log.vkey").read_text().strip()
        summary: dict[str, Any] = {
            "backend": opts.backend,
            "appends": opts.appends,
            "clients": opts.clients,
            "seed": opts.seed,
            "kills": harness.kills_done,
            "startup_kills": harness.startup_kills,
            "server_starts": server.starts,
        }
        summary.update(check(harness, phases, vkey))
        seen = harness.seen
        summary.update(
            {
                "rejected": dict(seen.rejected),
                "transport_errors": seen.transport_errors,
                "overloaded_503": seen.overloaded,
                "server_errors_5xx": seen.server_errors,
                "bad_answers": seen.bad_answers,
            }
        )
        code, output = run_verifier(server.url, vkey)
        summary["verify_exit"] = code
        if code != 0:
            summary["verify_output"] = output
        if opts.also_verify_with is not None:
            code, output = run_verifier(server.url, vkey, opts.also_verify_with)
            summary["verify_exit_alt"] = code
            summary["verify_alt_output"] = output
        line = durability_line(server.log_path, opts.backend)
        summary["durability_logged"] = line
        if snapshot is not None and harness.snapshot_taken_at is not None:
            summary["snapshot_taken_after_acks"] = harness.snapshot_taken_at
            summary.update(restore_check(server, snapshot, work))
            server.start()
            asyncio.run(_wait(server))
            with httpx.Client(timeout=10.0) as client:
                cp, _ = open_checkpoint(
                    client.get(f"{server.url}/checkpoint").content, [parse_vkey(vkey)], ORIGIN
                )
            summary["restarted_on_newest_size"] = cp.size
        server.stop()
        summary["load_s"] = round(load_s, 1)
        summary["elapsed_s"] = round(time.monotonic() - t0, 1)
        if opts.workdir is not None:
            summary["workdir"] = str(work)
        if db_url is not None and opts.keep:
            summary["database_url"] = db_url
        summary["ok"] = verdict(summary, opts)
    return summary


def tamper(run: Run, data_dir: Path) -> None:
    """What the checks must catch: an acknowledgement at another index, and a
    checkpoint signed by the log key whose root is not the log's (a fork)."""
    from keys.logkey import load_or_create_log_key  # noqa: PLC0415
    from ledger.core.checkpoint import sign_checkpoint  # noqa: PLC0415

    rid = min(run.seen.acks)
    ack = run.seen.acks[rid]
    ack.index = (ack.index + 1) % len(run.seen.acks)
    ack.receipt = None
    signer = load_or_create_log_key(data_dir / "log.key", ORIGIN).note_signer(ORIGIN)
    forged = Checkpoint(ORIGIN, 1, hashlib.sha256(b"not the first entry").digest())
    run.seen.checkpoints.add(sign_checkpoint(forged, signer))


async def _wait(server: ServerProcess) -> None:
    async with httpx.AsyncClient() as client:
        await server.wait_healthy(client)


def verdict(s: dict[str, Any], opts: Options) -> bool:
    """Every figure as it must be."""
    ok = (
        s["acknowledged"] == opts.appends
        and s["unacknowledged"] == 0
        and s["lost"] == 0
        and s["gaps"] == 0
        and s["duplicates"] == 0
        and s["forks"] == 0
        and s["unexpected_entries"] == 0
        and s["final_size"] == opts.appends
        and s["existing_on_first_try"] == 0
        and s["receipt_failures"] == 0
        and s["resubmit_mismatches"] == 0
        and not s["rejected"]
        and s["server_errors_5xx"] == 0
        and s["bad_answers"] == 0
        and s["kills"] >= opts.kills
        and s["verify_exit"] == 0
        and s["durability_logged"] is not None
    )
    if opts.backend == "sqlite" and opts.kills > 0:
        ok = (
            ok
            and bool(s.get("restore_refused"))
            and s["restarted_on_newest_size"] == s["final_size"]
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.crashharness",
        description="Kill the real server at random moments under load; check nothing is lost.",
    )
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--appends", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--database-url", help=f"PostgreSQL base URL (default: ${PG_ENV})")
    p.add_argument("--workdir", type=Path, help="keep the data directory and logs under here")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    p.add_argument(
        "--also-verify-with",
        type=Path,
        metavar="DIR",
        help="also run ledger-verify from the ledger package in DIR (a patched copy)",
    )
    p.add_argument("--deadline", type=float, default=3600.0, help="give up after SECONDS")
    args = p.parse_args(argv)
    opts = Options(
        backend=args.backend,
        appends=args.appends,
        clients=args.clients,
        kills=args.kills,
        seed=args.seed,
        database_url=args.database_url,
        workdir=args.workdir,
        keep=args.keep,
        also_verify_with=args.also_verify_with,
        deadline_s=args.deadline,
    )
    try:
        summary = run(opts)
    except HarnessError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 2
    print(json.dumps(summary, indent=2), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
