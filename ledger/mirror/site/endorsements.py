"""What the site needs beyond the verifier's state: when each active endorsement was logged.

The site is built from the mirror's own verified replay
(:class:`ledger.verify.statefile.VerifierState`, whose
:class:`ledger.core.state.MemoryState` holds every signatory, statement and tally).
One thing the pages show is not in it: a statement page lists its signatories *in
the order they endorsed it*, each with a link to the entry of its endorsement, and
the state keeps, per (signatory, statement) pair, only whether it is active and
its last ``signed_at``. :class:`Endorsements` is that missing piece and nothing
more: for each statement, signatory id -> entry index of its active endorsement.

**Fed by the entries the mirror verified, once each.** After a sync, the mirror's
tree has grown from ``m`` to ``n`` entries; :meth:`Endorsements.catch_up` reads
entries ``m`` to ``n - 1`` back from the bundles the mirror has just verified and
published (they are in the page cache), parses them, and takes from each
endorsement or withdrawal its pair and index. No rule is evaluated and no
signature checked again: in a verified log every endorsement entry makes its pair
active and every withdrawal ends it (docs/spec.md, "Semantic rules"), so the
record type says it all. What it reads is tied to the verified state by the chain
of ``prev`` hashes: entry ``m`` must link to the last entry taken before, each
entry to the one before it, and the last one's leaf hash must be the state's
``last_leaf_hash``; otherwise :class:`~ledger.core.errors.VerificationError` (the
mirror's files are not what it verified). The cost is one parse of each new
entry (about 12 us), in place of the second replay and the second reading of
every bundle that the site did before; a hook in the verifier, handing over the
entries it has parsed anyway, would save that parse too.

**Saved beside the state** (``.ledger-mirror/site-endorsements``), so that the next
run reads only the entries added since. Format
``endorsement-ledger/site-endorsements/v1``:

1. one line of JSON (ending ``\\n``): ``{"format": ..., "origin": ..., "size": N,
   "last_leaf": "<64 hex digits: the leaf hash of entry N - 1, zeros if N = 0>",
   "pairs": P}``;
2. ``P`` records of three little-endian uint64: the entry index of the statement,
   of the signatory's registration, and of the endorsement; sorted;
3. the SHA-256 of all of the above (32 bytes).

Entry indexes, not ids, keep the file at 24 bytes an active endorsement; they are
mapped back to ids through the state (a statement's and a registration's index
are in it). A file that does not load, does not fit the state, or whose chain
does not continue into the mirror's entries is set aside, and the entries are
read again from the first: the file is a saving, never a source of truth.
"""

from __future__ import annotations

import array
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from ledger.core import tiles
from ledger.core.entry import ZERO_HASH, Entry, parse_entry
from ledger.core.errors import FormatError, LedgerError, VerificationError
from ledger.core.merkle import leaf_hash
from ledger.core.records import Endorsement, Withdrawal
from ledger.core.state import MemoryState
from ledger.verify.source import DirectorySource, NotFoundError
from ledger.verify.statefile import VerifierState

FORMAT = "endorsement-ledger/site-endorsements/v1"
#: The file's name in the mirror's private directory (ledger.mirror.directory).
FILE_NAME = "site-endorsements"
_WIDTH = tiles.TILE_WIDTH
_MAX_HEADER = 4096
_DIGEST = 32


class EntryReader:
    """The entries of a tree of ``size`` in a tlog-tiles directory, read one bundle at a time."""

    def __init__(self, directory: Path, size: int) -> None:
        self._source = DirectorySource(directory)
        self._size = size
        self._k = -1
        self._raw: list[bytes] = []

    def bundle(self, k: int) -> list[bytes]:
        """The entries of bundle ``k``, from its partial file or, if that is gone, the full one."""
        if k != self._k:
            width = min(_WIDTH, self._size - k * _WIDTH)
            try:
                data = self._source.fetch(tiles.entries_path(k, width))
                raw = tiles.decode_bundle(data, expected_count=width)
            except NotFoundError:
                if width == _WIDTH:
                    raise
                # A partial bundle may be gone once the full one exists (tlog-tiles).
                data = self._source.fetch(tiles.entries_path(k))
                raw = tiles.decode_bundle(data, expected_count=_WIDTH)[:width]
            self._k, self._raw = k, raw
        return self._raw

    def raw(self, start: int) -> Iterator[tuple[int, bytes]]:
        """(index, bytes) of every entry from ``start`` to the end of the tree."""
        for k in range(start // _WIDTH, -(-self._size // _WIDTH)):
            first = k * _WIDTH
            for offset, data in enumerate(self.bundle(k)[max(0, start - first) :]):
                yield first + max(0, start - first) + offset, data

    def entry(self, index: int) -> Entry:
        return parse_entry(self.bundle(index // _WIDTH)[index % _WIDTH])


class Endorsements:
    """For each statement, signatory id -> entry index of its active endorsement."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.size = 0  # entries taken in: 0 to size - 1
        self.last_leaf = ZERO_HASH  # the leaf hash of entry size - 1
        self.by_statement: dict[bytes, dict[bytes, int]] = {}
        self.saved_size = -1  # the size last saved or loaded (nothing new to save if equal)

    def endorsers(self, statement: bytes) -> list[tuple[bytes, int]]:
        """(signatory id, entry index) of the statement's active endorsements, in log order."""
        return sorted(self.by_statement.get(statement, {}).items(), key=lambda kv: kv[1])

    def take(self, entry: Entry) -> None:
        """Take in one entry of a verified log (the next one: ``entry.index == size``)."""
        body = entry.record.body
        if isinstance(body, Endorsement):
            self.by_statement.setdefault(body.statement, {})[body.signatory] = entry.index
        elif isinstance(body, Withdrawal):
            pairs = self.by_statement.get(body.statement, {})
            if pairs.pop(body.signatory, None) is None:
                raise VerificationError(
                    "withdrawal of an endorsement that is not active",
                    index=entry.index,
                    field="statement",
                )

    # --- following the verified state -----------------------------------------------

    def catch_up(self, directory: Path, state: VerifierState) -> int:
        """Take in the entries of ``directory`` (a mirror) up to ``state.size``.

        Returns how many entries were read. If what was taken in before (a saved
        file) does not lead to ``state``, starts over from entry 0; raises
        VerificationError if the directory's entries are not those ``state``
        verified.
        """
        if self.origin != state.origin or self.size > state.size:
            self._reset(state.origin)
        reader = EntryReader(directory, state.size)
        if self.size == 0:
            return self._follow(reader, state)
        try:
            return self._follow(reader, state)
        except VerificationError:
            self._reset(state.origin)
            return self._follow(reader, state)

    def _follow(self, reader: EntryReader, state: VerifierState) -> int:
        """Take in the entries from ``size`` on, chained from ``last_leaf`` to the state's."""
        start = self.size
        for index, data in reader.raw(start):
            entry = parse_entry(data)
            if entry.prev != self.last_leaf or entry.index != index:
                raise VerificationError(
                    "the mirror's entries do not chain (not the ones its state verified)",
                    code="broken_chain",
                    index=index,
                    field="prev",
                    expected=self.last_leaf,
                    found=entry.prev,
                )
            self.take(entry)
            self.size = index + 1
            self.last_leaf = leaf_hash(data)
        if self.last_leaf != state.replay.last_leaf_hash:
            raise VerificationError(
                "the mirror's entries are not the ones its state verified",
                code="entry_changed",
                index=state.size - 1,
                field="entry",
                expected=state.replay.last_leaf_hash,
                found=self.last_leaf,
            )
        return self.size - start

    def _reset(self, origin: str) -> None:
        self.origin = origin
        self.size = 0
        self.last_leaf = ZERO_HASH
        self.by_statement = {}

    # --- the file ------------------------------------------------------------------

    def _records(self, replay: MemoryState) -> array.array[int]:
        triples: list[tuple[int, int, int]] = []
        for statement, pairs in self.by_statement.items():
            st = replay.statements[statement].index
            triples += ((st, replay.signatories[sig].index, i) for sig, i in pairs.items())
        triples.sort()
        out = array.array("Q", [n for t in triples for n in t])
        if sys.byteorder != "little":  # pragma: no cover - the file is little-endian
            out.byteswap()
        return out

    def to_bytes(self, state: VerifierState) -> bytes:
        """The file (format above); ``state`` is the verified state, at this size."""
        body = self._records(state.replay).tobytes()
        header = (
            json.dumps(
                {
                    "format": FORMAT,
                    "origin": self.origin,
                    "size": self.size,
                    "last_leaf": self.last_leaf.hex(),
                    "pairs": len(body) // 24,
                },
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
            + b"\n"
        )
        return header + body + hashlib.sha256(header + body).digest()

    @classmethod
    def load(cls, path: Path, state: VerifierState) -> Endorsements:
        """The endorsements saved at ``path`` if they fit ``state``; else an empty one."""
        try:
            data = path.read_bytes()
            return cls._from_bytes(data, state)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, LedgerError):
            pass  # damaged, or of another log or version: read the entries again
        return cls(state.origin)

    @classmethod
    def _from_bytes(cls, data: bytes, state: VerifierState) -> Endorsements:
        end = data.find(b"\n", 0, _MAX_HEADER)
        if end < 0:
            raise FormatError("no header line", field="header")
        doc = json.loads(data[: end + 1])
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise FormatError("not a site endorsements file", field="format")
        size, pairs = doc["size"], doc["pairs"]
        if type(size) is not int or type(pairs) is not int or size < 0 or pairs < 0:
            raise FormatError("bad size", field="size")
        body_end = end + 1 + 24 * pairs
        if (
            len(data) != body_end + _DIGEST
            or hashlib.sha256(data[:body_end]).digest() != data[body_end:]
        ):
            raise FormatError("damaged", field="sha256")
        if doc["origin"] != state.origin or size > state.size:
            raise FormatError("not of this log's state", field="origin")
        e = cls(state.origin)
        e.size = size
        e.last_leaf = bytes.fromhex(doc["last_leaf"])
        if len(e.last_leaf) != 32:
            raise FormatError("bad last_leaf", field="last_leaf")
        records = array.array("Q")
        records.frombytes(data[end + 1 : body_end])
        if sys.byteorder != "little":  # pragma: no cover
            records.byteswap()
        statements = {st.index: st.statement for st in state.replay.statements.values()}
        signatories = {s.index: s.signatory for s in state.replay.signatories.values()}
        for i in range(0, len(records), 3):
            st, sig, index = records[i], records[i + 1], records[i + 2]
            e.by_statement.setdefault(statements[st], {})[signatories[sig]] = index
        e.saved_size = size
        return e


__all__ = ["FILE_NAME", "FORMAT", "Endorsements", "EntryReader"]
