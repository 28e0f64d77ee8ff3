"""The result row every benchmark module returns (see bench/__main__.py).

A row is {"benchmark", "value", "unit", "note"}, plus "target" (a string such as
">= 0.85") and "ok" (whether it is met; None without a target), and any extra keys
(series, size) that only feed the plot.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def row(
    benchmark: str,
    value: float,
    unit: str,
    note: str,
    *,
    target: str | None = None,
    ok: bool | None = None,
    **extra: object,
) -> dict[str, object]:
    """A result row; ``extra`` (series, size) only feeds the plot."""
    out: dict[str, object] = {
        "benchmark": benchmark,
        "value": round(value, 3),
        "unit": unit,
        "note": note,
        "target": target,
        "ok": ok,
    }
    out.update(extra)
    return out


def print_rows(rows: list[dict[str, object]], width: int = 44) -> None:
    """Print rows one a line, with their target and whether it is met (``python -m bench.X``)."""
    for r in rows:
        ok = "" if r.get("ok") is None else ("  ok " if r["ok"] else "  MISSED ") + str(r["target"])
        value = r["value"]
        shown = f"{value:>14,.3f}" if isinstance(value, int | float) else f"{value!s:>14}"
        print(f"{r['benchmark']!s:{width}} {shown} {r['unit']!s:9} {r['note']}{ok}")


def each_size(
    sizes: list[int], prefix: str, bench_size: Callable[[int, Path], list[dict[str, object]]]
) -> list[dict[str, object]]:
    """The rows of ``bench_size(size, work)`` for each size, in one temporary directory."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for size in sizes:
            rows.extend(bench_size(size, Path(tmp)))
    return rows


def million(flag: bool | None) -> bool:
    """Whether the 1,000,000-entry runs are asked for (``--million`` or LEDGER_BENCH_MILLION=1)."""
    return os.environ.get("LEDGER_BENCH_MILLION") == "1" if flag is None else flag
