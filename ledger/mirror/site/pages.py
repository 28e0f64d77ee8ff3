"""The HTML of the site's pages, from templates shipped with the package.

Each page is a ``string.Template`` document (``templates/page.html``) around a
body (``templates/index.html``, ``statement.html``, ``verify.html``), filled with
smaller templates (rows, links, cells) from the same directory; the stylesheet is
``assets/site.css``. They are package data, read with :mod:`importlib.resources`
(so they work from a wheel or a zip as well as from a checkout). A template's
text is its file's, without the newline that ends the file; a whole document ends
with one newline.

**Escaping happens in one place**, :func:`render`: every value it puts into a
template is HTML-escaped (quotes too, so values are safe in attributes), unless
it is :class:`Markup`, which only :func:`render` (and :func:`escape`) make.
Everything taken from the log (titles, texts, names, domains, even the origin) is
attacker-controlled; none of it reaches a page unescaped. The pages carry a
Content-Security-Policy (in ``page.html``) that forbids scripts, inline styles
and any resource from elsewhere: ``data:`` only for the empty favicon (without
one browsers fetch ``/favicon.ico``, a 404 on most mirrors).

Pages depend only on the data given, never on the clock, the locale or the file
system, so the same log gives byte-identical pages.
"""

from __future__ import annotations

import datetime
import functools
import html
import importlib.resources
import json
import re
import shlex
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ledger.core import tiles
from ledger.core.encoding import b64encode
from ledger.core.records import Statement
from ledger.core.state import KINDS, MemoryState
from ledger.verify.domains import DomainCheck, Status

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
#: Where the statement pages are, relative to the top of the site.
STATEMENTS = "statements"
#: The stylesheet, relative to the top of the site (and to this package).
CSS_PATH = "assets/site.css"
#: Where the browser verifier (package data ``ledger/mirror/js``) is published.
JS_DIR = "assets/js"
#: The policy of every page: no scripts at all.
CSP_STATIC = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'"
)
#: The policy of ``verify.html``: scripts, workers and fetches from this site only.
CSP_VERIFIER = (
    "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)

_WIDTH = tiles.TILE_WIDTH
_URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]")
_RESOURCES = importlib.resources.files(__package__ or "ledger.mirror.site")


# --- templates and escaping ------------------------------------------------------------


class Markup(str):
    """HTML that :func:`render` inserts as it is (made only by :func:`render` and
    :func:`escape`, or from this module's own constant strings)."""

    __slots__ = ()


_escape = html.escape


def escape(value: object) -> Markup:
    """``value`` as text in HTML: ``& < > " '`` escaped (safe in attributes too)."""
    return Markup(_escape(str(value), quote=True))


_CURRENT = Markup(' aria-current="page"')  # the attribute of the link to the page shown
_NOTHING = Markup("")


@functools.cache
def template(name: str) -> string.Template:
    """``templates/<name>.html``, without the newline that ends the file."""
    text = (_RESOURCES / "templates" / f"{name}.html").read_text("utf-8")
    return string.Template(text.removesuffix("\n"))


def compile_template(t: string.Template) -> str:
    """``t`` as a :meth:`str.format` string (``$x``, ``${x}`` -> ``{x}``, ``$$`` -> ``$``,
    braces doubled): the same text, filled at C speed.

    >>> compile_template(string.Template("a{b} $$1 $x, ${y}z"))
    'a{{b}} $1 {x}, {y}z'
    """
    text, out, pos = t.template, [], 0
    for m in t.pattern.finditer(text):
        out.append(text[pos : m.start()].replace("{", "{{").replace("}", "}}"))
        if m["escaped"] is not None:
            out.append("$")
        elif (field := m["named"] or m["braced"]) is not None:
            out.append("{" + field + "}")
        else:
            raise ValueError(f"a '$' that names nothing at {m.start()}: {text[:60]!r}")
        pos = m.end()
    out.append(text[pos:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


@functools.cache
def _format(name: str) -> str:
    return compile_template(template(name))


def stylesheet() -> bytes:
    """The stylesheet, byte for byte as it is published."""
    return (_RESOURCES / CSS_PATH).read_bytes()


def verifier_assets() -> list[tuple[str, bytes]]:
    """The browser verifier's files (docs/design/browser-verifier.md) as published:
    (path under the site, bytes), its ES modules and vendored libraries with licences."""
    out: list[tuple[str, bytes]] = []

    def walk(node: importlib.resources.abc.Traversable, rel: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child, f"{rel}/{child.name}")
            elif child.name != "node-verify.mjs":  # Node's entry point, not the site's
                out.append((f"{rel}/{child.name}", child.read_bytes()))

    walk(importlib.resources.files("ledger.mirror") / "js", JS_DIR)
    return out


def render(name: str, /, **values: object) -> Markup:
    """Template ``name`` filled with ``values``, each escaped unless it is :class:`Markup`.

    Every placeholder must be given (``KeyError`` otherwise): a forgotten value
    never leaves ``$name`` on a page.
    """
    for k, v in values.items():  # ``values`` is this call's own dict
        if type(v) is not Markup:
            values[k] = _escape(v if type(v) is str else str(v), True)
    return Markup(_format(name).format_map(values))


def join(parts: Iterable[Markup], sep: str = "") -> Markup:
    """Concatenate rendered fragments."""
    return Markup(sep.join(parts))


# --- what the pages show -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogView:
    """The verified log the site shows: its checkpoint and its replayed state."""

    origin: str
    size: int
    root: bytes
    checkpoint: bytes  # the signed checkpoint, verbatim
    replay: MemoryState
    bundle_paths: Sequence[str]  # the path of entry bundle k, for links
    vkeys: Sequence[str] = ()  # the keys the site was built with (pre-filled, marked)
    #: This mirror's domain checks, by signatory id (``ledger mirror --check-domains``).
    domains: Mapping[bytes, DomainCheck] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatementView:
    """One statement: its record, where it is in the log, and who endorses it now."""

    id: bytes
    index: int
    time_ms: int
    body: Statement
    endorsers: Sequence[tuple[bytes, int]]  # (signatory id, entry index), in log order


def statement_page(statement_id: bytes, page: int = 1) -> str:
    """The path, relative to the top of the site, of page ``page`` of a statement.

    >>> statement_page(bytes(32))[:24], statement_page(bytes(32), 2)[-7:]
    ('statements/0000000000000', '-2.html')
    """
    suffix = "" if page == 1 else f"-{page}"
    return f"{STATEMENTS}/{statement_id.hex()}{suffix}.html"


def _time(time_ms: int) -> Markup:
    """A ``<time>`` element for Unix milliseconds, in UTC (deterministic: no local zone)."""
    try:
        t = datetime.datetime.fromtimestamp(time_ms / 1000, datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return escape(f"{time_ms} ms after 1970-01-01 UTC")
    return render(
        "time", datetime=t.strftime("%Y-%m-%dT%H:%M:%SZ"), text=t.strftime("%Y-%m-%d %H:%M")
    )


def _linkify(text: str) -> Markup:
    """``text``, escaped, with its http(s) URLs made links."""
    out: list[Markup] = []
    pos = 0
    for m in _URL.finditer(text):
        out.append(escape(text[pos : m.start()]))
        out.append(render("link", url=m.group(0)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return join(out)


def _document(
    log: LogView,
    *,
    title: str,
    body: Markup,
    top: str,
    current: str,
    description: str,
    scripts: Sequence[str] = (),
) -> str:
    """A whole HTML page. ``top`` is the relative path to the top of the site."""
    nav = join(
        render(
            "nav-item",
            href=top + href,
            current=_CURRENT if href == current else _NOTHING,
            label=label,
        )
        for href, label in (("index.html", "Statements"), ("verify.html", "Verify it yourself"))
    )
    page = render(
        "page",
        description=description,
        title=title,
        origin=log.origin,
        top=top,
        nav=nav,
        body=body,
        size=f"{log.size:,}",
        root_hash=b64encode(log.root),
        csp=Markup(CSP_VERIFIER if scripts else CSP_STATIC),  # constants, quoted as they are
        scripts=join(render("script", src=top + src) for src in scripts),
    )
    return page + "\n"


def _entry_link(log: LogView, index: int, top: str) -> Markup:
    """A link to the bundle holding entry ``index``, saying where in it the entry is."""
    path = log.bundle_paths[index // _WIDTH]
    return render(
        "entry-link",
        href=top + path,
        index=index,
        offset=index % _WIDTH,
        path=path,
        number=f"{index:,}",
    )


def _tally_cells(tallies: dict[str, int]) -> Markup:
    return join(render("tally-cell", count=f"{tallies[k]:,}") for k in KINDS)


def _kind_headers() -> Markup:
    return join(render("kind-header", label=KIND_LABELS[k]) for k in KINDS)


def _table(caption_id: str, caption: str, head: Markup, rows: Iterable[Markup]) -> Markup:
    return render("table", id=caption_id, caption=caption, head=head, rows=join(rows, "\n"))


# --- the pages -------------------------------------------------------------------------------


def index_page(log: LogView) -> str:
    """``index.html``: every statement with its tallies, the signatories, the checkpoint."""
    replay = log.replay
    summary = replay.summary()
    by_kind = replay.signatories_by_kind()
    stmts = summary["statements"]
    assert isinstance(stmts, list)
    rows = [
        render(
            "index-row",
            href=statement_page(bytes.fromhex(st["id"])),
            title=st["title"],
            index=f"{st['index']:,}",
            total=f"{st['endorsements']:,}",
            tallies=_tally_cells(st["endorsements_by_kind"]),
        )
        for st in stmts
    ]
    if rows:
        table = _table(
            "statements-caption",
            "Statements, with the number of signatories that endorse each, by kind",
            render("index-head", kinds=_kind_headers()),
            rows,
        )
    else:
        table = render("no-statement")
    body = render(
        "index",
        origin=log.origin,
        size=f"{log.size:,}",
        statements=f"{len(stmts):,}",
        signatories=f"{summary['signatories']:,}",
        endorsements=f"{sum(st['endorsements'] for st in stmts):,}",
        table=table,
        kinds=join(
            render("kind-count", label=KIND_LABELS[k], count=f"{by_kind[k]:,}") for k in KINDS
        ),
        checkpoint=log.checkpoint.decode("utf-8", "replace"),
    )
    return _document(
        log,
        title="Statements",
        body=body,
        top="",
        current="index.html",
        description=f"Statements and endorsement tallies of the log {log.origin}",
    )


def identity_label(domain: str | None, check: DomainCheck | None) -> str:
    """How the signatory's identity is known, said plainly (docs/spec.md, "Domain
    proofs"): self-declared unless this mirror checked its domain claim."""
    if check is None:
        return "self-declared" if domain is None else "self-declared (domain not checked)"
    when = datetime.datetime.fromtimestamp(check.checked_at, datetime.UTC)
    at = when.strftime("%Y-%m-%d %H:%M UTC")
    if check.status is Status.CONFIRMED:
        return f"domain confirmed (checked by this mirror {at})"
    if check.status is Status.MISMATCH:
        return f"IMPERSONATION ALERT: the domain names another signatory (checked {at})"
    return f"self-declared: domain proof {check.status.value} (checked {at})"


def statement_entries_path(statement_id: bytes) -> str:
    """The statement's entry list that "verify this statement" reads, relative to the top."""
    return f"{STATEMENTS}/{statement_id.hex()}.entries.json"


def statement_entries(st: StatementView) -> str:
    """``{"statement", "index", "endorsements"}``: the entries the statement pages list."""
    return json.dumps(
        {"statement": st.id.hex(), "index": st.index, "endorsements": [i for _, i in st.endorsers]},
        separators=(",", ":"),
    )


def statement_pages(log: LogView, st: StatementView) -> Iterator[tuple[str, str]]:
    """The pages of one statement, ``PAGE_SIZE`` signatories each, then its entry list:
    (path, text)."""
    replay = log.replay
    record = replay.statements[st.id]
    tallies = {k: record.tallies.get(k, 0) for k in KINDS}
    pages = max(1, -(-len(st.endorsers) // PAGE_SIZE))
    top = "../"
    authors = []
    for a in st.body.authors:
        s = replay.signatories.get(a)
        authors.append(
            render(
                "author",
                name="(unknown signatory)" if s is None else s.name,
                kind=_NOTHING
                if s is None
                else render("author-kind", label=KIND_LABELS.get(s.kind, s.kind)),
            )
        )
    tally = _table(
        "tally-caption",
        "Active endorsements by signatory kind",
        render("tally-head", kinds=_kind_headers()),
        [render("tally-row", total=f"{record.total:,}", tallies=_tally_cells(tallies))],
    )
    for page in range(1, pages + 1):
        first = (page - 1) * PAGE_SIZE
        rows = []
        for sid, index in st.endorsers[first : first + PAGE_SIZE]:
            s = replay.signatories[sid]
            rows.append(
                render(
                    "signatory-row",
                    name=s.name,
                    status=_NOTHING if s.active else render("revoked"),
                    sid=sid.hex(),
                    identity=identity_label(s.domain, log.domains.get(sid)),
                    kind=KIND_LABELS.get(s.kind, s.kind),
                    country=s.country or "",
                    domain=s.domain or "",
                    entry=_entry_link(log, index, top),
                )
            )
        if rows:
            shown = (
                f"signatories {first + 1:,} to {first + len(rows):,} of {len(st.endorsers):,}"
                if pages > 1
                else f"{len(st.endorsers):,} signatories"
            )
            signatories = _table(
                "signatories-caption",
                f"Signatories that endorse this statement ({shown}), in the order they endorsed it",
                render("signatories-head"),
                rows,
            )
        else:
            signatories = render("no-signatory")
        pager = _NOTHING
        if pages > 1:
            items = join(
                render(
                    "pager-item",
                    href=statement_page(st.id, p).removeprefix(f"{STATEMENTS}/"),
                    current=_CURRENT if p == page else _NOTHING,
                    page=p,
                )
                for p in range(1, pages + 1)
            )
            pager = render("pager", items=items)
        page_note = f" (page {page} of {pages})" if pages > 1 else ""
        body = render(
            "statement",
            top=top,
            title=st.body.title,
            page_note=page_note,
            total=f"{record.total:,}",
            logged=_time(st.time_ms),
            entry=_entry_link(log, st.index, top),
            id=st.id.hex(),
            authors=join(authors),
            text=_linkify(st.body.text),
            tally=tally,
            pager=pager,
            signatories=signatories,
            index=st.index,
            entries_file=statement_entries_path(st.id).removeprefix(f"{STATEMENTS}/"),
            vkey_text=log.vkeys[0] if log.vkeys else "",
        )
        yield (
            statement_page(st.id, page),
            _document(
                log,
                title=st.body.title + page_note,
                body=body,
                top=top,
                current="",
                description=f"{st.body.title}: text and signatories",
                scripts=[f"{JS_DIR}/statement-page.js"],
            ),
        )
    yield statement_entries_path(st.id), statement_entries(st)


def verify_page(log: LogView, vkeys: Sequence[str]) -> str:
    """``verify.html``: how to check the log with ``ledger-verify`` and the log's keys."""
    body = render(
        "verify",
        log_url=shlex.quote("https://" + log.origin),
        keys=" ".join(f"--log-key {shlex.quote(v)}" for v in vkeys),
        size=f"{log.size:,}",
        key_items=join(render("key", vkey=v) for v in vkeys),
        vkey_text=vkeys[0] if vkeys else "",
        shown_rows=join(
            render(
                "shown-row",
                title=st.title,
                statement=st.statement.hex(),
                count=st.total,
            )
            for st in sorted(log.replay.statements.values(), key=lambda s: s.index)
        ),
    )
    return _document(
        log,
        title="Verify it yourself",
        body=body,
        top="",
        current="verify.html",
        description=f"How to verify the log {log.origin} yourself",
        scripts=[f"{JS_DIR}/verify-page.js"],
    )


__all__ = [
    "CSS_PATH",
    "KIND_LABELS",
    "PAGE_SIZE",
    "STATEMENTS",
    "LogView",
    "Markup",
    "StatementView",
    "escape",
    "index_page",
    "render",
    "statement_entries",
    "statement_entries_path",
    "statement_page",
    "statement_pages",
    "stylesheet",
    "template",
    "verify_page",
]
