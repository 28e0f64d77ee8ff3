"""Statements, endorsements and signatories: the projection of the log.

The projection is derived from the entries (``ledger reindex`` rebuilds it from
them alone) and is never a source of truth: the tallies here are those a verifier
computes by replaying the log (docs/spec.md, "Tallies").

- ``GET /api/v1/statements?offset=&limit=``: statements in log order, with tallies;
- ``GET /api/v1/statements/{id}``: one statement, its full text and authors;
- ``GET /api/v1/statements/{id}/endorsements?kind=&country=&offset=&limit=``: its
  active endorsements, in log order;
- ``GET /api/v1/signatories/{key_hash}``: a signatory by the hash of any of its keys
  (its id is the hash of its first key);
- ``GET /api/v1/signatories?q=``: signatories whose name contains ``q``
  (case-insensitive) or whose domain is ``q`` or ends with ``.q``.

Pages: ``next_offset`` is the offset of the next page, or null on the last one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.problems import ProblemError
from api.routes.deps import SHORT, AppContext, ContextDep, hex32_param
from api.routes.schemas import (
    AuthorInfo,
    EndorsementInfo,
    EndorsementList,
    SignatoryInfo,
    SignatoryList,
    StatementDetail,
    StatementList,
    StatementSummary,
    Tally,
    problem_responses,
)
from api.storage.base import SignatoryView, StatementView
from ledger.core.records import Kind

router = APIRouter(prefix="/api/v1", tags=["statements and signatories"])

MAX_PAGE = 1000
Offset = Annotated[int, Query(ge=0, le=2**62, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")]
# Documented patterns (the routes check the values themselves: 400 invalid_parameter).
_HEX64 = {"pattern": r"^[0-9a-f]{64}$"}
StatementId = Annotated[
    str,
    Path(description="The statement's record id, hex.", json_schema_extra=_HEX64),
]
KeyHash = Annotated[
    str,
    Path(description="SHA-256 of one of the signatory's keys, hex.", json_schema_extra=_HEX64),
]


def _tally(view: StatementView) -> Tally:
    by_kind = {k.value: 0 for k in Kind}
    by_kind.update(view.tallies)
    return Tally(total=sum(by_kind.values()), by_kind=by_kind)


def _summary(view: StatementView) -> StatementSummary:
    return StatementSummary(
        statement=view.statement,
        title=view.title,
        authors=list(view.authors),
        index=view.index,
        tally=_tally(view),
    )


def _signatory(view: SignatoryView) -> SignatoryInfo:
    return SignatoryInfo(
        signatory=view.signatory,
        name=view.name,
        kind=view.kind,
        country=view.country,
        domain=view.domain,
        index=view.index,
        current_key=view.current_key,
        active=view.active,
        keys=list(view.keys),
    )


def _next(offset: int, limit: int, got: int) -> int | None:
    return offset + limit if got > limit else None


def _statement(ctx: AppContext, statement_id: str) -> StatementView:
    view = ctx.storage.statement(hex32_param(statement_id, "statement"))
    if view is None:
        raise ProblemError("not_found", f"The log has no statement {statement_id}.", status=404)
    return view


@router.get(
    "/statements",
    summary="Statements, with their tallies",
    response_model=StatementList,
    responses=problem_responses(422),
)
def list_statements(
    ctx: ContextDep, response: Response, offset: Offset = 0, limit: Limit = 100
) -> StatementList:
    """Statements in log order, each with its tally of active endorsements by kind."""
    views = ctx.storage.statements(offset=offset, limit=limit + 1)
    response.headers["Cache-Control"] = SHORT
    return StatementList(
        offset=offset,
        limit=limit,
        next_offset=_next(offset, limit, len(views)),
        items=[_summary(v) for v in views[:limit]],
    )


@router.get(
    "/statements/{statement_id}",
    summary="A statement: full text, authors, tallies",
    response_model=StatementDetail,
    responses=problem_responses(400, 404),
)
def get_statement(
    statement_id: StatementId, ctx: ContextDep, response: Response
) -> StatementDetail:
    """One statement by id (the hex record id of its statement record)."""
    view = _statement(ctx, statement_id)
    authors = []
    for author in view.authors:
        s = ctx.storage.signatory(bytes.fromhex(author))
        authors.append(
            AuthorInfo(signatory=author, name=s.name if s else None, kind=s.kind if s else None)
        )
    response.headers["Cache-Control"] = SHORT
    return StatementDetail(**_summary(view).model_dump(), text=view.text, author_details=authors)


@router.get(
    "/statements/{statement_id}/endorsements",
    summary="A statement's active endorsements",
    response_model=EndorsementList,
    responses=problem_responses(400, 404, 422),
)
def list_endorsements(
    statement_id: StatementId,
    *,
    ctx: ContextDep,
    response: Response,
    kind: Annotated[Kind | None, Query(description="Only signatories of this kind.")] = None,
    country: Annotated[
        str | None,
        Query(pattern=r"^[A-Z]{2}$", description="Only signatories of this country."),
    ] = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> EndorsementList:
    """Active endorsements in log order, filtered by signatory kind and country."""
    view = _statement(ctx, statement_id)
    rows = ctx.storage.endorsements(
        bytes.fromhex(view.statement),
        kind=None if kind is None else kind.value,
        country=country,
        offset=offset,
        limit=limit + 1,
    )
    response.headers["Cache-Control"] = SHORT
    return EndorsementList(
        statement=view.statement,
        offset=offset,
        limit=limit,
        next_offset=_next(offset, limit, len(rows)),
        items=[
            EndorsementInfo(
                signatory=e.signatory,
                name=e.name,
                kind=e.kind,
                country=e.country,
                domain=e.domain,
                index=e.index,
                comment=e.comment,
            )
            for e in rows[:limit]
        ],
    )


@router.get(
    "/signatories",
    summary="Search signatories by name or domain",
    response_model=SignatoryList,
    responses=problem_responses(422),
)
def search_signatories(
    ctx: ContextDep,
    response: Response,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="Part of a name (case-insensitive), or a domain.",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SignatoryList:
    """Signatories whose name contains `q` or whose domain is `q` or a subdomain of it."""
    views = ctx.storage.search_signatories(q, limit=limit)
    response.headers["Cache-Control"] = SHORT
    return SignatoryList(query=q, items=[_signatory(v) for v in views])


@router.get(
    "/signatories/{key_hash}",
    summary="A signatory by key hash",
    response_model=SignatoryInfo,
    responses=problem_responses(400, 404),
)
def get_signatory(key_hash: KeyHash, ctx: ContextDep, response: Response) -> SignatoryInfo:
    """The signatory of any of its keys' hashes (its id is the hash of its first key)."""
    view = ctx.storage.signatory(hex32_param(key_hash, "key_hash"))
    if view is None:
        raise ProblemError("not_found", f"No signatory has a key with hash {key_hash}.", status=404)
    response.headers["Cache-Control"] = SHORT
    return _signatory(view)


__all__ = ["router"]
