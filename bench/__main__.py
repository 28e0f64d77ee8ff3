"""Run every benchmark: ``python -m bench [--quick] [--only NAME] [--markdown FILE]``.

The modules run in order (ed25519, merkle, append, proofs, ingest_core,
ingest_http, api_scale, verify, supporters, browser_verify, witness, mirror). Each
``bench/<name>.py`` has ``run(quick: bool) -> list[dict]`` whose rows are
{"benchmark", "value", "unit", "note"} and optionally "target" (e.g. ">= 0.85") and
"ok". A module that is missing or raises becomes a failed row with its error; the others still run.

Results go to ``bench/results/<timestamp>.json`` with the machine they ran on. In
full mode each module waits first (up to a minute) for the machine to be idle, so
that it does not measure what the one before left running.
``--markdown FILE`` writes the report (``bench/report.py``) and, in full mode,
the plot ``docs/benchmarks.png`` next to it (``bench/plot.py``). The full mode
includes the verifier's 1,000,000-entry run (``LEDGER_BENCH_MILLION=1``).

Exit status: 0 when every module ran (missed targets are reported, not fatal),
1 when a module crashed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.report import apply_targets, machine_info, markdown, table

MODULES = (
    "ed25519",
    "merkle",
    "append",
    "proofs",
    "ingest_core",
    "ingest_http",
    "api_scale",
    "verify",
    "supporters",
    "browser_verify",
    "witness",
    "mirror",
)
RESULTS = Path(__file__).resolve().parent / "results"


def run_module(name: str, quick: bool) -> tuple[list[dict[str, object]], float, str | None]:
    """The rows of one module, its duration, and its error (None if it ran)."""
    t = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as e:
        if e.name not in (f"bench.{name}", "bench"):
            raise
        error = f"module bench/{name}.py is missing"
        return [_failed(name, error)], time.perf_counter() - t, error
    except Exception as e:
        error = f"import failed: {type(e).__name__}: {e}"
        traceback.print_exc()
        return [_failed(name, error)], time.perf_counter() - t, error
    try:
        rows = list(module.run(quick))
    except Exception as e:
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
        return [_failed(name, error)], time.perf_counter() - t, error
    for r in rows:
        r.setdefault("module", name)
    return rows, time.perf_counter() - t, None


def _busy_fraction(seconds: float) -> float | None:
    """The share of all cores' time spent busy over ``seconds`` (/proc/stat), or None."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return None if total <= 0 else 1 - (idle1 - idle0) / total


def wait_for_quiet(limit_s: float = 60, busy: float = 0.1) -> float:
    """Wait (at most ``limit_s``) until the machine is idle; return the seconds waited.

    Whatever a module leaves running (a database's background work after the ingest
    benchmarks, a server still shutting down) must not be measured by the next one.
    """
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        share = _busy_fraction(1.0)
        if share is None or share < busy:
            break
    return round(time.monotonic() - start, 1)


def _failed(name: str, error: str) -> dict[str, object]:
    return {
        "benchmark": name,
        "value": None,
        "unit": "error",
        "note": error,
        "target": "runs",
        "ok": False,
        "module": name,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test for CI")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help=f"run only these ({', '.join(MODULES)})"
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the report here")
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="plot file (default: next to FILE)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="results file (default: results/)"
    )
    parser.add_argument(
        "--no-million", action="store_true", help="full mode without the 1M-entry verification"
    )
    args = parser.parse_args(argv)
    names = list(MODULES)
    if args.only:
        wanted = [n for arg in args.only for n in arg.split(",") if n]
        unknown = sorted(set(wanted) - set(MODULES))
        if unknown:
            parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(MODULES)}")
        names = [n for n in MODULES if n in wanted]
    if not args.quick and not args.no_million:
        os.environ["LEDGER_BENCH_MILLION"] = "1"

    started = datetime.now(UTC)
    command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    machine = machine_info()
    rows: list[dict[str, object]] = []
    durations: dict[str, float] = {}
    errors: dict[str, str] = {}
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    out = args.json or RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {
        "command": command,
        "quick": args.quick,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": 0.0,
        "machine": machine,
        "modules": durations,
        "errors": errors,
        "rows": rows,
    }
    waits: dict[str, float] = {}
    machine["waited_for_quiet_s"] = waits
    for name in names:
        if not args.quick:
            waits[name] = wait_for_quiet()
        print(f"== {name}", file=sys.stderr, flush=True)
        got, seconds, error = run_module(name, args.quick)
        durations[name] = round(seconds, 1)
        if error:
            errors[name] = error
        apply_targets(got)
        rows += got
        print(table(got), file=sys.stderr, flush=True)
        print(f"   ({seconds:.1f} s)", file=sys.stderr, flush=True)
        # Saved after every module, so that an interrupted run keeps what it measured.
        machine["load_average_end"] = list(os.getloadavg())
        result["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
        out.write_text(json.dumps(result, indent=1, default=str) + "\n")

    print(table(rows))
    print(f"\n{len(rows)} rows in {result['duration_s']} s; results: {out}")

    if args.markdown:
        plot = args.plot or args.markdown.with_suffix(".png")
        try:
            from bench.plot import plot_results  # noqa: PLC0415 (matplotlib: bench only)

            plot_results(result, plot)
        except Exception as e:
            print(f"no plot: {type(e).__name__}: {e}", file=sys.stderr)
            plot = None
        rel = os.path.relpath(plot, args.markdown.parent) if plot else None
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(result, rel))
        print(f"report: {args.markdown}" + (f", plot: {plot}" if plot else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
