"""A static, human-readable site inside a verified mirror (issue 6, item 3).

A mirror directory holds a log in the C2SP tlog-tiles layout (``checkpoint``,
``tile/<L>/<N>``, ``tile/entries/<N>[.p/<W>]``). :func:`build_site` adds, next to
those files, pages that anyone can read with a browser and that any static web
server (or none: ``file://``) can serve::

    index.html                   the log: origin, size, checkpoint, statements and tallies
    statements/<id>.html         one statement: title, text, authors, signatories
    statements/<id>-<p>.html     further pages of signatories (PAGE_SIZE a page)
    verify.html                  how to check all of it yourself with ledger-verify
    assets/site.css              the one stylesheet (no scripts, fonts or images)
    .site-cache.json             the replayed state, so the next run reads only new entries

``<id>`` is the statement id of docs/spec.md ("Identities and keys"): the hex
record id of the statement record.

The pages are a projection of the log replayed with the verifier's own rules
(:class:`ledger.core.state.MemoryState`), so each tally is exactly the one
``ledger-verify`` computes (docs/spec.md, "Tallies"). The log must already be
verified (the mirror calls this after each verified sync); the checkpoint's
signature and the chain of entries are checked again on the way, cheaply, but
entry signatures and the tree are not.

Everything taken from the log (titles, texts, names, domains, even the origin) is
attacker-controlled and is HTML-escaped; pages carry a Content-Security-Policy
that forbids scripts. Pages depend only on the log and the arguments, never on
the clock or the file system order, so the same log gives a byte-identical site
(a mirror of a mirror is byte-identical to the first).

Writing is crash-safe: each file is written to a temporary file in its
directory, flushed, fsynced and renamed over the old one (unchanged files are
not rewritten). The stylesheet and statement pages come first, then
``verify.html``; pages of statements that no longer exist are removed only then,
and ``index.html`` is written last. A crash at any point leaves every page either
old or new, each complete.

Memory grows with the number of signatories, statements and active
endorsements, not with the log: bundles are read one at a time, and a
statement's text is read back from its bundle when its page is written.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import shlex
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ledger.core import tiles
from ledger.core.checkpoint import open_checkpoint
from ledger.core.effects import Endorsed, Registered, StatementAdded, Withdrawn
from ledger.core.encoding import b64decode_strict, b64encode
from ledger.core.entry import Entry, parse_entry
from ledger.core.errors import FormatError, LedgerError
from ledger.core.merkle import leaf_hash
from ledger.core.note import Ed25519Verifier, Verifier, parse_vkey
from ledger.core.records import Statement
from ledger.core.state import KINDS, MemoryState
from ledger.verify.source import DirectorySource, NotFoundError

__all__ = ["KIND_LABELS", "PAGE_SIZE", "build_site", "statement_page"]

#: Signatories listed on one statement page; more go to ``<id>-2.html`` and so on.
PAGE_SIZE = 1000
#: Human names of the signatory kinds, in the order of the tallies.
KIND_LABELS = {
    "state": "State",
    "company": "Company",
    "civil-society": "Civil society",
    "individual": "Individual",
    "other": "Other",
}
_WIDTH = tiles.TILE_WIDTH
_TMP_PREFIX = ".site-tmp-"
#: The replayed state kept between runs (public data only; safe to delete).
CACHE_NAME = ".site-cache.json"
_CACHE_FORMAT = "endorsement-ledger/site-cache/v1"
_STATEMENTS = "statements"
_PAGE_NAME = re.compile(r"[0-9a-f]{64}(-[1-9][0-9]*)?\.html")
_URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]")
# No scripts, no external anything, no inline styles; ``data:`` only for the empty
# favicon (without one browsers fetch /favicon.ico, a 404 on most mirrors).
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'"
)


def statement_page(statement_id: bytes, page: int = 1) -> str:
    """The path, relative to the mirror, of page ``page`` of a statement.

    >>> statement_page(bytes(32))[:24], statement_page(bytes(32), 2)[-7:]
    ('statements/0000000000000', '-2.html')
    """
    suffix = "" if page == 1 else f"-{page}"
    return f"{_STATEMENTS}/{statement_id.hex()}{suffix}.html"


# --- reading the mirror -----------------------------------------------------------------


@dataclass(slots=True)
class _StatementInfo:
    """What the pages show of a statement, besides its text (read back later)."""

    id: bytes
    index: int
    time_ms: int
    endorsers: dict[int, int] = field(default_factory=dict)  # signatory number -> entry index


@dataclass(slots=True)
class _Log:
    origin: str
    size: int
    root: bytes
    checkpoint: bytes
    projection: _Projection
    signatory_ids: list[bytes]  # signatory number -> id, in registration order
    statements: list[_StatementInfo]  # in log order
    paths: list[str]  # bundle k's path, for links to entries

    @property
    def replay(self) -> MemoryState:
        return self.projection.replay


def _bundle(source: DirectorySource, k: int, size: int) -> tuple[str, list[bytes]]:
    """The path and entries of bundle ``k`` of a tree of ``size`` entries."""
    width = min(_WIDTH, size - k * _WIDTH)
    path = tiles.entries_path(k, width)
    try:
        return path, tiles.decode_bundle(source.fetch(path), expected_count=width)
    except NotFoundError:
        if width == _WIDTH:
            raise
    # A partial bundle may be gone once the full one exists (tlog-tiles).
    path = tiles.entries_path(k)
    return path, tiles.decode_bundle(source.fetch(path), expected_count=_WIDTH)[:width]


def _log_keys(vkeys: Iterable[str], origin: str) -> list[tuple[str, Ed25519Verifier]]:
    """The Ed25519 log keys among ``vkeys`` named after ``origin`` (not witness keys)."""
    keys: list[tuple[str, Ed25519Verifier]] = []
    for vkey in vkeys:
        v = parse_vkey(vkey)
        if isinstance(v, Ed25519Verifier) and v.name == origin:
            keys.append((vkey, v))
    if not keys:
        raise FormatError(
            "no log key named after the origin among the keys given",
            field="vkeys",
            expected=origin,
        )
    return keys


@dataclass(slots=True)
class _Projection:
    """The replayed state plus what the pages need beyond the tallies; resumable."""

    replay: MemoryState
    numbers: dict[bytes, int] = field(default_factory=dict)  # signatory id -> number
    statements: dict[bytes, _StatementInfo] = field(default_factory=dict)

    def add(self, entry: Entry, data: bytes) -> None:
        """Replay one entry (its raw bytes ``data``) with the log's rules."""
        effect = self.replay.append(entry, leaf_hash(data))
        if isinstance(effect, Registered):
            self.numbers[effect.signatory] = len(self.numbers)
        elif isinstance(effect, StatementAdded):
            self.statements[effect.statement] = _StatementInfo(
                effect.statement, effect.index, entry.time_ms
            )
        elif isinstance(effect, Endorsed):
            info = self.statements[effect.statement]
            info.endorsers[self.numbers[effect.signatory]] = effect.index
        elif isinstance(effect, Withdrawn):
            del self.statements[effect.statement].endorsers[self.numbers[effect.signatory]]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": _CACHE_FORMAT,
                "replay": self.replay.to_dict(),
                "signatories": b64encode(b"".join(self.numbers)),
                "statements": [
                    [st.id.hex(), st.index, st.time_ms, list(st.endorsers.items())]
                    for st in self.statements.values()
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> _Projection:
        """Restore :meth:`to_json`; raise FormatError (or ValueError) if it does not fit."""
        data = json.loads(text)
        if data.get("format") != _CACHE_FORMAT:
            raise FormatError("not a site cache", field="format")
        p = cls(MemoryState.from_dict(data["replay"]))
        ids = b64decode_strict(data["signatories"], field="signatories")
        p.numbers = {ids[i : i + 32]: i // 32 for i in range(0, len(ids), 32)}
        for sid, index, time_ms, endorsers in data["statements"]:
            ident = bytes.fromhex(sid)
            p.statements[ident] = _StatementInfo(
                ident, int(index), int(time_ms), {int(n): int(i) for n, i in endorsers}
            )
        if len(p.numbers) != len(p.replay.signatories) or set(p.statements) != set(
            p.replay.statements
        ):
            raise FormatError("site cache does not match its replayed state", field="cache")
        return p


def _resume(mirror_dir: Path, source: DirectorySource, origin: str, size: int) -> _Projection:
    """The projection saved by the last run, if it is a prefix of this log; else a new one.

    The saved state names the leaf hash of its last entry; the entry at that index
    in the mirror must still have it (the chain then links every later entry to it).
    """
    fresh = _Projection(MemoryState(origin, max_age_s=None))  # rule 3 only warns
    try:
        p = _Projection.from_json((mirror_dir / CACHE_NAME).read_text("utf-8"))
    except FileNotFoundError:
        return fresh
    except (OSError, ValueError, KeyError, TypeError, LedgerError):
        return fresh  # damaged or from another version: replay everything
    done = p.replay.size
    if p.replay.origin != origin or done > size:
        return fresh
    if done:
        _, raw = _bundle(source, (done - 1) // _WIDTH, size)
        if leaf_hash(raw[(done - 1) % _WIDTH]) != p.replay.last_leaf_hash:
            return fresh
    p.replay.max_age_s = None
    return p


def _read_log(mirror_dir: Path, origin: str, verifiers: Sequence[Verifier]) -> _Log:
    """Replay the mirror's log (what is new since the saved projection, if any)."""
    source = DirectorySource(mirror_dir)
    signed = source.fetch("checkpoint")
    cp, _ = open_checkpoint(signed, verifiers, origin)
    p = _resume(mirror_dir, source, origin, cp.size)
    for k in range(p.replay.size // _WIDTH, -(-cp.size // _WIDTH)):
        _, raw = _bundle(source, k, cp.size)
        for data in raw[p.replay.size - k * _WIDTH :]:
            p.add(parse_entry(data), data)
    return _Log(
        origin,
        cp.size,
        cp.root,
        signed,
        p,
        list(p.numbers),
        sorted(p.statements.values(), key=lambda s: s.index),
        _link_paths(mirror_dir, cp.size),
    )


def _link_paths(mirror_dir: Path, size: int) -> list[str]:
    """The path of each entry bundle, for links: the partial bundle if it is there."""
    paths = [tiles.entries_path(k) for k in range(size // _WIDTH)]
    if size % _WIDTH:
        partial = tiles.entries_path(size // _WIDTH, size % _WIDTH)
        full = tiles.entries_path(size // _WIDTH)
        use_full = not (mirror_dir / partial).is_file() and (mirror_dir / full).is_file()
        paths.append(full if use_full else partial)
    return paths


class _EntryReader:
    """Read single entries back from the mirror, keeping the last bundle."""

    def __init__(self, mirror_dir: Path, size: int) -> None:
        self._source = DirectorySource(mirror_dir)
        self._size = size
        self._k = -1
        self._raw: list[bytes] = []

    def entry(self, index: int) -> Entry:
        k = index // _WIDTH
        if k != self._k:
            _, self._raw = _bundle(self._source, k, self._size)
            self._k = k
        return parse_entry(self._raw[index % _WIDTH])


# --- writing files ----------------------------------------------------------------------


class _Writer:
    """Crash-safe file writes: temporary file, flush, fsync, rename; fsync the directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: set[Path] = set()
        self._dirty_dirs: set[Path] = set()

    def clean_temporaries(self, *dirs: Path) -> None:
        """Remove temporary files a crashed earlier run left behind."""
        for d in dirs:
            if d.is_dir():
                for p in d.iterdir():
                    if p.name.startswith(_TMP_PREFIX) and p.is_file():
                        p.unlink()

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        data = text.encode("utf-8")
        self.written.add(path)
        try:
            if path.read_bytes() == data:
                return  # unchanged: no need to write (and fsync) it again
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; pages are public
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty_dirs.add(path.parent)

    def remove_stale_pages(self) -> None:
        """Remove statement pages this run did not write (statements that no longer exist)."""
        d = self.root / _STATEMENTS
        if not d.is_dir():
            return
        for p in sorted(d.iterdir()):
            if _PAGE_NAME.fullmatch(p.name) and p not in self.written:
                p.unlink()
                self._dirty_dirs.add(d)

    def sync_dirs(self) -> None:
        """Make the renames durable (POSIX: fsync the directories)."""
        for d in sorted(self._dirty_dirs):
            try:
                fd = os.open(d, os.O_RDONLY)
            except OSError:  # pragma: no cover - e.g. platforms without directory fds
                continue
            try:
                os.fsync(fd)
            except OSError:  # pragma: no cover
                pass
            finally:
                os.close(fd)
        self._dirty_dirs.clear()


# --- HTML -----------------------------------------------------------------------------


def _e(s: object) -> str:
    """HTML-escape anything (quotes too, so it is safe in attributes)."""
    return html.escape(str(s), quote=True)


def _time(time_ms: int) -> str:
    """A ``<time>`` element for Unix milliseconds, in UTC (deterministic: no local zone)."""
    try:
        t = datetime.datetime.fromtimestamp(time_ms / 1000, datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return f"{time_ms} ms after 1970-01-01 UTC"
    return (
        f'<time datetime="{t.strftime("%Y-%m-%dT%H:%M:%SZ")}">'
        f"{t.strftime('%Y-%m-%d %H:%M')} UTC</time>"
    )


def _linkify(text: str) -> str:
    """Escape ``text``, turning http(s) URLs into links."""
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(text):
        out.append(_e(text[pos : m.start()]))
        url = _e(m.group(0))
        out.append(f'<a href="{url}" rel="nofollow noopener noreferrer">{url}</a>')
        pos = m.end()
    out.append(_e(text[pos:]))
    return "".join(out)


def _page(*, log: _Log, title: str, body: str, root: str, current: str, description: str) -> str:
    """A whole HTML document. ``root`` is the relative path to the mirror's top."""
    nav = []
    for href, label in (("index.html", "Statements"), ("verify.html", "Verify it yourself")):
        aria = ' aria-current="page"' if href == current else ""
        nav.append(f'<li><a href="{root}{href}"{aria}>{label}</a></li>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light dark">
<meta name="description" content="{_e(description)}">
<title>{_e(title)} · {_e(log.origin)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{root}assets/site.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site">
<div class="wrap">
<p class="brand"><a href="{root}index.html">Endorsement Ledger</a>
<span class="origin" dir="ltr">{_e(log.origin)}</span></p>
<nav aria-label="Site"><ul>{"".join(nav)}</ul></nav>
</div>
</header>
<main id="main" tabindex="-1">
<div class="wrap">
{body}
</div>
</main>
<footer class="site">
<div class="wrap">
<p>A static copy of the log <span dir="ltr">{_e(log.origin)}</span>, generated from its
verified checkpoint of {log.size:,} entries
(root <code class="hash">{_e(b64encode(log.root))}</code>).
Do not take this page's word for it: <a href="{root}verify.html">verify it yourself</a>.</p>
</div>
</footer>
</body>
</html>
"""


def _entry_link(log: _Log, index: int, root: str) -> str:
    """A link to the bundle holding entry ``index``, saying where in it the entry is."""
    path = log.paths[index // _WIDTH]
    return (
        f'<a href="{root}{_e(path)}" title="entry {index}: entry {index % _WIDTH} '
        f'of the entry bundle {_e(path)}">{index:,}</a>'
    )


def _tally_cells(tallies: dict[str, int]) -> str:
    return "".join(f'<td class="num">{tallies[k]:,}</td>' for k in KINDS)


def _kind_headers() -> str:
    return "".join(f'<th scope="col" class="num">{KIND_LABELS[k]}</th>' for k in KINDS)


def _table(caption_id: str, caption: str, head: str, rows: Iterable[str]) -> str:
    return (
        f'<div class="table-wrap" role="region" aria-labelledby="{caption_id}" tabindex="0">'
        f'<table><caption id="{caption_id}">{caption}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table></div>"
    )


def _signatory_name(log: _Log, sid: bytes) -> str:
    s = log.replay.signatories.get(sid)
    return "(unknown signatory)" if s is None else s.name


def _index_page(log: _Log) -> str:
    summary = log.replay.summary()
    by_kind = log.replay.signatories_by_kind()
    stmts = summary["statements"]
    assert isinstance(stmts, list)
    endorsements = sum(st["endorsements"] for st in stmts)
    rows = []
    for st in stmts:
        sid = bytes.fromhex(st["id"])
        rows.append(
            f'<tr><th scope="row"><a href="{statement_page(sid)}" dir="auto">{_e(st["title"])}'
            f'</a></th><td class="num">{st["index"]:,}</td>'
            f'<td class="num total">{st["endorsements"]:,}</td>'
            f"{_tally_cells(st['endorsements_by_kind'])}</tr>"
        )
    if rows:
        table = _table(
            "statements-caption",
            "Statements, with the number of signatories that endorse each, by kind",
            '<th scope="col">Statement</th><th scope="col" class="num">Entry</th>'
            f'<th scope="col" class="num">Total</th>{_kind_headers()}',
            rows,
        )
    else:
        table = "<p>The log holds no statement yet.</p>"
    kinds = "".join(
        f"<li><span>{KIND_LABELS[k]}</span> <strong>{by_kind[k]:,}</strong></li>" for k in KINDS
    )
    body = f"""<h1>Statements in <span dir="ltr">{_e(log.origin)}</span></h1>
<p class="lead">Every statement in this public, append-only log, and how many
signatories endorse it now. Each count is recomputed from the signed entries; withdrawn
endorsements are not counted.</p>
<dl class="facts">
<div><dt>Entries</dt><dd>{log.size:,}</dd></div>
<div><dt>Statements</dt><dd>{len(stmts):,}</dd></div>
<div><dt>Signatories</dt><dd>{summary["signatories"]:,}</dd></div>
<div><dt>Active endorsements</dt><dd>{endorsements:,}</dd></div>
</dl>
<section aria-labelledby="statements">
<h2 id="statements">Statements</h2>
{table}
</section>
<section aria-labelledby="signatories">
<h2 id="signatories">Registered signatories by kind</h2>
<ul class="kinds">{kinds}</ul>
</section>
<section aria-labelledby="checkpoint">
<h2 id="checkpoint">Checkpoint</h2>
<p>The log's signed tree head that this copy was verified against. It commits to all
{log.size:,} entries; its signature is by the log's key.</p>
<pre class="checkpoint" tabindex="0">{_e(log.checkpoint.decode("utf-8", "replace"))}</pre>
</section>"""
    return _page(
        log=log,
        title="Statements",
        body=body,
        root="",
        current="index.html",
        description=f"Statements and endorsement tallies of the log {log.origin}",
    )


def _statement_pages(
    log: _Log, info: _StatementInfo, record: Statement
) -> Iterator[tuple[str, str]]:
    """The pages of one statement: (relative path, HTML)."""
    st = log.replay.statements[info.id]
    tallies = {k: st.tallies.get(k, 0) for k in KINDS}
    endorsers = sorted(info.endorsers.items(), key=lambda kv: kv[1])
    pages = max(1, -(-len(endorsers) // PAGE_SIZE))
    root = "../"
    authors = []
    for a in record.authors:
        s = log.replay.signatories.get(a)
        kind = f' <span class="kind">{KIND_LABELS.get(s.kind, s.kind)}</span>' if s else ""
        authors.append(f'<li><span dir="auto">{_e(_signatory_name(log, a))}</span>{kind}</li>')
    tally_table = _table(
        "tally-caption",
        "Active endorsements by signatory kind",
        f'<th scope="col" class="num">Total</th>{_kind_headers()}',
        [f'<tr><td class="num total">{st.total:,}</td>{_tally_cells(tallies)}</tr>'],
    )
    for page in range(1, pages + 1):
        chunk = endorsers[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        rows = []
        for number, index in chunk:
            sid = log.signatory_ids[number]
            s = log.replay.signatories[sid]
            status = "" if s.active else ' <span class="badge">key revoked</span>'
            rows.append(
                f'<tr><th scope="row"><span dir="auto">{_e(s.name)}</span>{status}</th>'
                f"<td>{KIND_LABELS.get(s.kind, _e(s.kind))}</td>"
                f"<td>{_e(s.country or '')}</td>"
                f'<td class="domain">{_e(s.domain or "")}</td>'
                f'<td class="num">{_entry_link(log, index, root)}</td></tr>'
            )
        first = (page - 1) * PAGE_SIZE
        if rows:
            shown = (
                f"signatories {first + 1:,} to {first + len(rows):,} of {len(endorsers):,}"
                if pages > 1
                else f"{len(endorsers):,} signatories"
            )
            signatories = _table(
                "signatories-caption",
                f"Signatories that endorse this statement ({shown}), in the order they endorsed it",
                '<th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Country</th>'
                '<th scope="col">Domain</th><th scope="col" class="num">Entry</th>',
                rows,
            )
        else:
            signatories = "<p>No signatory endorses this statement at present.</p>"
        pager = ""
        if pages > 1:
            items = []
            for p in range(1, pages + 1):
                href = statement_page(info.id, p).removeprefix(f"{_STATEMENTS}/")
                if p == page:
                    items.append(f'<li><a href="{href}" aria-current="page">{p}</a></li>')
                else:
                    items.append(f'<li><a href="{href}">{p}</a></li>')
            pager = (
                '<nav class="pager" aria-label="Pages of signatories">'
                f"<ul>{''.join(items)}</ul></nav>"
            )
        page_note = f" (page {page} of {pages})" if pages > 1 else ""
        body = f"""<p class="crumb"><a href="{root}index.html">All statements</a></p>
<h1 dir="auto">{_e(record.title)}{page_note}</h1>
<dl class="facts">
<div><dt>Endorsed by</dt><dd>{st.total:,} signatories</dd></div>
<div><dt>Logged</dt><dd>{_time(info.time_ms)}</dd></div>
<div><dt>Entry</dt><dd>{_entry_link(log, info.index, root)}</dd></div>
<div class="wide"><dt>Statement id</dt><dd><code class="hash">{info.id.hex()}</code></dd></div>
</dl>
<section aria-labelledby="authors">
<h2 id="authors">Authors</h2>
<ul class="authors">{"".join(authors)}</ul>
</section>
<section aria-labelledby="text">
<h2 id="text">Text</h2>
<div class="text" dir="auto">{_linkify(record.text)}</div>
</section>
<section aria-labelledby="tally">
<h2 id="tally">Tally</h2>
{tally_table}
</section>
<section aria-labelledby="signatories">
<h2 id="signatories">Signatories</h2>
{pager}
{signatories}
{pager}
</section>"""
        yield (
            statement_page(info.id, page),
            _page(
                log=log,
                title=record.title + page_note,
                body=body,
                root=root,
                current="",
                description=f"{record.title}: text and signatories",
            ),
        )


def _verify_page(log: _Log, vkeys: list[str]) -> str:
    keys = " ".join(f"--log-key {shlex.quote(v)}" for v in vkeys)
    key_items = "".join(f'<li><code class="hash">{_e(v)}</code></li>' for v in vkeys)
    body = f"""<h1>Verify it yourself</h1>
<p class="lead">These pages are a convenience, not a proof. The log itself is: every entry
is signed by its signatory, and the log signs a checkpoint that commits to all of them.
With the log's public key you can check every signature and every rule, and recount
every tally, on your own computer.</p>
<section aria-labelledby="install">
<h2 id="install">1. Install the verifier</h2>
<p>It needs Python 3.11 or later and nothing else but the <code>cryptography</code>
package.</p>
<pre tabindex="0"><code>pip install endorsement-ledger</code></pre>
</section>
<section aria-labelledby="run">
<h2 id="run">2. Check the whole log</h2>
<p>Against the log itself:</p>
<pre tabindex="0"><code>ledger-verify log {_e(shlex.quote("https://" + log.origin))} \\
    {_e(keys)}</code></pre>
<p>or against this copy, giving the address of the directory that holds this page
(any copy will do: the verifier trusts none of them):</p>
<pre tabindex="0"><code>ledger-verify log https://<var>this-mirror.example</var>/ \\
    {_e(keys)}</code></pre>
<p>It fetches the checkpoint and every entry, checks them all, and prints the tallies.
They must match the ones shown here, as of the checkpoint of {log.size:,} entries.
Add <code>--state FILE</code> to check only new entries next time, and
<code>--json</code> for a machine-readable report.</p>
</section>
<section aria-labelledby="keys">
<h2 id="keys">3. Use a key you trust</h2>
<p>This copy was verified with the log key below. Do not take it from this page
alone: get the log's key from its operator through another channel (their own
publication, a colleague, a printed report) and check that it is the same.</p>
<ul class="keys">{key_items}</ul>
</section>"""
    return _page(
        log=log,
        title="Verify it yourself",
        body=body,
        root="",
        current="verify.html",
        description=f"How to verify the log {log.origin} yourself",
    )


# --- the stylesheet ---------------------------------------------------------------------

CSS = """\
/* Endorsement Ledger mirror: one small stylesheet, system fonts, light and dark. */
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1b1b1f; --muted: #4d4d57; --line: #d5d5dc; --soft: #f3f3f6;
  --link: #0b4fb3; --visited: #5b2aa8; --accent: #0b4fb3; --focus: #c25400;
  --badge-bg: #fde8e6; --badge-fg: #8a1c12;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #141418; --fg: #ececf1; --muted: #b4b4c0; --line: #3a3a45; --soft: #1f1f26;
    --link: #8cb8ff; --visited: #c6a8ff; --accent: #8cb8ff; --focus: #ffb066;
    --badge-bg: #4a1d19; --badge-fg: #ffd1cb;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 1rem/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans",
    Arial, sans-serif;
}
.wrap { max-width: 64rem; margin: 0 auto; padding: 0 1.25rem; }
a { color: var(--link); text-underline-offset: 0.15em; }
a:visited { color: var(--visited); }
a:focus-visible, [tabindex]:focus-visible {
  outline: 3px solid var(--focus); outline-offset: 2px; border-radius: 2px;
}
main:focus { outline: none; }
.skip {
  position: absolute; left: 1rem; top: -3rem; z-index: 10; padding: 0.5rem 1rem;
  background: var(--fg); color: var(--bg); border-radius: 0 0 0.4rem 0.4rem;
}
.skip:focus { top: 0; }
header.site { border-bottom: 1px solid var(--line); background: var(--soft); }
header.site .wrap {
  display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between;
  gap: 0.25rem 1.5rem; padding-top: 0.75rem; padding-bottom: 0.75rem;
}
.brand { margin: 0; font-weight: 650; }
.brand a { color: var(--fg); text-decoration: none; }
.brand .origin {
  margin-left: 0.5rem;
  color: var(--muted);
  font-weight: 400;
  display: inline-block;
  overflow-wrap: anywhere;
}
header.site ul { display: flex; gap: 1.25rem; margin: 0; padding: 0; list-style: none; }
header.site nav a { text-decoration: none; }
header.site nav a:hover, header.site nav a[aria-current="page"] { text-decoration: underline; }
main { padding: 1.5rem 0 3rem; }
h1, h2 { line-height: 1.25; text-wrap: balance; }
h1 {
  font-size: clamp(1.6rem, 1.2rem + 2vw, 2.3rem);
  margin: 0.5rem 0 1rem;
  overflow-wrap: anywhere;
}
h2 {
  font-size: 1.3rem;
  margin: 2.5rem 0 0.75rem;
  padding-bottom: 0.3rem;
  border-bottom: 1px solid var(--line);
}
p, ul, .text { max-width: 70ch; }
.lead { font-size: 1.1rem; color: var(--muted); }
.crumb { margin: 0; font-size: 0.95rem; }
code, pre, .hash {
  font-family: ui-monospace, "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 0.9em;
}
.hash { overflow-wrap: anywhere; }
pre {
  max-width: 100%; overflow-x: auto; padding: 0.75rem 1rem; background: var(--soft);
  border: 1px solid var(--line); border-radius: 0.4rem; line-height: 1.45;
}
pre.checkpoint { white-space: pre-wrap; overflow-wrap: anywhere; }
.facts {
  display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: 0.75rem;
  margin: 1.25rem 0; padding: 0;
}
.facts div {
  padding: 0.6rem 0.9rem;
  background: var(--soft);
  border: 1px solid var(--line);
  border-radius: 0.4rem;
}
.facts .wide { grid-column: 1 / -1; }
.facts dt {
  font-size: 0.8rem;
  text-transform: uppercase;
  letter-spacing: 0.04em;
  color: var(--muted);
}
.facts dd { margin: 0.1rem 0 0; font-size: 1.1rem; font-weight: 600; overflow-wrap: anywhere; }
.facts dd .hash { font-weight: 400; font-size: 0.9rem; }
.text {
  white-space: pre-wrap; overflow-wrap: anywhere; padding: 1rem 1.25rem; font-size: 1.05rem;
  border-left: 4px solid var(--accent); background: var(--soft); border-radius: 0 0.4rem 0.4rem 0;
}
.table-wrap { max-width: 100%; overflow-x: auto; margin: 0.5rem 0 1rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
caption {
  caption-side: top;
  text-align: left;
  padding: 0 0 0.5rem;
  color: var(--muted);
  font-size: 0.95rem;
}
th, td {
  padding: 0.45rem 0.6rem;
  border-bottom: 1px solid var(--line);
  text-align: left;
  vertical-align: top;
}
thead th {
  font-size: 0.85rem;
  color: var(--muted);
  font-weight: 600;
  border-bottom: 2px solid var(--line);
  white-space: nowrap;
}
tbody th { font-weight: 500; overflow-wrap: anywhere; min-width: 12rem; }
tbody tr:hover { background: var(--soft); }
.num { text-align: right; white-space: nowrap; }
.total { font-weight: 700; }
td.domain { overflow-wrap: anywhere; }
.kinds {
  display: flex;
  flex-wrap: wrap;
  gap: 0.5rem;
  padding: 0;
  list-style: none;
  max-width: none;
}
.kinds li { padding: 0.3rem 0.75rem; border: 1px solid var(--line); border-radius: 999px; }
.kinds span { color: var(--muted); }
.authors { padding-left: 1.25rem; }
.kind { color: var(--muted); font-size: 0.9em; }
.kind::before { content: "· "; }
.badge {
  display: inline-block; margin-left: 0.4rem; padding: 0 0.45rem; border-radius: 0.3rem;
  font-size: 0.75rem; font-weight: 600; background: var(--badge-bg); color: var(--badge-fg);
}
.pager ul { display: flex; flex-wrap: wrap; gap: 0.35rem; padding: 0; list-style: none; }
.pager a {
  display: inline-block;
  min-width: 2.2rem;
  padding: 0.2rem 0.5rem;
  text-align: center;
  border: 1px solid var(--line);
  border-radius: 0.3rem;
}
.pager a[aria-current="page"] {
  background: var(--accent);
  color: var(--bg);
  border-color: var(--accent);
}
.keys { padding-left: 1.25rem; }
var { font-style: italic; }
footer.site {
  border-top: 1px solid var(--line);
  color: var(--muted);
  font-size: 0.9rem;
  padding: 1rem 0 2rem;
}
@media (max-width: 40rem) {
  .wrap { padding: 0 0.9rem; }
  th, td { padding: 0.4rem 0.45rem; }
  tbody th { min-width: 9rem; }
}
@media print {
  header.site nav, .skip { display: none; }
  a { color: inherit; }
}
"""


# --- the entry point --------------------------------------------------------------------


def build_site(mirror_dir: Path, *, origin: str, vkeys: list[str]) -> None:
    """Write the static HTML site of the verified log in ``mirror_dir`` (see the module doc).

    ``mirror_dir`` holds an already verified tlog-tiles mirror (``checkpoint``,
    ``tile/entries/...``) of the log ``origin``; ``vkeys`` are the log's verifier
    keys, shown on ``verify.html`` (those that are not Ed25519 log keys named after
    ``origin``, such as witness keys, are left out). The checkpoint's signature is
    checked against them and the entries are replayed with the log's rules.

    Writes ``index.html``, ``statements/<id>.html``, ``verify.html`` and
    ``assets/site.css`` crash-safely, ``index.html`` last. Raises
    :class:`~ledger.core.errors.FormatError` or :class:`~ledger.core.errors.VerificationError`
    if the mirror does not hold a valid log, and
    :class:`~ledger.verify.source.SourceError` if it cannot be read; then no page changes.
    """
    mirror_dir = Path(mirror_dir)
    keys = _log_keys(vkeys, origin)
    log = _read_log(mirror_dir, origin, [v for _, v in keys])

    w = _Writer(mirror_dir)
    w.clean_temporaries(mirror_dir, mirror_dir / "assets", mirror_dir / _STATEMENTS)
    w.write("assets/site.css", CSS)
    reader = _EntryReader(mirror_dir, log.size)
    for info in log.statements:
        record = reader.entry(info.index).record.body
        assert isinstance(record, Statement)
        for rel, text in _statement_pages(log, info, record):
            w.write(rel, text)
    w.write("verify.html", _verify_page(log, [k for k, _ in keys]))
    w.sync_dirs()
    # Only now that every current page is in place: drop those of vanished statements.
    w.remove_stale_pages()
    w.sync_dirs()
    # The replayed state, so that the next run replays only new entries. It is
    # checked against the log when read back, and ignored if it does not fit.
    w.write(CACHE_NAME, log.projection.to_json())
    # Last: the entry page, which links to all the others.
    w.write("index.html", _index_page(log))
    w.sync_dirs()
