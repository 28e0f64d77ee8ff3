"""The browser verifier in a real Chromium, under the site's strict Content-Security-Policy
(``script-src 'self'``, workers and fetches from the same origin only).

* ``verify.html`` checks a whole good log in Web Workers and says valid, with the tallies
  next to the page's own numbers; a damaged log, a tile that does not match and a
  wrong vkey each give "invalid" naming the error code, as ledger-verify does;
* the Ed25519 acceptance rule's edge cases (the identity key, the other small-order
  encodings, S + L, non-canonical keys) give the verdicts of the shared vectors in
  Chromium too (WebCrypto there is BoringSSL, not Node's OpenSSL).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser import VERIFY_PAGE, chromium, need_browser, serve
from tests.logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "ledger" / "mirror" / "js"


EDGE = """
import * as ed from './js/ed25519.js';
const h = (s) => Uint8Array.from(s.match(/../g) || [], (x) => parseInt(x, 16));
const vectors = await (await fetch('ed25519.json')).json();
const out = {};
for (const v of vectors) {
  try { await ed.verify(h(v.key), h(v.sig), h(v.msg)); out[v.name] = 'accept'; }
  catch (e) { out[v.name] = e.message; }
}
out.__backend = await ed.backend();
document.body.dataset.result = JSON.stringify(out);
"""


def _site(tmp: Path, f: LogFactory, vkey: str) -> Path:
    d = f.write(tmp / "mirror")
    shutil.copytree(JS, d / "js", ignore=shutil.ignore_patterns("node-verify.mjs"))
    statement = f.statements[0].hex() if f.statements else ""
    count = 0
    (d / "verify.html").write_text(VERIFY_PAGE.format(vkey=vkey, statement=statement, count=count))
    return d


def _verify(driver: Any, url: str) -> dict[str, str]:
    driver.get(url + "verify.html")
    driver.execute_script("document.getElementById('verify').click()")
    driver.execute_async_script(
        "const done = arguments[0];"
        "const t = setInterval(() => { if (document.body.dataset.verdict) {"
        " clearInterval(t); done(); } }, 50);"
    )
    body = driver.find_element("tag name", "body")
    errors = [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]
    ]
    assert not errors, errors
    return {
        "verdict": body.get_attribute("data-verdict"),
        "code": body.get_attribute("data-error-code") or "",
        "result": driver.find_element("id", "result").text,
    }


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Any:
    need_browser()
    with chromium(tmp_path_factory.mktemp("profile")) as d:
        yield d


def test_a_good_log_is_valid_with_its_tallies(tmp_path: Path, driver: Any) -> None:
    f = LogFactory(seed="js browser")
    f.grow(700)
    d = _site(tmp_path, f, f.log_key.vkey)
    with serve(d) as url:
        got = _verify(driver, url)
        assert got["verdict"] == "valid", got
        assert "Valid: 700 entries" in got["result"]
        rows = driver.find_elements("css selector", "#tallies tr")
        assert len(rows) == len(f.statements)
        assert "DIFFERENT" in rows[0].text  # the page showed 0 on purpose


def test_a_damaged_log_and_a_wrong_key_are_invalid(tmp_path: Path, driver: Any) -> None:
    f = LogFactory(seed="js browser damaged")
    f.grow(300)
    d = _site(tmp_path, f, f.log_key.vkey)
    bundle = d / "tile/entries/000"
    data = bytearray(bundle.read_bytes())
    data[200] ^= 1  # a byte of an early entry
    bundle.write_bytes(bytes(data))
    with serve(d) as url:
        got = _verify(driver, url)
        assert got["verdict"] == "invalid", got
        assert got["code"] in ("bad_signature", "malformed", "broken_chain"), got
    (d / "tile/entries/000").write_bytes(bytes(data[:100]))
    tile = d / "tile/0/000"
    t = bytearray(tile.read_bytes())
    t[0] ^= 1
    f.write(tmp_path / "clean")
    shutil.copy(tmp_path / "clean/tile/entries/000", d / "tile/entries/000")
    tile.write_bytes(bytes(t))
    with serve(d) as url:
        got = _verify(driver, url)
        assert (got["verdict"], got["code"]) == ("invalid", "tile_mismatch"), got
    other = LogFactory(seed="js browser other").log_key.for_origin(f.origin, label="other")
    (d / "verify.html").write_text(VERIFY_PAGE.format(vkey=other.vkey, statement="", count=0))
    with serve(d) as url:
        got = _verify(driver, url)
        assert (got["verdict"], got["code"]) == ("invalid", "unknown_key"), got


def test_the_acceptance_rule_in_chromium(tmp_path: Path, driver: Any) -> None:
    vectors = json.loads((ROOT / "tests/vectors/ed25519/vectors.json").read_text())
    d = tmp_path / "edge"
    shutil.copytree(JS, d / "js")
    (d / "ed25519.json").write_text(json.dumps(vectors))
    (d / "edge.js").write_text(EDGE)
    (d / "index.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>e</title>'
        '<script type="module" src="edge.js"></script></head><body></body></html>'
    )
    with serve(d) as url:
        driver.get(url + "index.html")
        driver.execute_async_script(
            "const done = arguments[0];"
            "const t = setInterval(() => { if (document.body.dataset.result) {"
            " clearInterval(t); done(); } }, 50);"
        )
        out = json.loads(driver.find_element("tag name", "body").get_attribute("data-result"))
    assert out.pop("__backend") == "webcrypto"
    for v in vectors:
        if v["expected"] == "accept":
            assert out[v["name"]] == "accept", v["name"]
        else:
            assert out[v["name"]] != "accept" and v["reason"] in out[v["name"]], (v["name"], out)
