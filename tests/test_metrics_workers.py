"""``/metrics`` of a server with two worker processes (``LEDGER_WORKERS=2``).

Each scrape reaches one worker or the other; both must answer for the server as a
whole: consecutive scrapes never go backwards (Prometheus would read a reset), and
once the workers have flushed, a scrape counts every request either worker answered.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

from test_hostile_http import Server, request, serve

from api.metrics import FLUSH_INTERVAL_S, Metrics
from ledger import __version__


def scrape(server: Server) -> dict[str, float]:
    a = request(server, "GET", "/metrics")
    assert a.status == 200, a.body[:200]
    values: dict[str, float] = {}
    for line in a.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def total(values: dict[str, float], family: str) -> float:
    return sum(v for k, v in values.items() if re.match(rf"{family}(\{{|$)", k))


def wait_ready(server: Server) -> None:
    """Until both workers are up (serve() returns once the main process listens)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if request(server, "GET", "/readyz").status == 200:
                time.sleep(1.0)  # the second worker too, usually: not needed, fairer
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)


def test_scrapes_never_go_backwards_with_two_workers(tmp_path: Path) -> None:
    with serve(tmp_path, workers="2") as server:
        wait_ready(server)
        previous: dict[str, float] = {}
        asked = 0
        for _ in range(15):
            for _ in range(4):
                assert request(server, "GET", "/api/v1/log").status == 200
                asked += 1
            values = scrape(server)
            asked += 1
            for name, value in previous.items():
                if name.startswith(
                    ("ledger_http_requests_total", "ledger_records_", "process_cpu_seconds_total")
                ) or ("_bucket" in name or name.endswith(("_count", "_sum"))):
                    assert values.get(name, 0.0) >= value, (name, value, values.get(name))
            previous = values
            assert request(server, "GET", "/livez").status == 200
            asked += 1
        time.sleep(FLUSH_INTERVAL_S * 2.5)  # every worker has written its counts
        values = scrape(server)
        # Every request either worker answered, the /livez ones included, is counted
        # (the last scrape counts itself only once it has answered).
        counted = total(values, "ledger_http_requests_total")
        assert counted >= asked, (counted, asked)
        info = f'ledger_build_info{{version="{__version__}",python="{platform.python_version()}"}}'
        assert values[info] == 1
        # The process metrics are the server's: both workers' memory, at least 2 x 20 MB.
        assert values["process_resident_memory_bytes"] > 40e6
        assert values["process_open_fds"] > 0 and values["process_cpu_seconds_total"] > 0


def test_a_worker_that_exited_still_counts_but_its_queue_does_not(tmp_path: Path) -> None:
    other = Metrics()
    for _ in range(5):
        other.observe_request("GET", "/api/v1/log", 200, 0.002)
    doc = {  # a worker that exited (no process has this pid)
        **other._own.dump(),
        "pid": 2**22 + 12345,
        "queued": 7,
        "process": {"cpu_seconds": 1000.0, "resident_bytes": 1e12},
    }
    (tmp_path / "4206649.json").write_text(json.dumps(doc))
    mine = Metrics(tmp_path)
    mine.queue_source = lambda: 3
    mine.observe_request("GET", "/api/v1/log", 200, 0.002)
    text = mine.render(log_size=1, queued=None)
    assert 'ledger_http_requests_total{method="GET",route="/api/v1/log",status="200"} 6' in text
    assert 'ledger_http_request_duration_seconds_count{route="/api/v1/log"} 6' in text
    assert "ledger_queue_records 3\n" in text  # the live worker's queue only
    assert (tmp_path / f"{os.getpid()}.json").exists()  # written before it was read
    cpu = float(text.split("\nprocess_cpu_seconds_total ")[1].split()[0])
    assert cpu > 1000  # its CPU time stays counted ...
    rss = float(text.split("\nprocess_resident_memory_bytes ")[1].split()[0])
    assert rss < 1e12  # ... its memory does not
