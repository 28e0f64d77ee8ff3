"""The result row every benchmark module returns (see bench/__main__.py).

A row is {"benchmark", "value", "unit", "note"}, plus "target" (a string such as
">= 0.85") and "ok" (whether it is met; None without a target), and any extra keys
(series, size) that only feed the plot.
"""

from __future__ import annotations


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
