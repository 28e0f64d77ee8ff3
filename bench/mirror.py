"""Benchmark of ``ledger mirror`` (issue 6): sync throughput, verification included.

    python -m bench.mirror [--quick]

Builds a log with ``tests/logfactory.py`` and writes it as a static tlog-tiles
directory (the source), then times :class:`ledger.mirror.sync.Mirror` syncing it into
an empty mirror: fetching every bundle and tile, verifying all of it with the
verifier's code (signatures in N = the number of cores processes), publishing it
crash-safely (fsync of every file) and saving the state. 100,000 new entries
(5,000 with --quick), then an incremental sync of 1,000 more. The same log is also
checked by ``verify_log`` alone (no copying), in the same run, so that the ratio
says what the copying and publishing cost on top of verification.

Each row is {"benchmark", "value", "unit", "note"}, with "target" and "ok" where
there is a goal.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.rows import row as _row
from ledger.mirror.sync import Mirror
from ledger.verify.source import DirectorySource
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log
from tests.logfactory import LogFactory

#: The goal for a full sync, entries per second with verification (2 cores).
TARGET_RATE = 1000.0


def run(quick: bool) -> list[dict[str, object]]:
    size = 5_000 if quick else 100_000
    jobs = os.cpu_count() or 1
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
        work = Path(tmp)
        f = LogFactory(seed=f"bench mirror {size}")
        t = time.perf_counter()
        f.grow(size, registrations=0.01)
        src = f.write(work / "src")
        rows.append(_row("mirror_build_source", time.perf_counter() - t, "s", f"{size:,} entries"))
        trust = Trust.from_vkeys([f.log_key.vkey])

        t = time.perf_counter()
        verified = verify_log(DirectorySource(src), trust, jobs=jobs, max_age_s=None)
        verify_s = time.perf_counter() - t
        verify_rate = size / verify_s
        rows.append(
            _row(
                f"verify_only_{size}",
                verify_rate,
                "entries/s",
                f"verify_log, {jobs} jobs, no copy ({verified.signatures_checked:,} signatures)",
            )
        )

        t = time.perf_counter()
        with Mirror(work / "mirror", trust, jobs=jobs) as m:
            result = m.sync(DirectorySource(src))
        sync_s = time.perf_counter() - t
        assert result.size == size
        rate = size / sync_s
        rows.append(
            _row(
                f"mirror_sync_{size}",
                rate,
                "entries/s",
                f"{size:,} new entries in {sync_s:.2f} s: fetch, verify ({jobs} jobs), "
                f"publish {len(result.written):,} files with fsync, save state",
                target=f">= {TARGET_RATE:,.0f} entries/s",
                ok=rate >= TARGET_RATE,
            )
        )
        rows.append(
            _row(
                f"mirror_sync_{size}_vs_verify",
                rate / verify_rate,
                "ratio",
                "mirror sync rate / verify-only rate, same run (1.0: copying is free)",
            )
        )

        f.grow(1_000, registrations=0.01)
        f.write(src)
        t = time.perf_counter()
        with Mirror(work / "mirror", trust, jobs=jobs) as m:
            result = m.sync(DirectorySource(src))
        inc_s = time.perf_counter() - t
        rows.append(
            _row(
                f"mirror_incremental_1000_on_{size}",
                inc_s,
                "s",
                f"open (state load) + sync of 1,000 new entries; {len(result.fetched)} files "
                "fetched",
            )
        )
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv[1:]):
        print(json.dumps(row))
