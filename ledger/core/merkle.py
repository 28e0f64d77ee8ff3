"""The Merkle tree of RFC 9162, section 2.1 (the same tree as RFC 6962), with SHA-256.

Hashing (RFC 9162 section 2.1.1)::

    MTH({})         = SHA-256("")
    leaf hash of d  = SHA-256(0x00 || d)
    node hash       = SHA-256(0x01 || left || right)

A tree of n > 1 leaves splits at k, the largest power of two strictly less than
n; an odd leaf is never duplicated.

    >>> EMPTY_ROOT.hex()[:8], leaf_hash(b"").hex()[:8]
    ('e3b0c442', '6e340b9c')

Storage follows golang.org/x/mod/sumdb/tlog. The tree is kept as its *stored
hashes*: the hash of every complete subtree, in the order in which appending
leaves completes them. Appending leaf n stores its leaf hash, then the hash of
each complete subtree that leaf closes. The hash at ``level`` (0 for leaves)
number ``n`` is at ``stored_hash_index(level, n)``, and a tree of n leaves has
``stored_hash_count(n) == 2*n - popcount(n)`` stored hashes. Proof functions
read stored hashes through a :class:`HashReader`, so one code path serves a
database, a list in memory and tiles fetched from a mirror.

    >>> [stored_hash_index(0, i) for i in range(4)], stored_hash_index(1, 0)
    ([0, 1, 3, 4], 2)

Proofs are those of RFC 9162: inclusion (section 2.1.3.1, verified as in
2.1.3.2) and consistency (2.1.4.1, verified as in 2.1.4.2). Their hashes are
ordered from the leaf upwards, as in RFC 6962, so that sumdb's
``tlog.CheckRecord`` and ``tlog.CheckTree`` accept them. Verification raises
:class:`~ledger.core.errors.ProofError` (or its subclass
:class:`~ledger.core.errors.RootMismatchError`) and returns nothing.

Proof *generation* takes trusted arguments: an index or size outside the tree
is the caller's mistake and raises ``ValueError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from ledger.core.errors import FormatError, ProofError, RootMismatchError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "HashReader",
    "MemoryHashStore",
    "consistency_path_roots",
    "consistency_proof",
    "inclusion_proof",
    "is_power_of_two",
    "leaf_hash",
    "node_hash",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hashes_for_append",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_sha256 = hashlib.sha256
#: MTH({}), the hash of the empty tree (RFC 9162 section 2.1.1).
EMPTY_ROOT = _sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of a leaf (RFC 9162 section 2.1.1)."""
    return _sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an inner node (RFC 9162 section 2.1.1)."""
    return _sha256(_NODE + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, computed from the definition (the slow reference).

    Builds each level from the one below: pairing left to right and carrying an
    odd last hash up unchanged gives exactly the RFC's split at the largest
    power of two below n.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class HashReader(Protocol):
    """Where the proof functions read stored hashes from.

    ``read_hashes`` returns the hashes at the given stored hash indexes (see
    :func:`stored_hash_index`), in the order asked, and raises if one is missing.
    """

    __slots__ = ()

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]: ...


# --- Stored hash indexes ---------------------------------------------------------


def stored_hash_count(n_leaves: int) -> int:
    """The number of stored hashes of a tree of ``n_leaves`` leaves.

    Level l holds floor(n / 2^l) complete subtrees; summed over l that is
    2n - popcount(n).
    """
    if n_leaves < 0:
        raise ValueError(f"negative tree size {n_leaves}")
    return 2 * n_leaves - n_leaves.bit_count()


def stored_hash_index(level: int, n: int) -> int:
    """The stored hash index of the hash number ``n`` at ``level`` (0 = leaves).

    That hash is stored while appending its subtree's last leaf
    j = (n + 1) * 2^level - 1: after the stored_hash_count(j) hashes of the
    earlier leaves, then the leaf hash and the ``level - 1`` subtrees below it.
    """
    if level < 0 or n < 0:
        raise ValueError(f"no stored hash at level {level}, index {n}")
    last_leaf = ((n + 1) << level) - 1
    return 2 * last_leaf - last_leaf.bit_count() + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The inverse of :func:`stored_hash_index`: ``(level, n)`` of a stored hash index."""
    if index < 0:
        raise ValueError(f"negative stored hash index {index}")
    # Find the leaf j whose append wrote this index: the largest j with
    # stored_hash_count(j) <= index. i // 2 undershoots by at most popcount + 1,
    # and each further leaf adds at least one stored hash.
    leaf = index // 2
    while stored_hash_count(leaf + 1) <= index:
        leaf += 1
    level = index - stored_hash_count(leaf)
    return level, ((leaf + 1) >> level) - 1


def _subtree_indexes(lo: int, hi: int, out: list[int]) -> None:
    """Append the stored indexes of the complete subtrees making up leaves [lo, hi).

    ``lo`` must be a multiple of the largest power of two not above hi - lo, as
    every range of an RFC 9162 proof is; the subtrees then follow the bits of
    hi - lo from the highest, left to right.
    """
    width = hi - lo
    level = width.bit_length() - 1
    while level >= 0:
        if width >> level & 1:
            out.append(stored_hash_index(level, lo >> level))
            lo += 1 << level
        level -= 1


def _fold(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """The hash of a range from its complete subtrees' hashes ``hashes[start:end]``."""
    h = hashes[end - 1]
    for i in range(end - 2, start - 1, -1):
        h = _sha256(_NODE + hashes[i] + h).digest()
    return h


def _read(reader: HashReader, indexes: list[int]) -> list[bytes]:
    hashes = reader.read_hashes(indexes)
    if len(hashes) != len(indexes):
        raise FormatError(
            "hash reader returned the wrong number of hashes",
            expected=len(indexes),
            found=len(hashes),
        )
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise FormatError("hash reader returned a hash of the wrong length", found=len(h))
    return hashes


def _ranges_hashes(ranges: list[tuple[int, int]], reader: HashReader) -> list[bytes]:
    """The MTH of each leaf range, read from the stored hashes in one batch."""
    indexes: list[int] = []
    bounds: list[int] = [0]
    for lo, hi in ranges:
        _subtree_indexes(lo, hi, indexes)
        bounds.append(len(indexes))
    hashes = _read(reader, indexes)
    return [_fold(hashes, bounds[i], bounds[i + 1]) for i in range(len(ranges))]


# --- Building the tree -----------------------------------------------------------


def stored_hashes_for_append(n: int, leaf_hash: bytes, reader: HashReader) -> list[bytes]:
    """The hashes to store, in order, when leaf number ``n`` (0-based) is appended.

    They are the leaf hash, then one hash per complete subtree the leaf closes:
    as many as n has trailing one bits, each reading its left sibling.
    """
    if n < 0:
        raise ValueError(f"negative leaf number {n}")
    if len(leaf_hash) != HASH_SIZE:
        raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, not {len(leaf_hash)}")
    closed = (n ^ (n + 1)).bit_length() - 1  # trailing one bits of n
    siblings = _read(
        reader, [stored_hash_index(level, (n >> level) - 1) for level in range(closed)]
    )
    h = leaf_hash
    out = [h]
    for sibling in siblings:
        h = _sha256(_NODE + sibling + h).digest()
        out.append(h)
    return out


def tree_hash(size: int, reader: HashReader) -> bytes:
    """The root hash of the tree of the first ``size`` leaves (O(log size) reads)."""
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes([(0, size)], reader)[0]


# --- Proofs (RFC 9162 sections 2.1.3.1 and 2.1.4.1) ------------------------------


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs form PATH(index, D[0:size]), leaf first."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs form PROOF(old_size, D[0:new_size]), deepest first.

    RFC 9162 SUBPROOF(m, D[lo:hi], b): when m reaches hi the subtree is the old
    tree itself (b true: the verifier has its root, nothing to send) or one of
    its right parts (b false: send its hash).
    """
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, new_size
    whole_old_tree = True
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
            whole_old_tree = False
    if not whole_old_tree:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return _ranges_hashes(_inclusion_ranges(index, size), reader)


def consistency_proof(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """The RFC 9162 consistency proof from the tree of ``old_size`` to ``new_size`` leaves.

    Empty when old_size is 0 or equal to new_size.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    return _ranges_hashes(_consistency_ranges(old_size, new_size), reader)


# --- Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) -----------------------


def _check_hash(value: bytes, field: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(
            f"{field} is not a {HASH_SIZE}-byte hash", field=field, expected=32, found=len(value)
        )


def _check_proof(proof: Sequence[bytes], expected_length: int, what: str) -> None:
    if len(proof) != expected_length:
        raise ProofError(
            f"wrong {what} proof length", field="proof", expected=expected_length, found=len(proof)
        )
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(
                f"{what} proof hash {i} is not a {HASH_SIZE}-byte hash",
                field="proof",
                expected=HASH_SIZE,
                found=len(h),
            )


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` is 1, 2, 4, 8...: a tree of that size is one complete subtree."""
    return n > 0 and n & (n - 1) == 0


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` as leaf ``index`` of ``size``.

    RFC 9162 section 2.1.3.2, steps 1-5, without the final comparison (which
    :func:`verify_inclusion` adds); transparency-dev's ``RootFromInclusionProof``.
    Raises ProofError if the proof cannot be one for this index and size.
    """
    _check_hash(leaf_hash, "leaf hash")
    if index < 0 or size < 0:
        raise ProofError("negative leaf index or tree size", expected=">= 0", found=(index, size))
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    # The length is implied by index and size: one hash per level below the
    # point where the paths to the leaf and to the last leaf part (inner), then
    # one per left sibling above it (border). Checking it first gives a precise
    # error; the loop below would reject a wrong length as well.
    inner = (index ^ (size - 1)).bit_length()
    _check_proof(proof, inner + (index >> inner).bit_count(), "inclusion")

    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = _sha256(_NODE + p + r).digest()
            if not fn & 1:
                # A right edge: skip the levels where this node has no sibling.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(_NODE + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves and ``root``.

    RFC 9162 section 2.1.3.2: :func:`root_from_inclusion_proof`, then compare.
    Raises ProofError if the proof cannot be one for this index and size,
    RootMismatchError if it leads to another root.
    """
    _check_hash(root, "root")
    r = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if r != root:
        raise RootMismatchError(
            f"inclusion proof of leaf {index} leads to another root for tree size {size}",
            field="root",
            expected=root,
            found=r,
        )


def consistency_path_roots(
    old_size: int, new_size: int, path: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """The (old, new) roots that a consistency path leads to, for 0 < old_size < new_size.

    RFC 9162 section 2.1.4.2, steps 2-8, without the final comparisons. ``path``
    is the consistency proof with, when ``old_size`` is a power of two, the hash
    of the first ``old_size`` leaves in front (step 2 puts the claimed old root
    there; fork evidence puts the new tree's own hash instead, so that it proves
    a fork on its own: :mod:`ledger.core.fork`). Raises ProofError if the path
    has the wrong shape for these sizes.
    """
    if not 0 < old_size < new_size:
        raise ProofError(
            "no consistency path for these sizes",
            field="proof",
            expected="0 < old size < new size",
            found=(old_size, new_size),
        )
    expected = len(_consistency_ranges(old_size, new_size)) + is_power_of_two(old_size)
    _check_proof(path, expected, "consistency path")
    return _consistency_walk(old_size, new_size, path)


def _consistency_walk(old_size: int, new_size: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE + c + fr).digest()
            sr = _sha256(_NODE + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(_NODE + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    return fr, sr


def root_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root of the tree of ``new_size`` that ``proof`` leads to from (old_size, old_root).

    RFC 9162 section 2.1.4.2 up to, not including, the comparison with the new
    root (which :func:`verify_consistency` adds); transparency-dev's
    ``RootFromConsistencyProof``: the proof must lead back to ``old_root``.
    Equal sizes need an empty proof and give ``old_root``. The empty tree
    (``old_size`` 0) is a prefix of every tree and no proof leads from it to a
    root: that case is :func:`verify_consistency`'s alone. Raises ProofError if
    the proof cannot be one for these sizes, RootMismatchError if it leads to
    another old root.
    """
    _check_hash(old_root, "old root")
    if old_size < 0:
        raise ProofError("negative tree size", field="old size", found=old_size)
    if new_size < old_size:
        raise ProofError(
            f"new tree size {new_size} is smaller than old tree size {old_size}",
            field="new size",
        )
    if old_size == new_size:
        _check_proof(proof, 0, "consistency")
        return old_root
    if old_size == 0:
        raise ProofError(
            "no consistency proof leads from the empty tree to a root", field="old size"
        )
    _check_proof(proof, len(_consistency_ranges(old_size, new_size)), "consistency")
    # Step 2: when the old tree is a complete subtree of the new one, its root
    # is the first hash of the path and the proof omits it.
    path = [old_root, *proof] if is_power_of_two(old_size) else proof
    fr, sr = _consistency_walk(old_size, new_size, path)
    if fr != old_root:
        raise RootMismatchError(
            f"consistency proof leads to another root for old tree size {old_size}",
            field="old root",
            expected=old_root,
            found=fr,
        )
    return sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends the tree (old_size, old_root).

    RFC 9162 section 2.1.4.2: :func:`root_from_consistency_proof`, then compare.
    Equal sizes need an empty proof and equal roots; the empty tree is a prefix
    of every tree, with an empty proof (its root must still be MTH({})). Raises
    ProofError, or RootMismatchError when the proof leads to other roots.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if old_size == 0 and new_size >= 0:
        _check_proof(proof, 0, "consistency")
        if old_root != EMPTY_ROOT:
            raise RootMismatchError(
                "the root of the empty tree is SHA-256('')",
                field="old root",
                expected=EMPTY_ROOT,
                found=old_root,
            )
        return
    sr = root_from_consistency_proof(old_size, new_size, old_root, proof)
    if old_size == new_size and sr != new_root:
        raise RootMismatchError(
            f"two different roots for tree size {old_size}",
            field="new root",
            expected=old_root,
            found=new_root,
        )
    if sr != new_root:
        raise RootMismatchError(
            f"consistency proof leads to another root for new tree size {new_size}",
            field="new root",
            expected=new_root,
            found=sr,
        )


# --- In-memory trees -------------------------------------------------------------


class CompactRange:
    """The roots of the complete subtrees of the leaves appended so far (left to right).

    This is all it takes to extend a tree and compute its root: O(log n) memory,
    amortised O(1) hashes per leaf (two on average). Used by the verifier to
    recompute a root while streaming leaves.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Resume from a saved state: ``size`` and its subtree roots (see :attr:`hashes`)."""
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {max(size, 0).bit_count()} subtree roots")
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"subtree root must be {HASH_SIZE} bytes, not {len(h)}")
        cr = cls()
        cr.size = size
        cr._stack = list(hashes)
        return cr

    @classmethod
    def from_reader(cls, size: int, reader: HashReader) -> CompactRange:
        """The compact range of the first ``size`` leaves of a stored tree."""
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        indexes: list[int] = []
        if size:
            _subtree_indexes(0, size, indexes)
        return cls.from_hashes(size, _read(reader, indexes))

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree roots, largest (leftmost) first: one per set bit of ``size``."""
        return tuple(self._stack)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf by its leaf hash."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, not {len(leaf_hash)}")
        stack = self._stack
        h = leaf_hash
        n = self.size
        while n & 1:  # each trailing one bit of size closes a subtree
            h = _sha256(_NODE + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        return _fold(stack, 0, len(stack))


class MemoryHashStore(HashReader):
    """A tree kept as a list of its stored hashes (tests, the verifier and benchmarks)."""

    __slots__ = ("_hashes", "_range")

    def __init__(self) -> None:
        self._hashes: list[bytes] = []
        self._range = CompactRange()

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._range.size

    def append(self, leaf_hash: bytes) -> int:
        """Append a leaf by its leaf hash; return its index.

        Stores the same hashes as :func:`stored_hashes_for_append`, taking the
        left siblings from the compact range instead of reading them.
        """
        cr = self._range
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, not {len(leaf_hash)}")
        index = cr.size
        hashes = self._hashes
        stack = cr._stack
        hashes.append(leaf_hash)
        h = leaf_hash
        n = index
        while n & 1:
            h = _sha256(_NODE + stack.pop() + h).digest()
            hashes.append(h)
            n >>= 1
        stack.append(h)
        cr.size = index + 1
        return index

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        hashes = self._hashes
        count = len(hashes)
        for i in indexes:
            if not 0 <= i < count:
                raise ValueError(f"stored hash {i} is not in a tree of {self.size} leaves")
        return [hashes[i] for i in indexes]

    def root(self) -> bytes:
        """MTH of the whole tree."""
        return self._range.root()
