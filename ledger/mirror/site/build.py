"""Which pages the site has, built from the mirror's verified state, and writing them.

:class:`Site` adds to a mirror directory (:mod:`ledger.mirror.sync`), next to its
tlog-tiles files, pages that anyone can read with a browser and that any static
web server (or none: ``file://``) can serve::

    index.html                   the log: origin, size, checkpoint, statements and tallies
    statements/<id>.html         one statement: title, text, authors, signatories
    statements/<id>-<p>.html     further pages of signatories (PAGE_SIZE a page)
    statements/<id>.entries.json the entries a statement's pages list ("verify this statement")
    verify.html                  how to check all of it yourself with ledger-verify
    assets/site.css              the one stylesheet (no fonts or images)
    assets/js/                   the browser verifier that verify.html and the statement
                                 pages run (the only scripts)

``<id>`` is the statement id of docs/spec.md ("Identities and keys"): the hex
record id of the statement record. The HTML is :mod:`ledger.mirror.site.pages`'.

**From the mirror's verified replay.** :meth:`Site.update` takes the
:class:`~ledger.verify.statefile.VerifierState` the mirror's sync produced and
saved (:attr:`ledger.mirror.sync.Mirror.state`): its checkpoint and its
:class:`~ledger.core.state.MemoryState`, whose signatories, statements and tallies
are exactly the ones ``ledger-verify`` computes (docs/spec.md, "Tallies"). Nothing
is replayed again. Two things come from the mirror's files, as a page needs them:
the entry index of each active endorsement, taken from each new entry once
(:mod:`ledger.mirror.site.endorsements`), and each statement's text and logging
time, read back from its entry (whose record id must be the statement's id, so
the text is the one that was verified). The state's checkpoint is checked against
the log keys given, which are the ones ``verify.html`` shows.

**Incremental.** A sync that adds entries costs the site a parse of each new
entry, plus, as each page names the checkpoint's size and root, the rendering of
every page (O(statements), not O(entries)); files whose bytes did not change are
not rewritten.

**Crash-safe.** Each file is written with :mod:`ledger.durable` (temporary file,
fsync, rename; the directories are fsynced once at each step below; statement
pages by several threads at once, as their time is in ``fsync``). The
endorsements file comes first, then the stylesheet and the statement pages, then
``verify.html``; pages of statements that no longer exist are removed only then,
and ``index.html`` is written last. A crash at any point leaves every page either
old or new, each complete, and the next update finishes the job.

Memory grows with the number of signatories, statements and active endorsements,
not with the log: entries are read one bundle at a time.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ledger.core import tiles
from ledger.core.checkpoint import open_checkpoint
from ledger.core.errors import FormatError, VerificationError
from ledger.core.note import Ed25519Verifier, parse_vkey
from ledger.core.records import Statement
from ledger.durable import make_dirs, remove_temporaries, sync_dirs, write_atomic
from ledger.mirror.directory import PRIVATE_MODE, STATE_DIR
from ledger.mirror.layout import DIR_MODE, FILE_MODE
from ledger.mirror.site import pages
from ledger.mirror.site.endorsements import FILE_NAME, Endorsements, EntryReader
from ledger.verify.domains import DomainCheck
from ledger.verify.statefile import VerifierState

#: Threads writing statement pages (see _Files).
WRITERS = 8
_WIDTH = tiles.TILE_WIDTH
_PAGE_NAME = re.compile(r"[0-9a-f]{64}((-[1-9][0-9]*)?\.html|\.entries\.json)")


def log_keys(vkeys: Sequence[str], origin: str) -> list[tuple[str, Ed25519Verifier]]:
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
class SiteUpdate:
    """What one :meth:`Site.update` did."""

    entries_read: int = 0  # new entries taken in by the endorsements
    written: list[str] = field(default_factory=list)  # files whose bytes changed, in order
    removed: list[str] = field(default_factory=list)  # pages of vanished statements


class _Files:
    """Files of the site, each written durably and only if its bytes change.

    :meth:`write` with ``batch=True`` hands the write to :data:`WRITERS` threads:
    a page is small, and its time goes into ``fsync``, which the file system can
    do for several files at once (measured on ext4: 400 pages in 0.6 s with 8
    threads, 2-3 s one after the other). :meth:`sync` waits for them all, then
    fsyncs the directories: the order of the steps is kept, only the pages within
    one step are written side by side.
    """

    def __init__(self, root: Path, update: SiteUpdate, pool: ThreadPoolExecutor) -> None:
        self.root = root
        self.update = update
        self.kept: set[Path] = set()  # every file this run wrote or found unchanged
        self._dirty: set[Path] = set()
        self._pool = pool
        self._pending: deque[Future[None]] = deque()

    def write(self, rel: str, data: bytes, mode: int = FILE_MODE, *, batch: bool = False) -> None:
        path = self.root / rel
        self.kept.add(path)
        try:
            if path.read_bytes() == data:
                return  # unchanged: no need to write (and fsync) it again
        except FileNotFoundError:
            pass
        if not path.parent.is_dir():
            make_dirs(path.parent, PRIVATE_MODE if rel.startswith(STATE_DIR) else DIR_MODE)
        self._dirty.add(path.parent)
        self.update.written.append(rel)
        if not batch:
            write_atomic(path, data, mode, sync_parent=False)
            return
        if len(self._pending) >= 4 * WRITERS:  # bounded: pages wait in memory
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(write_atomic, path, data, mode, sync_parent=False))

    def wait(self) -> None:
        """Wait for every batched write; then raise the first failure, if any."""
        pending, self._pending = list(self._pending), deque()
        futures.wait(pending)
        for f in pending:
            f.result()

    def remove_stale_pages(self) -> None:
        """Remove statement pages this run did not write (statements that no longer exist)."""
        d = self.root / pages.STATEMENTS
        if not d.is_dir():
            return
        for p in sorted(d.iterdir()):
            if _PAGE_NAME.fullmatch(p.name) and p not in self.kept:
                p.unlink()
                self._dirty.add(d)
                self.update.removed.append(f"{pages.STATEMENTS}/{p.name}")

    def sync(self) -> None:
        """Finish the writes so far and make their names durable (fsync the directories)."""
        self.wait()
        sync_dirs(sorted(self._dirty))
        self._dirty.clear()


def _bundle_paths(root: Path, size: int) -> list[str]:
    """The path of each entry bundle, for links: the partial bundle if it is there."""
    paths = [tiles.entries_path(k) for k in range(size // _WIDTH)]
    if size % _WIDTH:
        partial = tiles.entries_path(size // _WIDTH, size % _WIDTH)
        full = tiles.entries_path(size // _WIDTH)
        use_full = not (root / partial).is_file() and (root / full).is_file()
        paths.append(full if use_full else partial)
    return paths


class Site:
    """The site of one mirror directory; keeps its endorsements between updates."""

    def __init__(self, root: Path, vkeys: Sequence[str]) -> None:
        self.root = Path(root)
        self.vkeys = list(vkeys)
        self.endorsements: Endorsements | None = None

    @property
    def endorsements_path(self) -> Path:
        return self.root / STATE_DIR / FILE_NAME

    def update(
        self, state: VerifierState, domains: Mapping[bytes, DomainCheck] | None = None
    ) -> SiteUpdate:
        """Bring the pages to ``state``, the mirror's verified state (see the module doc).

        Raises :class:`~ledger.core.errors.FormatError` if no key of ``vkeys`` is a
        log key named after the origin,
        :class:`~ledger.core.errors.LedgerError` if the state's checkpoint does not
        verify with them or the mirror's files are not what the state verified, and
        :class:`~ledger.verify.source.SourceError` if they cannot be read. Before
        writing, it checks the keys and the entries it takes in (no page changes if
        those fail); a statement entry that turns out damaged on the way stops it
        as a crash would: every page is whole, old or new, and ``index.html`` old.
        """
        keys = log_keys(self.vkeys, state.origin)
        open_checkpoint(state.checkpoint, [v for _, v in keys], state.origin)
        e = self.endorsements
        if e is None:
            e = Endorsements.load(self.endorsements_path, state)
        self.endorsements = None  # until it is known to be at the state
        out = SiteUpdate(entries_read=e.catch_up(self.root, state))
        self.endorsements = e
        log = pages.LogView(
            state.origin,
            state.size,
            state.root,
            state.checkpoint,
            state.replay,
            _bundle_paths(self.root, state.size),
            tuple(k for k, _ in keys),
            domains or {},
        )

        for d in (self.root, self.root / "assets", self.root / pages.STATEMENTS):
            remove_temporaries(d)
        with ThreadPoolExecutor(WRITERS, thread_name_prefix="site-write") as pool:
            files = _Files(self.root, out, pool)
            try:
                if e.saved_size != e.size:
                    files.write(f"{STATE_DIR}/{FILE_NAME}", e.to_bytes(state), 0o600)
                    e.saved_size = e.size
                files.write(pages.CSS_PATH, pages.stylesheet())
                for rel, data in pages.verifier_assets():
                    files.write(rel, data, batch=True)
                for st in self._statements(log, e):
                    for rel, text in pages.statement_pages(log, st):
                        files.write(rel, text.encode("utf-8"), batch=True)
                files.wait()
                verify = pages.verify_page(log, [k for k, _ in keys])
                files.write("verify.html", verify.encode("utf-8"))
                files.sync()
                # Only now that every current page is in place: drop those of vanished
                # statements.
                files.remove_stale_pages()
                files.sync()
                # Last: the entry page, which links to all the others.
                files.write("index.html", pages.index_page(log).encode("utf-8"))
                files.sync()
            finally:
                files.wait()  # no write left running, whatever failed
        return out

    def _statements(self, log: pages.LogView, e: Endorsements) -> Iterator[pages.StatementView]:
        """Every statement in log order, its text read back from its entry (one at a
        time: texts can be long)."""
        reader = EntryReader(self.root, log.size)
        for st in sorted(log.replay.statements.values(), key=lambda s: s.index):
            entry = reader.entry(st.index)
            body = entry.record.body
            if entry.record.record_id != st.statement or not isinstance(body, Statement):
                raise VerificationError(
                    "the mirror's entry is not the statement its state verified",
                    code="entry_changed",
                    index=st.index,
                    field="entry",
                    expected=st.statement,
                    found=entry.record.record_id,
                )
            yield pages.StatementView(
                st.statement, st.index, entry.time_ms, body, e.endorsers(st.statement)
            )


def build_site(root: Path, state: VerifierState, vkeys: Sequence[str]) -> SiteUpdate:
    """Bring the site of the mirror at ``root`` to ``state`` once (:meth:`Site.update`)."""
    return Site(root, vkeys).update(state)


__all__ = ["Site", "SiteUpdate", "build_site", "log_keys"]
