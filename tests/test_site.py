"""ledger.mirror.site: the static site of a mirror, checked without a browser.

The tallies on the pages must be the verifier's, signatories must come and go as
endorsements and withdrawals say, everything from the log must be escaped, the
same log must give the same bytes, writing must be crash-safe, and an update must
read only the entries the mirror has just verified (the site is built from the
mirror's own verified state, never from a second replay).
(tests/test_site_browser.py opens the pages in Chromium.)
"""

from __future__ import annotations

import doctest
import html.parser
import importlib.resources
import os
import re
import shutil
import string
from pathlib import Path

import pytest
from logfactory import LogFactory, LogKey, private_key, public_bytes, sign_record

from ledger.core import tiles
from ledger.core.entry import Entry, parse_entry
from ledger.core.errors import FormatError, LedgerError, VerificationError
from ledger.core.note import ALG_COSIGNATURE_V1, make_vkey
from ledger.core.records import Endorsement, Kind, Statement, Withdrawal
from ledger.core.state import KINDS
from ledger.durable import is_temporary
from ledger.mirror.directory import STATE_DIR
from ledger.mirror.site import endorsements, pages
from ledger.mirror.site.build import Site, SiteUpdate, build_site
from ledger.mirror.site.pages import Markup, escape, render, statement_page
from ledger.mirror.sync import Mirror
from ledger.verify.source import DirectorySource, SourceError
from ledger.verify.statefile import VerifierState
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log

#: The Content-Security-Policy every page but verify.html carries, byte for byte: no scripts.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'"
)
#: verify.html's: scripts, workers and fetches from the site itself, nothing else.
CSP_VERIFIER = (
    "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)
#: The site's only scripts: the browser verifier, on verify.html and the statement pages.
VERIFIER_SCRIPT = '<script type="module" src="assets/js/verify-page.js"></script>'
STATEMENT_SCRIPT = '<script type="module" src="../assets/js/statement-page.js"></script>'

ENDORSEMENTS = f"{STATE_DIR}/{endorsements.FILE_NAME}"
ROOT = Path(__file__).resolve().parent.parent

# --- reading the pages back ------------------------------------------------------------


class _Page(html.parser.HTMLParser):
    """The parts of a page the tests look at: title, h1, links and table rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = ""
        self.hrefs: list[str] = []
        self.tables: list[list[list[tuple[str, str | None]]]] = []
        self.text = ""
        self._in: list[str] = []
        self._cell: list[str] | None = None
        self._cell_href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._in.append(tag)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
            if self._cell is not None and self._cell_href is None:
                self._cell_href = a["href"]
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._cell_href = [], None

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell).strip(), self._cell_href))
            self._cell = None
        while self._in:
            if self._in.pop() == tag:
                break

    def handle_data(self, data: str) -> None:
        if "title" in self._in:
            self.title += data
        if "h1" in self._in:
            self.h1 += data
        if self._cell is not None:
            self._cell.append(data)
        self.text += data


def _page(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text("utf-8"))
    p.close()
    return p


def _index_rows(d: Path) -> dict[str, list[tuple[str, str | None]]]:
    """Index table rows by statement id (taken from the link)."""
    rows = _page(d / "index.html").tables[0][1:]
    return {str(row[0][1]).split("/")[1].removesuffix(".html"): row for row in rows}


def _signatories(d: Path, statement: bytes) -> list[tuple[str, str | None]]:
    """(name, entry link) of every signatory listed on a statement's pages."""
    out: list[tuple[str, str | None]] = []
    page = 1
    while (d / statement_page(statement, page)).exists():
        tables = _page(d / statement_page(statement, page)).tables
        if len(tables) > 1:  # the tally table, then the signatories
            rows = tables[1][1:]
            # the name cell: the name, "key revoked" if so, and the signatory id
            out += [
                (re.sub(r"\s*[0-9a-f]{64}$", "", row[0][0]).removesuffix("key revoked").strip(),
                 row[5][1])
                for row in rows
            ]  # fmt: skip
        page += 1
    return out


def _state(f: LogFactory, d: Path) -> VerifierState:
    """The verified state of the mirror ``d``, after it took in what the factory wrote
    there (a mirror opened on files it did not publish verifies them in place)."""
    with Mirror(d, Trust.from_vkeys([f.log_key.vkey])) as m:
        assert m.state is not None
        return m.state


def _site(f: LogFactory, d: Path, vkeys: list[str] | None = None) -> SiteUpdate:
    return build_site(d, _state(f, d), [f.log_key.vkey] if vkeys is None else vkeys)


def _build(f: LogFactory, d: Path) -> Path:
    f.write(d)
    _site(f, d)
    return d


def _site_files(d: Path) -> dict[str, bytes]:
    files = [d / "index.html", d / "verify.html", d / "assets" / "site.css"]
    files += sorted((d / "statements").iterdir())
    return {str(p.relative_to(d)): p.read_bytes() for p in files}


# --- tallies and signatories ---------------------------------------------------------------


def test_tallies_are_the_verifiers(tmp_path: Path) -> None:
    f = LogFactory(seed="tallies").grow(1500)
    d = _build(f, tmp_path / "m")
    summary = verify_log(DirectorySource(d), Trust.from_vkeys([f.log_key.vkey])).replay.summary()
    rows = _index_rows(d)
    statements = summary["statements"]
    assert isinstance(statements, list) and len(statements) > 10
    assert list(rows) == [st["id"] for st in statements]  # in log order
    for st in statements:
        row = rows[st["id"]]
        assert row[0][0] == st["title"]
        assert row[1][0] == f"{st['index']:,}"
        counts = [int(cell[0].replace(",", "")) for cell in row[2:]]
        assert counts == [st["endorsements"], *(st["endorsements_by_kind"][k] for k in KINDS)]
        listed = _signatories(d, bytes.fromhex(st["id"]))
        assert len(listed) == st["endorsements"]
    assert any(st["endorsements"] for st in statements)
    # The signatories listed are exactly the factory's active endorsements.
    for st_id in f.statements:
        expected = {f"Signatory {n}" for n, s in f.active_pairs if s == st_id}
        assert {name for name, _ in _signatories(d, st_id)} == expected
    index = _page(d / "index.html")
    assert f"{f.size:,}" in index.text
    assert (d / "checkpoint").read_text() in index.text


def test_withdrawal_removes_and_rotation_keeps_a_signatory(tmp_path: Path) -> None:
    f = LogFactory(seed="history")
    a, b, c = f.register(name="Alice"), f.register(name="Bob"), f.register(name="Carol")
    st = f.statement([a])
    for m in (a, b, c):
        f.endorse(m, st)
    f.withdraw(b, st)
    f.rotate(c)  # Carol keeps her id, and her endorsement, under a new key
    d = _build(f, tmp_path / "m")
    assert [n for n, _ in _signatories(d, st)] == ["Alice", "Carol"]
    assert _index_rows(d)[st.hex()][2][0] == "2"

    f.endorse(b, st)  # Bob endorses again: listed again, at his new entry
    f.withdraw(c, st)  # Carol withdraws with her rotated key
    f.revoke(a)  # Alice's key is revoked: her endorsement stays counted (rule 11)
    _build(f, d)
    listed = _signatories(d, st)
    assert [n for n, _ in listed] == ["Alice", "Bob"]
    assert listed[1][1] == f"../{tiles.entries_path(0, f.size)}"
    page = (d / statement_page(st)).read_text()
    assert page.count("key revoked") == 1
    assert _index_rows(d)[st.hex()][2][0] == "2"


def test_entry_links_point_at_the_entry(tmp_path: Path) -> None:
    f = LogFactory(seed="links").grow(700)
    d = _build(f, tmp_path / "m")
    st = f.statements[1]
    links = [href for _, href in _signatories(d, st)]
    assert links
    statement_dir = d / "statements"
    for (_, href), index in zip(_signatories(d, st), _endorse_indexes(f, st), strict=True):
        assert href is not None
        bundle = (statement_dir / href).resolve()
        k = index // 256
        width = min(256, f.size - 256 * k)
        entry = parse_entry(tiles.decode_bundle(bundle.read_bytes(), width)[index % 256])
        assert entry.index == index
        assert bundle == (d / tiles.entries_path(k, width)).resolve()
    # Every relative link of every page names an existing file.
    for page in [d / "index.html", d / "verify.html", *statement_dir.iterdir()]:
        for href in _page(page).hrefs:
            if href.startswith(("https://", "http://", "#", "data:")):
                continue
            assert (page.parent / href.partition("#")[0]).is_file(), (page, href)


def _endorse_indexes(f: LogFactory, st: bytes) -> list[int]:
    """Indexes of the active endorsements of ``st``, in log order."""
    active: dict[bytes, int] = {}
    for i, data in enumerate(f.entries):
        body = parse_entry(data).record.body
        if isinstance(body, Endorsement) and body.statement == st:
            active[body.signatory] = i
        elif isinstance(body, Withdrawal) and body.statement == st:
            del active[body.signatory]
    return sorted(active.values())


def test_links_to_the_full_bundle_when_the_partial_one_is_gone(tmp_path: Path) -> None:
    f = LogFactory(seed="partial").grow(520)
    d = tmp_path / "m"
    f.write(d)
    f.write(d, size=300)  # checkpoint at 300; bundle 1 exists in full and as .p/44
    (d / tiles.entries_path(1, 44)).unlink(missing_ok=True)
    _site(f, d)
    hrefs = {h for p in (d / "statements").iterdir() for h in _page(p).hrefs}
    assert "../tile/entries/001" in hrefs
    assert not any(".p/" in h for h in hrefs if "/001" in h)


def test_many_signatories_are_paged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 3)
    f = LogFactory(seed="pages")
    members = [f.register() for _ in range(7)]
    st = f.statement(members[:1])
    for m in members:
        f.endorse(m, st)
    d = _build(f, tmp_path / "m")
    assert [(d / statement_page(st, p)).exists() for p in (1, 2, 3, 4)] == [True] * 3 + [False]
    assert [n for n, _ in _signatories(d, st)] == [f"Signatory {i}" for i in range(7)]
    assert "(page 2 of 3)" in _page(d / statement_page(st, 2)).h1
    for m in members[3:]:
        f.withdraw(m, st)
    _build(f, d)  # 3 signatories left: one page; the others are removed
    assert [(d / statement_page(st, p)).exists() for p in (1, 2, 3)] == [True, False, False]
    assert "page" not in _page(d / statement_page(st)).h1


# --- escaping -----------------------------------------------------------------------------


def _hostile_log() -> tuple[LogFactory, bytes]:
    f = LogFactory(origin="ledger.example.org/<b>x</b>&amp", seed="hostile")
    m = f.register(Kind.INDIVIDUAL, name="<script>alert(1)</script>")
    f.register(Kind.OTHER, name='"><img src=x onerror=alert(2)>')
    body = Statement(
        f.origin,
        f.signed_at,
        "<img src=x onerror=alert(3)> & co",
        (m.id,),
        "</div><script>alert(4)</script>\nSee https://example.org/a?b=1&c=<2>\n"
        "javascript:alert(5) \"quoted\" 'single'\n",
    )
    record = sign_record(body, [m.current])
    f.append_record(record)
    f.statements.append(record.record_id)
    for member in f.members:
        f.endorse(member, record.record_id)
    return f, record.record_id


def test_everything_from_the_log_is_escaped(tmp_path: Path) -> None:
    f, st = _hostile_log()
    d = _build(f, tmp_path / "m")
    for name, data in _site_files(d).items():
        text = data.decode()
        if name == "verify.html":
            assert text.count(VERIFIER_SCRIPT) == 1
            text = text.replace(VERIFIER_SCRIPT, "")
        elif name.endswith(".html") and name.startswith("statements/"):
            assert text.count(STATEMENT_SCRIPT) == 1
            text = text.replace(STATEMENT_SCRIPT, "")
        assert "<script" not in text, name
        assert "<img" not in text, name
        assert "<b>" not in text, name
        assert "javascript:" not in text.replace("javascript:alert(5)", ""), name
    page = (d / statement_page(st)).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;/div&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in page
    # Only the http(s) URL became a link, cut before the "<".
    assert '<a href="https://example.org/a?b=1&amp;c=" rel="nofollow noopener noreferrer">' in page
    # Read back as text, the names and title are exactly what was signed.
    parsed = _page(d / statement_page(st))
    assert parsed.h1 == "<img src=x onerror=alert(3)> & co"
    assert [n for n, _ in _signatories(d, st)] == [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(2)>',
    ]
    assert "ledger.example.org/<b>x</b>&amp" in _page(d / "index.html").h1


# --- determinism and writing ------------------------------------------------------------


def test_same_log_same_bytes(tmp_path: Path) -> None:
    f = LogFactory(seed="same").grow(600)
    one = _build(f, tmp_path / "one")
    two = _build(f, tmp_path / "two")
    assert _site_files(one) == _site_files(two)
    # Rebuilding in place changes nothing and rewrites nothing.
    before = {p: os.stat(one / p).st_mtime_ns for p in [*_site_files(one), ENDORSEMENTS]}
    assert _site(f, one).written == []
    assert {p: os.stat(one / p).st_mtime_ns for p in [*_site_files(one), ENDORSEMENTS]} == before
    # A copy of the tlog-tiles files only (no pages, no state) builds the same site.
    three = tmp_path / "three"
    shutil.copytree(one, three, ignore=shutil.ignore_patterns("*.html", "assets", STATE_DIR))
    _site(f, three)
    assert _site_files(three) == _site_files(one)
    assert (three / ENDORSEMENTS).read_bytes() == (one / ENDORSEMENTS).read_bytes()
    assert (one / "assets" / "site.css").stat().st_mode & 0o777 == 0o644
    assert (one / ENDORSEMENTS).stat().st_mode & 0o777 == 0o600  # beside the state


def test_index_is_written_last_and_stale_pages_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = LogFactory(seed="order").grow(300)
    d = tmp_path / "m"
    f.write(d)
    state = _state(f, d)
    (d / "statements").mkdir()
    stale = d / "statements" / (("ab" * 32) + ".html")
    stale.write_text("old")
    keep = d / "statements" / "README.txt"
    keep.write_text("not ours")
    crashed = d / "statements" / f".{'cd' * 32}.html.0123456789abcdef.tmp"
    crashed.write_text("left by a crash")
    assert is_temporary(crashed.name)
    events: list[str] = []
    real_replace, real_unlink, real_os_unlink = os.replace, Path.unlink, os.unlink

    def replace(src: str, dst: str | Path) -> None:
        events.append(f"write {Path(dst).relative_to(d)}")
        real_replace(src, dst)

    def unlink(self: Path, missing_ok: bool = False) -> None:
        events.append(f"unlink {self.relative_to(d)}")
        real_unlink(self, missing_ok)

    def os_unlink(path: str | Path) -> None:  # durable.remove_temporaries
        if Path(path) == crashed:
            events.append(f"unlink {Path(path).relative_to(d)}")
        real_os_unlink(path)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "unlink", os_unlink)
    monkeypatch.setattr(Path, "unlink", unlink)
    build_site(d, state, [f.log_key.vkey])
    assert events[0] == f"unlink statements/{crashed.name}"
    assert events[1] == f"write {ENDORSEMENTS}"
    assert events[2] == "write assets/site.css"
    js = [f"write {rel}" for rel, _ in pages.verifier_assets()]
    middle = events[3:-3]  # the verifier and the statement pages, written in parallel
    assert sorted(e for e in middle if e.startswith("write assets/js/")) == sorted(js)
    assert events[-1] == "write index.html"
    assert events[-2] == f"unlink statements/{stale.name}"
    assert events[-3] == "write verify.html"
    assert len([e for e in events if e.startswith("write statements/")]) == 2 * len(f.statements)
    assert len(events) == 3 + len(js) + 2 * len(f.statements) + 3
    assert keep.read_text() == "not ours"
    assert not [p for p in d.rglob("*") if is_temporary(p.name)]


def test_a_crash_leaves_whole_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = LogFactory(seed="crash").grow(300)
    d = _build(f, tmp_path / "m")
    old = _site_files(d)
    f.grow(300)
    f.write(d)
    state = _state(f, d)
    calls = 0
    real_replace = os.replace

    def failing_replace(src: str, dst: str | Path) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        build_site(d, state, [f.log_key.vkey])
    monkeypatch.setattr(os, "replace", real_replace)
    assert (d / "index.html").read_bytes() == old["index.html"]  # index: last, not reached
    assert not [p for p in d.rglob("*") if is_temporary(p.name)]
    build_site(d, state, [f.log_key.vkey])  # the next run completes it
    assert f"{f.size:,}" in _page(d / "index.html").text
    assert _site_files(d) == _site_files(_build(f, tmp_path / "fresh"))


def test_an_update_reads_only_the_new_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = LogFactory(seed="resume").grow(600)
    d = _build(f, tmp_path / "m")
    f.grow(400)
    f.write(d)
    state = _state(f, d)
    parsed: list[int] = []
    real = parse_entry

    def counting_parse(data: bytes) -> Entry:
        entry = real(data)
        parsed.append(entry.index)
        return entry

    monkeypatch.setattr(endorsements, "parse_entry", counting_parse)
    update = build_site(d, state, [f.log_key.vkey])
    assert update.entries_read == 400
    statement_indexes = {int(row[1][0].replace(",", "")) for row in _index_rows(d).values()}
    # Entries 0-599 were taken in by the first run: read again only for statement texts.
    assert {i for i in parsed if i < 600} <= statement_indexes
    assert sorted(i for i in parsed if i >= 600 and i not in statement_indexes) == sorted(
        set(range(600, 1000)) - statement_indexes
    )
    assert len([i for i in parsed if i >= 600]) == 400 + len(
        {i for i in statement_indexes if i >= 600}
    )
    monkeypatch.setattr(endorsements, "parse_entry", real)
    fresh = _build(f, tmp_path / "fresh")
    assert _site_files(d) == _site_files(fresh)
    assert (d / ENDORSEMENTS).read_bytes() == (fresh / ENDORSEMENTS).read_bytes()
    # No second replay and no second cache: the only file the site keeps is that one.
    assert not (d / ".site-cache.json").exists()
    assert sorted(p.name for p in (d / STATE_DIR).iterdir() if p.is_file()) == sorted(
        ["lock", "state.json", endorsements.FILE_NAME]
    )


def test_a_site_kept_open_reads_no_file_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = LogFactory(seed="watch").grow(300)
    src, d = tmp_path / "src", tmp_path / "m"
    trust = Trust.from_vkeys([f.log_key.vkey])
    with Mirror(d, trust) as m:
        site = Site(d, [f.log_key.vkey])
        for grow in (0, 5, 700):
            f.grow(grow)
            f.write(src)
            m.sync(DirectorySource(src))
            assert m.state is not None
            if grow:  # the endorsements are kept in memory, not loaded again
                monkeypatch.setattr(endorsements.Endorsements, "load", None)
            assert site.update(m.state).entries_read == (grow or 300)
    monkeypatch.undo()
    assert _site_files(d) == _site_files(_build(f, tmp_path / "fresh"))


def test_a_bad_endorsements_file_is_ignored(tmp_path: Path) -> None:
    f = LogFactory(seed="bad file").grow(700)
    d = _build(f, tmp_path / "m")
    good = _site_files(d)
    saved = (d / ENDORSEMENTS).read_bytes()
    other = LogFactory(seed="another log").grow(700)  # same origin, another history
    bad = [
        b"{not json",
        saved[:-1] + bytes([saved[-1] ^ 1]),  # its SHA-256 does not match
        saved.replace(b'"size":700', b'"size":999'),
        _build(other, tmp_path / "o").joinpath(ENDORSEMENTS).read_bytes(),
    ]
    for data in bad:
        (d / ENDORSEMENTS).write_bytes(data)
        assert _site(f, d).entries_read == 700  # read again from the first entry
        assert _site_files(d) == good
        assert (d / ENDORSEMENTS).read_bytes() == saved
    # Another history at a smaller size: its chain does not continue into this log.
    shorter = LogFactory(seed="another log").grow(300)
    (d / ENDORSEMENTS).write_bytes(
        _build(shorter, tmp_path / "s").joinpath(ENDORSEMENTS).read_bytes()
    )
    assert _site(f, d).entries_read == 700
    assert _site_files(d) == good


def test_empty_log(tmp_path: Path) -> None:
    f = LogFactory(seed="empty")
    d = _build(f, tmp_path / "m")
    index = _page(d / "index.html")
    assert "no statement yet" in index.text
    assert index.title and index.h1


def test_verify_page_gives_the_command_and_keys(tmp_path: Path) -> None:
    f = LogFactory(seed="verify").grow(10)
    d = tmp_path / "m"
    f.write(d)
    witness = make_vkey(
        "witness.example.org", public_bytes(private_key("witness")), ALG_COSIGNATURE_V1
    )
    _site(f, d, [witness, f.log_key.vkey])  # witness keys: left out
    page = _page(d / "verify.html")
    assert "pip install endorsement-ledger" in page.text
    assert f"ledger-verify log https://{f.origin}" in page.text
    assert f"--log-key {f.log_key.vkey}" in page.text
    assert "witness.example.org" not in page.text


# --- refusing what is not a verified log ------------------------------------------------


def test_wrong_key_or_damaged_mirror_changes_nothing(tmp_path: Path) -> None:
    f = LogFactory(seed="refuse").grow(300)
    d = _build(f, tmp_path / "m")
    state = _state(f, d)
    before = _site_files(d)
    other = LogKey.for_origin(f.origin, label="another key")
    with pytest.raises(LedgerError):
        build_site(d, state, [other.vkey])
    with pytest.raises(FormatError, match="no log key named after the origin"):
        build_site(d, state, [LogKey.for_origin("ledger.example.org/other").vkey])
    with pytest.raises(FormatError):
        build_site(d, state, [])
    # A flipped bit in the first entry of a bundle: the next entry's prev no longer
    # matches (the site does not check signatures again, but it does check the chain).
    bundle = d / tiles.entries_path(1, f.size - 256)
    data = bytearray(bundle.read_bytes())
    data[2 + int.from_bytes(data[:2], "big") - 5] ^= 1
    bundle.write_bytes(bytes(data))
    (d / ENDORSEMENTS).unlink()  # else only entries after the saved ones are read
    with pytest.raises(LedgerError):
        build_site(d, state, [f.log_key.vkey])
    assert _site_files(d) == before
    with pytest.raises(SourceError):
        build_site(tmp_path / "nowhere", state, [f.log_key.vkey])


def test_a_damaged_statement_entry_is_refused(tmp_path: Path) -> None:
    f = LogFactory(seed="damaged text").grow(300)
    d = _build(f, tmp_path / "m")
    state = _state(f, d)
    index = state.replay.statements[f.statements[0]].index
    k, offset = divmod(index, 256)
    path = d / tiles.entries_path(k, min(256, f.size - 256 * k))
    raw = tiles.decode_bundle(path.read_bytes())
    raw[offset] = raw[offset].replace(b"title ", b"title X", 1)  # another text, same length+1
    path.write_bytes(tiles.encode_bundle(raw))
    with pytest.raises(VerificationError, match="not the statement its state verified"):
        build_site(d, state, [f.log_key.vkey])


# --- templates and escaping -----------------------------------------------------------


def test_templates_and_stylesheet_are_package_data() -> None:
    files = importlib.resources.files("ledger.mirror.site")
    assert (files / "assets" / "site.css").is_file()
    assert pages.stylesheet() == (files / "assets" / "site.css").read_bytes()
    names = sorted(
        p.name.removesuffix(".html") for p in (files / "templates").iterdir() if p.is_file()
    )
    assert {"page", "index", "statement", "verify"} <= set(names)
    source = Path(pages.__file__).read_text("utf-8")
    used = set(re.findall(r'render\(\s*"([a-z-]+)"', source))
    assert used == set(names)  # every template is used, and every one used exists
    for name in names:
        assert isinstance(pages.template(name), string.Template)
    # The wheel ships them (pyproject.toml's package data).
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"ledger.mirror.site" = ["assets/*.css", "templates/*.html"]' in pyproject


def test_render_escapes_everything_but_markup() -> None:
    hostile = "<b>\"x\" & 'y'</b>"
    out = render("key", vkey=hostile)
    assert (
        out
        == '<li><code class="hash">&lt;b&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/b&gt;</code></li>'
    )
    assert isinstance(out, Markup)
    assert render("pager", items=Markup("<li>1</li>")).count("<li>1</li>") == 1
    assert escape(Markup("<i>")) == "&lt;i&gt;"  # escape() always escapes
    with pytest.raises(KeyError):
        render("key")  # a value left out is an error, never a "$vkey" on a page
    with pytest.raises(ValueError, match="names nothing"):
        pages.compile_template(string.Template("costs $5"))
    for name in ("page", "statement", "verify", "index", "table"):
        text = pages.template(name).template
        fields = {m["named"] or m["braced"] for m in pages.template(name).pattern.finditer(text)}
        filled = pages.compile_template(pages.template(name)).format_map(
            {f: f"<{f}>" for f in fields}
        )
        assert filled == pages.template(name).substitute({f: f"<{f}>" for f in fields})


def test_every_page_has_the_csp(tmp_path: Path) -> None:
    f, _ = _hostile_log()
    d = _build(f, tmp_path / "m")
    for name, data in _site_files(d).items():
        if name.endswith(".html"):
            scripted = name == "verify.html" or name.startswith("statements/")
            csp = CSP_VERIFIER if scripted else CSP
            assert f'<meta http-equiv="Content-Security-Policy" content="{csp}">' in data.decode()


def test_the_site_publishes_the_browser_verifier(tmp_path: Path) -> None:
    f, _ = _hostile_log()
    d = _build(f, tmp_path / "m")
    js = ROOT / "ledger" / "mirror" / "js"
    for path in js.rglob("*"):
        if path.is_file() and path.name != "node-verify.mjs":
            rel = path.relative_to(js)
            assert (d / "assets" / "js" / rel).read_bytes() == path.read_bytes(), rel
    assert not (d / "assets" / "js" / "node-verify.mjs").exists()


def test_doctests() -> None:
    assert doctest.testmod(pages, raise_on_error=False).attempted >= 1
    assert doctest.testmod(pages, raise_on_error=False).failed == 0


def test_statement_page_path() -> None:
    assert statement_page(bytes.fromhex("ab" * 32)) == f"statements/{'ab' * 32}.html"
    assert statement_page(bytes(32), 3).endswith("-3.html")
