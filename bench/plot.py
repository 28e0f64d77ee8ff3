"""Plot cost against log size from a results file: ``python -m bench.plot RESULTS.json [PNG]``.

Three panels, log-log: append cost per entry, proof generation time per proof,
verification time per signature. Rows carrying "series" and "size" (bench.append,
bench.proofs) are plotted as they are; the verifier's ``verify_full_<size>_jobs<j>``
rows (signatures/s) become microseconds per signature, and ingest_core's
``append_cost_<backend>_at_<size>`` rows join the append panel. matplotlib is a
benchmark dependency only (the ``dev`` extra), with the Agg backend.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

DEFAULT_PNG = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.png"

Points = dict[str, list[tuple[int, float]]]


def _series(rows: list[dict[str, object]]) -> tuple[Points, Points, Points]:
    append: Points = defaultdict(list)
    proofs: Points = defaultdict(list)
    verify: Points = defaultdict(list)
    for r in rows:
        name, value = str(r.get("benchmark", "")), r.get("value")
        if not isinstance(value, int | float) or value <= 0:
            continue
        series, size = r.get("series"), r.get("size")
        if isinstance(series, str) and isinstance(size, int):
            panel = append if series.startswith("append") else proofs
            panel[series.removeprefix("append: ")].append((size, float(value)))
        elif m := re.fullmatch(r"verify_full_(\d+)_jobs(\d+)", name):
            verify[f"ledger-verify, {m.group(2)} job(s)"].append((int(m.group(1)), 1e6 / value))
        elif m := re.fullmatch(r"append_cost_(\w+)_at_(\d+)", name):
            append[f"ingest_core {m.group(1)}"].append((int(m.group(2)), float(value)))
    return append, proofs, verify


def _size_label(x: float, _pos: object = None) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def plot_results(result: dict[str, object], png: Path = DEFAULT_PNG) -> Path:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: PLC0415

    rows: list[dict[str, object]] = result["rows"]  # type: ignore[assignment]
    panels = zip(
        _series(rows),
        ("Append: cost per entry", "Proof generation: time per proof", "Verification"),
        ("µs per entry", "µs per proof", "µs per signature"),
        strict=True,
    )
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, (points, title, ylabel) in zip(axes, panels, strict=True):
        for label, pts in sorted(points.items()):
            pts.sort()
            style = "--" if "pymerkle" in label else "-"
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=label, lw=1.5
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_size_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title)
        ax.set_xlabel("entries in the log")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if points:
            ax.legend(fontsize=7.5, loc="best")
        else:
            ax.text(0.5, 0.5, "no data in this run", ha="center", transform=ax.transAxes)
    machine: dict[str, object] = result.get("machine", {})  # type: ignore[assignment]
    fig.suptitle(
        f"Endorsement Ledger benchmarks, {str(machine.get('date', ''))[:10]}, "
        f"{machine.get('cpu', '')} ({machine.get('cores')} cores)",
        fontsize=10,
    )
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print("usage: python -m bench.plot RESULTS.json [PNG]", file=sys.stderr)
        sys.exit(2)
    out = plot_results(
        json.loads(Path(sys.argv[1]).read_text()),
        Path(sys.argv[2]) if len(sys.argv) == 3 else DEFAULT_PNG,
    )
    print(out)
