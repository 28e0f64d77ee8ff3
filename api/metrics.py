"""Service metrics in the Prometheus text exposition format (version 0.0.4).

A few counters and histograms, written by hand rather than through a client
library: the service exports only what an operator of a log watches.

- ``ledger_build_info{version,python}``: always 1; the version that runs;
- ``ledger_http_requests_total{method,route,status}``: requests answered, by method,
  route template (``/tile/{path:path}``, never the raw path) and status;
- ``ledger_http_request_duration_seconds{route}``: a histogram of answer times;
- ``ledger_records_sequenced_total``: records appended to the log by this server;
- ``ledger_records_duplicate_total``: resubmissions answered with the existing entry;
- ``ledger_records_rejected_total{code}``: records refused, by problem code (at
  submission: malformed, bad signature; at sequencing: the rule's code);
- ``ledger_batch_records``: a histogram of the records per sequenced batch;
- ``ledger_log_entries``: the entries in the log, its tree size (read from the
  storage when scraped);
- ``ledger_queue_records``: records waiting in the sequencing queues;
- ``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
  ``process_open_fds``, ``process_start_time_seconds``: the standard process
  metrics, for the server's processes together (CPU time summed over every worker
  that ran, memory and descriptors over the live ones, the oldest start).

Every label value comes from a bounded set, whatever clients send: a method outside
:data:`KNOWN_METHODS` is counted as ``other``, a request no route matched as route
``<unmatched>``, a status outside 100-599 as ``other``; rejection codes are the
service's own problem codes. So the number of series is bounded, however many
distinct requests arrive.

**Several worker processes** (``--workers N``) answer ``/metrics`` for the whole
server, not each for itself (which made consecutive scrapes go back and forth
between the workers' counts, read by Prometheus as resets). Each worker keeps its
counts in memory and writes them, as JSON, to ``<dir>/<pid>.json`` (atomically
replaced, ``ledger.durable``) when they changed, at most every
:data:`FLUSH_INTERVAL_S` seconds, and whenever it answers a scrape; a scrape first
writes its own file, then sums every file of the directory. Each file only grows,
and a scrape reads each after the previous scrape did, so consecutive scrapes never
go backwards; another worker's counts reach a scrape at most
:data:`FLUSH_INTERVAL_S` late. The file of a worker that exited stays: its counts
remain in the sums (as Prometheus' multiprocess mode keeps them); its queue gauge
does not. The directory is ``<data-dir>/metrics/<pid of the server's main
process>``; a new server removes those of main processes that no longer run. With
one process there is no directory and nothing is written.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import platform
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.sequencing.queue import BatchReport
from api.settings import Settings
from ledger import __version__
from ledger.durable import write_atomic

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: Longest time a worker's counts wait before reaching the shared directory.
FLUSH_INTERVAL_S = 1.0


#: Methods counted under their own name (RFC 9110 section 9.3, and PATCH); any other
#: name a client sends is counted as ``other``.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def method_label(method: str) -> str:
    """The ``method`` label of a request: its method if standard, else ``other``."""
    return method if method in KNOWN_METHODS else "other"


def status_label(status: int) -> str:
    """The ``status`` label of an answer: its code, or ``other`` outside 100-599."""
    return str(status) if 100 <= status <= 599 else "other"


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

    def dump(self) -> list[list[Any]]:
        """The series as JSON: ``[[label, ..., [counts..., sum, count]], ...]``."""
        return [[*labels, list(s)] for labels, s in self._series.items()]

    def add(self, dumped: Iterable[list[Any]]) -> None:
        """Add the series of another process (:meth:`dump`) to these."""
        for row in dumped:
            labels, values = tuple(str(v) for v in row[:-1]), row[-1]
            s = self._series.get(labels)
            if s is None:
                s = self._series[labels] = [0.0] * (len(self.buckets) + 2)
            for k, v in enumerate(values[: len(s)]):
                s[k] += float(v)

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


class _Counts:
    """What one process counted (or what several did, summed)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.durations = Histogram(DURATION_BUCKETS)
        self.sequenced = 0
        self.duplicates = 0
        self.rejected: dict[str, int] = {}
        self.batches = Histogram(BATCH_BUCKETS)
        # Of the processes: CPU of all (a counter), the rest of the live ones only.
        self.cpu_seconds = 0.0
        self.live: list[dict[str, Any]] = []

    def dump(self) -> dict[str, Any]:
        return {
            "requests": [[*k, n] for k, n in self.requests.items()],
            "durations": self.durations.dump(),
            "sequenced": self.sequenced,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "batches": self.batches.dump(),
        }

    def add(self, doc: dict[str, Any]) -> None:
        for method, route, status, n in doc.get("requests", ()):
            key = (str(method), str(route), str(status))
            self.requests[key] = self.requests.get(key, 0) + int(n)
        self.durations.add(doc.get("durations", ()))
        self.sequenced += int(doc.get("sequenced", 0))
        self.duplicates += int(doc.get("duplicates", 0))
        for code, n in doc.get("rejected", {}).items():
            self.rejected[str(code)] = self.rejected.get(str(code), 0) + int(n)
        self.batches.add(doc.get("batches", ()))


def process_stats() -> dict[str, float]:
    """This process's CPU time, and on Linux its resident memory, open descriptors and
    start time (the ``process_*`` metrics every Prometheus client library exports)."""
    t = os.times()
    stats = {"cpu_seconds": t.user + t.system}
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        stats["resident_bytes"] = float(pages * os.sysconf("SC_PAGE_SIZE"))
        stats["open_fds"] = float(len(os.listdir("/proc/self/fd")))
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        stats["start_time_seconds"] = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return stats


#: (key of process_stats, metric, help): summed over the live processes, except the
#: start time (the oldest).
_PROCESS_GAUGES = (
    ("resident_bytes", "process_resident_memory_bytes", "Resident memory of the processes."),
    ("open_fds", "process_open_fds", "Open file descriptors of the processes."),
    ("start_time_seconds", "process_start_time_seconds", "Start of the oldest process (Unix)."),
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


class Metrics:
    """The counters of one process, and with ``directory`` those of its sibling workers.

    Thread-safe: routes run in a thread pool.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._own = _Counts()
        self.directory = directory
        self.queue_source: Callable[[], int | None] | None = None
        self._changes = 0  # observations since the last flush
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def for_server(cls, settings: Settings) -> Metrics:
        """The metrics of a serving process: shared between workers when there are several."""
        if settings.workers <= 1:
            return cls()
        root = settings.data_dir / "metrics"
        directory = root / str(os.getppid())  # the main process, parent of every worker
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in root.iterdir():
            if old != directory and old.name.isdigit() and not _alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
        return cls(directory)

    # --- observations ------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method_label(method), route, status_label(status))
        with self._lock:
            own = self._own
            own.requests[key] = own.requests.get(key, 0) + 1
            own.durations.observe((route,), seconds)
            self._changes += 1

    def observe_batch(self, size: int) -> None:
        """One batch of ``size`` records committed by the sequencer."""
        with self._lock:
            self._own.batches.observe((), float(size))
            self._changes += 1

    def observe_outcome(self, *, sequenced: int = 0, duplicates: int = 0) -> None:
        with self._lock:
            self._own.sequenced += sequenced
            self._own.duplicates += duplicates
            self._changes += 1

    def on_batch(self, report: BatchReport) -> None:
        """The sequencer's ``on_batch`` hook: one committed batch."""
        with self._lock:
            own = self._own
            own.batches.observe((), float(report.records))
            own.sequenced += report.appended
            own.duplicates += report.duplicates
            for code in report.rejected:
                own.rejected[code] = own.rejected.get(code, 0) + 1
            self._changes += 1

    def observe_rejected(self, code: str) -> None:
        with self._lock:
            self._own.rejected[code] = self._own.rejected.get(code, 0) + 1
            self._changes += 1

    # --- sharing between workers ---------------------------------------------------

    def _queued(self) -> int | None:
        source = self.queue_source
        return source() if source is not None else None

    def flush(self) -> None:
        """Write this process's counts to the shared directory (if any)."""
        if self.directory is None:
            return
        with self._lock:
            doc = self._own.dump()
            self._changes = 0
        doc["pid"] = os.getpid()
        doc["queued"] = self._queued()
        doc["process"] = process_stats()
        data = json.dumps(doc, separators=(",", ":")).encode()
        write_atomic(self.directory / f"{os.getpid()}.json", data, mode=0o600)

    def start(self) -> None:
        """Flush every FLUSH_INTERVAL_S seconds while something changed (several workers)."""
        if self.directory is None or self._flusher is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(FLUSH_INTERVAL_S):
                if self._changes:
                    with contextlib.suppress(OSError):
                        self.flush()

        self._flusher = threading.Thread(target=run, name="metrics-flush", daemon=True)
        self._flusher.start()

    def stop(self) -> None:
        """Stop flushing, after a last flush."""
        flusher, self._flusher = self._flusher, None
        if flusher is None:
            return
        self._stop.set()
        flusher.join()
        with contextlib.suppress(OSError):
            self.flush()

    def _server_counts(self) -> _Counts:
        """The counts of every worker (their files), with the processes' figures."""
        counts = _Counts()
        if self.directory is None:
            with self._lock:
                counts.add(self._own.dump())
            docs: list[dict[str, Any]] = [
                {"pid": os.getpid(), "queued": self._queued(), "process": process_stats()}
            ]
        else:
            # A failed write (disk full) leaves the file as the last scrape read it: the
            # sums may lag, never go back.
            with contextlib.suppress(OSError):
                self.flush()
            docs = []
            for path in sorted(self.directory.glob("*.json")):
                try:
                    docs.append(json.loads(path.read_bytes()))
                except (OSError, ValueError):  # pragma: no cover - written atomically
                    continue
                counts.add(docs[-1])
        for doc in docs:
            process = doc.get("process") or {}
            counts.cpu_seconds += float(process.get("cpu_seconds", 0.0))
            pid = doc.get("pid")
            if isinstance(pid, int) and (pid == os.getpid() or _alive(pid)):
                counts.live.append(doc)
        return counts

    # --- exposition ----------------------------------------------------------------

    def render(self, *, log_size: int | None = None, queued: int | None = None) -> str:
        """The exposition text; ``log_size`` (and ``queued``, unless the queue source
        gives it) are read at scrape time."""
        counts = self._server_counts()
        queues = [d["queued"] for d in counts.live if isinstance(d.get("queued"), int)]
        if queues:
            queued = sum(queues)
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        family("ledger_build_info", "gauge", "The version that runs (always 1).")
        info = _labels(("version", "python"), (__version__, platform.python_version()))
        out.append(f"ledger_build_info{info} 1")
        family("ledger_http_requests_total", "counter", "HTTP requests answered.")
        for (method, route, status), n in sorted(counts.requests.items()):
            labels = _labels(("method", "route", "status"), (method, route, status))
            out.append(f"ledger_http_requests_total{labels} {n}")
        family("ledger_http_request_duration_seconds", "histogram", "Time to answer a request.")
        out.extend(counts.durations.render("ledger_http_request_duration_seconds", ("route",)))
        family("ledger_records_sequenced_total", "counter", "Records appended to the log.")
        out.append(f"ledger_records_sequenced_total {counts.sequenced}")
        family(
            "ledger_records_duplicate_total",
            "counter",
            "Resubmitted records answered with their existing entry.",
        )
        out.append(f"ledger_records_duplicate_total {counts.duplicates}")
        family("ledger_records_rejected_total", "counter", "Records refused, by problem code.")
        for code, n in sorted(counts.rejected.items()):
            out.append(f"ledger_records_rejected_total{_labels(('code',), (code,))} {n}")
        family("ledger_batch_records", "histogram", "Records per sequenced batch.")
        out.extend(counts.batches.render("ledger_batch_records", ()))
        family("process_cpu_seconds_total", "counter", "CPU time of the server's processes.")
        out.append(f"process_cpu_seconds_total {_num(round(counts.cpu_seconds, 3))}")
        for key, name, help_ in _PROCESS_GAUGES:
            values = [float(d["process"][key]) for d in counts.live if key in d.get("process", {})]
            if values:
                family(name, "gauge", help_)
                value = min(values) if key == "start_time_seconds" else sum(values)
                out.append(f"{name} {_num(round(value, 3))}")
        if log_size is not None:
            family("ledger_log_entries", "gauge", "Entries in the log (its tree size).")
            out.append(f"ledger_log_entries {log_size}")
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


__all__ = [
    "CONTENT_TYPE",
    "FLUSH_INTERVAL_S",
    "KNOWN_METHODS",
    "Histogram",
    "Metrics",
    "MetricsMiddleware",
    "method_label",
    "process_stats",
    "route_template",
    "status_label",
]
