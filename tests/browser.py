"""Helpers for tests in a real headless Chromium (Debian chromium + chromedriver).

:func:`chromium` starts one driver; :func:`serve` serves a directory on loopback with
the static site's headers (its strict Content-Security-Policy included), as a web
server in front of a mirror would. Tests that use them call :func:`need_browser`
first: skipped without a browser unless ``LEDGER_REQUIRE_BROWSER=1`` (as in CI).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

CHROMIUM = os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LEDGER_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE = os.environ.get("LEDGER_REQUIRE_BROWSER") == "1"
#: The site's policy: scripts, workers and fetches from its own origin only.
CSP = (
    "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
)


def missing() -> str | None:
    try:
        import selenium  # noqa: F401, PLC0415
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found (Debian: apt-get install {package})"
    return None


def need_browser() -> None:
    reason = missing()
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(f"LEDGER_REQUIRE_BROWSER=1 but the browser is missing: {reason}")
    pytest.skip(f"headless browser tests need Chromium: {reason}")


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        d.set_page_load_timeout(60)
        d.set_script_timeout(600)
        yield d
    finally:
        d.quit()


#: A bare verifier page (the ids verify-page.js drives), for tests and benchmarks of the
#: verifier alone; the built site's own verify.html is tested in test_site_browser.py.
VERIFY_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verify</title>
<script type="module" src="js/verify-page.js"></script></head>
<body><main><h1>Verify</h1>
<textarea id="vkey">{vkey}</textarea><button id="verify" disabled>Verify</button>
<progress id="progress" value="0"></progress><p id="status"></p><p id="result"></p>
<table><tbody id="tallies"></tbody></table>
<p>Shown: <span data-statement="{statement}" data-count="total">{count}</span></p>
</main></body></html>
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
    }

    csp: str | None = CSP

    def end_headers(self) -> None:
        if self.csp is not None:
            self.send_header("Content-Security-Policy", self.csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(directory: Path, csp: str | None = CSP) -> Iterator[str]:
    """Serve ``directory`` on a free loopback port, with ``csp`` as the
    Content-Security-Policy header (None: none, the pages' own policies apply)."""
    handler = functools.partial(
        type("Handler", (_Handler,), {"csp": csp}), directory=str(directory)
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
