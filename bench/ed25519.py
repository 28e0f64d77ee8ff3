"""Benchmark of the Ed25519 acceptance rule against raw ``cryptography`` verification.

    python -m bench.ed25519 [--quick]

Both sides verify the same (key, message, signature) set: a few keys, each signing
many 384-byte messages (record bodies), as in a log where a key signs many records.
The raw side calls ``Ed25519PublicKey.verify`` on key objects loaded beforehand
(its best case); ours calls ``ledger.core.ed25519.verify(public_key_bytes, ...)``,
whose key check is cached after the first use.

The two sides are interleaved chunk by chunk (20 signatures), alternating which
goes first, so that a burst of load on a noisy machine hits both alike. The ratio
row compares, chunk by chunk, each side's fastest round (its least disturbed
measurement); its note gives the spread of the per-round ratios. Target: at least
0.95. The uncached key check (pure Python, once per key) is timed separately, and
PyNaCl's verify is listed for reference when it happens to be installed (it is
not a dependency).

Each row is {"benchmark", "value", "unit", "note"}.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.core import ed25519

Item = tuple[bytes, bytes, bytes]  # public key, signature, message


def _row(benchmark: str, value: float, unit: str, note: str) -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value, 3), "unit": unit, "note": note}


def _items(keys: int, per_key: int) -> list[Item]:
    items = []
    for k in range(keys):
        priv = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench %d" % k).digest())
        pub = priv.public_key().public_bytes_raw()
        for i in range(per_key):
            msg = hashlib.sha512(b"%d %d" % (k, i)).digest() * 6  # 384 bytes
            items.append((pub, priv.sign(msg), msg))
    return items


def _timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(quick: bool) -> list[dict[str, object]]:
    keys, per_key, rounds = (4, 100, 7) if quick else (8, 500, 21)
    items = _items(keys, per_key)
    n = len(items)

    # The raw side gets its key objects for free; ours warms its cache once.
    loaded = {pub: Ed25519PublicKey.from_public_bytes(pub) for pub, _, _ in items}
    raw_items = [(loaded[pub], sig, msg) for pub, sig, msg in items]
    for pub in loaded:
        ed25519.check_public_key(pub)

    # Interleave finely: each chunk of 20 signatures is timed on both sides back to back,
    # alternating which goes first, so that a burst of load hits both sides alike.
    chunks = [(raw_items[i : i + 20], items[i : i + 20]) for i in range(0, n, 20)]
    verify = ed25519.verify
    clock = time.perf_counter
    raw_chunk_min = [float("inf")] * len(chunks)
    our_chunk_min = [float("inf")] * len(chunks)
    raw_times, our_times = [], []
    for r in range(rounds):
        raw_total = our_total = 0.0
        for c, (raw_chunk, our_chunk) in enumerate(chunks):
            raw_before, our_before = raw_total, our_total
            for side in (0, 1) if (r + c) % 2 else (1, 0):
                t = clock()
                if side:
                    for pub, sig, msg in our_chunk:
                        verify(pub, sig, msg)
                    our_total += clock() - t
                else:
                    for key, sig, msg in raw_chunk:
                        key.verify(sig, msg)
                    raw_total += clock() - t
            raw_chunk_min[c] = min(raw_chunk_min[c], raw_total - raw_before)
            our_chunk_min[c] = min(our_chunk_min[c], our_total - our_before)
        raw_times.append(raw_total)
        our_times.append(our_total)
    ratios = [rt / ot for rt, ot in zip(raw_times, our_times, strict=True)]
    setting = f"{keys} keys x {per_key} msgs, {rounds} interleaved rounds"
    rows = [
        _row("ed25519 raw cryptography", n / statistics.median(raw_times), "sigs/s",
             f"Ed25519PublicKey.verify, keys preloaded; {setting}"),
        _row("ed25519 ledger verify", n / statistics.median(our_times), "sigs/s",
             f"ledger.core.ed25519.verify (acceptance rule, cached key check); {setting}"),
        _row("ed25519 ratio ours/raw", sum(raw_chunk_min) / sum(our_chunk_min), "ratio",
             "rate ratio from each chunk's fastest round on each side; target >= 0.95; "
             f"per-round ratios: median {statistics.median(ratios):.3f}, "
             f"min {min(ratios):.3f}, max {max(ratios):.3f}"),
    ]  # fmt: skip

    # The pure-Python key check, paid once per key (decompression, [8]A, [L]A).
    fresh = [
        Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"fresh %d" % i).digest())
        .public_key()
        .public_bytes_raw()
        for i in range(10 if quick else 50)
    ]
    t = time.perf_counter()
    for pub in fresh:
        ed25519.check_public_key(pub)  # not cached yet: fresh keys
    elapsed = time.perf_counter() - t
    rows.append(_row("ed25519 key check uncached", 1000 * elapsed / len(fresh), "ms/key",
                     "pure Python, once per key thanks to the cache"))  # fmt: skip

    try:
        import nacl.signing  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        pass  # PyNaCl is only a reference point, never a dependency
    else:
        nacl_items = [(nacl.signing.VerifyKey(pub), sig, msg) for pub, sig, msg in items]

        def nacl_verify() -> None:
            for key, sig, msg in nacl_items:
                key.verify(msg, sig)

        times = [_timed(nacl_verify) for _ in range(max(3, rounds // 3))]
        rows.append(_row("ed25519 pynacl", n / statistics.median(times), "sigs/s",
                         "nacl.signing.VerifyKey.verify (libsodium), for reference"))  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv[1:]):
        print(f"{row['benchmark']:28} {row['value']:>14,.3f} {row['unit']:9} {row['note']}")
