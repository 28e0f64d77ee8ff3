"""What the user trusts, and the checkpoint checked against it (docs/spec.md,
"Verification procedure", steps 1-2).

A :class:`Trust` is built from what the user supplied, never from anything a
source serves: the log's Ed25519 note keys (vkeys, C2SP signed-note) or a C2SP
tlog-policy file (log keys plus a witness quorum). :func:`fetch_checkpoint` reads
the source's ``checkpoint`` and opens it against that trust: the log's signature,
the origin and, with a policy, the witnesses' quorum (``ledger.core.policy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core.checkpoint import Checkpoint, open_checkpoint
from ledger.core.errors import FormatError, LedgerError
from ledger.core.note import Ed25519Verifier, Verifier, parse_vkey
from ledger.core.policy import Policy, parse_policy
from ledger.verify.errors import LocatedError
from ledger.verify.source import Source


@dataclass(frozen=True, slots=True)
class Trust:
    """What the user trusts: the log's origin and keys, and optionally a witness policy.

    Build it with :meth:`from_vkeys` or :meth:`from_policy`; never from anything
    the source serves.
    """

    origin: str
    verifiers: tuple[Verifier, ...]
    policy: Policy | None = None  # when the trust came from a policy file

    @classmethod
    def from_vkeys(cls, vkeys: Sequence[str], origin: str | None = None) -> Trust:
        """Trust the log keys ``vkeys``; the origin is their key name unless given."""
        if not vkeys:
            raise FormatError("at least one log key is required", field="log-key")
        verifiers: list[Verifier] = []
        for vkey in vkeys:
            v = parse_vkey(vkey)
            if not isinstance(v, Ed25519Verifier):
                raise FormatError(
                    "a log key must be an Ed25519 note key (signature type 0x01), "
                    "not a witness cosignature key",
                    field="log-key",
                    found=vkey,
                )
            verifiers.append(v)
        return cls(_origin_of(verifiers, origin), tuple(verifiers))

    @classmethod
    def from_policy(cls, text: bytes, origin: str | None = None) -> Trust:
        """Trust the logs and witness quorum of a C2SP tlog-policy file."""
        pol = parse_policy(text)
        verifiers = tuple(pol.logs)
        if not verifiers:
            raise FormatError("the policy names no log", field="policy")
        return cls(_origin_of(verifiers, origin), verifiers, pol)

    def open_checkpoint(self, data: bytes) -> Checkpoint:
        """Verify a signed checkpoint of the log (signature, origin, witness quorum).

        The log's checkpoints have no extension lines (docs/spec.md, "Checkpoints"):
        one that has them is rejected, although tlog-checkpoint allows them.
        """
        cp, note = open_checkpoint(data, self.verifiers, self.origin)
        if cp.extensions:
            raise FormatError(
                "the log's checkpoints have no extension lines",
                field="extensions",
                found=list(cp.extensions[:3]),
            )
        if self.policy is not None:
            self.policy.check_quorum(note)
        return cp


def _origin_of(verifiers: Sequence[Verifier], origin: str | None) -> str:
    names = sorted({v.name for v in verifiers})
    if origin is not None:
        return origin
    if len(names) != 1:
        raise FormatError(
            "the log keys have different names; give the origin explicitly",
            field="origin",
            found=names,
        )
    return names[0]


def fetch_checkpoint(source: Source, trust: Trust) -> tuple[Checkpoint, bytes]:
    """Steps 1-2: the source's checkpoint, verified against ``trust``.

    A failure names the field as ``checkpoint <field>`` (:class:`LocatedError`).
    """
    data = source.fetch("checkpoint")
    try:
        return trust.open_checkpoint(data), data
    except LedgerError as e:
        where = f"checkpoint {e.field}" if e.field else "checkpoint"
        raise LocatedError.of(e, field=where) from e


__all__ = ["Trust", "fetch_checkpoint"]
