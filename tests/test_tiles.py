"""ledger.core.tiles: C2SP tlog-tiles paths, tile contents, entry bundles and TileHashReader."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import tiles
from ledger.core.errors import FormatError, RootMismatchError, TooLargeError
from ledger.core.merkle import (
    EMPTY_ROOT,
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    stored_hash_index,
    tree_hash,
    verify_inclusion,
)
from ledger.core.tiles import (
    Tile,
    TileHashReader,
    bundles_for_size,
    decode_bundle,
    encode_bundle,
    entries_path,
    new_tiles,
    parse_tile_path,
    read_tile_data,
    tile_path,
    tiles_for_size,
)

# 70,000 is the spec's example; 65,536 + 300 gives a full level 1 tile and
# partial tiles at levels 0, 1 and 2.
BIG = 70_000
DATA = [f"entry {i}".encode() for i in range(BIG)]
LEAVES = [leaf_hash(d) for d in DATA]
STORE = MemoryHashStore()
for _h in LEAVES:
    STORE.append(_h)


def test_doctests() -> None:
    assert doctest.testmod(tiles, raise_on_error=False).failed == 0


# --- Paths -----------------------------------------------------------------------


def test_paths() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 0) == "tile/0/000"
    assert tile_path(3, 1000) == "tile/3/x001/000"
    assert tile_path(1, 67, 17) == "tile/1/067.p/17"
    assert tile_path(63, 0, 1) == "tile/63/000.p/1"
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert entries_path(0, 255) == "tile/entries/000.p/255"
    assert Tile(0, 5, 3).is_partial and not Tile(0, 5).is_partial


@pytest.mark.parametrize(
    ("level", "n", "width"),
    [(-1, 0, 256), (64, 0, 256), (0, -1, 256), (0, 0, 0), (0, 0, 257), (7, 1, 256), (0, 2**55, 1)],
)
def test_impossible_tiles(level: int, n: int, width: int) -> None:
    with pytest.raises(FormatError):
        Tile(level, n, width)


def test_bundles_are_at_level_0() -> None:
    with pytest.raises(FormatError, match="level 0"):
        Tile(1, 0, is_entries=True)


tile_strategy = st.builds(
    lambda level, n, width, entries: Tile(0 if entries else level, n, width, entries),
    st.integers(0, 4),
    st.integers(0, 2**15),
    st.integers(1, 256),
    st.booleans(),
) | st.builds(Tile, st.integers(0, 63), st.just(0), st.integers(1, 256))


@given(tile_strategy)
def test_paths_round_trip(tile: Tile) -> None:
    assert parse_tile_path(tile.path) == tile
    if not tile.is_entries:
        assert tile_path(tile.level, tile.n, tile.width) == tile.path


def test_largest_index_round_trips() -> None:
    tile = Tile(0, (2**63 - 1) // 256, 255)
    assert tile.path == "tile/0/x036/x028/x797/x018/x963/967.p/255"
    assert parse_tile_path(tile.path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile",
        "tile/0",
        "tile/0/",
        "/tile/0/000",
        "tiles/0/000",
        "tile/0/000/",
        "tile/0/67",
        "tile/0/0067",
        "tile/0/x067",
        "tile/0/x000/067",  # 67 has a shorter spelling
        "tile/0/001/002",
        "tile/0/X001/002",
        "tile/0/x01/002",
        "tile/00/000",
        "tile/01/000",
        "tile/+1/000",
        "tile/-1/000",
        "tile/64/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000.p/1/",
        "tile/0/000.p/1x",
        "tile/0/000.P/1",
        "tile/0/x001.p/1/000",
        "tile/entries/000.p/0",
        "tile/entries/067/",
        "tile/data/000",
        "tile/8/0/000",  # sumdb's older layout with the tile height in the path
        "tile/0/\uff10\uff10\uff10",  # fullwidth digits
        "tile/7/001",  # starts beyond any tree of at most 2^63 - 1 leaves
        "tile/0/x001/x002/x003/x004/x005/x006/x007/008",
    ],
)
def test_parse_rejects(path: str) -> None:
    with pytest.raises(FormatError):
        parse_tile_path(path)


# --- The tiles of a tree ---------------------------------------------------------


def _full(level: int, count: int) -> list[Tile]:
    return [Tile(level, n) for n in range(count)]


def test_tiles_for_size() -> None:
    assert tiles_for_size(0) == []
    assert tiles_for_size(1) == [Tile(0, 0, 1)]
    assert tiles_for_size(255) == [Tile(0, 0, 255)]
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_for_size(257) == [Tile(0, 0), Tile(0, 1, 1), Tile(1, 0, 1)]
    assert tiles_for_size(65535) == [*_full(0, 255), Tile(0, 255, 255), Tile(1, 0, 255)]
    assert tiles_for_size(65536) == [*_full(0, 256), Tile(1, 0), Tile(2, 0, 1)]
    assert tiles_for_size(65537) == [*_full(0, 256), Tile(0, 256, 1), Tile(1, 0), Tile(2, 0, 1)]
    # The spec's example: 273 full level 0 tiles, one partial of width 112, one
    # full level 1 tile, a partial of width 17 and a partial level 2 tile of width 1.
    assert tiles_for_size(70000) == [
        *_full(0, 273),
        Tile(0, 273, 112),
        Tile(1, 0),
        Tile(1, 1, 17),
        Tile(2, 0, 1),
    ]
    with pytest.raises(ValueError):
        tiles_for_size(-1)


def test_bundles_for_size() -> None:
    assert bundles_for_size(0) == []
    assert bundles_for_size(513) == [
        Tile(0, 0, is_entries=True),
        Tile(0, 1, is_entries=True),
        Tile(0, 2, 1, is_entries=True),
    ]
    assert [t.path for t in bundles_for_size(256)] == ["tile/entries/000"]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 140_000), st.integers(0, 140_000))
def test_new_tiles_are_the_difference(a: int, b: int) -> None:
    old, new = min(a, b), max(a, b)
    assert new_tiles(old, new) == [
        t for t in tiles_for_size(new) if t not in set(tiles_for_size(old))
    ]


def test_new_tiles_examples() -> None:
    assert new_tiles(5, 5) == []
    assert new_tiles(0, 1) == [Tile(0, 0, 1)]
    assert new_tiles(255, 256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert new_tiles(256, 300) == [Tile(0, 1, 44)]
    with pytest.raises(ValueError):
        new_tiles(3, 2)


# --- Tile contents ---------------------------------------------------------------


def test_tile_data_is_the_spec_hashes() -> None:
    """Hash i of tile N at level L is MTH of the 256^L leaves from (N*256 + i) * 256^L."""
    for tile in tiles_for_size(BIG):
        if tile.level == 0 and 2 < tile.n < 270:
            continue  # the middle of level 0 adds nothing
        data = read_tile_data(tile, STORE)
        assert len(data) == 32 * tile.width
        span = 256**tile.level
        for i in sorted({0, tile.width // 2, tile.width - 1}):
            start = (tile.n * 256 + i) * span
            expected = root_from_leaf_hashes(LEAVES[start : start + span])
            assert data[32 * i : 32 * (i + 1)] == expected, (tile, i)


def test_tile_data_of_a_partial_tile_prefixes_the_full_one() -> None:
    assert read_tile_data(Tile(0, 1, 44), STORE) == read_tile_data(Tile(0, 1), STORE)[: 44 * 32]
    with pytest.raises(ValueError, match="entry bundle"):
        read_tile_data(Tile(0, 0, is_entries=True), STORE)


def test_bundle_entries_hash_to_the_level_0_tile() -> None:
    size = 600
    for bundle in bundles_for_size(size):
        first = bundle.n * 256
        encoded = encode_bundle(DATA[first : first + bundle.width])
        entries = decode_bundle(encoded, bundle.width)
        tile = Tile(0, bundle.n, bundle.width)
        assert b"".join(leaf_hash(e) for e in entries) == read_tile_data(tile, STORE)


# --- Entry bundles ---------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=256))
def test_bundles_round_trip(entries: list[bytes]) -> None:
    data = encode_bundle(entries)
    assert decode_bundle(data) == entries
    assert decode_bundle(data, len(entries)) == entries
    assert len(data) == sum(2 + len(e) for e in entries)


def test_bundle_limits() -> None:
    big = b"x" * 65535
    assert decode_bundle(encode_bundle([big, b""])) == [big, b""]
    assert encode_bundle([b"ab"]) == b"\x00\x02ab"
    with pytest.raises(TooLargeError, match="bundle entry 1"):
        encode_bundle([b"", b"x" * 65536])
    with pytest.raises(ValueError):
        encode_bundle([])
    with pytest.raises(ValueError):
        encode_bundle([b""] * 257)
    for count in (0, 257):
        with pytest.raises(ValueError):
            decode_bundle(b"\x00\x00", count)


@pytest.mark.parametrize(
    ("data", "count", "message"),
    [
        (b"", None, "empty bundle"),
        (b"\x00", None, "truncated length"),
        (b"\x00\x01a\x00", None, "truncated length"),
        (b"\x00\x05abc", None, "truncated"),
        (b"\x00\x01a\x00\x01b", 1, "bytes after the last"),
        (b"\x00\x01a\x00\x01b", 3, "wrong number"),
        (b"\x00\x00" * 257, None, "more than 256"),
        (b"\xff\xff" + b"x" * 65534, None, "truncated"),
    ],
)
def test_bundle_rejects(data: bytes, count: int | None, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        decode_bundle(data, count)


# --- TileHashReader --------------------------------------------------------------


class Mirror:
    """Serves the tiles of STORE's first ``size`` leaves, counting and optionally altering them."""

    def __init__(self, *sizes: int) -> None:
        self.files: dict[str, bytes] = {}
        for size in sizes:
            for tile in tiles_for_size(size):
                self.files[tile.path] = read_tile_data(tile, STORE)
        self.fetched: list[str] = []

    def fetch(self, path: str) -> bytes:
        self.fetched.append(path)
        return self.files[path]

    def tamper(self, path: str, at: int = 0) -> None:
        data = bytearray(self.files[path])
        data[at] ^= 1
        self.files[path] = bytes(data)


def _reader(size: int, mirror: Mirror, root: bytes | None = None) -> TileHashReader:
    return TileHashReader(size, tree_hash(size, STORE) if root is None else root, mirror.fetch)


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 4097, 65536, 65537, BIG])
def test_reader_gives_the_same_proofs(size: int) -> None:
    mirror = Mirror(size)
    reader = _reader(size, mirror)
    assert tree_hash(size, reader) == tree_hash(size, STORE)
    indexes = sorted({0, 1 % size, size // 3, size // 2, size - 2 if size > 1 else 0, size - 1})
    for i in indexes:
        assert inclusion_proof(i, size, reader) == inclusion_proof(i, size, STORE)
        assert consistency_proof(i, size, reader) == consistency_proof(i, size, STORE)
    # Each tile is fetched once, then served from the verified cache.
    assert len(mirror.fetched) == len(set(mirror.fetched))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_reader_proofs_property(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 3000), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    reader = _reader(size, Mirror(size))
    proof = inclusion_proof(index, size, reader)
    verify_inclusion(LEAVES[index], index, size, proof, tree_hash(size, STORE))
    assert proof == inclusion_proof(index, size, STORE)


def test_reader_of_the_empty_tree() -> None:
    mirror = Mirror(0)
    assert TileHashReader(0, EMPTY_ROOT, mirror.fetch).read_hashes([]) == []
    with pytest.raises(RootMismatchError, match="empty tree"):
        TileHashReader(0, LEAVES[0], mirror.fetch).read_hashes([])
    assert mirror.fetched == []


def test_reader_rejects_a_wrong_root() -> None:
    with pytest.raises(RootMismatchError, match="do not lead to its root"):
        tree_hash(300, _reader(300, Mirror(300), root=tree_hash(299, STORE)))


@pytest.mark.parametrize("path", ["tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"])
def test_reader_rejects_a_tampered_partial_tile(path: str) -> None:
    mirror = Mirror(BIG)
    mirror.tamper(path, at=31)
    with pytest.raises(RootMismatchError, match="partial tiles"):
        inclusion_proof(5, BIG, _reader(BIG, mirror))


def test_reader_rejects_a_tampered_full_tile() -> None:
    mirror = Mirror(BIG)
    mirror.tamper("tile/0/005", at=32 * 7)
    reader = _reader(BIG, mirror)
    # Leaves in other tiles are unaffected; the tampered tile never gets used.
    inclusion_proof(3, BIG, reader)
    with pytest.raises(RootMismatchError, match="tile/0/005 does not match") as info:
        reader.read_hashes([stored_hash_index(0, 5 * 256 + 7)])
    assert info.value.expected == read_tile_data(Tile(1, 0), STORE)[5 * 32 : 6 * 32]
    with pytest.raises(RootMismatchError):
        inclusion_proof(5 * 256, BIG, reader)


def test_reader_rejects_a_tampered_parent_tile() -> None:
    mirror = Mirror(BIG)
    mirror.tamper("tile/1/000", at=32 * 9 + 1)
    with pytest.raises(RootMismatchError, match="tile/1/000 does not match"):
        inclusion_proof(0, BIG, _reader(BIG, mirror))


def test_reader_rejects_tiles_of_the_wrong_length() -> None:
    mirror = Mirror(300)
    mirror.files["tile/0/000"] += b"\x00"
    with pytest.raises(FormatError, match="wrong length"):
        inclusion_proof(0, 300, _reader(300, mirror))
    mirror = Mirror(300)
    mirror.files["tile/0/001.p/44"] = mirror.files["tile/0/001.p/44"][:-32]
    with pytest.raises(FormatError, match="wrong length"):
        inclusion_proof(299, 300, _reader(300, mirror))


def test_reader_rejects_hashes_outside_the_tree() -> None:
    reader = _reader(300, Mirror(300))
    with pytest.raises(ValueError, match="not in a tree of 300"):
        reader.read_hashes([stored_hash_index(0, 300)])
    with pytest.raises(ValueError, match="not in a tree of 300"):
        reader.read_hashes([stored_hash_index(9, 0)])
    with pytest.raises(ValueError):
        TileHashReader(1, b"short", Mirror(1).fetch)


def test_reader_falls_back_to_full_tiles() -> None:
    """A log may delete a partial tile once the full one exists (tlog-tiles)."""
    mirror = Mirror(65536)  # has tile/0/001 and tile/1/000, not the partials of size 300
    reader = _reader(300, mirror)
    assert inclusion_proof(299, 300, reader) == inclusion_proof(299, 300, STORE)
    assert "tile/0/001.p/44" in mirror.fetched and "tile/0/001" in mirror.fetched
    # Without the full tile either, the fetch error reaches the caller.
    with pytest.raises(KeyError, match="tile/0/256"):
        inclusion_proof(0, 65536 + 70, _reader(65536 + 70, mirror))


def test_missing_tiles_raise_fetch_errors() -> None:
    def fetch(path: str) -> bytes:
        raise ConnectionError(path)

    with pytest.raises(ConnectionError):
        TileHashReader(300, tree_hash(300, STORE), fetch).read_hashes([0])


# --- read_tile and read_bundle: the partial fallbacks of tlog-tiles -------------------


class _Files:
    """A fetch over a dict of paths that says what it was asked, missing paths raising
    ``missing`` (a KeyError by default, as the dict itself would)."""

    def __init__(self, files: dict[str, bytes], missing: type[Exception] = KeyError) -> None:
        self.files = files
        self.missing = missing
        self.asked: list[str] = []

    def __call__(self, path: str) -> bytes:
        self.asked.append(path)
        if path not in self.files:
            raise self.missing(path)
        return self.files[path]


_ENTRIES = [f"entry {i}".encode() * (i % 5 + 1) for i in range(300)]
_FULL = encode_bundle(_ENTRIES[:256])


@pytest.mark.parametrize("missing", [KeyError, FileNotFoundError, LookupError])
def test_read_bundle_falls_back_to_the_full_bundle(missing: type[Exception]) -> None:
    # bundle 0 of a log of 40 entries, once the log has grown past 256
    fetch = _Files({entries_path(0): _FULL}, missing)
    assert tiles.read_bundle(fetch, 0, 40) == _ENTRIES[:40]
    assert fetch.asked == [entries_path(0, 40), entries_path(0)]
    # the partial one is used when it is there
    fetch = _Files({entries_path(0, 40): encode_bundle(_ENTRIES[:40]), entries_path(0): b""})
    assert tiles.read_bundle(fetch, 0, 40) == _ENTRIES[:40]
    assert fetch.asked == [entries_path(0, 40)]
    # full bundles and the bundles after the first
    fetch = _Files({entries_path(1, 44): encode_bundle(_ENTRIES[256:300])})
    assert tiles.read_bundle(fetch, 1, 300) == _ENTRIES[256:]
    assert tiles.read_bundle(_Files({entries_path(0): _FULL}), 0, 300) == _ENTRIES[:256]


def test_read_bundle_without_a_fallback() -> None:
    # a missing full bundle, or a partial one with no full one either, is missing
    with pytest.raises(KeyError, match="tile/entries/000"):
        tiles.read_bundle(_Files({}), 0, 256)
    fetch = _Files({})
    with pytest.raises(KeyError, match="'tile/entries/000'"):
        tiles.read_bundle(fetch, 0, 40)
    assert fetch.asked == [entries_path(0, 40), entries_path(0)]
    # other failures are not "missing": no fallback
    fetch = _Files({entries_path(0): _FULL}, OSError)
    with pytest.raises(OSError):
        tiles.read_bundle(fetch, 0, 40)
    assert fetch.asked == [entries_path(0, 40)]


def test_read_bundle_checks_what_it_read() -> None:
    # the full bundle read in place of a partial one must hold 256 entries
    for bad in (_FULL[:-3], _FULL + encode_bundle([b"x"]), encode_bundle(_ENTRIES[:41])):
        with pytest.raises(FormatError) as e:
            tiles.read_bundle(_Files({entries_path(0): bad}), 0, 40)
        assert e.value.field == entries_path(0)
        assert "entry bundle of entries 0..255" in e.value.message
    # a partial bundle must hold exactly its entries
    for bad in (encode_bundle(_ENTRIES[:39]), encode_bundle(_ENTRIES[:41]), b""):
        with pytest.raises(FormatError) as e:
            tiles.read_bundle(_Files({entries_path(0, 40): bad}), 0, 40)
        assert e.value.field == entries_path(0, 40)
        assert "entry bundle of entries 0..39" in e.value.message
        assert isinstance(e.value.__cause__, FormatError)


def _tile_files(size: int) -> tuple[MemoryHashStore, dict[str, bytes]]:
    store = MemoryHashStore()
    for i in range(size):
        store.append(leaf_hash(i.to_bytes(4, "big")))
    return store, {t.path: read_tile_data(t, store) for t in tiles_for_size(size)}


@pytest.mark.parametrize("missing", [KeyError, FileNotFoundError, LookupError])
def test_read_tile_falls_back_to_the_full_tile(missing: type[Exception]) -> None:
    store, files = _tile_files(300)
    assert tile_path(0, 0, 40) not in files  # the tree of 300 has tile 0 and tile 1.p/44
    fetch = _Files(files, missing)
    want = b"".join(store.read_hashes([stored_hash_index(0, i) for i in range(40)]))
    assert tiles.read_tile(fetch, 0, 0, 40) == want
    assert fetch.asked == [tile_path(0, 0, 40), tile_path(0, 0)]
    assert tiles.read_tile(fetch, 0, 1, 44) == files[tile_path(0, 1, 44)]
    assert tiles.read_tile(fetch, 0, 0) == files[tile_path(0, 0)]
    # a full tile is never "read" from anything else
    with pytest.raises(missing):
        tiles.read_tile(_Files({}, missing), 0, 0)
    fetch = _Files({}, missing)
    with pytest.raises(missing):
        tiles.read_tile(fetch, 1, 0, 1)
    assert fetch.asked == [tile_path(1, 0, 1), tile_path(1, 0)]
    fetch = _Files(files, OSError)
    with pytest.raises(OSError):
        tiles.read_tile(fetch, 0, 0, 40)
    assert fetch.asked == [tile_path(0, 0, 40)]


def test_read_tile_checks_the_length_of_what_it_read() -> None:
    _, files = _tile_files(300)
    full = files[tile_path(0, 0)]
    # the full tile read in place of a partial one must be whole
    for bad in (full[:-32], full[:-1], full + bytes(32)):
        with pytest.raises(FormatError) as e:
            tiles.read_tile(_Files({tile_path(0, 0): bad}), 0, 0, 40)
        err = e.value
        assert (err.code, err.field, err.index) == ("bad_tile", tile_path(0, 0), 0)
        assert (err.expected, err.found) == (8192, len(bad))
        assert ("truncated" in err.message) == (len(bad) < 8192)
    # a partial tile must be exactly its hashes
    path = tile_path(0, 1, 44)
    for bad in (files[path][:-1], files[path] + b"\0"):
        with pytest.raises(FormatError) as e:
            tiles.read_tile(_Files({path: bad}), 0, 1, 44)
        assert (e.value.field, e.value.index, e.value.expected) == (path, 256, 44 * 32)
    # the index names the first leaf the tile covers, at any level
    with pytest.raises(FormatError) as e:
        tiles.read_tile(_Files({tile_path(1, 3): b""}), 1, 3)
    assert e.value.index == 3 * 256 * 256
