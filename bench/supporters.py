"""The verifier on a supporters-list log, as a third party installs it (issue 19).

    python -m bench.supporters [--quick] [--million]

A supporters list (:func:`bench.workloads.supporters_list`) brings a new key with
nearly every signatory, so the per-key check of the Ed25519 acceptance rule (steps
1-4 of docs/spec.md, "The Ed25519 acceptance rule") runs for about a third of the
entries. This module measures ``ledger-verify log --jobs N`` on such logs at the
scale of the Paris Call (4,000 entries), at 100,000 and (with ``--million`` or
``LEDGER_BENCH_MILLION=1``) at 1,000,000 entries, with each Ed25519 backend:

* ``pynacl``: libsodium checks the equation and accepts keys
  (``crypto_core_ed25519_is_valid_point``); this is the base install since PyNaCl
  became a base dependency;
* ``cryptography``: ``LEDGER_ED25519_ACCEL=0``, the pure-Python key check and
  OpenSSL's equation, what the base install did before.

Each verification rate is reported next to libsodium's raw verify rate
(``crypto_sign_open`` on the same signatures, one process, no checks) times the
number of jobs, measured in rounds before and after each run so that both sides meet
the same load of this shared machine; the target is a ratio of at least 0.85 with the
base install. The per-key check alone is reported too: pure Python against libsodium,
per key, on the log's own keys.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from bench import rows as bench_rows
from bench.verify import _row, _verify
from bench.workloads import PARIS_CALL, keys_introduced, supporters_list
from ledger.core import ed25519
from ledger.core.entry import parse_entry
from tests.logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = {"pynacl": {}, "cryptography": {"LEDGER_ED25519_ACCEL": "0"}}
RAW_ROUND = 20_000


def _triples(f: LogFactory, count: int) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for data in f.entries:
        record = parse_entry(data).record
        out.extend((s.public_key, s.signature, record.body_bytes) for s in record.signatures)
        if len(out) >= count:
            break
    return out[:count]


def _sodium_round(triples: list[tuple[bytes, bytes, bytes]]) -> float:
    """Signatures/s of libsodium's ``crypto_sign_open`` alone, one pass."""
    import nacl.bindings  # noqa: PLC0415 - bench only; PyNaCl is a base dependency

    signed = [(sig + msg, pub) for pub, sig, msg in triples]
    t = time.perf_counter()
    for sm, pub in signed:
        nacl.bindings.crypto_sign_open(sm, pub)
    return len(signed) / (time.perf_counter() - t)


def _key_check_rows(f: LogFactory, size: int) -> list[dict[str, object]]:
    """Per-key check: the pure-Python steps 1-4 against libsodium's point validation."""
    import nacl.bindings  # noqa: PLC0415

    keys = [parse_entry(e).record.signatures[0].public_key for e in f.entries[:3000]]
    keys = list(dict.fromkeys(keys))[:300]
    t = time.perf_counter()
    for k in keys:
        assert ed25519._check_key_math(k) is None
    pure = (time.perf_counter() - t) / len(keys)
    t = time.perf_counter()
    for k in keys:
        assert nacl.bindings.crypto_core_ed25519_is_valid_point(k)
    sodium = (time.perf_counter() - t) / len(keys)
    return [
        _row(f"supporters_{size}_key_check_pure_us", pure * 1e6, "us", f"{len(keys)} keys"),
        _row(f"supporters_{size}_key_check_sodium_us", sodium * 1e6, "us", f"{len(keys)} keys"),
        _row(
            f"supporters_{size}_key_check_speedup",
            pure / sodium,
            "ratio",
            "pure-Python per-key check time over libsodium's",
        ),
    ]


def _bench_size(size: int, quick: bool, work: Path, jobs: int) -> list[dict[str, object]]:
    t = time.perf_counter()
    f = supporters_list(size)
    log = f.write(work / f"supporters-{size}")
    rows = [
        _row(
            f"build_supporters_{size}",
            time.perf_counter() - t,
            "s",
            f"{len(f.members):,} signatories, {keys_introduced(f):,} keys (not the verifier)",
        )
    ]
    if size == PARIS_CALL or quick:
        rows.extend(_key_check_rows(f, size))
    triples = _triples(f, 2_000 if quick else RAW_ROUND)
    raws = [_sodium_round(triples)]
    runs = 1 if quick else (1 if size >= 1_000_000 else 3)
    for name, env in BACKENDS.items():
        measured = []
        for _ in range(runs):
            report, rss, wall = _verify(log, f.log_key.vkey, "--jobs", str(jobs), env=env)
            raws.append(_sodium_round(triples))
            rate = int(report["signatures_checked"]) / float(report["elapsed_s"])
            measured.append((rate, rate / ((raws[-2] + raws[-1]) / 2 * jobs), rss, wall))
        rate = statistics.median(m[0] for m in measured)
        ratio = statistics.median(m[1] for m in measured)
        note = "; ".join(f"{m[3]:.1f} s with start-up, ratio {m[1]:.3f}" for m in measured)
        base = name == "pynacl"
        rows.append(_row(f"supporters_{size}_{name}_jobs{jobs}", rate, "sig/s", note))
        rows.append(
            _row(
                f"supporters_{size}_{name}_jobs{jobs}_ratio_sodium",
                ratio,
                "ratio",
                f"to libsodium's raw verify x {jobs}; "
                + ("the base install" if base else "cryptography only (LEDGER_ED25519_ACCEL=0)"),
                ">= 0.85" if base and size >= 100_000 else None,
            )
        )
        rows.append(
            _row(
                f"supporters_{size}_{name}_peak_rss_main",
                max(m[2]["self_kb"] for m in measured) / 1024,
                "MB",
                "verifier process",
                "<= 200" if base and size >= 1_000_000 else None,
            )
        )
    raw = statistics.median(raws)
    rows.append(
        _row(
            f"supporters_{size}_sodium_raw",
            raw,
            "sig/s",
            f"crypto_sign_open, 1 process; median of {len(raws)} rounds of {len(triples):,}",
        )
    )
    return rows


def run(quick: bool, million: bool | None = None) -> list[dict[str, object]]:
    jobs = os.cpu_count() or 1
    sizes = [PARIS_CALL] if quick else [PARIS_CALL, 100_000]
    if bench_rows.million(million) and not quick:
        sizes.append(1_000_000)
    return bench_rows.each_size(
        sizes, "bench-supporters-", lambda size, work: _bench_size(size, quick, work, jobs)
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    bench_rows.print_rows(run("--quick" in args, million=True if "--million" in args else None), 44)
