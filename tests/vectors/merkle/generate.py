"""Generate the Merkle tree test vectors (RFC 9162 section 2.1).

    python tests/vectors/merkle/generate.py [OUTPUT_DIR]

This script deliberately does NOT use ``ledger``: it computes trees and proofs
straight from the recursive definitions of RFC 9162 (MTH, PATH, PROOF and
SUBPROOF, sections 2.1.1, 2.1.3.1 and 2.1.4.1) with hashlib, and checks proofs
with a structural verifier that follows the same recursion, not the RFC's
bit-twiddling algorithm of sections 2.1.3.2 and 2.1.4.2 that ``ledger.core.merkle``
implements. The output is deterministic; tests/test_merkle.py checks that the
committed files are exactly this script's output.

Leaves: the eight leaves of the RFC 6962 test data used across CT
implementations (``""``, ``00``, ``10``, ``2021``, ``3031``, ``40414243``,
``5051...57``, ``6061...6f``) for trees of up to 8 leaves, then for larger
trees leaf i is the UTF-8 text ``endorsement-ledger merkle vector leaf <i>``.

Outputs (in OUTPUT_DIR, default: this directory), all hashes and leaves in standard base64:
  trees.json        leaves, their leaf hashes and the root of every size 0..8,
                    and roots of larger sizes of the second tree
  inclusion.json    inclusion cases {name, leaf_index, tree_size, leaf_hash,
                    proof, root, error}
  consistency.json  consistency cases {name, size1, size2, root1, root2, proof,
                    error}

``error`` is null for a valid case, else the code of the error a verifier of
this project raises: ``bad_proof`` when the inputs cannot be a proof for the
claimed index and sizes (a hash not 32 bytes long, index >= size, size1 >
size2, a proof of the wrong length), ``root_mismatch`` when a well-shaped proof
leads to another root. Each invalid case is named after its mutation of a valid
one (``wrong-leaf``, ``trailing-garbage``, ``proof[1]-bit-3``, ``size2*2``...);
a mutation that happens to give another valid claim (``tree-size+1`` can) is
left out.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
BIG_SIZE = 1000
BIG_LEAVES = [f"endorsement-ledger merkle vector leaf {i}".encode() for i in range(BIG_SIZE)]
# (leaf index, tree size) pairs of the larger tree: around powers of two,
# tile boundaries (256) and the right edge.
BIG_INCLUSION = [(8, 9), (5, 13), (100, 255), (256, 257), (511, 700), (999, 1000)]
BIG_CONSISTENCY = [(7, 13), (100, 255), (128, 256), (256, 257), (255, 1000)]
WRONG_HASH = hashlib.sha256(b"endorsement-ledger merkle vector: wrong").digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def split(n: int) -> int:
    """The largest power of two strictly less than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.hashes = [leaf(d) for d in leaves]
        self.mth = functools.cache(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) (RFC 9162 section 2.1.1)."""
        n = hi - lo
        if n == 0:
            return sha256(b"")
        if n == 1:
            return self.hashes[lo]
        k = split(n)
        return node(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]) (RFC 9162 section 2.1.3.1), m relative to lo."""
        n = hi - lo
        if n == 1:
            return []
        k = split(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        """SUBPROOF(m, D[lo:hi], b) (RFC 9162 section 2.1.4.1), m relative to lo."""
        n = hi - lo
        if m == n:
            return [] if whole else [self.mth(lo, hi)]
        k = split(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, whole), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[0:n]); empty for m = 0 (the empty tree is a prefix of any tree)."""
        return [] if m == 0 else self.subproof(m, 0, n, True)


# --- Structural verifiers: the recursions above, run backwards -------------------


def inclusion_root(index: int, size: int, leaf_hash: bytes, proof: list[bytes]) -> bytes | None:
    """The root a proof leads to, or None if it has the wrong length."""
    if size == 1:
        return leaf_hash if not proof else None
    if not proof:
        return None
    k = split(size)
    if index < k:
        sub = inclusion_root(index, k, leaf_hash, proof[:-1])
        return None if sub is None else node(sub, proof[-1])
    sub = inclusion_root(index - k, size - k, leaf_hash, proof[:-1])
    return None if sub is None else node(proof[-1], sub)


def consistency_roots(
    m: int, n: int, proof: list[bytes], old_root: bytes, whole: bool
) -> tuple[bytes, bytes] | None:
    """(old, new) roots of SUBPROOF's subtree that a proof leads to, or None if misshapen."""
    if m == n:
        if whole:
            return (old_root, old_root) if not proof else None
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    k = split(n)
    if m <= k:
        sub = consistency_roots(m, k, proof[:-1], old_root, whole)
        return None if sub is None else (sub[0], node(sub[1], proof[-1]))
    sub = consistency_roots(m - k, n - k, proof[:-1], old_root, False)
    return None if sub is None else (node(proof[-1], sub[0]), node(proof[-1], sub[1]))


def inclusion_error(c: dict[str, Any]) -> str | None:
    leaf_hash, root = unb64(c["leaf_hash"]), unb64(c["root"])
    proof = [unb64(p) for p in c["proof"]]
    index, size = c["leaf_index"], c["tree_size"]
    if any(len(h) != 32 for h in [leaf_hash, root, *proof]) or not 0 <= index < size:
        return "bad_proof"
    got = inclusion_root(index, size, leaf_hash, proof)
    if got is None:
        return "bad_proof"
    return None if got == root else "root_mismatch"


def consistency_error(c: dict[str, Any]) -> str | None:
    root1, root2 = unb64(c["root1"]), unb64(c["root2"])
    proof = [unb64(p) for p in c["proof"]]
    m, n = c["size1"], c["size2"]
    if any(len(h) != 32 for h in [root1, root2, *proof]) or not 0 <= m <= n:
        return "bad_proof"
    if m == 0:
        if proof:
            return "bad_proof"
        return None if root1 == sha256(b"") else "root_mismatch"
    got = consistency_roots(m, n, proof, root1, True)
    if got is None:
        return "bad_proof"
    return None if got == (root1, root2) else "root_mismatch"


# --- Cases -----------------------------------------------------------------------


def flipped_positions(length: int) -> list[int]:
    """Proof hashes to flip a bit in: all of a short proof; first, middle, last of a long one."""
    return list(range(length)) if length <= 4 else [0, length // 2, length - 1]


def flip(h: bytes, bit: int) -> bytes:
    return h[: bit // 8] + bytes([h[bit // 8] ^ (1 << (bit % 8))]) + h[bit // 8 + 1 :]


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def b64s(hs: list[bytes]) -> list[str]:
    return [b64(h) for h in hs]


def mutated(
    base: dict[str, Any],
    mutations: list[tuple[str, dict[str, Any]]],
    error_of: Callable[[dict[str, Any]], str | None],
) -> list[dict[str, Any]]:
    assert error_of(base) is None, base["name"]
    out = [base]
    seen = set()
    for label, change in mutations:
        case = {**base, **change, "name": f"{base['name']}/{label}"}
        error = error_of(case)
        key = json.dumps({k: v for k, v in case.items() if k != "name"}, sort_keys=True)
        if error is None or key in seen:
            continue  # the mutation made another true claim, or repeats one
        seen.add(key)
        case["error"] = error
        out.append(case)
    return out


def inclusion_cases(tree: Tree, index: int, size: int) -> list[dict[str, Any]]:
    proof = tree.path(index, 0, size)
    root = tree.mth(0, size)
    base = {
        "name": f"size-{size}/index-{index}",
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": b64(tree.hashes[index]),
        "proof": b64s(proof),
        "root": b64(root),
        "error": None,
    }
    muts: list[tuple[str, dict[str, Any]]] = [
        ("wrong-leaf", {"leaf_hash": b64(leaf(b"not the leaf"))}),
        ("leaf-index+1", {"leaf_index": index + 1}),
        ("leaf-index^2", {"leaf_index": index ^ 2}),
        ("tree-size*2", {"tree_size": size * 2}),
        ("tree-size/2", {"tree_size": size // 2}),
        ("tree-size+1", {"tree_size": size + 1}),
        ("wrong-root", {"root": b64(WRONG_HASH)}),
        ("trailing-root", {"root": b64(root + b"\x00")}),
        ("preceding-root", {"root": b64(b"\x00" + root)}),
        ("trailing-garbage", {"proof": b64s([*proof, b""])}),
        ("preceding-garbage", {"proof": b64s([b"", *proof])}),
        ("extended-proof", {"proof": b64s([*proof, WRONG_HASH])}),
        ("inserted-component", {"proof": b64s([*proof[:1], WRONG_HASH, *proof[1:]])}),
    ]
    if index > 0:
        muts.append(("leaf-index-1", {"leaf_index": index - 1}))
    if size > 1:
        muts.append(("tree-size-1", {"tree_size": size - 1}))
    if proof:
        muts.append(("truncated-proof", {"proof": b64s(proof[:-1])}))
        if len(proof) > 1:
            muts.append(("swapped-proof", {"proof": b64s([proof[1], proof[0], *proof[2:]])}))
    for i in flipped_positions(len(proof)):
        bit = (i * 67 + 3) % 256
        changed = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        muts.append((f"proof[{i}]-bit-{bit}", {"proof": b64s(changed)}))
    return mutated(base, muts, inclusion_error)


def consistency_cases(tree: Tree, m: int, n: int) -> list[dict[str, Any]]:
    proof = tree.proof(m, n)
    root1, root2 = tree.mth(0, m), tree.mth(0, n)
    base = {
        "name": f"size-{m}-to-{n}",
        "size1": m,
        "size2": n,
        "root1": b64(root1),
        "root2": b64(root2),
        "proof": b64s(proof),
        "error": None,
    }
    muts: list[tuple[str, dict[str, Any]]] = [
        ("size1+1", {"size1": m + 1}),
        ("size1^2", {"size1": m ^ 2}),
        ("size2+1", {"size2": n + 1}),
        ("size2*2", {"size2": n * 2}),
        ("size2/2", {"size2": n // 2}),
        ("wrong-root1", {"root1": b64(WRONG_HASH)}),
        ("wrong-root2", {"root2": b64(WRONG_HASH)}),
        ("swapped-roots", {"root1": b64(root2), "root2": b64(root1)}),
        ("trailing-root1", {"root1": b64(root1 + b"\x00")}),
        ("trailing-root2", {"root2": b64(root2 + b"\x00")}),
        ("trailing-garbage", {"proof": b64s([*proof, b""])}),
        ("preceding-garbage", {"proof": b64s([b"", *proof])}),
        ("extended-proof", {"proof": b64s([*proof, WRONG_HASH])}),
        ("preceding-proof", {"proof": b64s([WRONG_HASH, *proof])}),
    ]
    if m > 0:
        muts.append(("size1-1", {"size1": m - 1}))
    if n > m:
        muts.append(("size2-1", {"size2": n - 1}))
    if proof:
        muts.append(("empty-proof", {"proof": []}))
        muts.append(("truncated-proof", {"proof": b64s(proof[:-1])}))
    for i in flipped_positions(len(proof)):
        bit = (i * 67 + 4) % 256
        changed = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        muts.append((f"proof[{i}]-bit-{bit}", {"proof": b64s(changed)}))
    return mutated(base, muts, consistency_error)


def write_cases(path: Path, cases: list[dict[str, Any]]) -> None:
    lines = ",\n".join(json.dumps(c) for c in cases)
    path.write_text(f"[\n{lines}\n]\n", encoding="utf-8")


def main(out: Path) -> None:
    small = Tree(RFC6962_LEAVES)
    big = Tree(BIG_LEAVES)
    trees = {
        "rfc6962_leaves": [b64(d) for d in small.leaves],
        "rfc6962_leaf_hashes": b64s(small.hashes),
        "rfc6962_roots": [b64(small.mth(0, n)) for n in range(len(small.leaves) + 1)],
        "big_leaf_template": "endorsement-ledger merkle vector leaf <i>",
        "big_roots": {
            str(n): b64(big.mth(0, n)) for n in (9, 13, 255, 256, 257, 511, 512, 513, 700, 1000)
        },
    }
    (out / "trees.json").write_text(json.dumps(trees, indent=2) + "\n", encoding="utf-8")

    inclusion: list[dict[str, Any]] = []
    for size in range(1, 9):
        for index in range(size):
            inclusion += inclusion_cases(small, index, size)
    for index, size in BIG_INCLUSION:
        inclusion += inclusion_cases(big, index, size)
    write_cases(out / "inclusion.json", inclusion)

    consistency: list[dict[str, Any]] = []
    for n in range(9):
        for m in range(n + 1):
            consistency += consistency_cases(small, m, n)
    for m, n in BIG_CONSISTENCY:
        consistency += consistency_cases(big, m, n)
    write_cases(out / "consistency.json", consistency)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
