"""Fork evidence: two checkpoints signed by one log that no consistency proof can join.

docs/spec.md, "Verification procedure", step 10: a log must never sign two
inconsistent checkpoints, and two such checkpoints, both with valid log signatures,
prove that it did. ``ledger-verify log --state`` saves them as a JSON file that
anyone holding the log's key can check (``ledger-verify evidence FILE``)::

    {
      "format": "endorsement-ledger/fork-evidence/v1",
      "checkpoints": ["<signed checkpoint>", "<signed checkpoint>"],
      "consistency_proof": ["<base64 hash>", ...],
      "about": "..."
    }

For two checkpoints of one size the proof is empty: different roots are the fork.
Otherwise the proof is the RFC 9162 consistency path (section 2.1.4) from the
smaller tree to the larger, computed from the larger tree's own hashes, with the
smaller tree's subtree hash first when its size is a power of two (where RFC 9162
would take the claimed old root instead). :func:`check_evidence` runs the section
2.1.4.2 algorithm forward: the path must rebuild the larger checkpoint's root,
which authenticates its hashes, while giving another root than the smaller
checkpoint's for the first leaves.

A checkpoint smaller than the one verified before is also reported as a fork (step
8), with an empty proof; on its own that evidence shows a rollback, not a proof.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from ledger.core import merkle
from ledger.core.checkpoint import Checkpoint
from ledger.core.encoding import b64decode_strict, b64encode
from ledger.core.errors import ConsistencyError, FormatError, ProofError, VerificationError

EVIDENCE_FORMAT = "endorsement-ledger/fork-evidence/v1"


class CheckpointOpener(Protocol):
    """What decides whether a checkpoint is the log's (``ledger.verify.trust.Trust``)."""

    def open_checkpoint(self, data: bytes) -> Checkpoint: ...


class ForkError(ConsistencyError):
    """The source's checkpoint is not consistent with the stored one: the log forked.

    ``evidence`` is the portable proof (see :func:`fork_evidence`).
    """

    def __init__(self, message: str, evidence: dict[str, Any], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.evidence = evidence


def fork_evidence(old: bytes, new: bytes, proof: Sequence[bytes]) -> dict[str, Any]:
    """The portable proof that two signed checkpoints are inconsistent.

    ``proof`` is the RFC 9162 consistency path from the older to the newer tree
    (empty for equal sizes), with the older tree's subtree hash first when its size
    is a power of two. Check it with :func:`check_evidence`.
    """
    return {
        "format": EVIDENCE_FORMAT,
        "checkpoints": [old.decode("utf-8"), new.decode("utf-8")],
        "consistency_proof": [b64encode(h) for h in proof],
        "about": (
            "Two checkpoints signed by one log that no consistency proof can join. "
            "Check with: ledger-verify evidence FILE --log-key VKEY"
        ),
    }


def evidence_bytes(evidence: dict[str, Any]) -> bytes:
    return json.dumps(evidence, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def check_evidence(data: bytes, trust: CheckpointOpener) -> tuple[Checkpoint, Checkpoint]:
    """Check fork evidence: return the two checkpoints if they prove a fork, else raise.

    Both checkpoints must verify under ``trust``. Equal sizes must have different
    roots. Otherwise the consistency path, read with RFC 9162 section 2.1.4.2,
    must rebuild the larger checkpoint's root while giving a root other than the
    smaller one's for its first leaves.
    """
    try:
        doc = json.loads(data)
        if doc["format"] != EVIDENCE_FORMAT:
            raise FormatError(
                "not fork evidence",
                field="format",
                expected=EVIDENCE_FORMAT,
                found=doc["format"],
            )
        texts = [str(t).encode("utf-8") for t in doc["checkpoints"]]
        proof = [
            b64decode_strict(str(h), field="consistency_proof", length=32)
            for h in doc["consistency_proof"]
        ]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise FormatError(f"not fork evidence: {e!r}", field="evidence") from None
    if len(texts) != 2:
        raise FormatError(
            "evidence must hold two checkpoints", field="checkpoints", expected=2, found=len(texts)
        )
    a, b = (trust.open_checkpoint(t) for t in texts)
    small, large = (a, b) if a.size <= b.size else (b, a)
    if small.size == large.size:
        if small.root == large.root:
            raise VerificationError("the two checkpoints agree: no fork", code="no_fork")
        return a, b
    if small.size == 0:
        raise VerificationError("the empty tree is consistent with every tree", code="no_fork")
    old_root, new_root = merkle.consistency_path_roots(small.size, large.size, proof)
    if new_root != large.root:
        raise VerificationError(
            "the consistency path does not lead to the larger checkpoint's root: it proves nothing",
            code="bad_evidence",
            field="consistency_proof",
            expected=large.root,
            found=new_root,
        )
    if old_root == small.root:
        raise VerificationError("the checkpoints are consistent: no fork", code="no_fork")
    return a, b


def derived_old_root(m: int, n: int, proof: Sequence[bytes]) -> bytes | None:
    """The root of the first ``m`` leaves that evidence's path gives, None if it gives none."""
    try:
        return merkle.consistency_path_roots(m, n, proof)[0]
    except ProofError:
        return None


def evidence_path(old_size: int, new_size: int, reader: merkle.HashReader) -> list[bytes]:
    """The path fork evidence carries, from the trusted hashes of the tree of ``new_size``.

    The RFC 9162 consistency proof from ``old_size`` to ``new_size`` with, when
    ``old_size`` is a power of two, the new tree's own hash of those leaves first
    (where RFC 9162 takes the claimed old root), so that the evidence proves the
    fork alone (see :func:`check_evidence`). Needs 0 < old_size < new_size.
    """
    proof = merkle.consistency_proof(old_size, new_size, reader)
    if merkle.is_power_of_two(old_size):
        return [merkle.tree_hash(old_size, reader), *proof]
    return proof


__all__ = [
    "EVIDENCE_FORMAT",
    "CheckpointOpener",
    "ForkError",
    "check_evidence",
    "derived_old_root",
    "evidence_bytes",
    "evidence_path",
    "fork_evidence",
]
