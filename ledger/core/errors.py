"""The error hierarchy of the core.

Every parser raises :class:`FormatError` (or a subclass) on malformed input and
every verification raises :class:`VerificationError` (or a subclass) on failure;
no function of the core reports a failed check by returning a bool. Each error
carries a stable machine-readable ``code`` and, where it helps, where the
problem is (``index``, ``field``) and what was expected and found.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error the core raises on purpose."""

    code: str = "ledger_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        index: int | None = None,
        field: str | None = None,
        expected: object = None,
        found: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.index = index
        self.field = field
        self.expected = expected
        self.found = found

    def __str__(self) -> str:
        parts = []
        if self.index is not None:
            parts.append(f"entry {self.index}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        where = f"{', '.join(parts)}: " if parts else ""
        detail = ""
        if self.expected is not None or self.found is not None:
            detail = f" (expected {_show(self.expected)}, found {_show(self.found)})"
        return f"{where}{self.message}{detail}"


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 64 else f"{value[:32].hex()}... ({len(value)} bytes)"
    return repr(value)


class FormatError(LedgerError, ValueError):
    """Input does not follow its format: it is malformed, non-canonical or too large."""

    code = "malformed"


class TooLargeError(FormatError):
    """Input exceeds a documented size limit."""

    code = "too_large"


class VerificationError(LedgerError):
    """A well-formed object failed a cryptographic or semantic check."""

    code = "verification_failed"


class SignatureError(VerificationError):
    """A signature, or the key that should have made it, is not acceptable."""

    code = "bad_signature"


class UnknownKeyError(SignatureError):
    """No signature from any trusted key was found."""

    code = "unknown_key"


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify."""

    code = "bad_proof"


class RootMismatchError(ProofError):
    """A proof or a recomputation led to a root other than the expected one."""

    code = "root_mismatch"


class ConsistencyError(VerificationError):
    """Two checkpoints of one log are not consistent with each other: a fork."""

    code = "fork"


class RuleError(VerificationError):
    """A record breaks a semantic rule of the log (docs/spec.md, Semantic rules)."""

    code = "rule_violation"
