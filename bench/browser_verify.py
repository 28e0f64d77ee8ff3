"""The browser verifier in headless Chromium against ``ledger-verify`` (issue 17).

    python -m bench.browser_verify [--quick]

Builds a log of :data:`SIZE` entries (5,000 with --quick) with ``tests/logfactory.py``
in which one statement has :data:`ENDORSERS` endorsements, writes it as a tlog-tiles
directory with the verifier's page and modules beside it, and serves it on loopback
with the site's Content-Security-Policy. In the same run it measures:

* ``ledger-verify log --jobs 2`` (wall time of the checks, as its JSON reports);
* the page's whole-log verification in Chromium (Web Workers, one per core), timed in
  the page from the click to the verdict, and the peak resident memory of Chromium's
  processes while it runs;
* the page's statement verification of the statement with the most endorsements.

Targets (issue 17): browser rate >= 0.5 x ledger-verify --jobs 2 at 100,000 entries;
statement verification of a statement with 1,000 endorsements under 3 s.
Needs Debian's chromium and chromedriver and selenium; without them the module reports
one failed row saying what is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.rows import print_rows, row
from tests.browser import VERIFY_PAGE, chromium, missing, serve
from tests.logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "ledger" / "mirror" / "js"
SIZE = 100_000
QUICK_SIZE = 5_000
ENDORSERS = 1_000


STATEMENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Statement</title>
<script type="module" src="statement-bench.js"></script></head><body></body></html>
"""

STATEMENT_JS = """
import {{ verifyStatement }} from './js/statement.js';
import {{ trustFromVkey }} from './js/note.js';
import {{ LedgerError }} from './js/errors.js';
async function get(path) {{
  const res = await fetch(path);
  if (res.status === 404) throw new LedgerError(path, {{ code: 'not_found', exit: 2 }});
  return new Uint8Array(await res.arrayBuffer());
}}
const t = performance.now();
const r = await verifyStatement(get, trustFromVkey({vkey!r}), {sid!r}, {first}, {listed});
r.elapsed_s = (performance.now() - t) / 1000;
document.body.dataset.result = JSON.stringify(r);
"""


def _build(size: int) -> tuple[LogFactory, bytes, int, list[int]]:
    f = LogFactory(seed=f"bench browser {size}")
    members = [f.register() for _ in range(min(ENDORSERS, size // 4))]
    sid = f.statement(members[:1], title="The statement with many endorsements")
    first = f.size - 1
    listed = []
    for m in members:
        f.endorse(m, sid)
        listed.append(f.size - 1)
    f.grow(size - f.size, registrations=0.01)
    return f, sid, first, listed


def _chromium_rss_kb() -> int:
    out = subprocess.run(["ps", "-eo", "rss=,comm="], capture_output=True, text=True, check=False)
    return sum(
        int(line.split()[0])
        for line in out.stdout.splitlines()
        if line.split()[1:] and "chrom" in line.split()[1]
    )


def run(quick: bool) -> list[dict[str, object]]:
    why = missing()
    if why is not None:
        return [row("browser_verify", 0, "error", why, target="runs", ok=False)]
    size = QUICK_SIZE if quick else SIZE
    out: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        t = time.perf_counter()
        f, sid, first, listed = _build(size)
        d = f.write(Path(tmp) / "log")
        out.append(row(f"browser_build_log_{size}", time.perf_counter() - t, "s", "not measured"))
        shutil.copytree(JS, d / "js")
        vkey = f.log_key.vkey
        (d / "verify.html").write_text(VERIFY_PAGE.format(vkey=vkey, statement="", count=0))
        (d / "statement.html").write_text(STATEMENT_PAGE)
        (d / "statement-bench.js").write_text(
            STATEMENT_JS.format(vkey=vkey, sid=sid.hex(), first=first, listed=json.dumps(listed))
        )
        cmd = [sys.executable, "-m", "ledger.verify.cli", "log", str(d), "--log-key", vkey]
        res = subprocess.run(
            [*cmd, "--json", "--jobs", "2"], capture_output=True, text=True, cwd=ROOT, check=False
        )
        report = json.loads(res.stdout)
        py_s = float(report["elapsed_s"])
        sigs = int(report["signatures_checked"])
        out.append(
            row(f"browser_ledger_verify_{size}_jobs2", sigs / py_s, "sig/s", f"{py_s:.2f} s")
        )
        with serve(d) as url, chromium(Path(tmp) / "profile") as driver:
            driver.get(url + "verify.html")
            peak = [0]
            done = threading.Event()

            def watch() -> None:
                while not done.wait(0.2):
                    peak[0] = max(peak[0], _chromium_rss_kb())

            w = threading.Thread(target=watch, daemon=True)
            w.start()
            t = time.perf_counter()
            driver.execute_script("document.getElementById('verify').click()")
            driver.execute_async_script(
                "const done = arguments[0]; const t = setInterval(() => {"
                " if (document.body.dataset.verdict) { clearInterval(t); done(); } }, 50);"
            )
            js_s = time.perf_counter() - t
            done.set()
            w.join()
            verdict = driver.find_element("tag name", "body").get_attribute("data-verdict")
            text = driver.find_element("id", "result").text
            if verdict != "valid":
                raise RuntimeError(f"the page did not find the log valid: {text}")
            rate = sigs / js_s
            ratio = rate / (sigs / py_s)
            target = ">= 0.5" if size >= SIZE else None
            out.append(
                row(f"browser_verify_{size}", rate, "sig/s", f"{js_s:.2f} s, click to verdict")
            )
            out.append(
                row(
                    f"browser_verify_{size}_ratio",
                    ratio,
                    "ratio",
                    "to ledger-verify --jobs 2 in the same run",
                    target=target,
                    ok=None if target is None else ratio >= 0.5,
                )
            )
            out.append(row("browser_peak_rss", peak[0] / 1024, "MB", "all Chromium processes"))
            driver.get(url + "statement.html")
            driver.execute_async_script(
                "const done = arguments[0]; const t = setInterval(() => {"
                " if (document.body.dataset.result) { clearInterval(t); done(); } }, 50);"
            )
            r = json.loads(driver.find_element("tag name", "body").get_attribute("data-result"))
            target = "<= 3" if size >= SIZE else None
            out.append(
                row(
                    f"browser_statement_{len(listed)}_on_{size}",
                    r["elapsed_s"],
                    "s",
                    f"{r['checked']} entries, {r['tilesRead']} tiles read, tally {r['total']}",
                    target=target,
                    ok=None if target is None else r["elapsed_s"] <= 3,
                )
            )
    return out


if __name__ == "__main__":
    print_rows(run("--quick" in sys.argv[1:]), 40)
