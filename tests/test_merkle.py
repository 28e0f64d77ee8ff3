"""ledger.core.merkle: RFC 9162 hashing, stored hashes, proofs and their verification.

The RFC's verification loops (sections 2.1.3.2 and 2.1.4.2) have an inner "shift
right until odd or zero" step that only non-power-of-two sizes exercise, so every
tree size from 0 to 128 is checked exhaustively, and the proofs are compared with
an independent recursive implementation of the RFC's definitions
(tests/vectors/merkle/generate.py).
"""

from __future__ import annotations

import base64
import doctest
import hashlib
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import merkle
from ledger.core.errors import FormatError, ProofError, RootMismatchError
from ledger.core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryHashStore,
    consistency_path_roots,
    consistency_proof,
    inclusion_proof,
    is_power_of_two,
    leaf_hash,
    node_hash,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    split_stored_hash_index,
    stored_hash_count,
    stored_hash_index,
    stored_hashes_for_append,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parent / "vectors" / "merkle"
EXHAUSTIVE = 128
BIG = 1500


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("merkle_vectors", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
LEAVES = [leaf_hash(f"leaf {i}".encode()) for i in range(BIG)]
STORE = MemoryHashStore()
for _h in LEAVES:
    STORE.append(_h)
# Reference roots of every prefix, computed from the definition.
ROOTS = [root_from_leaf_hashes(LEAVES[:n]) for n in range(EXHAUSTIVE + 1)]


def root(size: int) -> bytes:
    return ROOTS[size] if size <= EXHAUSTIVE else tree_hash(size, STORE)


# --- Known answers ---------------------------------------------------------------


def test_rfc_known_answers() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert (
        node_hash(b"\x00" * 32, b"\x11" * 32)
        == hashlib.sha256(b"\x01" + b"\x00" * 32 + b"\x11" * 32).digest()
    )
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_rfc6962_test_tree_roots() -> None:
    """The 8-leaf tree of the RFC 6962 test data shared by CT implementations."""
    leaves = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43"]
    leaves += [bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
    store = MemoryHashStore()
    for d in leaves:
        store.append(leaf_hash(d))
    assert tree_hash(8, store).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )
    assert tree_hash(5, store).hex() == (
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"
    )
    trees = json.loads((VECTORS / "trees.json").read_text(encoding="utf-8"))
    got = [base64.b64encode(tree_hash(n, store)).decode() for n in range(9)]
    assert got == trees["rfc6962_roots"]


def test_doctests() -> None:
    assert doctest.testmod(merkle, raise_on_error=False).failed == 0


# --- Stored hashes ---------------------------------------------------------------


def test_stored_hash_layout() -> None:
    # Leaves 0, 1, then their parent, leaf 2, leaf 3, parent of 2-3, then the root of 0-3.
    assert [stored_hash_index(0, i) for i in range(4)] == [0, 1, 3, 4]
    assert [stored_hash_index(1, 0), stored_hash_index(1, 1), stored_hash_index(2, 0)] == [2, 5, 6]
    assert [stored_hash_count(n) for n in range(6)] == [0, 1, 3, 4, 7, 8]
    with pytest.raises(ValueError):
        stored_hash_index(-1, 0)
    with pytest.raises(ValueError):
        split_stored_hash_index(-1)


def test_split_stored_hash_index_inverts_it() -> None:
    for i in range(stored_hash_count(BIG)):
        level, n = split_stored_hash_index(i)
        assert stored_hash_index(level, n) == i
    huge = stored_hash_index(40, 2**20 + 3)
    assert split_stored_hash_index(huge) == (40, 2**20 + 3)


def test_store_holds_exactly_the_stored_hashes() -> None:
    store = MemoryHashStore()
    for n in range(300):
        expected = stored_hashes_for_append(n, LEAVES[n], store)
        assert store.append(LEAVES[n]) == n
        assert store.read_hashes(range(stored_hash_count(n), stored_hash_count(n + 1))) == expected
        assert store.size == n + 1
    # The stored hash at (level, n) is the root of its 2^level leaves.
    for i in range(stored_hash_count(300)):
        level, n = split_stored_hash_index(i)
        span = LEAVES[n << level : (n + 1) << level]
        assert store.read_hashes([i]) == [root_from_leaf_hashes(span)]


def test_store_rejects_missing_hashes() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        STORE.read_hashes([stored_hash_count(BIG)])
    with pytest.raises(ValueError, match="not in a tree"):
        STORE.read_hashes([-1])
    with pytest.raises(ValueError):
        MemoryHashStore().append(b"short")


class _LyingReader:
    def __init__(self, answer: list[bytes]) -> None:
        self.answer = answer

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return self.answer


def test_a_misbehaving_reader_is_caught() -> None:
    with pytest.raises(FormatError, match="wrong number"):
        tree_hash(3, _LyingReader([LEAVES[0]]))
    with pytest.raises(FormatError, match="wrong length"):
        tree_hash(4, _LyingReader([b"\x00" * 31]))


# --- Exhaustive small trees ------------------------------------------------------


def test_every_size_root_and_compact_range() -> None:
    cr = CompactRange()
    for n in range(EXHAUSTIVE + 1):
        assert tree_hash(n, STORE) == ROOTS[n]
        assert cr.size == n
        assert cr.root() == ROOTS[n]
        assert CompactRange.from_reader(n, STORE).hashes == cr.hashes
        assert len(cr.hashes) == n.bit_count()
        if n < EXHAUSTIVE:
            cr.append(LEAVES[n])
    assert tree_hash(0, STORE) == EMPTY_ROOT


def test_every_inclusion_proof_verifies() -> None:
    for size in range(1, EXHAUSTIVE + 1):
        for index in range(size):
            proof = inclusion_proof(index, size, STORE)
            verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


def test_every_consistency_proof_verifies() -> None:
    for new in range(EXHAUSTIVE + 1):
        for old in range(new + 1):
            proof = consistency_proof(old, new, STORE)
            verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def test_proofs_match_the_rfc_definitions() -> None:
    """PATH and PROOF of RFC 9162, computed recursively by the vector generator."""
    tree = GEN.Tree([f"leaf {i}".encode() for i in range(64)])
    assert tree.hashes == LEAVES[:64]
    for n in range(1, 65):
        for m in range(n):
            assert inclusion_proof(m, n, STORE) == tree.path(m, 0, n)
        for m in range(n + 1):
            assert consistency_proof(m, n, STORE) == tree.proof(m, n)


def test_inner_loop_of_the_verifiers() -> None:
    """Cases a verifier without RFC 9162's "shift right until odd" step rejects."""
    # Leaf 4 of 5: one proof hash, the root of leaves 0-3, then fn must shift to 0.
    verify_inclusion(LEAVES[4], 4, 5, [tree_hash(4, STORE)], ROOTS[5])
    verify_inclusion(LEAVES[6], 6, 7, inclusion_proof(6, 7, STORE), ROOTS[7])
    verify_consistency(6, 7, ROOTS[6], ROOTS[7], consistency_proof(6, 7, STORE))


def test_larger_trees() -> None:
    for size, index in [(BIG, 0), (BIG, BIG - 1), (1024, 1023), (1025, 1024), (777, 500)]:
        verify_inclusion(
            LEAVES[index], index, size, inclusion_proof(index, size, STORE), root(size)
        )
    for old, new in [(1, BIG), (1024, BIG), (1023, 1024), (BIG - 1, BIG), (333, 777)]:
        verify_consistency(old, new, root(old), root(new), consistency_proof(old, new, STORE))
    assert tree_hash(BIG, STORE) == root_from_leaf_hashes(LEAVES) == STORE.root()


# --- Edge cases and error messages -----------------------------------------------


def test_proof_generation_rejects_impossible_arguments() -> None:
    for index, size in [(0, 0), (5, 5), (-1, 3)]:
        with pytest.raises(ValueError, match="not in a tree"):
            inclusion_proof(index, size, STORE)
    for old, new in [(5, 4), (-1, 3)]:
        with pytest.raises(ValueError):
            consistency_proof(old, new, STORE)
    with pytest.raises(ValueError):
        tree_hash(-1, STORE)
    assert consistency_proof(0, 10, STORE) == []
    assert consistency_proof(10, 10, STORE) == []


def test_inclusion_edge_cases() -> None:
    h = LEAVES[0]
    verify_inclusion(h, 0, 1, [], h)
    with pytest.raises(ProofError, match="not below tree size 0"):
        verify_inclusion(h, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="not below tree size 3"):
        verify_inclusion(h, 3, 3, inclusion_proof(2, 3, STORE), ROOTS[3])
    with pytest.raises(ProofError, match="negative"):
        verify_inclusion(h, -1, 3, [], ROOTS[3])
    proof = inclusion_proof(0, 8, STORE)
    with pytest.raises(ProofError) as info:
        verify_inclusion(h, 0, 8, proof[:2], ROOTS[8])
    assert "wrong inclusion proof length (expected 3, found 2)" in str(info.value)
    with pytest.raises(ProofError, match="proof hash 1 is not a 32-byte hash"):
        verify_inclusion(h, 0, 8, [proof[0], proof[1][:31], proof[2]], ROOTS[8])
    with pytest.raises(ProofError, match="leaf hash is not a 32-byte hash"):
        verify_inclusion(h + b"\x00", 0, 8, proof, ROOTS[8])
    with pytest.raises(ProofError, match="root is not a 32-byte hash"):
        verify_inclusion(h, 0, 8, proof, ROOTS[8][1:])
    with pytest.raises(RootMismatchError) as mismatch:
        verify_inclusion(LEAVES[1], 0, 8, proof, ROOTS[8])
    assert mismatch.value.expected == ROOTS[8]
    assert mismatch.value.code == "root_mismatch"


def test_consistency_edge_cases() -> None:
    # Equal sizes: empty proof, equal roots.
    verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    with pytest.raises(RootMismatchError, match="two different roots for tree size 5"):
        verify_consistency(5, 5, ROOTS[5], ROOTS[4], [])
    with pytest.raises(ProofError, match="proof length"):
        verify_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])
    # The empty tree is a prefix of every tree, with an empty proof and its true root.
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 7, EMPTY_ROOT, ROOTS[7], [])
    with pytest.raises(ProofError, match="proof length"):
        verify_consistency(0, 7, EMPTY_ROOT, ROOTS[7], [ROOTS[7]])
    with pytest.raises(RootMismatchError, match="empty tree"):
        verify_consistency(0, 7, ROOTS[1], ROOTS[7], [])
    # A tree cannot shrink.
    with pytest.raises(ProofError, match="smaller than old tree size"):
        verify_consistency(7, 6, ROOTS[7], ROOTS[6], [])
    with pytest.raises(ProofError, match="negative"):
        verify_consistency(-1, 6, ROOTS[0], ROOTS[6], [])
    # 0 < old < new needs a non-empty proof (RFC 9162 2.1.4.2 step 1).
    with pytest.raises(ProofError, match="expected 1, found 0"):
        verify_consistency(4, 8, ROOTS[4], ROOTS[8], [])
    proof = consistency_proof(3, 7, STORE)
    with pytest.raises(RootMismatchError, match="old tree size 3"):
        verify_consistency(3, 7, ROOTS[2], ROOTS[7], proof)
    with pytest.raises(RootMismatchError, match="new tree size 7"):
        verify_consistency(3, 7, ROOTS[3], ROOTS[6], proof)
    with pytest.raises(ProofError, match="new root is not a 32-byte hash"):
        verify_consistency(3, 7, ROOTS[3], b"", proof)


def test_compact_range_resume_and_checks() -> None:
    cr = CompactRange.from_reader(1000, STORE)
    resumed = CompactRange.from_hashes(cr.size, cr.hashes)
    for h in LEAVES[1000:BIG]:
        resumed.append(h)
    assert resumed.root() == tree_hash(BIG, STORE)
    with pytest.raises(ValueError, match="subtree roots"):
        CompactRange.from_hashes(3, [LEAVES[0]])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange.from_hashes(1, [b"x"])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"x")
    assert CompactRange().root() == EMPTY_ROOT


# --- Properties ------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=BIG)


@st.composite
def inclusion_claims(draw: st.DrawFn) -> tuple[int, int, list[bytes]]:
    size = draw(sizes)
    index = draw(st.integers(min_value=0, max_value=size - 1))
    return index, size, inclusion_proof(index, size, STORE)


@st.composite
def consistency_claims(draw: st.DrawFn) -> tuple[int, int, list[bytes]]:
    new = draw(sizes)
    old = draw(st.integers(min_value=1, max_value=new))
    return old, new, consistency_proof(old, new, STORE)


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    h = bytearray(proof[i])
    h[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:i], bytes(h), *proof[i + 1 :]]


@settings(max_examples=150, deadline=None)
@given(inclusion_claims(), st.data())
def test_inclusion_properties(claim: tuple[int, int, list[bytes]], data: st.DataObject) -> None:
    index, size, proof = claim
    leaf, good_root = LEAVES[index], root(size)
    verify_inclusion(leaf, index, size, proof, good_root)

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="flipped hash")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(RootMismatchError):
            verify_inclusion(leaf, index, size, _flip(proof, i, bit), good_root)
        with pytest.raises(ProofError, match="proof length"):
            verify_inclusion(leaf, index, size, proof[:i] + proof[i + 1 :], good_root)
    extra = data.draw(st.binary(min_size=32, max_size=32), label="inserted hash")
    at = data.draw(st.integers(0, len(proof)), label="inserted at")
    with pytest.raises(ProofError, match="proof length"):
        verify_inclusion(leaf, index, size, [*proof[:at], extra, *proof[at:]], good_root)

    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda j: j != index), label="index")
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, size, proof, good_root)
        with pytest.raises(RootMismatchError):
            verify_inclusion(LEAVES[other], index, size, proof, good_root)

    # A size whose proofs have another length, or that excludes the index, fails.
    for wrong in (size * 2, size // 2, index):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, wrong, proof, good_root)
    wrong_size = data.draw(st.integers(1, BIG), label="wrong size")
    if index >= wrong_size or len(inclusion_proof(index, wrong_size, STORE)) != len(proof):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, wrong_size, proof, good_root)

    bad_root = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != good_root))
    with pytest.raises(RootMismatchError):
        verify_inclusion(leaf, index, size, proof, bad_root)


@settings(max_examples=150, deadline=None)
@given(consistency_claims(), st.data())
def test_consistency_properties(claim: tuple[int, int, list[bytes]], data: st.DataObject) -> None:
    old, new, proof = claim
    old_root, new_root = root(old), root(new)
    claimed = (old_root, new_root)
    verify_consistency(old, new, old_root, new_root, proof)

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="flipped hash")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(RootMismatchError):
            verify_consistency(old, new, old_root, new_root, _flip(proof, i, bit))
        with pytest.raises(ProofError, match="proof length"):
            verify_consistency(old, new, old_root, new_root, proof[:i] + proof[i + 1 :])
    extra = data.draw(st.binary(min_size=32, max_size=32), label="inserted hash")
    at = data.draw(st.integers(0, len(proof)), label="inserted at")
    with pytest.raises(ProofError, match="proof length"):
        verify_consistency(old, new, old_root, new_root, [*proof[:at], extra, *proof[at:]])

    bad = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r not in claimed))
    with pytest.raises(RootMismatchError):
        verify_consistency(old, new, bad, new_root, proof)
    with pytest.raises(RootMismatchError):
        verify_consistency(old, new, old_root, bad, proof)

    # Other sizes whose proofs have another shape fail; so does a shrinking tree.
    wrong_old = data.draw(st.integers(1, BIG), label="wrong old size")
    wrong_new = data.draw(st.integers(1, BIG), label="wrong new size")
    for o, n in [(wrong_old, new), (old, wrong_new), (new + 1, new)]:
        if o > n or len(consistency_proof(o, n, STORE)) != len(proof):
            with pytest.raises(ProofError):
                verify_consistency(o, n, old_root, new_root, proof)


# --- Vectors ---------------------------------------------------------------------


def test_committed_vectors_are_the_generator_output(tmp_path: Path) -> None:
    GEN.main(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in VECTORS.iterdir() if p.suffix == ".json")
    assert written == committed
    for name in written:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name


def _load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return cases


def _b(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _outcome(check: Any, *args: Any) -> str | None:
    try:
        check(*args)
    except ProofError as e:
        return e.code
    return None


def test_inclusion_vectors() -> None:
    cases = _load("inclusion.json")
    assert sum(c["error"] is None for c in cases) > 40
    for c in cases:
        got = _outcome(
            verify_inclusion,
            _b(c["leaf_hash"]),
            c["leaf_index"],
            c["tree_size"],
            [_b(p) for p in c["proof"]],
            _b(c["root"]),
        )
        assert got == c["error"], c["name"]


def test_consistency_vectors() -> None:
    cases = _load("consistency.json")
    assert sum(c["error"] is None for c in cases) > 40
    for c in cases:
        got = _outcome(
            verify_consistency,
            c["size1"],
            c["size2"],
            _b(c["root1"]),
            _b(c["root2"]),
            [_b(p) for p in c["proof"]],
        )
        assert got == c["error"], c["name"]


def test_vector_proofs_are_the_ones_we_generate() -> None:
    trees = json.loads((VECTORS / "trees.json").read_text(encoding="utf-8"))
    small = MemoryHashStore()
    for d in trees["rfc6962_leaves"]:
        small.append(leaf_hash(_b(d)))
    big = MemoryHashStore()
    for i in range(1000):
        big.append(leaf_hash(f"endorsement-ledger merkle vector leaf {i}".encode()))
    for size, want in trees["big_roots"].items():
        assert base64.b64encode(tree_hash(int(size), big)).decode() == want

    # Trees of up to 8 leaves use the RFC 6962 leaves, larger ones the generated leaves.
    for c in _load("inclusion.json"):
        if c["error"] is None:
            store = small if c["tree_size"] <= 8 else big
            proof = inclusion_proof(c["leaf_index"], c["tree_size"], store)
            assert [base64.b64encode(p).decode() for p in proof] == c["proof"], c["name"]
    for c in _load("consistency.json"):
        if c["error"] is None:
            store = small if c["size2"] <= 8 else big
            proof = consistency_proof(c["size1"], c["size2"], store)
            assert [base64.b64encode(p).decode() for p in proof] == c["proof"], c["name"]


# --- root_from_* against the recursive definitions, exhaustively -------------------

ROOT_FROM_SIZES = 64
REF_TREE = GEN.Tree([f"leaf {i}".encode() for i in range(ROOT_FROM_SIZES)])
OTHER = leaf_hash(b"not in the tree")


def _mutations(proof: list[bytes]) -> list[list[bytes]]:
    """The proof, each hash replaced in turn, one hash short, one too many."""
    out = [[*proof[:i], OTHER, *proof[i + 1 :]] for i in range(len(proof))]
    return [*out, proof[:-1], [*proof, OTHER]]


def test_reference_tree_is_ours() -> None:
    assert REF_TREE.hashes == LEAVES[:ROOT_FROM_SIZES]


def test_root_from_inclusion_proof_every_leaf_up_to_64() -> None:
    for size in range(1, ROOT_FROM_SIZES + 1):
        for index in range(size):
            proof = REF_TREE.path(index, 0, size)
            assert proof == inclusion_proof(index, size, STORE)
            leaf = LEAVES[index]
            assert root_from_inclusion_proof(leaf, index, size, proof) == REF_TREE.mth(0, size)
            # Whatever the proof and the leaf, the root is the one the definition gives,
            # or, where the definition gives none, ProofError.
            for claim_leaf, claim in [(OTHER, proof)] + [(leaf, p) for p in _mutations(proof)]:
                want = GEN.inclusion_root(index, size, claim_leaf, claim)
                if want is None:
                    with pytest.raises(ProofError):
                        root_from_inclusion_proof(claim_leaf, index, size, claim)
                else:
                    assert root_from_inclusion_proof(claim_leaf, index, size, claim) == want
        with pytest.raises(ProofError):
            root_from_inclusion_proof(LEAVES[0], size, size, [])


def test_root_from_consistency_proof_every_pair_up_to_64() -> None:
    for new in range(1, ROOT_FROM_SIZES + 1):
        new_root = REF_TREE.mth(0, new)
        for old in range(1, new + 1):
            old_root = REF_TREE.mth(0, old)
            proof = REF_TREE.proof(old, new)
            assert proof == consistency_proof(old, new, STORE)
            assert root_from_consistency_proof(old, new, old_root, proof) == new_root
            for claim in _mutations(proof) if proof else [[OTHER]]:
                want = GEN.consistency_roots(old, new, claim, old_root, True)
                if want is None:
                    with pytest.raises(ProofError) as e:
                        root_from_consistency_proof(old, new, old_root, claim)
                    assert not isinstance(e.value, RootMismatchError)
                elif want[0] != old_root:
                    with pytest.raises(RootMismatchError):
                        root_from_consistency_proof(old, new, old_root, claim)
                else:
                    assert root_from_consistency_proof(old, new, old_root, claim) == want[1]
            # A wrong old root never leads to the new root: the proof does not lead back
            # to it, or (the old tree a complete subtree, which the proof leaves out)
            # it leads to another new root. Equal sizes give the old root back.
            if old == new:
                assert root_from_consistency_proof(old, new, OTHER, []) == OTHER
            elif is_power_of_two(old):
                assert root_from_consistency_proof(old, new, OTHER, proof) != new_root
            else:
                with pytest.raises(RootMismatchError):
                    root_from_consistency_proof(old, new, OTHER, proof)
    with pytest.raises(ProofError):
        root_from_consistency_proof(0, 5, EMPTY_ROOT, [])
    with pytest.raises(ProofError):
        root_from_consistency_proof(5, 4, root(5), [])


def test_consistency_path_roots_every_pair_up_to_64() -> None:
    """The path of fork evidence: both roots, the old one from the path alone."""
    for new in range(2, ROOT_FROM_SIZES + 1):
        for old in range(1, new):
            proof = REF_TREE.proof(old, new)
            first = REF_TREE.mth(0, old)
            path = [first, *proof] if is_power_of_two(old) else proof
            assert consistency_path_roots(old, new, path) == (first, REF_TREE.mth(0, new))
            for claim in _mutations(path):
                seed, rest = (claim[0], claim[1:]) if is_power_of_two(old) else (OTHER, claim)
                want = GEN.consistency_roots(old, new, rest, seed, True) if claim else None
                if want is None:
                    with pytest.raises(ProofError):
                        consistency_path_roots(old, new, claim)
                else:
                    assert consistency_path_roots(old, new, claim) == want
    for old, new in [(0, 3), (3, 3), (4, 3)]:
        with pytest.raises(ProofError):
            consistency_path_roots(old, new, [OTHER])


def test_is_power_of_two() -> None:
    assert [n for n in range(-2, 70) if is_power_of_two(n)] == [1, 2, 4, 8, 16, 32, 64]
