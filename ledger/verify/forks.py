"""Does the source's checkpoint extend the one verified before? (docs/spec.md,
"Verification procedure", steps 8-10.)

With a stored :class:`~ledger.verify.statefile.VerifierState`, the new checkpoint
must not be smaller (step 8), a checkpoint of the same size must have the same
root, and a larger one must extend the stored tree: an RFC 9162 consistency proof
(section 2.1.4) computed from the source's tiles, each tile checked against the
new root (``ledger.core.tiles.TileHashReader``), must lead back to the stored
root (step 9). Otherwise the log forked, and :class:`~ledger.core.fork.ForkError`
carries the portable evidence: both signed checkpoints and the path that joins
them (step 10, ``ledger.core.fork``).
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.core import merkle, tiles
from ledger.core.checkpoint import Checkpoint
from ledger.core.errors import ProofError
from ledger.core.fork import ForkError, derived_old_root, evidence_path, fork_evidence
from ledger.verify.statefile import VerifierState


def check_consistency(
    fetch: Callable[[str], bytes], state: VerifierState, cp: Checkpoint, signed: bytes
) -> None:
    """Steps 8-10: raise ForkError unless ``cp`` extends the stored checkpoint.

    ``fetch`` reads the source's tiles (``Source.fetch``).
    """
    old_size, new_size = state.size, cp.size
    if new_size < old_size:
        raise ForkError(
            "the source's checkpoint is older than the stored verified checkpoint "
            "(the log or mirror went back: a rollback)",
            fork_evidence(state.checkpoint, signed, []),
            field="size",
            expected=f">= {old_size}",
            found=new_size,
        )
    if new_size == old_size:
        if cp.root != state.root:
            raise ForkError(
                "two signed checkpoints of the same size have different roots",
                fork_evidence(state.checkpoint, signed, []),
                field="root",
                expected=state.root,
                found=cp.root,
            )
        return
    if old_size == 0:
        return  # the empty tree is a prefix of every tree
    # The proof is built from the source's tiles, each checked against the new root:
    # a failure here is a damaged source, not a fork.
    reader = tiles.TileHashReader(new_size, cp.root, fetch)
    proof = merkle.consistency_proof(old_size, new_size, reader)
    try:
        merkle.verify_consistency(old_size, new_size, state.root, cp.root, proof)
    except ProofError:
        path = evidence_path(old_size, new_size, reader)
        raise ForkError(
            "the source's checkpoint is not consistent with the stored verified checkpoint",
            fork_evidence(state.checkpoint, signed, path),
            field="root",
            expected=state.root,
            found=derived_old_root(old_size, new_size, path),
        ) from None


__all__ = ["check_consistency"]
