"""The mirror's static site in a real headless browser (Debian chromium + chromedriver).

The site is served by ``http.server`` on a free port, as any static web server
would. Every page reachable from ``index.html`` is opened in Chromium; each must
load without console errors (a blocked resource or a Content-Security-Policy
violation is one), have a ``<title>`` and one ``<h1>``, headings in order, a
``main`` landmark, tables with captions and scoped header cells, and text with
enough contrast, in light and dark mode. Every internal link must answer HTTP 200
(fragment links must name an element of the page). Screenshots go to
``tests/artifacts/`` (git-ignored) for a human to look at.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: ``apt-get install
chromium chromium-driver``) and selenium; skipped without them, unless
``LEDGER_REQUIRE_BROWSER=1`` (as in CI), which turns the skip into a failure.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from logfactory import LogFactory, sign_record

from ledger.core.records import Kind, Statement
from ledger.mirror.site.build import build_site
from ledger.mirror.sync import Mirror
from ledger.verify.source import DirectorySource
from ledger.verify.verifier import Trust
from tests import browser
from tests.browser import chromium, need_browser, serve

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # need_browser() says what is missing
    pass

ARTIFACTS = Path(__file__).parent / "artifacts"


# --- the site under test ------------------------------------------------------------------

STATEMENT_TEXT = (
    "We call on every institution that collects endorsements to publish them in\n"
    "an append-only, publicly verifiable log, so that anyone can count them.\n"
    "\n"
    "Full text: https://example.org/call-for-verifiable-endorsements.pdf\n"
    "SHA-256: 1a19868d3b6b3f57f523b3202b9ae40155dc1491b3727c608f573acc615d9a0c\n"
)


def _make_log() -> LogFactory:
    f = LogFactory(seed="browser")
    paris = f.register(Kind.STATE, name="République française")
    acme = f.register(Kind.COMPANY, name="Acme Transparency GmbH")
    f.register(Kind.INDIVIDUAL, name="<script>alert('x')</script> Mallory")
    ngo = f.register(Kind.CIVIL_SOCIETY, name="Open Example Foundation")
    body_title = "Call for Verifiable Endorsements"
    # A statement with a real text (the factory's is a placeholder).
    st_body = Statement(f.origin, f.signed_at, body_title, (paris.id, ngo.id), STATEMENT_TEXT)
    record = sign_record(st_body, [paris.current, ngo.current])
    f.append_record(record)
    f.statements.append(record.record_id)
    for m in f.members:
        f.endorse(m, record.record_id)
    f.statement(
        [acme], title="A second statement, with a title long enough that it has to wrap on a phone"
    )
    f.grow(700)  # several bundles: links to full and partial bundles
    return f


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = _make_log()
    src = f.write(tmp_path_factory.mktemp("src"))
    d = tmp_path_factory.mktemp("mirror")
    with Mirror(d, Trust.from_vkeys([f.log_key.vkey])) as m:  # as ``ledger mirror`` does
        m.sync(DirectorySource(src))
        assert m.state is not None
        build_site(d, m.state, [f.log_key.vkey])
    return d


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    with serve(site, csp=None) as url:  # as any static web server: the pages carry theirs
        yield url


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    need_browser()
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as d:
        yield d


# --- checks run in the page ----------------------------------------------------------------

# Headings in order, landmarks, tables; returns a list of problems.
_STRUCTURE_JS = """
const problems = [];
if (!document.documentElement.lang) problems.push('no lang attribute');
if (document.querySelectorAll('main').length !== 1) problems.push('not exactly one main');
if (!document.querySelector('header')) problems.push('no header landmark');
if (!document.querySelector('nav')) problems.push('no nav landmark');
const h1s = document.querySelectorAll('h1');
if (h1s.length !== 1) problems.push('h1 count ' + h1s.length);
let last = 0;
for (const h of document.querySelectorAll('h1,h2,h3,h4,h5,h6')) {
  const level = +h.tagName[1];
  if (level > last + 1) problems.push('heading skips from h' + last + ' to ' + h.tagName);
  last = level;
}
for (const t of document.querySelectorAll('table')) {
  if (!t.caption || !t.caption.textContent.trim()) problems.push('table without caption');
  for (const th of t.querySelectorAll('th'))
    if (!th.getAttribute('scope')) problems.push('th without scope');
}
const first = document.querySelector('body a');
if (!first || first.getAttribute('href') !== '#main') problems.push('no skip link first');
for (const img of document.querySelectorAll('img'))
  if (!img.hasAttribute('alt')) problems.push('img without alt');
const expected = location.pathname.endsWith('/verify.html') ? '/assets/js/verify-page.js'
  : location.pathname.includes('/statements/') ? '/assets/js/statement-page.js' : null;
const scripts = [...document.scripts].map((x) => x.src);
if (scripts.length !== (expected ? 1 : 0) || (expected && !scripts[0].endsWith(expected)))
  problems.push('page has scripts: ' + scripts.join(' '));
return problems;
"""

# WCAG 2 contrast of every piece of text against its effective background.
_CONTRAST_JS = """
function rgb(s) {
  const m = s.match(/[\\d.]+/g).map(Number);
  return m.length > 3 ? m : m.concat([1]);
}
function lum(c) {
  const f = v => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
}
function background(el) {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c[3] > 0.5) return c;
  }
  return rgb(getComputedStyle(document.documentElement).backgroundColor);
}
const bad = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  if (!node.textContent.trim()) continue;
  const el = node.parentElement;
  const cs = getComputedStyle(el);
  if (cs.visibility === 'hidden' || cs.display === 'none') continue;
  const r = el.getBoundingClientRect();
  if (r.bottom < 0 || r.width === 0) continue;  // the skip link, off screen until focused
  const a = lum(rgb(cs.color)), b = lum(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5)
    bad.push(el.tagName + ' "' + node.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
}
return bad;
"""


def _main_statement(site: Path) -> str:
    """The path of the page of the statement titled "Call for Verifiable Endorsements"."""
    pages = sorted((site / "statements").iterdir())
    page = next(p for p in pages if b">Call for Verifiable Endorsements</h1>" in p.read_bytes())
    return f"statements/{page.name}"


def _full_page_screenshot(driver: Any, path: Path) -> None:
    """Save the whole page (up to 4,000 px tall), not only the window."""
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(int(height) + 150, 600), 4000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, 900)


def _severe(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


def _crawl(driver: Any, base: str) -> dict[str, list[str]]:
    """Open every page reachable from index.html; return each page's problems."""
    todo = [base + "index.html"]
    seen: set[str] = set(todo)
    checked: dict[str, int] = {}
    problems: dict[str, list[str]] = {}
    while todo:
        url = todo.pop(0)
        driver.get(url)
        page: list[str] = []
        if not driver.title.strip():
            page.append("empty <title>")
        page += driver.execute_script(_STRUCTURE_JS)
        page += [f"console: {m}" for m in _severe(driver)]
        for a in driver.find_elements(By.CSS_SELECTOR, "a[href]"):
            href = a.get_attribute("href")
            target, _, fragment = href.partition("#")
            if not target.startswith(base):
                continue  # an external link (a URL in a statement text): not ours to check
            if target == url and fragment:
                if not driver.find_elements(By.ID, fragment):
                    page.append(f"fragment #{fragment} names no element")
                continue
            if target not in checked:
                checked[target] = _status(target)
            if checked[target] != 200:
                page.append(f"link {target} answers {checked[target]}")
            if target.endswith(".html") and target not in seen:
                seen.add(target)
                todo.append(target)
        problems[url] = page
    return problems


# --- tests --------------------------------------------------------------------------------


def test_every_page_loads_cleanly_and_every_link_works(driver: Any, server: str) -> None:
    problems = _crawl(driver, server)
    assert server + "verify.html" in problems
    statement_pages = [u for u in problems if "/statements/" in u]
    assert len(statement_pages) >= 2
    assert {u: p for u, p in problems.items() if p} == {}


def test_verify_html_verifies_the_log_in_the_browser(driver: Any, server: str) -> None:
    """The real page: pre-filled with the mirror's key, it checks the whole log in Web
    Workers under the page's own policy, and the tallies agree with the pages'."""
    driver.get(server + "verify.html")
    assert not driver.find_element(By.ID, "needs-server").is_displayed()
    driver.find_element(By.ID, "verify").click()
    driver.execute_async_script(
        "const done = arguments[0]; const t = setInterval(() => {"
        " if (document.body.dataset.verdict) { clearInterval(t); done(); } }, 50);"
    )
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-verdict") == "valid"
    assert driver.find_element(By.ID, "result").text.startswith("Valid:")
    rows = driver.find_elements(By.CSS_SELECTOR, "#tallies tr")
    assert rows and all(r.text.endswith("same") for r in rows), [r.text for r in rows]
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    driver.save_screenshot(str(ARTIFACTS / "verify-in-browser.png"))


def test_a_statement_page_verifies_its_statement(driver: Any, server: str, site: Path) -> None:
    """The statement and its listed endorsements, checked in the page; the recount is the
    page's own total, and the page says what it does not check."""
    driver.get(server + _main_statement(site))
    shown = driver.find_element(By.CSS_SELECTOR, ".facts dd").text  # "N signatories"
    driver.find_element(By.ID, "verify").click()
    driver.execute_async_script(
        "const done = arguments[0]; const t = setInterval(() => {"
        " if (document.body.dataset.verdict) { clearInterval(t); done(); } }, 50);"
    )
    body = driver.find_element(By.TAG_NAME, "body")
    result = driver.find_element(By.ID, "result").text
    assert body.get_attribute("data-verdict") == "valid", result
    assert shown.startswith(body.get_attribute("data-total") + " "), (shown, result)
    assert "Not checked here" in result
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_escaped_names_render_as_text(driver: Any, server: str, site: Path) -> None:
    driver.get(server + _main_statement(site))
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "tbody th span[dir]")]
    assert "<script>alert('x')</script> Mallory" in names
    # the page's one script is the verifier's; no name became a script
    scripts = driver.execute_script("return [...document.scripts].map((s) => s.src)")
    assert len(scripts) == 1 and scripts[0].endswith("/assets/js/statement-page.js"), scripts
    link = driver.find_element(By.PARTIAL_LINK_TEXT, "https://example.org/call-for")
    assert link.get_attribute("href") == (
        "https://example.org/call-for-verifiable-endorsements.pdf"
    )
    assert _severe(driver) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_contrast_and_screenshots(driver: Any, server: str, site: Path, scheme: str) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        suffix = "" if scheme == "light" else "-dark"
        main_statement = _main_statement(site)
        for name, path in (
            ("index", "index.html"),
            ("statement", main_statement),
            ("verify", "verify.html"),
        ):
            driver.get(server + path)
            assert driver.execute_script(_CONTRAST_JS) == [], (scheme, path)
            _full_page_screenshot(driver, ARTIFACTS / f"site-{name}{suffix}.png")
        # A phone-sized window: nothing may overflow the page sideways.
        driver.set_window_size(390, 844)
        for path in ("index.html", main_statement, "verify.html"):
            driver.get(server + path)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, (path, overflow)
        driver.get(server + main_statement)
        driver.save_screenshot(str(ARTIFACTS / f"site-statement-mobile{suffix}.png"))
    finally:
        driver.set_window_size(1280, 900)
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert (ARTIFACTS / f"site-index{suffix}.png").stat().st_size > 1000


def test_skip_link_is_the_first_tab_stop(driver: Any, server: str) -> None:
    driver.get(server + "index.html")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    active = driver.switch_to.active_element
    assert active.get_attribute("href") == server + "index.html#main"
    assert active.is_displayed()
    assert active.rect["y"] >= 0  # moved into view when focused


def test_missing_browser_is_a_clear_skip_or_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    assert "apt-get install chromium" in (browser.missing() or "")
    monkeypatch.setattr(browser, "REQUIRE", True)
    with pytest.raises(pytest.fail.Exception, match="LEDGER_REQUIRE_BROWSER=1"):
        browser.need_browser()
    monkeypatch.setattr(browser, "REQUIRE", False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        browser.need_browser()
