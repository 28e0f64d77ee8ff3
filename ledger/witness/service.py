"""The witness service, without HTTP: an add-checkpoint body in, an answer out.

:meth:`Witness.add_checkpoint` runs :func:`ledger.core.witness.open_request` (parse,
origin, log signature), the optional audit (:mod:`ledger.witness.audit`), then, inside
:meth:`ledger.witness.store.WitnessStore.advance` (per-origin lock, ``BEGIN IMMEDIATE``,
compare-and-swap), :func:`ledger.core.witness.check_consistent` and the cosignature;
the answer leaves only after the commit. Refusals of checkpoints the log validly signed
(bad proof, fork, lawless entry) are kept with their evidence; for a fork (two
checkpoints of one size with different roots, both signed by the log) the evidence is
the portable fork-evidence document that ``ledger-verify evidence`` checks
(:mod:`ledger.core.fork`).

Answers (:class:`Answer`) are what tlog-witness says: 200 ``text/plain`` cosignature
lines; 409 ``text/x.tlog.size`` with the latest cosigned size for an old size that does
not match; every other refusal an RFC 9457 ``application/problem+json`` document with
a stable ``code`` (and ``index`` and ``rule`` for an entry an auditing witness refused).
A storage failure (disk full, I/O error) answers 503: nothing was cosigned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.checkpoint import Checkpoint
from ledger.core.errors import LedgerError, RuleError, SignatureError, VerificationError
from ledger.core.fork import evidence_bytes, fork_evidence
from ledger.core.note import ALG_COSIGNATURE_V1, Ed25519Verifier, Note, Verifier, make_vkey
from ledger.core.policy import Policy
from ledger.core.witness import (
    EMPTY_TREE,
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    RootConflictError,
    SizeMismatchError,
    TreeHead,
    check_consistent,
    cosign_response,
    encode_size,
    open_request,
    parse_request,
    status_of,
)
from ledger.witness.store import Advance, WitnessStore

__all__ = [
    "PROBLEM_JSON",
    "Answer",
    "AuditUnavailableError",
    "Auditor",
    "Witness",
    "logs_of",
    "origin_id",
]

PROBLEM_JSON = "application/problem+json"
_PROBLEM_TYPE = "urn:endorsement-ledger:problem:"

logger = logging.getLogger("ledger.witness")


class AuditUnavailableError(Exception):
    """An auditing witness could not audit (the log's data cannot be read): 503."""


class Auditor(Protocol):
    """What an auditing witness runs before cosigning (:mod:`ledger.witness.audit`)."""

    def check(self, cp: Checkpoint, signed: bytes, latest: TreeHead) -> None:
        """Raise (RuleError naming the entry...) unless the entries latest..cp are lawful.

        ``signed`` is the checkpoint as submitted; AuditUnavailableError if it cannot tell.
        """
        ...

    def committed(self, cp: Checkpoint) -> None:
        """The witness cosigned ``cp``: the audited state may advance to it."""
        ...


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type, body."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = field(default=())


def problem(status: int, code: str, detail: str, **extra: Any) -> Answer:
    """An RFC 9457 problem document."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    doc = {
        "type": _PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **{k: v for k, v in extra.items() if v is not None},
    }
    body = json.dumps(doc, ensure_ascii=False, default=_jsonable).encode("utf-8") + b"\n"
    return Answer(status, PROBLEM_JSON, body)


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def origin_id(origin: str) -> str:
    """The hex SHA-256 of an origin: the path segment of its checkpoint (``/<id>/checkpoint``)."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def logs_of(policy: Policy) -> dict[str, list[Verifier]]:
    """The witnessed logs of a policy: each origin (its vkey's name) and its keys."""
    logs: dict[str, list[Verifier]] = {}
    for v in policy.logs:
        logs.setdefault(v.name, []).append(v)
    return logs


class Witness:
    """A tlog-witness cosigner: key, witnessed logs, store, optional auditor."""

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        logs: Mapping[str, Sequence[Verifier]],
        store: WitnessStore,
        *,
        auditor: Auditor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._key = private_key
        self.vkey = make_vkey(name, private_key.public_key().public_bytes_raw(), ALG_COSIGNATURE_V1)
        self.logs = {o: tuple(vs) for o, vs in logs.items()}
        self._by_id = {origin_id(o): o for o in self.logs}
        for origin, verifiers in self.logs.items():
            for v in verifiers:
                if not isinstance(v, Ed25519Verifier) or v.name != origin:
                    raise ValueError(f"log key {v.name!r} is not an Ed25519 key named {origin!r}")
        self.store = store
        self.auditor = auditor
        self._clock = clock

    def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one add-checkpoint request body."""
        try:
            request = parse_request(body)
            cp, note = open_request(request, self.logs)
        except LedgerError as e:
            return self._refused(e)
        try:
            if self.auditor is not None:
                stored = self.store.latest(cp.origin)
                latest = stored[0] if stored else EMPTY_TREE
                # Only a request that would be cosigned is audited: check it first (and
                # again under the lock, where the stored tree may have moved).
                check_consistent(request, cp, latest)
                self.auditor.check(cp, request.checkpoint, latest)
            answer = self.store.advance(cp.origin, lambda s: self._cosign(request, cp, note, s))
        except LedgerError as e:
            self._keep(request, cp, e)
            return self._refused(e)
        except sqlite3.Error as e:
            logger.error("witness store failed: %s", e)
            return problem(503, "unavailable", "the witness could not persist its state")
        except AuditUnavailableError as e:
            logger.warning("could not audit %s size %d: %s", cp.origin, cp.size, e)
            answer = problem(503, "audit_unavailable", f"the witness could not audit: {e}")
            return Answer(answer.status, answer.content_type, answer.body, (("Retry-After", "5"),))
        if self.auditor is not None:
            try:
                self.auditor.committed(cp)
            except (OSError, LedgerError) as e:
                # Cosigned and durable: the audit state lags, and the next audit replays more.
                logger.error("could not save the audit state of %s: %s", cp.origin, e)
        return answer

    def _cosign(
        self, request: AddCheckpoint, cp: Checkpoint, note: Note, stored: TreeHead | None
    ) -> tuple[Advance, Answer]:
        check_consistent(request, cp, stored or EMPTY_TREE)
        body, served = cosign_response(note, self.name, self._key, int(self._clock()))
        return Advance(TreeHead(cp.size, cp.root), served), Answer(
            200, "text/plain; charset=utf-8", body
        )

    def _keep(self, request: AddCheckpoint, cp: Checkpoint, error: LedgerError) -> None:
        """Keep a refusal of a log-signed checkpoint that may show misbehaviour."""
        if isinstance(error, SizeMismatchError):
            return  # a client behind or ahead of us: not misbehaviour
        evidence = None
        if isinstance(error, RootConflictError):
            stored = self.store.latest(cp.origin)
            if stored is not None:
                evidence = evidence_bytes(fork_evidence(stored[1], request.checkpoint, []))
        else:
            found = getattr(error, "evidence", None)  # LawlessLogError, ForkError
            if isinstance(found, bytes):
                evidence = found
            elif isinstance(found, dict):
                evidence = evidence_bytes(found)
        kept = None
        try:
            kept = self.store.keep_refusal(
                cp.origin,
                status=status_of(error),
                code=error.code,
                detail=str(error),
                request=request.encode(),
                evidence=evidence,
            )
        except sqlite3.Error as e:
            logger.error("could not keep a refusal: %s", e)
        logger.warning(
            "refused %s size %d (%d %s, kept as refusal %s%s): %s",
            cp.origin,
            cp.size,
            status_of(error),
            error.code,
            kept,
            " with evidence" if evidence is not None else "",
            error,
        )

    def _refused(self, error: LedgerError) -> Answer:
        status = status_of(error)
        if isinstance(error, SizeMismatchError):
            return Answer(409, SIZE_CONTENT_TYPE, encode_size(error.latest))
        extra: dict[str, Any] = {"field": error.field, "index": error.index}
        if isinstance(error, VerificationError) and not isinstance(error, SignatureError):
            extra["expected"] = error.expected
            extra["found"] = error.found
        if isinstance(error, RuleError):
            extra["rule"] = error.code
        return problem(status, error.code, str(error), **extra)

    def checkpoint(self, oid: str) -> Answer:
        """The latest cosigned checkpoint of the log whose origin hashes to ``oid``."""
        origin = self._by_id.get(oid)
        stored = self.store.latest(origin) if origin is not None else None
        if stored is None:
            return problem(404, "not_found", "no checkpoint cosigned for that log")
        return Answer(200, "text/plain; charset=utf-8", stored[1], (("Cache-Control", "no-cache"),))
