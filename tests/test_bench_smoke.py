"""The benchmark harness: a broken benchmark is reported, targets are judged, rows keep
their shape. No timing is asserted here (speed goals live in ``bench/``)."""

from __future__ import annotations

import random
import sys
import types
from pathlib import Path

import pytest

from bench import append, proofs
from bench.__main__ import main, run_module
from bench.plot import plot_results
from bench.report import apply_targets, markdown, table

KEYS = {"benchmark", "value", "unit", "note"}


def _check_rows(rows: list[dict[str, object]]) -> None:
    assert rows
    for r in rows:
        assert r.keys() >= KEYS, r
        assert isinstance(r["benchmark"], str) and r["benchmark"]
        assert isinstance(r["value"], int | float)
        assert r.get("ok") in (None, True, False)


def test_missing_module_is_a_failed_row() -> None:
    rows, _, error = run_module("no_such_benchmark", quick=True)
    assert error is not None and "missing" in error
    assert rows == [
        {
            "benchmark": "no_such_benchmark",
            "value": None,
            "unit": "error",
            "note": error,
            "target": "runs",
            "ok": False,
            "module": "no_such_benchmark",
        }
    ]


def test_raising_module_is_a_failed_row(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = types.ModuleType("bench.broken")

    def run(quick: bool) -> list[dict[str, object]]:
        raise RuntimeError("disk full")

    broken.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.broken", broken)
    rows, _, error = run_module("broken", quick=True)
    assert error == "RuntimeError: disk full"
    assert rows[0]["ok"] is False and rows[0]["note"] == error


def test_targets_are_judged_and_reported() -> None:
    rows: list[dict[str, object]] = [
        {"benchmark": "ed25519 ratio ours/raw", "value": 0.9, "unit": "ratio", "note": "n"},
        {"benchmark": "x_ratio", "value": 1.2, "unit": "x", "note": "", "target": "<= 1.5"},
        {"benchmark": "y", "value": 3.0, "unit": "s", "note": "", "target": "<= 1", "ok": True},
        {"benchmark": "rate", "value": 5.0, "unit": "/s", "note": ""},
    ]
    apply_targets(rows)
    assert [(r["target"], r["ok"]) for r in rows] == [
        (">= 0.95", False),  # a default target from the issues
        ("<= 1.5", True),
        ("<= 1", True),  # the module's own judgement is kept
        (None, None),
    ]
    result = {
        "command": "python -m bench --quick",
        "quick": True,
        "duration_s": 1.0,
        "machine": {"cpu": "Test CPU", "cores": 2, "load_average_start": [0.0, 0.0, 0.0]},
        "modules": {"ed25519": 1.0},
        "errors": {},
        "rows": rows,
    }
    md = markdown(result, None)
    assert "3 of 4 targets met" not in md and "2 of 3 targets met." in md
    missed = md.split("**Not met:**")[1].split("##")[0]
    assert "ed25519 ratio ours/raw" in missed and "*Why:*" in missed
    assert "| rate | 5.00 | /s |" in md
    assert "NO" in table(rows)


def test_unknown_benchmark_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as e:
        main(["--quick", "--only", "nope"])
    assert e.value.code == 2


def test_append_and_proof_rows_on_tiny_logs() -> None:
    costs = append._merkle_cost([64, 128], probe=32, repeats=1)
    assert set(costs) == {64, 128} and all(c > 0 for c in costs.values())
    rows = proofs._in_memory(300, 10, random.Random(1))  # also checks pymerkle's root
    _check_rows(rows)
    assert {r["benchmark"] for r in rows} >= {
        "proof_inclusion_memory_300",
        "proof_consistency_pymerkle_300",
    }


def test_record_stream_makes_a_valid_log(tmp_path: Path) -> None:
    signer = append.log_signer(append.ORIGIN)
    storage = append.SqlStorage(f"sqlite:///{tmp_path / 'a.db'}", origin=append.ORIGIN)
    try:
        storage.init_log()
        append.grow_sqlite_log(storage, signer, append.RecordStream(append.ORIGIN), 300, 128)
        assert storage.head().size == 300
    finally:
        storage.close()


def test_plot_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")

    rows: list[dict[str, object]] = [
        {"benchmark": "a", "value": 1.5, "unit": "us", "note": "", "series": "append: X", "size": n}
        for n in (10_000, 100_000)
    ] + [{"benchmark": "verify_full_100000_jobs2", "value": 20_000.0, "unit": "sig/s", "note": ""}]
    png = plot_results({"rows": rows, "machine": {}}, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
