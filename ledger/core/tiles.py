"""Tiles and entry bundles: the static layout of C2SP tlog-tiles (c2sp.org/tlog-tiles).

A log serves its Merkle tree (RFC 9162 section 2.1) as *tiles*: runs of 256
consecutive hashes of one level. A tile at level L holds Merkle tree hashes of
level 8L (``TILE_HEIGHT`` = 8): hash i of tile N at level L is the root of the
256^L leaves starting at leaf (N*256 + i) * 256^L. Paths, under the log's prefix::

    tile/<L>/<N>[.p/<W>]        L: 0 to 63, decimal without leading zeros
    tile/entries/<N>[.p/<W>]    entry bundles, laid out as the level 0 tiles

N is written in groups of three digits, all but the last prefixed by ``x``:

    >>> tile_path(0, 1234067)
    'tile/0/x001/x234/067'
    >>> entries_path(5, 17)
    'tile/entries/005.p/17'

A full tile holds 256 hashes (8,192 bytes). The rightmost tile of a level is
*partial* when a tree of size s has (s // 256^L) mod 256 = W > 0 hashes left
over there: it holds those W hashes, at ``.p/<W>``, and is never hashed into the
level above. A tree of size 256 has the full tile ``tile/0/000`` and the
partial ``tile/1/000.p/1``.

An entry bundle is its entries, each as a big-endian uint16 length then the
entry bytes, so an entry is at most 65,535 bytes; bundle N holds entries
256N to 256N + 255, and a partial bundle its first W.

Everything fetched from a log or a mirror is untrusted: :class:`TileHashReader`
checks each tile against a tree size and root taken from a verified checkpoint
before it uses it, as golang.org/x/mod/sumdb/tlog's TileHashReader does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ledger.core.encoding import MAX_UINT63, parse_uint
from ledger.core.errors import FormatError, RootMismatchError, TooLargeError
from ledger.core.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    HashReader,
    split_stored_hash_index,
    stored_hash_index,
)

__all__ = [
    "MAX_BUNDLE_ENTRY_SIZE",
    "MAX_TILE_LEVEL",
    "MISSING",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TileHashReader",
    "bundles_for_size",
    "decode_bundle",
    "encode_bundle",
    "entries_path",
    "new_tiles",
    "parse_tile_path",
    "read_bundle",
    "read_tile",
    "read_tile_data",
    "tile_path",
    "tiles_for_size",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
MAX_BUNDLE_ENTRY_SIZE = 0xFFFF
_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_NODE = b"\x01"
_sha256 = hashlib.sha256
_GROUP = re.compile(r"x[0-9]{3}")
_LAST_GROUP = re.compile(r"[0-9]{3}")
_MAX_GROUPS = 7  # 2^63 has 19 digits


@dataclass(frozen=True, slots=True)
class Tile:
    """Tile ``n`` of ``level`` (hashes of Merkle level 8 * level), ``width`` hashes wide.

    With ``is_entries`` it is entry bundle ``n`` instead (level 0). A width below
    256 makes it partial. Invalid coordinates raise FormatError.
    """

    level: int
    n: int
    width: int = TILE_WIDTH
    is_entries: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_TILE_LEVEL:
            raise FormatError(
                f"tile level must be 0 to {MAX_TILE_LEVEL}", field="level", found=self.level
            )
        if self.is_entries and self.level != 0:
            raise FormatError("entry bundles are at level 0", field="level", found=self.level)
        if not 1 <= self.width <= TILE_WIDTH:
            raise FormatError(
                f"tile width must be 1 to {TILE_WIDTH}", field="width", found=self.width
            )
        # Trees have at most 2^63 - 1 leaves (sizes are parsed as uint63): a tile
        # starting beyond that belongs to no tree.
        if self.n < 0 or self.n << (TILE_HEIGHT * (self.level + 1)) > MAX_UINT63:
            raise FormatError(
                "tile index is beyond any tree of at most 2^63 - 1 leaves",
                field="n",
                found=self.n,
            )

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
        digits = str(self.n)
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        n_path = "/".join([*("x" + g for g in groups[:-1]), groups[-1]])
        level = "entries" if self.is_entries else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{level}/{n_path}{suffix}"


def tile_path(level: int, n: int, width: int = TILE_WIDTH) -> str:
    """The path of hash tile ``n`` at ``level``, ``width`` hashes wide."""
    return Tile(level, n, width).path


def entries_path(n: int, width: int = TILE_WIDTH) -> str:
    """The path of entry bundle ``n`` holding ``width`` entries."""
    return Tile(0, n, width, is_entries=True).path


def parse_tile_path(path: str) -> Tile:
    """Parse a tile or bundle path, accepting only its one canonical spelling.

    >>> parse_tile_path("tile/1/x001/234.p/7")
    Tile(level=1, n=1234, width=7, is_entries=False)
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise FormatError("not a tile path: tile/<L>/<N>[.p/<W>]", field="path", found=path)
    is_entries = parts[1] == "entries"
    level = 0 if is_entries else parse_uint(parts[1], field="level", max_value=MAX_TILE_LEVEL)
    groups = parts[2:]
    width = TILE_WIDTH
    if len(groups) >= 2 and groups[-2].endswith(".p"):
        width = parse_uint(groups[-1], field="width", max_value=TILE_WIDTH - 1)
        if width == 0:
            raise FormatError("partial tile width must be 1 to 255", field="width", found=0)
        groups = [*groups[:-2], groups[-2][:-2]]
    if len(groups) > _MAX_GROUPS:
        raise FormatError("tile index has too many digits", field="path", found=path)
    if _LAST_GROUP.fullmatch(groups[-1]) is None or any(
        _GROUP.fullmatch(g) is None for g in groups[:-1]
    ):
        raise FormatError(
            "tile index must be 3-digit groups, x-prefixed but the last", field="path", found=path
        )
    n = int("".join(g.lstrip("x") for g in groups))
    tile = Tile(level, n, width, is_entries)
    if tile.path != path:  # e.g. x000/123 for 123
        raise FormatError("non-canonical tile path", field="path", expected=tile.path, found=path)
    return tile


# --- Which tiles a tree has --------------------------------------------------------


def _level_tiles(level: int, count: int, start: int = 0) -> Iterable[Tile]:
    """Tiles ``start``.. of a level holding ``count`` hashes, the partial one last."""
    full, rest = divmod(count, TILE_WIDTH)
    for n in range(start, full):
        yield Tile(level, n)
    if rest:
        yield Tile(level, full, rest)


def tiles_for_size(size: int) -> list[Tile]:
    """Every hash tile, full and partial, of a tree of ``size`` leaves, level by level."""
    if not 0 <= size <= MAX_UINT63:
        raise ValueError(f"tree size {size} is out of range")
    tiles: list[Tile] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        tiles.extend(_level_tiles(level, size >> (TILE_HEIGHT * level)))
        level += 1
    return tiles


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The hash tiles a tree of ``new_size`` has and one of ``old_size`` has not.

    These are what a log publishes when it grows: newly full tiles and new or
    wider partial ones. Every other tile of the new tree is unchanged.
    """
    if not 0 <= old_size <= new_size <= MAX_UINT63:
        raise ValueError(f"tree cannot grow from size {old_size} to {new_size}")
    tiles: list[Tile] = []
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        old_count = old_size >> (TILE_HEIGHT * level)
        new_count = new_size >> (TILE_HEIGHT * level)
        if new_count != old_count:
            # The old rightmost tile of this level (partial, or the first not
            # yet started) is where the two trees begin to differ.
            tiles.extend(_level_tiles(level, new_count, old_count // TILE_WIDTH))
        level += 1
    return tiles


def bundles_for_size(size: int) -> list[Tile]:
    """Every entry bundle, full and partial, of a log of ``size`` entries."""
    if not 0 <= size <= MAX_UINT63:
        raise ValueError(f"tree size {size} is out of range")
    return [Tile(0, t.n, t.width, is_entries=True) for t in _level_tiles(0, size)]


def read_tile_data(tile: Tile, reader: HashReader) -> bytes:
    """The bytes of a hash tile (its hashes concatenated), read from stored hashes."""
    if tile.is_entries:
        raise ValueError("an entry bundle holds entries, not stored hashes")
    merkle_level = TILE_HEIGHT * tile.level
    first = tile.n * TILE_WIDTH
    indexes = [stored_hash_index(merkle_level, first + i) for i in range(tile.width)]
    return b"".join(reader.read_hashes(indexes))


# --- Entry bundles ---------------------------------------------------------------


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length, then its bytes."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise ValueError(f"a bundle holds 1 to {TILE_WIDTH} entries, not {len(entries)}")
    parts: list[bytes] = []
    for i, entry in enumerate(entries):
        if len(entry) > MAX_BUNDLE_ENTRY_SIZE:
            raise TooLargeError(
                f"bundle entry {i} is too large for a uint16 length prefix",
                expected=f"at most {MAX_BUNDLE_ENTRY_SIZE} bytes",
                found=len(entry),
            )
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(entry)
    return b"".join(parts)


def decode_bundle(data: bytes, expected_count: int | None = None) -> list[bytes]:
    """Split an entry bundle into its entries.

    Rejects an empty bundle, a truncated length or entry, more than 256 entries
    and, when ``expected_count`` is given (256, or W for a partial bundle), any
    other number of entries or bytes after the last one.
    """
    if expected_count is not None and not 1 <= expected_count <= TILE_WIDTH:
        raise ValueError(f"a bundle holds 1 to {TILE_WIDTH} entries, not {expected_count}")
    limit = TILE_WIDTH if expected_count is None else expected_count
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if len(entries) == limit:
            if expected_count is None:
                raise FormatError(f"bundle holds more than {TILE_WIDTH} entries")
            raise FormatError(
                f"bytes after the last of {expected_count} bundle entries",
                field="bundle",
                found=end - pos,
            )
        if end - pos < 2:
            raise FormatError(f"bundle entry {len(entries)} has a truncated length prefix")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if end - pos < length:
            raise FormatError(
                f"bundle entry {len(entries)} is truncated", expected=length, found=end - pos
            )
        entries.append(bytes(data[pos : pos + length]))
        pos += length
    if not entries:
        raise FormatError("empty bundle")
    if expected_count is not None and len(entries) != expected_count:
        raise FormatError(
            "wrong number of bundle entries", expected=expected_count, found=len(entries)
        )
    return entries


# --- Reading tiles and bundles, with the partial fallbacks --------------------------

#: What ``fetch`` raises for a resource the log does not have: then a partial tile or
#: bundle is read from the full one (``ledger.verify.source.NotFoundError`` is a
#: LookupError).
MISSING = (FileNotFoundError, LookupError)


def read_tile(fetch: Callable[[str], bytes], level: int, n: int, width: int = TILE_WIDTH) -> bytes:
    """The ``width`` hashes of tile ``n`` of ``level``, read through ``fetch(path)``.

    tlog-tiles, "Partial Tiles": a log may delete a partial tile once the full one
    exists. If ``fetch`` raises FileNotFoundError or LookupError for a partial
    tile, the full tile is read instead (it must be exactly 256 hashes) and its
    first ``width`` hashes returned. A tile of the wrong length raises FormatError
    (code ``bad_tile``) naming the path read and the first leaf the tile covers.
    The bytes are not authenticated: that is the caller's job.
    """
    tile = Tile(level, n, width)
    path, want = tile.path, width * HASH_SIZE
    try:
        data = fetch(path)
    except MISSING:
        if not tile.is_partial:
            raise
        path, want = Tile(level, n).path, _TILE_BYTES
        data = fetch(path)
    if len(data) != want:
        raise FormatError(
            "tile has the wrong length" + (" (truncated)" if len(data) < want else ""),
            code="bad_tile",
            index=(n * TILE_WIDTH) << (TILE_HEIGHT * level),
            field=path,
            expected=want,
            found=len(data),
        )
    return bytes(data[: width * HASH_SIZE])


def read_bundle(fetch: Callable[[str], bytes], n: int, size: int) -> list[bytes]:
    """The entries of bundle ``n`` of a log of ``size`` entries, read through ``fetch(path)``.

    The bundle holds ``min(256, size - 256n)`` entries, split strictly
    (:func:`decode_bundle` with that count). tlog-tiles, "Partial Tiles": if
    ``fetch`` raises FileNotFoundError or LookupError for a partial bundle, the
    full bundle is read instead (it must split into exactly 256 entries) and its
    first entries returned. A bundle that does not split raises FormatError
    naming the path read and the entries it holds.
    """
    width = min(TILE_WIDTH, size - n * TILE_WIDTH)
    bundle = Tile(0, n, width, is_entries=True)
    path, count = bundle.path, width
    try:
        data = fetch(path)
    except MISSING:
        if not bundle.is_partial:
            raise
        path, count = entries_path(n), TILE_WIDTH
        data = fetch(path)
    try:
        entries = decode_bundle(data, expected_count=count)
    except FormatError as e:
        first = n * TILE_WIDTH
        raise FormatError(
            f"entry bundle of entries {first}..{first + count - 1}: {e.message}",
            code=e.code,
            field=path,
            expected=e.expected,
            found=e.found,
        ) from e
    return entries[:width]


# --- Reading a tree from untrusted tiles -----------------------------------------


def _tile_levels(data: bytes) -> list[list[bytes]]:
    """The tile's hashes, then each Merkle level above them that it completes.

    Entry j of level i is the root of hashes j * 2^i to (j + 1) * 2^i - 1; a full
    tile ends with its own hash, alone at level 8.
    """
    level = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    levels = [level]
    while len(level) > 1:
        level = [
            _sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        levels.append(level)
    return levels


class TileHashReader(HashReader):
    """A :class:`~ledger.core.merkle.HashReader` over tiles fetched from a log or mirror.

    ``size`` and ``root`` must come from a verified checkpoint. ``fetch(path)``
    returns the bytes at a tile path (relative to the log's prefix). No fetched
    byte is used before it is authenticated:

    1. the partial tiles of the tree (one per level where it has any) are
       fetched first, and the root recomputed from them must equal ``root``;
       every hash of a partial tile takes part in the root;
    2. a full tile is authenticated by its hash (the root of its 256 hashes),
       which must equal its entry in its parent tile, itself authenticated in
       the same way or in step 1.

    A tile that fails raises RootMismatchError; a tile of the wrong length
    raises FormatError. Authenticated tiles are cached for the reader's life,
    with the subtree hashes computed from them (about twice the tile bytes).
    Tiles are read with :func:`read_tile`: if fetching a partial tile raises
    FileNotFoundError or LookupError, the full tile is fetched instead and its
    first W hashes used (tlog-tiles, "Partial Tiles").

    Proofs then come from the ordinary functions::

        inclusion_proof(i, size, TileHashReader(size, root, fetch))
    """

    __slots__ = ("_checked_root", "_fetch", "_tiles", "root", "size")

    def __init__(self, size: int, root: bytes, fetch: Callable[[str], bytes]) -> None:
        if not 0 <= size <= MAX_UINT63:
            raise ValueError(f"tree size {size} is out of range")
        if len(root) != HASH_SIZE:
            raise ValueError(f"root must be {HASH_SIZE} bytes, not {len(root)}")
        self.size = size
        self.root = root
        self._fetch = fetch
        self._tiles: dict[tuple[int, int], list[list[bytes]]] = {}
        self._checked_root = False

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        self._check_root()
        out: list[bytes] = []
        for index in indexes:
            level, k = split_stored_hash_index(index)
            if (k + 1) << level > self.size:
                raise ValueError(f"stored hash {index} is not in a tree of {self.size} leaves")
            tile_level, sub = divmod(level, TILE_HEIGHT)
            first = k << sub  # position among the hashes of Merkle level 8 * tile_level
            levels = self._tile(tile_level, first // TILE_WIDTH)
            out.append(levels[sub][(first % TILE_WIDTH) >> sub])
        return out

    def _check_root(self) -> None:
        """Step 1: fetch the partial tiles and check they make up the trusted root."""
        if self._checked_root:
            return
        size = self.size
        if size == 0:
            if self.root != EMPTY_ROOT:
                raise RootMismatchError(
                    "the root of the empty tree is SHA-256('')",
                    field="root",
                    expected=EMPTY_ROOT,
                    found=self.root,
                )
            self._checked_root = True
            return
        edges: dict[tuple[int, int], list[list[bytes]]] = {}
        level = 0
        while size >> (TILE_HEIGHT * level):
            count = size >> (TILE_HEIGHT * level)
            if count % TILE_WIDTH:
                tile = Tile(level, count // TILE_WIDTH, count % TILE_WIDTH)
                edges[level, tile.n] = _tile_levels(
                    read_tile(self._fetch, tile.level, tile.n, tile.width)
                )
            level += 1
        # The root folds, from the right, the complete subtrees of the tree: one
        # per set bit of size, each inside the partial tile of its level.
        subtrees: list[bytes] = []
        for merkle_level in range(size.bit_length() - 1, -1, -1):
            if size >> merkle_level & 1:
                tile_level, sub = divmod(merkle_level, TILE_HEIGHT)
                first = ((size >> merkle_level) - 1) << sub
                levels = edges[tile_level, first // TILE_WIDTH]
                subtrees.append(levels[sub][(first % TILE_WIDTH) >> sub])
        h = subtrees[-1]
        for left in reversed(subtrees[:-1]):
            h = _sha256(_NODE + left + h).digest()
        if h != self.root:
            raise RootMismatchError(
                f"the partial tiles of the tree of size {size} do not lead to its root",
                field="root",
                expected=self.root,
                found=h,
            )
        self._tiles.update(edges)
        self._checked_root = True

    def _tile(self, level: int, n: int) -> list[list[bytes]]:
        """Step 2: the authenticated levels of tile ``n`` of ``level``."""
        levels = self._tiles.get((level, n))
        if levels is not None:
            return levels
        # Partial tiles were all authenticated in step 1, so this one is full.
        tile = Tile(level, n)
        levels = _tile_levels(read_tile(self._fetch, level, n))
        parent = self._tile(level + 1, n // TILE_WIDTH)
        expected = parent[0][n % TILE_WIDTH]
        found = levels[TILE_HEIGHT][0]
        if found != expected:
            raise RootMismatchError(
                f"tile {tile.path} does not match its hash in the tree of size {self.size}",
                field=tile.path,
                expected=expected,
                found=found,
            )
        self._tiles[level, n] = levels
        return levels
