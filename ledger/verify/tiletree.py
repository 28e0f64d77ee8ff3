"""The tree of a streamed log, one incomplete tile per level, checking every tile it completes.

C2SP tlog-tiles ("Merkle Tree"): hash ``i`` of tile ``N`` at level ``L`` is the
RFC 9162 root of the ``256**L`` leaves starting at ``(N*256 + i) * 256**L``; a
partial tile holds the ``floor(size / 256**L) mod 256`` hashes of the rightmost,
incomplete tile of its level. :class:`TileTree` appends leaf hashes one by one and
keeps exactly those rightmost hashes of every level, which is all it takes to
compute the root (a compact range at tile granularity, RFC 9162 section 2.1.1) and
to resume later (``ledger-verify --state``). Whenever a tile fills up it is fetched
from the source and compared, hash by hash, with the recomputed one; the partial
tiles are compared at the end. Memory: at most 255 hashes per level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ledger.core import merkle, tiles
from ledger.core.errors import FormatError, RootMismatchError

WIDTH = tiles.TILE_WIDTH


class TileTree:
    """The tree of the entries seen so far, kept as one incomplete tile per level.

    ``levels[L]`` holds the hashes of the rightmost tile at level ``L`` that is not
    yet full: ``floor(size / 256**L) mod 256`` hashes, each the root of ``256**L``
    leaves. When a tile fills up it is compared with the source's copy (through
    ``fetch``) and its root moves up a level; :meth:`finish` compares the
    partial tiles and returns the RFC 9162 root.
    """

    def __init__(
        self,
        fetch: Callable[[str], bytes],
        size: int = 0,
        levels: Sequence[Sequence[bytes]] = (),
    ) -> None:
        self._fetch = fetch
        self.size = size
        self.levels: list[list[bytes]] = [list(level) for level in levels]
        self.tiles_checked = 0
        for level, hashes in enumerate(self.levels):
            want = (size >> (8 * level)) % WIDTH
            if len(hashes) != want:
                raise FormatError(
                    f"saved tree has a wrong number of hashes at level {level}",
                    field="tiles",
                    expected=want,
                    found=len(hashes),
                )
        if size >> (8 * len(self.levels)):
            raise FormatError("saved tree lacks upper levels", field="tiles")

    def add(self, leaf_hash: bytes) -> None:
        """Append one leaf; check every tile it completes."""
        level = 0
        node = leaf_hash
        while True:
            if level == len(self.levels):
                self.levels.append([])
            hashes = self.levels[level]
            hashes.append(node)
            if len(hashes) < WIDTH:
                break
            # Leaf number ``size`` sits in tile ``size >> 8(L+1)`` at every level L.
            self._check_tile(level, self.size >> (8 * (level + 1)), hashes)
            node = merkle.root_from_leaf_hashes(hashes)
            self.levels[level] = []
            level += 1
        self.size += 1

    def root(self) -> bytes:
        """The RFC 9162 root of the leaves so far."""
        # Subtrees of 2**height leaves, left to right; equal heights merge into the
        # next (they are aligned), which leaves strictly decreasing heights, whose
        # right fold is the root (RFC 9162 section 2.1.1: split at the largest power
        # of two smaller than the size).
        stack: list[tuple[int, bytes]] = []
        for level in range(len(self.levels) - 1, -1, -1):
            for h in self.levels[level]:
                height, node = 8 * level, h
                while stack and stack[-1][0] == height:
                    node = merkle.node_hash(stack.pop()[1], node)
                    height += 1
                stack.append((height, node))
        # One subtree per set bit of size: exactly a compact range.
        return merkle.CompactRange.from_hashes(self.size, [h for _, h in stack]).root()

    def finish(self) -> bytes:
        """Check the partial tiles of the current size; return the root."""
        for level, hashes in enumerate(self.levels):
            if hashes:
                self._check_tile(level, self.size >> (8 * (level + 1)), hashes)
        return self.root()

    def _check_tile(self, level: int, n: int, hashes: Sequence[bytes]) -> None:
        width = len(hashes)
        path = tiles.tile_path(level, n, width)
        data = tiles.read_tile(self._fetch, level, n, width)
        self.tiles_checked += 1
        expected = b"".join(hashes)
        if data != expected:
            i = next(k for k in range(width) if data[32 * k : 32 * k + 32] != hashes[k])
            lo = (n * WIDTH + i) << (8 * level)
            hi = lo + (1 << (8 * level)) - 1
            span = f"entry {lo}" if level == 0 else f"entries {lo}..{hi}"
            raise RootMismatchError(
                f"tile disagrees with the entries at hash {i} ({span})",
                code="tile_mismatch",
                index=lo,
                field=path,
                expected=hashes[i],
                found=data[32 * i : 32 * i + 32],
            )


__all__ = ["WIDTH", "TileTree"]
