"""The browser verifier (ledger/mirror/js, JavaScript written from docs/spec.md) and
``ledger-verify`` give the same verdict on one corpus of logs: good logs of sizes 0, 1,
255, 256, 257 and a few thousand (of both shapes), and every damaged log of the Python
verifier's tests. Both are run on each log; the verdict, the exit code and the named
failure (entry, error code and field) must agree, and on good logs the tallies.

Node runs the JavaScript (``ledger/mirror/js/node-verify.mjs``); its own unit tests are
``node --test tests/js/``, run by ``.ci/run``. In the browser the same modules run
under the site's pages (tests/test_site_browser.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.workloads import supporters_list
from ledger.verify.cli import main as ledger_verify
from tests.logfactory import LogFactory
from tests.test_verify import DAMAGES, SIZE, make_log

ROOT = Path(__file__).resolve().parent.parent
NODE_VERIFY = ROOT / "ledger" / "mirror" / "js" / "node-verify.mjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None and os.environ.get("LEDGER_REQUIRE_NODE") != "1", reason="needs node"
)


def _js(log: Path, vkey: str) -> dict[str, object]:
    assert NODE is not None, "node is required (LEDGER_REQUIRE_NODE=1)"
    out = subprocess.run(
        [NODE, str(NODE_VERIFY), str(log), "--log-key", vkey],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.stdout, out.stderr
    report = json.loads(out.stdout)
    assert report["exit_code"] == out.returncode
    return report


def _py(log: Path, vkey: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = ledger_verify(["log", str(log), "--log-key", vkey, "--json", "--jobs", "1"])
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code" if "exit_code" in report else "valid"] in (code, True)
    report["exit_code"] = code
    return report


def _same_verdict(py: dict[str, object], js: dict[str, object]) -> None:
    assert js["valid"] == py["valid"], (py, js)
    assert js["exit_code"] == py["exit_code"], (py, js)
    if py["valid"]:
        assert js["size"] == py["size"]
        assert js["signatures_checked"] == py["signatures_checked"]
        assert js["tiles_checked"] == py["tiles_checked"]
        assert js["tallies"] == py["tallies"]
    else:
        pe, je = py["error"], js["error"]
        assert isinstance(pe, dict) and isinstance(je, dict)
        assert (je["index"], je["code"], je["field"]) == (pe["index"], pe["code"], pe["field"]), (
            pe,
            je,
        )


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 3000])
def test_good_logs(tmp_path: Path, size: int, capsys: pytest.CaptureFixture[str]) -> None:
    f, log = make_log(tmp_path, size)
    _same_verdict(_py(log, f.log_key.vkey, capsys), _js(log, f.log_key.vkey))


def test_a_supporters_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = supporters_list(2_000)
    log = f.write(tmp_path / "log")
    _same_verdict(_py(log, f.log_key.vkey, capsys), _js(log, f.log_key.vkey))


@pytest.mark.parametrize(
    ("damage", "code", "words"), DAMAGES, ids=[d[0].__name__[4:] for d in DAMAGES]
)
def test_damaged_logs(
    tmp_path: Path, damage, code: int, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    f, log = make_log(tmp_path, SIZE)
    bad = damage(tmp_path, log, f)
    py = _py(bad, f.log_key.vkey, capsys)
    assert py["exit_code"] == code
    _same_verdict(py, _js(bad, f.log_key.vkey))


def test_a_wrong_vkey(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f, log = make_log(tmp_path, 20)
    other = LogFactory(seed="other", origin=f.origin).log_key
    other_key = LogFactory(origin=f.origin).log_key.for_origin(f.origin, label="x").vkey
    for vkey in (other.vkey, other_key):
        _same_verdict(_py(log, vkey, capsys), _js(log, vkey))


def _statement_entries(f: LogFactory, statement: bytes) -> tuple[int, list[int]]:
    from ledger.core.entry import parse_entry  # noqa: PLC0415

    first, listed = -1, []
    for i, data in enumerate(f.entries):
        rec = parse_entry(data).record
        if rec.record_id == statement:
            first = i
        elif rec.body.TYPE in ("endorse", "withdraw") and rec.body.statement == statement:  # type: ignore[union-attr]
            listed.append(i)
    return first, listed


def _js_statement(log: Path, vkey: str, sid: bytes, first: int, listed: list[int]) -> dict:  # type: ignore[type-arg]
    assert NODE is not None
    out = subprocess.run(
        [NODE, str(NODE_VERIFY), str(log), "--log-key", vkey, "--statement", sid.hex(),
         "--statement-index", str(first), "--indexes", ",".join(map(str, listed))],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_statement_verification_gives_the_statement_tally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, log = make_log(tmp_path, 2_000)
    py = _py(log, f.log_key.vkey, capsys)
    for st in py["tallies"]["statements"][:3]:  # type: ignore[index]
        sid = bytes.fromhex(st["id"])
        first, listed = _statement_entries(f, sid)
        js = _js_statement(log, f.log_key.vkey, sid, first, listed)
        assert js["valid"], js
        assert (js["total"], js["checked"]) == (st["endorsements"], 1 + len(listed))
        assert "Not checked here" in js["notChecked"]


def test_statement_verification_catches_a_foreign_entry_and_a_bad_tile(tmp_path: Path) -> None:
    f, log = make_log(tmp_path, 600)
    sid = f.statements[0]
    first, listed = _statement_entries(f, sid)
    # an entry that is not of this statement, listed as if it were
    other = next(i for i in range(f.size) if i != first and i not in listed)
    js = _js_statement(log, f.log_key.vkey, sid, first, [*listed, other])
    assert (js["valid"], js["error"]["code"], js["error"]["index"]) == (False, "wrong_entry", other)
    # a hash tile the proofs read, damaged: inclusion fails against the signed root
    tile = log / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[5] ^= 1
    tile.write_bytes(bytes(data))
    js = _js_statement(log, f.log_key.vkey, sid, first, listed)
    assert (js["valid"], js["error"]["code"]) == (False, "root_mismatch"), js


def test_a_checkpoint_with_an_extension_line_is_rejected_by_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledger.core.checkpoint import Checkpoint, sign_checkpoint  # noqa: PLC0415

    f, log = make_log(tmp_path, 10)
    cp = Checkpoint(f.origin, f.size, f.root(), ("an extension line",))
    (log / "checkpoint").write_bytes(sign_checkpoint(cp, f.log_key.signer))
    py = _py(log, f.log_key.vkey, capsys)
    assert py["exit_code"] == 1
    assert py["error"]["field"] == "checkpoint extensions"  # type: ignore[index]
    _same_verdict(py, _js(log, f.log_key.vkey))
