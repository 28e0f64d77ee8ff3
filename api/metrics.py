"""Service metrics in the Prometheus text exposition format (version 0.0.4).

A few counters and histograms, written by hand rather than through a client
library: the service exports only what an operator of a log watches.

- ``ledger_http_requests_total{method,route,status}``: requests answered, by route
  template (``/tile/{path:path}``, never the raw path, so the label set stays small);
- ``ledger_http_request_duration_seconds{route}``: a histogram of answer times;
- ``ledger_records_sequenced_total``: records appended to the log by this process;
- ``ledger_records_duplicate_total``: resubmissions answered with the existing entry;
- ``ledger_records_rejected_total{code}``: records refused, by problem code (at
  submission: malformed, bad signature; at sequencing: the rule's code);
- ``ledger_batch_size``: a histogram of the records per sequenced batch;
- ``ledger_log_size``: the size of the log (read from the storage when scraped);
- ``ledger_queue_records``: records waiting in this process's sequencing queue.

One :class:`Metrics` object belongs to one process: with several workers, each
exports its own counters (Prometheus sums them); the log size is the same in all.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.sequencing.queue import BatchReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(x: float) -> str:
    if x == float("inf"):
        return "+Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class Histogram:
    """Cumulative buckets, sum and count for each label set."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}  # counts..., sum, count

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        s = self._series.get(labels)
        if s is None:
            s = self._series[labels] = [0.0] * (len(self.buckets) + 2)
        i = bisect.bisect_left(self.buckets, value)  # first bucket whose bound >= value
        if i < len(self.buckets):
            s[i] += 1
        s[-2] += value
        s[-1] += 1

    def render(self, name: str, label_names: Sequence[str]) -> list[str]:
        lines = []
        for labels, s in sorted(self._series.items()):
            cumulative = 0.0
            for bound, count in zip(self.buckets, s, strict=False):
                cumulative += count
                le = _labels(label_names, labels, f'le="{_num(bound)}"')
                lines.append(f"{name}_bucket{le} {_num(cumulative)}")
            inf = _labels(label_names, labels, 'le="+Inf"')
            lines.append(f"{name}_bucket{inf} {_num(s[-1])}")
            lines.append(f"{name}_sum{_labels(label_names, labels)} {_num(s[-2])}")
            lines.append(f"{name}_count{_labels(label_names, labels)} {_num(s[-1])}")
        return lines


class Metrics:
    """The counters of one process. Thread-safe: routes run in a thread pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.durations = Histogram(DURATION_BUCKETS)
        self.sequenced = 0
        self.duplicates = 0
        self.rejected: dict[str, int] = {}
        self.batches = Histogram(BATCH_BUCKETS)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            self.durations.observe((route,), seconds)

    def observe_batch(self, size: int) -> None:
        """One batch of ``size`` records committed by the sequencer."""
        with self._lock:
            self.batches.observe((), float(size))

    def observe_outcome(self, *, sequenced: int = 0, duplicates: int = 0) -> None:
        with self._lock:
            self.sequenced += sequenced
            self.duplicates += duplicates

    def on_batch(self, report: BatchReport) -> None:
        """The sequencer's ``on_batch`` hook: one committed batch."""
        with self._lock:
            self.batches.observe((), float(report.records))
            self.sequenced += report.appended
            self.duplicates += report.duplicates
            for code in report.rejected:
                self.rejected[code] = self.rejected.get(code, 0) + 1

    def observe_rejected(self, code: str) -> None:
        with self._lock:
            self.rejected[code] = self.rejected.get(code, 0) + 1

    def render(self, *, log_size: int | None = None, queued: int | None = None) -> str:
        """The exposition text; ``log_size`` and ``queued`` are read at scrape time."""
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        with self._lock:
            family("ledger_http_requests_total", "counter", "HTTP requests answered.")
            for (method, route, status), n in sorted(self.requests.items()):
                labels = _labels(("method", "route", "status"), (method, route, status))
                out.append(f"ledger_http_requests_total{labels} {n}")
            family("ledger_http_request_duration_seconds", "histogram", "Time to answer a request.")
            out.extend(self.durations.render("ledger_http_request_duration_seconds", ("route",)))
            family("ledger_records_sequenced_total", "counter", "Records appended to the log.")
            out.append(f"ledger_records_sequenced_total {self.sequenced}")
            family(
                "ledger_records_duplicate_total",
                "counter",
                "Resubmitted records answered with their existing entry.",
            )
            out.append(f"ledger_records_duplicate_total {self.duplicates}")
            family("ledger_records_rejected_total", "counter", "Records refused, by problem code.")
            for code, n in sorted(self.rejected.items()):
                out.append(f"ledger_records_rejected_total{_labels(('code',), (code,))} {n}")
            family("ledger_batch_size", "histogram", "Records per sequenced batch.")
            out.extend(self.batches.render("ledger_batch_size", ()))
        if log_size is not None:
            family("ledger_log_size", "gauge", "Entries in the log (its tree size).")
            out.append(f"ledger_log_size {log_size}")
        if queued is not None:
            family("ledger_queue_records", "gauge", "Records waiting to be sequenced.")
            out.append(f"ledger_queue_records {queued}")
        return "\n".join(out) + "\n"


def route_template(scope: Scope) -> str:
    """The route that answered a request, as its template, or ``<unmatched>``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class MetricsMiddleware:
    """Count every answered request by method, route template and status."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self.clock()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(
                scope.get("method", ""), route_template(scope), status, self.clock() - start
            )


__all__ = ["CONTENT_TYPE", "Histogram", "Metrics", "MetricsMiddleware", "route_template"]
